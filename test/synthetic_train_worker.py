"""``wallwm_core.training.train`` on synthetic windows, for torchrun in the DDP test."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_windows import synthetic_prepare

from wallwm_core.training.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prepare=synthetic_prepare))

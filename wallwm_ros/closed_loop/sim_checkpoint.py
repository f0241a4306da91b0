"""The WALL-WM checkpoint for the simulated arm in the ROS harness: the given one, the one
wallwm_core ships, or an untrained ``tiny`` one (written by the ROS-free
:mod:`wallwm_sim.untrained_checkpoint`, which the simulator harness uses too).
"""

from __future__ import annotations

from pathlib import Path

from wallwm_sim.untrained_checkpoint import UNTRAINED_NOTE, write_untrained_checkpoint

__all__ = ["UNTRAINED_NOTE", "checkpoint_for_sim", "write_untrained_checkpoint"]


def checkpoint_for_sim(checkpoint: str, workdir: Path) -> tuple[str, bool]:
    """(checkpoint directory, whether it is untrained) for the simulated arm: ``checkpoint`` if
    given, else the one shipped with wallwm_core, else an untrained one written under
    ``workdir``."""
    from wallwm_core.config_loading import ConfigError
    from wallwm_ros.bringup import default_checkpoint

    if checkpoint:
        return checkpoint, False
    try:
        return default_checkpoint(), False
    except ConfigError:
        return str(write_untrained_checkpoint(workdir / "untrained_checkpoint")), True

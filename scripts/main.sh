#!/usr/bin/env bash
# The README's main-job command: idempotent set-up, then the end-to-end demo over real ROS 2.
# Extra arguments go to the demo (see: bash scripts/main.sh --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/env.sh
exec python -m wallwm_ros.demo "$@"

#!/usr/bin/env bash
# The README's main-job command: idempotent set-up, then the simulated closed loop (sim + policy +
# controller nodes over real DDS) on one task.
# Extra arguments go to wallwm_ros.closed_loop.run_sim (bash scripts/main.sh --help; --policy expert = reference).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/env.sh
exec python -m wallwm_ros.closed_loop.run_sim "$@"

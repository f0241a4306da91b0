# Source this file (bash) to use the environment made by scripts/setup.sh:
#   source scripts/env.sh
# It activates the venv and points the ament index at it. The ROS wheels' bootstrap (.pth file)
# sets LD_LIBRARY_PATH for the ROS libraries on every Python start.
_wallwm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_wallwm_venv="${WALLWM_VENV:-$_wallwm_root/.venv}"
if [ ! -f "$_wallwm_venv/bin/activate" ]; then
  echo "wallwm: no environment at $_wallwm_venv; run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_wallwm_venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
export ROS_LOG_DIR="${ROS_LOG_DIR:-${WALLWM_BUILD_DIR:-$_wallwm_root/build}/ros_log}"
unset _wallwm_root _wallwm_venv

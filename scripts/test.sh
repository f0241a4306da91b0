#!/usr/bin/env bash
# The README's test command: idempotent set-up, lint and format check, then the full test suite.
# Extra arguments go to pytest (for example: bash scripts/test.sh -k interfaces).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/env.sh
echo "[test] ruff check"
ruff check .
echo "[test] ruff format --check"
ruff format --check .
echo "[test] pytest"
python -m pytest "$@"

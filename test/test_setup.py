"""The set-up script: idempotent on a second run, and clear when a prerequisite is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP = REPO_ROOT / "scripts" / "setup.sh"
# Commands setup.sh itself uses before it reaches the prerequisite it checks.
BASIC_TOOLS = (
    "bash", "env", "dirname", "cat", "sed", "sort", "grep", "tail", "cut", "find", "xargs",
    "sha256sum", "mkdir", "rm", "nproc", "printf",
)  # fmt: skip


def _run_setup(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_second_run_is_a_no_op() -> None:
    venv = Path(sys.prefix)
    env = {**os.environ, "WALLWM_VENV": str(venv)}
    assert _run_setup(env).returncode == 0  # first run: brings everything up to date
    generated = (
        venv / "lib" / "python3.11" / "site-packages" / "wallwm_msgs" / "msg" / "_action_chunk.py"
    )
    stamps = sorted((venv / ".wallwm-stamps").iterdir())
    before = {p: p.stat().st_mtime_ns for p in [generated, *stamps]}

    result = _run_setup(env)  # second run: must find nothing to do

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for stage in ("venv", "wheels", "wallwm_msgs", "python packages"):
        assert any(line.startswith(f"[setup] {stage}: up to date") for line in lines), result.stdout
    assert "installing" not in result.stdout and "building" not in result.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing rebuilt or rewritten


def _path_without(tmp_path: Path, missing: set[str], extra: tuple[str, ...]) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (*BASIC_TOOLS, *extra):
        if tool in missing:
            continue
        found = shutil.which(tool)
        assert found, f"test machine lacks {tool}"
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ({"cmake"}, "cmake not found"),
        ({"cc", "c++"}, "no C/C++ compiler"),
        ({"make"}, "make not found"),
        ({"python3"}, "python3 not found"),
    ],
)
def test_missing_prerequisite_fails_clearly_before_any_work(tmp_path, missing, message) -> None:
    python = Path(sys._base_executable).resolve()
    bin_dir = _path_without(tmp_path, missing, ("cmake", "cc", "c++", "make"))
    if "python3" not in missing:
        (Path(bin_dir) / "python3").symlink_to(python)
    venv = tmp_path / "venv"
    env = {
        "PATH": bin_dir,
        "HOME": str(tmp_path),
        "WALLWM_VENV": str(venv),
        "WALLWM_BUILD_DIR": str(tmp_path / "build"),
    }

    result = _run_setup(env)

    assert result.returncode == 2
    assert message in result.stderr
    assert "apt-get install" in result.stderr  # says how to fix it
    assert not venv.exists()  # failed before doing anything


def test_wrong_python_version_is_named(tmp_path) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Python 3.9.2"; exit 0; fi\nexit 1\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "WALLWM_PYTHON": str(fake), "WALLWM_VENV": str(tmp_path / "venv")}

    result = _run_setup(env)

    assert result.returncode == 2
    assert "Python 3.11 is required" in result.stderr and "3.9.2" in result.stderr

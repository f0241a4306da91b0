"""Two harness runs at once must not meet: each claims a ROS domain and an output folder.

A simulation publishes the global ``/clock``, so two simulated closed loops in one ROS domain
disturb each other whatever their namespaces (clock jumps, chunks "from the future", a score
of the wrong episode). :func:`claim_domain` takes a ROS domain id no other wallwm harness on this
machine holds: the preferred one (``ROS_DOMAIN_ID`` or 0) when it is free, else the next free
one, and says so. :func:`claim_output` refuses an output folder another live run writes to.
Claims are ``flock`` locks on files in the temporary directory (or the output folder): the
kernel releases them when the process ends, even after ``kill -9``.

This isolates wallwm harnesses from each other; other ROS programs in the same domain (a user's
``ros2 topic echo``) are not affected, which is the point of printing the domain.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

from wallwm_core.config_loading import ConfigError
from wallwm_core.file_lock import try_lock

# ROS domain ids are 0..232 (above 101 they may collide with Linux's ephemeral ports, but they
# work where those are not in use; the tests use 1..200).
MAX_DOMAIN_ID = 233
LOCK_DIR_ENV = "WALLWM_LOCK_DIR"


@dataclasses.dataclass
class Claim:
    """A held claim; released by :meth:`release` or when the process ends."""

    value: int | Path
    note: str
    _file: IO[str]

    def release(self) -> None:
        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


def _try_lock(path: Path) -> IO[str] | None:
    """``try_lock`` that writes this process's id into the file it holds (for ``_holder``)."""
    handle = try_lock(path)
    if handle is None:
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return "another process"
    return f"pid {pid}" if pid else "another process"


def _lock_dir() -> Path:
    path = Path(os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir()) / "wallwm_locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def claim_domain(preferred: int | None = None) -> Claim:
    """A ROS domain id for this run: ``preferred`` (default ``ROS_DOMAIN_ID`` or 0) if no other
    wallwm harness holds it, else the next free id (wrapping), with a note saying why."""
    if preferred is None:
        preferred = int(os.environ.get("ROS_DOMAIN_ID") or 0)
    if not 0 <= preferred < MAX_DOMAIN_ID:
        raise ConfigError(f"ROS domain id must lie in 0..{MAX_DOMAIN_ID - 1}, got {preferred}")
    locks = _lock_dir()
    for offset in range(MAX_DOMAIN_ID):
        domain = (preferred + offset) % MAX_DOMAIN_ID
        path = locks / f"ros_domain_{domain}.lock"
        handle = _try_lock(path)
        if handle is None:
            continue
        note = f"ROS domain {domain}"
        if domain != preferred:
            holder = _holder(locks / f"ros_domain_{preferred}.lock")
            note += (
                f" (domain {preferred} is in use by another wallwm run, {holder}: this run "
                "keeps to its own)"
            )
        return Claim(domain, note, handle)
    raise ConfigError("every ROS domain id is held by another wallwm run on this machine")


def claim_output(folder: Path) -> Claim:
    """The output ``folder`` for this run alone; ConfigError when a live run writes there."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".wallwm_run.lock"
    handle = _try_lock(path)
    if handle is None:
        raise ConfigError(
            f"another run ({_holder(path)}) is writing to {folder}; wait for it or pass "
            "another output folder"
        )
    return Claim(folder, str(folder), handle)

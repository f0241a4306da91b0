"""Advisory whole-file locks between processes on one machine (``fcntl.flock``)."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO


def try_lock(path: Path) -> IO[str] | None:
    """The open file ``path`` (created with its folder if needed) holding an exclusive lock, or
    None when another process holds it. The lock lasts until the file is closed (or every
    process that inherited its descriptor has exited); its contents are left as they were."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle

"""Where the installed wallwm_bringup configuration lives (ament index), for in-process bringup."""

from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import get_package_share_directory


def bringup_config(name: str) -> Path:
    """Path of ``config/<name>`` in the installed wallwm_bringup package."""
    path = Path(get_package_share_directory("wallwm_bringup")) / "config" / name
    if not path.is_file():
        raise FileNotFoundError(f"wallwm_bringup has no config {name!r} (looked at {path})")
    return path

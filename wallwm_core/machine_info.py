"""A one-line description of the machine, for the captions of figures and reports."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_description() -> str:
    """The CPU model, core count and host name, e.g. ``"AMD EPYC 7B13, 2 CPUs, vm-1"``."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, {platform.node()}"

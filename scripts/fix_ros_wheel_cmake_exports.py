"""Point the ROS wheels' CMake exports at this venv's Python and NumPy headers.

The PyPI ROS 2 wheels export ``*__rosidl_generator_py`` CMake targets whose include
directories name the wheel-build host's ``/opt/python/cp311-cp311/...`` paths; CMake refuses
imported targets with non-existent include paths, so building any interface package that
depends on them fails. This rewrites those two paths, idempotently, in the venv it runs in.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_HOST_PYTHON_INCLUDE = re.compile(r"/opt/python/cp\d+-cp\d+/include/python3\.\d+")
BUILD_HOST_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp\d+-cp\d+/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include"
)


def main() -> int:
    exports = sorted(Path(sys.prefix, "share").glob("*/cmake/*__rosidl_generator_pyExport.cmake"))
    if not exports:
        print("no rosidl_generator_py CMake exports found: are the ROS wheels installed?")
        return 1
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in exports:
        text = path.read_text()
        fixed = BUILD_HOST_NUMPY_INCLUDE.sub(numpy_include, text)
        fixed = BUILD_HOST_PYTHON_INCLUDE.sub(python_include, fixed)
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    leftover = [str(p) for p in exports if "/opt/python/" in p.read_text()]
    if leftover:
        print("build-host paths remain in: " + ", ".join(leftover))
        return 1
    print(f"checked {len(exports)} CMake exports, rewrote {changed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

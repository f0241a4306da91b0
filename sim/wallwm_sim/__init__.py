"""wallwm_sim: a MuJoCo tabletop-arm simulation, task suite, scripted expert and eval harness.

MuJoCo picks its OpenGL backend when it is first imported, so the default headless backend is
chosen here, before any submodule imports mujoco: ``MUJOCO_GL=egl`` unless the caller already set
``MUJOCO_GL`` (e.g. ``osmesa``). The package imports no ROS: the simulation node of the
``wallwm`` package (``ros2 run wallwm sim_node``) is a thin wrapper over
:class:`wallwm_sim.sim.TabletopSim`.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

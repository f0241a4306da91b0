"""Import boundaries: deployment code runs without torch, the simulation library without ROS.

Each import runs in a fresh interpreter, so modules that this test process already loaded
cannot hide a heavy import.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# The policy interface and the types it carries, the observation sync, the controller core and
# the simulator library: what a robot computer and a data-generation machine load.
TORCH_FREE = (
    "wallwm_core.policy",
    "wallwm_core.action_chunk",
    "wallwm_core.camera_geometry",
    "wallwm_core.event_execution",
    "wallwm_core.replay_policy",
    "wallwm_ros.observation_sync",
    "wallwm_core.control",
    "wallwm_sim.sim",
    "wallwm_sim.sim_loop",
    "wallwm_sim.rollout",
    "wallwm_sim.evaluate",
    "wallwm_sim.generate_demos",
)
# wallwm_sim runs on machines without ROS (a training cluster): it must not load rclpy.
ROS_FREE = (
    "wallwm_sim.sim",
    "wallwm_sim.sim_loop",
    "wallwm_sim.evaluate",
    "wallwm_sim.generate_demos",
    "wallwm_sim.recorder",
)


def loaded_after_import(module: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` are in ``sys.modules`` after importing ``module`` afresh."""
    code = (
        f"import sys, {module}; "
        f"print(','.join(name for name in {candidates!r} if name in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    return [name for name in run.stdout.strip().split(",") if name]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_deployment_modules_do_not_import_torch(module: str) -> None:
    assert loaded_after_import(module, ("torch",)) == []


@pytest.mark.parametrize("module", ROS_FREE)
def test_simulation_library_does_not_import_ros(module: str) -> None:
    assert loaded_after_import(module, ("rclpy", "wallwm_ros", "wallwm_msgs")) == []


def test_the_check_sees_torch_when_it_is_imported() -> None:
    # The model modules need torch: the check above would catch a deployment module loading it.
    assert loaded_after_import("wallwm_core.model.sight_cone", ("torch",)) == ["torch"]

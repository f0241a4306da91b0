"""Test environment: ROS isolation per test process, and per-test rclpy contexts.

Set before any test imports rclpy: a ROS_DOMAIN_ID of this process's own, discovery limited to
localhost, and ROS logs inside the build tree. Subprocesses that tests start get another domain
id from ``child_domain_id``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Domain ids 1..100 for test processes, 101..200 for the subprocesses they start; both derive from
# the pid, so concurrent test processes on one machine do not share a domain.
PROCESS_DOMAIN_ID = 1 + os.getpid() % 100

os.environ["ROS_DOMAIN_ID"] = str(PROCESS_DOMAIN_ID)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOG_DIR"] = str(REPO_ROOT / "build" / "test_ros_log")
os.environ.setdefault("AMENT_PREFIX_PATH", os.environ.get("VIRTUAL_ENV", ""))

import rclpy  # noqa: E402  (must come after the environment above)
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from wallwm_ros.background_spinner import BackgroundSpinner  # noqa: E402


def child_domain_id() -> int:
    return PROCESS_DOMAIN_ID + 100


def child_env() -> dict[str, str]:
    """Environment for a ROS subprocess started by a test: isolated from this process's domain."""
    return {**os.environ, "ROS_DOMAIN_ID": str(child_domain_id())}


@pytest.fixture
def ros_context() -> Iterator[rclpy.Context]:
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


# Two scripted events for the replay policy: a short one, and one long enough to cancel,
# time out or preempt.
REPLAY_EVENTS_YAML = """
frame_id: base_link
step_period: 0.05
chunk_steps: 5
arms: [{name: arm, ee_frame: tool0}]
events:
  - instruction: reach
    waypoints:
      - {time: 0.0, targets: {arm: {position: [0.3, 0.0, 0.3], quaternion_wxyz: [1, 0, 0, 0], gripper: 0.0}}}
      - {time: 0.6, targets: {arm: {position: [0.4, 0.1, 0.2], quaternion_wxyz: [1, 0, 0, 0], gripper: 1.0}}}
  - instruction: long wipe
    waypoints:
      - {time: 0.0, targets: {arm: {position: [0.3, 0.0, 0.3], quaternion_wxyz: [1, 0, 0, 0], gripper: 0.0}}}
      - {time: 30.0, targets: {arm: {position: [0.4, 0.1, 0.2], quaternion_wxyz: [1, 0, 0, 0], gripper: 0.0}}}
"""


@pytest.fixture
def replay_file(tmp_path: Path) -> Path:
    path = tmp_path / "replay.yaml"
    path.write_text(REPLAY_EVENTS_YAML)
    return path


@pytest.fixture
def namespace() -> str:
    """A namespace of its own per test, so no test sees another's topics."""
    return f"/t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def spinner(ros_context: rclpy.Context) -> Iterator[BackgroundSpinner]:
    # One thread: rclpy's MultiThreadedExecutor busy-waits on the GIL under high-rate topics.
    spinner = BackgroundSpinner(SingleThreadedExecutor(context=ros_context))
    yield spinner
    spinner.close()


@pytest.fixture(scope="module")
def torch_single_thread() -> Iterator[None]:
    """One torch thread for a module: on the shared 2-core machine the toy tensors of the model
    tests only pay synchronisation overhead for more (measured 10-20x slower with two)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def wait_for(predicate, timeout_s: float = 10.0, poll_s: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns its last value."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())

"""The simulated closed loop over real DDS: sim + policy + controller nodes, tasks and faults.

One bringup serves the module (starting it costs seconds); every test resets the episode. The
policy is the scripted expert's replay (the reference policy) for pick_place seed 0.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import rclpy
import transforms3d
from conftest import wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from wallwm_core.action_chunk import ActionChunk
from wallwm_core.control import ArmKinematics
from wallwm_core.outcome import Outcome
from wallwm_msgs.msg import ActionChunk as ActionChunkMsg
from wallwm_msgs.srv import GetTaskProgress, ResetSimulation
from wallwm_ros import qos
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup import PolicyChoice, sim_bringup
from wallwm_ros.closed_loop.expert_replay import write_expert_replay
from wallwm_ros.closed_loop.inprocess_bringup import InProcessBringup
from wallwm_ros.conversions import chunk_to_msg
from wallwm_ros.send_goal import execute_task
from wallwm_sim.description import urdf_string

CONFIG = Path(__file__).resolve().parents[1] / "wallwm_bringup" / "config"
TASK, SEED = "pick_place", 0
ARM_JOINTS = 6


class Client:
    """Test-side node: joint-state history, service calls, goals."""

    def __init__(self, node) -> None:
        self.node = node
        self.joints: list[tuple[int, np.ndarray]] = []
        self._lock = threading.Lock()
        node.create_subscription(JointState, "joint_states", self._on_joints, qos.SENSORS)

    def _on_joints(self, msg: JointState) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self.joints.append((stamp, np.array(msg.position[:ARM_JOINTS])))
            del self.joints[:-4000]

    def latest_stamp_ns(self) -> int:
        with self._lock:
            return self.joints[-1][0] if self.joints else 0

    def motion_between(self, start_ns: int, end_ns: int, required: bool = True) -> float:
        """Largest joint displacement (rad) between two simulation times."""
        with self._lock:
            window = [q for stamp, q in self.joints if start_ns <= stamp <= end_ns]
        if len(window) <= 10 and not required:
            return 0.0
        assert len(window) > 10, "no joint states in the window"
        return float(np.max(np.abs(np.array(window) - window[0])))

    def wait_sim_time(self, until_ns: int, timeout_s: float = 30.0) -> None:
        assert wait_for(lambda: self.latest_stamp_ns() >= until_ns, timeout_s=timeout_s)

    def call(self, service_type, name, request):
        client = self.node.create_client(service_type, name)
        assert client.wait_for_service(timeout_sec=20.0), name
        future = client.call_async(request)
        assert wait_for(future.done, timeout_s=20.0)
        self.node.destroy_client(client)
        return future.result()

    def reset(self):
        response = self.call(
            ResetSimulation, "reset_simulation", ResetSimulation.Request(task=TASK, seed=SEED)
        )
        assert response.success, response.message
        return response

    def progress(self) -> float:
        return self.call(GetTaskProgress, "get_task_progress", GetTaskProgress.Request()).progress


@pytest.fixture(scope="module")
def expert_replay(tmp_path_factory) -> tuple[Path, list[str]]:
    return write_expert_replay(TASK, SEED, "train", tmp_path_factory.mktemp("expert"))


@pytest.fixture(scope="module")
def loop(expert_replay):
    """The in-process bringup in its own namespace, plus a client node."""
    replay_file, _ = expert_replay
    context = rclpy.Context()
    rclpy.init(context=context)
    namespace = f"/loop{uuid.uuid4().hex[:8]}"
    specs = sim_bringup(
        CONFIG,
        PolicyChoice("replay", replay_file=str(replay_file)),
        task=TASK,
        seed=SEED,
        lockstep=True,
    )
    bringup = InProcessBringup(specs, namespace=namespace, context=context)
    spinner = BackgroundSpinner(SingleThreadedExecutor(context=context))
    client = Client(spinner.add(rclpy.create_node("client", namespace=namespace, context=context)))
    assert wait_for(lambda: client.latest_stamp_ns() > 0, timeout_s=30.0)
    yield client
    spinner.close()
    bringup.close()
    rclpy.try_shutdown(context=context)


def test_expert_replay_task_through_ros_scores_at_least_80(loop, expert_replay):
    _, events = expert_replay
    reset = loop.reset()
    assert loop.progress() == 0.0
    result = execute_task(loop.node, reset.task_description, events, timeout_s=60.0)

    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert [e[1] for e in result.events] == [Outcome.SUCCEEDED] * len(events)
    assert loop.progress() >= 80.0


def test_cancel_stops_the_motion(loop, expert_replay):
    _, events = expert_replay
    reset = loop.reset()
    result = execute_task(loop.node, reset.task_description, events, cancel_after_s=1.5)
    assert result.outcome == Outcome.CANCELED
    canceled_ns = loop.latest_stamp_ns()
    # the last chunk (0.5 s) may still run, then the end hold (0.3 s) and braking: 1.5 s bound
    settle_ns = canceled_ns + 1_500_000_000
    loop.wait_sim_time(settle_ns + 500_000_000)
    assert loop.motion_between(settle_ns, settle_ns + 500_000_000) < 1e-3


def test_reset_after_motion_leaves_the_arm_at_the_reset_pose(loop, expert_replay):
    """The controller still commands the old pose when the sim resets the arm; it must re-anchor
    at the reset pose instead of driving the arm back (the next episode starts from there)."""
    _, events = expert_replay
    reset = loop.reset()
    loop.wait_sim_time(loop.latest_stamp_ns() + 200_000_000)  # joint states after the reset
    home = loop.joints[-1][1].copy()
    result = execute_task(loop.node, reset.task_description, events, cancel_after_s=2.5)
    assert result.outcome == Outcome.CANCELED
    loop.wait_sim_time(loop.latest_stamp_ns() + 1_500_000_000)
    moved = loop.joints[-1][1].copy()
    assert np.max(np.abs(moved - home)) > 0.25  # far enough to trip the following error

    loop.reset()
    reset_ns = loop.latest_stamp_ns()
    loop.wait_sim_time(reset_ns + 2_000_000_000)
    # Commands already in flight at the reset may nudge it by hundredths of a radian (driving it
    # back would be ~0.7 rad); then it rests there.
    assert np.max(np.abs(loop.joints[-1][1] - home)) < 0.05
    assert loop.motion_between(reset_ns + 1_000_000_000, reset_ns + 2_000_000_000) < 2e-3


def test_estop_holds_until_reset_and_a_nan_chunk_after_it_is_rejected(loop, expert_replay):
    _, events = expert_replay
    reset = loop.reset()
    estop = loop.node.create_publisher(Bool, "estop", qos.ESTOP)
    assert wait_for(lambda: estop.get_subscription_count() > 0)
    estop.publish(Bool(data=True))
    estop.publish(Bool(data=False))  # a press released at once still latches
    time.sleep(0.5)
    start_ns = loop.latest_stamp_ns()
    # the policy sees the latched controller: the task ends ESTOP, nothing moves
    result = execute_task(loop.node, reset.task_description, events, timeout_s=3.0)
    assert result.outcome == Outcome.ESTOP, result.message
    loop.wait_sim_time(start_ns + 500_000_000)
    assert loop.motion_between(start_ns, loop.latest_stamp_ns()) < 5e-3  # servo settling only
    assert loop.progress() == 0.0

    replies = []

    def try_reset() -> bool:
        response = loop.call(Trigger, "reset_estop", Trigger.Request())
        replies.append(response.message)
        return response.success

    assert wait_for(try_reset, timeout_s=10.0, poll_s=0.2), replies

    # After the reset (the controller executes chunks again) a chunk with a NaN target is
    # rejected as a whole, before any of it moves the arm, and the rejection is reported.
    diagnostics: list[dict[str, str]] = []
    loop.node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda m: diagnostics.extend(
            {kv.key: kv.value for kv in s.values} for s in m.status if "controller_node" in s.name
        ),
        50,
    )
    chunks = loop.node.create_publisher(ActionChunkMsg, "action_chunk", qos.COMMANDS)
    assert wait_for(lambda: chunks.get_subscription_count() > 0)
    kinematics = ArmKinematics(urdf_string(), [f"joint{i}" for i in range(1, 7)], "tool0")
    start = kinematics.forward(loop.joints[-1][1])
    steps = 20
    positions = start.position + np.linspace(0.0, 1.0, steps)[:, None] * np.array([0.0, 0.15, 0.0])
    chunk = ActionChunk(
        stamp_ns=loop.latest_stamp_ns(),  # simulation time (the client node runs on wall time)
        step_period_ns=50_000_000,
        frame_id="base_link",
        arm_names=("arm",),
        ee_frames=("tool0",),
        positions=positions[:, None, :],
        quaternions=np.tile(transforms3d.quaternions.mat2quat(start.rotation), (steps, 1, 1)),
        gripper=np.zeros((steps, 1)),
        event_id=999,
    )
    bad = chunk_to_msg(chunk)
    bad.arms[0].poses[steps // 2].position.y = math.nan  # a real NaN, in the middle
    assert math.isnan(bad.arms[0].poses[steps // 2].position.y)
    start_ns = loop.latest_stamp_ns()
    chunks.publish(bad)
    assert wait_for(
        lambda: any("NaN" in d.get("last_rejection", "") for d in diagnostics), timeout_s=20.0
    ), diagnostics[-1:]
    loop.wait_sim_time(start_ns + 1_000_000_000)  # the chunk would have moved the arm by now
    assert loop.motion_between(start_ns, start_ns + 1_000_000_000) < 1e-3
    # the same chunk without the NaN moves it: the NaN was the reason
    now_ns = loop.latest_stamp_ns()
    chunks.publish(chunk_to_msg(dataclasses.replace(chunk, stamp_ns=now_ns, event_id=1000)))
    start_ns = loop.latest_stamp_ns()
    loop.wait_sim_time(start_ns + 1_500_000_000)
    assert loop.motion_between(start_ns, start_ns + 1_500_000_000) > 0.02
    # after the reset the same task's chunks move the arm again
    start_ns = loop.latest_stamp_ns()
    execute_task(loop.node, reset.task_description, events, timeout_s=3.0)
    assert loop.motion_between(start_ns, loop.latest_stamp_ns()) > 0.05

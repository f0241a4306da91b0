"""Adversarial inputs over real DDS (issue 14, items 1-6): bad data never moves the arm.

Every test runs real rclpy nodes (controller, policy, a test arm and attackers) in one process
and fails on the code before issue 14. The controller's commands are recorded where it makes
them (every tick, none lost to a slow subscriber) to check the motion limits; what the test arm
executes comes over DDS.

Issue items covered:
1. wrong but plausible joint readings: ``test_a_wrong_joint_reading_never_moves_the_command``,
   ``test_stray_zero_joint_states_beside_the_real_stream_are_rejected``,
   ``test_an_arm_that_does_not_follow_holds_then_faults_and_the_command_never_jumps``;
2. timestamps: ``test_a_future_stamp_does_not_keep_a_stopped_stream_fresh``,
   ``test_zero_stamped_joint_states_are_rejected``;
3. chunk bounds: ``test_a_100000_step_chunk_is_rejected_before_conversion``,
   ``test_a_target_far_outside_the_workspace_is_rejected_and_nothing_moves``,
   ``test_every_chunk_rejection_updates_last_rejection``;
4. cancel stops motion: ``test_cancel_right_after_accept_stops_the_chunk_already_sent``,
   ``test_a_preempted_goal_has_its_chunks_stopped``;
5. e-stop awareness: ``test_estop_reaches_the_policy_and_no_chunk_is_published_into_it``,
   ``test_a_controller_fault_ends_the_goal_with_fault``;
6. future-stamped sensor data: ``test_future_stamped_frames_and_joint_states_do_not_blind_the_policy``;
7. outcome codes and a killed server: ``test_a_result_with_no_outcome_set_is_a_failure``,
   ``test_send_goal_gives_up_soon_after_the_policy_node_is_killed``;
8. lockstep simulation: ``test_lockstep_simulation_waits_for_a_slow_controller_and_faults_when_it_stops``
   (the expert through evaluate_ros on a busy machine: test_evaluate_ros, docs/evaluation.md);
9. two harness runs at once: ``test_two_harness_runs_at_once_keep_apart``,
   ``test_a_second_run_into_the_same_output_folder_is_refused``.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import transforms3d
from action_msgs.msg import GoalStatus
from conftest import child_domain_id, child_env, wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionServer
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from synthetic_sensors import CAMERAS, JOINTS, SyntheticSensors, sensor_parameters

from wallwm_core.action_chunk import ActionChunk
from wallwm_core.config_loading import ConfigError
from wallwm_core.control import ArmKinematics, ControlCommand
from wallwm_core.outcome import Outcome, PolicyState
from wallwm_msgs.action import ExecuteEvent, ExecuteTask
from wallwm_msgs.msg import ActionChunk as ActionChunkMsg
from wallwm_msgs.msg import ControllerState, EventOutcome, PolicyStatus
from wallwm_ros import qos
from wallwm_ros.closed_loop.isolation import claim_output
from wallwm_ros.controller_node import ControllerNode
from wallwm_ros.conversions import chunk_to_msg, ns_to_time, time_to_ns
from wallwm_ros.policy_node import PolicyNode
from wallwm_ros.send_goal import (
    HEARTBEAT_LOST_S,
    NoServerError,
    SpinSafeActionClient,
    execute_event,
    execute_task,
    outcome_of,
)
from wallwm_ros.sim_node import CLOCK_QOS, SimNode
from wallwm_sim.description import urdf_string

ARM_JOINTS = [f"joint{i}" for i in range(1, 7)]
HOME = np.array([0.0, 0.0571, 1.8769, 0.0, 1.2076, 0.0])
ALL_COMMANDS = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def kinematics() -> ArmKinematics:
    return ArmKinematics(urdf_string(), ARM_JOINTS, "tool0")


class FakeArm:
    """A position-controlled arm: joint states at 250 Hz are the last command it received, unless
    the test tampers with them (offset, frozen reading, stamps, silence)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.q = HOME.copy()
        self.offset = np.zeros(6)
        self.frozen: np.ndarray | None = None
        self.stamp_offset_ns = 0
        self.zero_stamps = False
        self.publishing = True
        self.published = 0
        node.create_subscription(
            Float64MultiArray, "forward_position_controller/commands", self._on_command, 10
        )
        self._publisher = node.create_publisher(JointState, "joint_states", qos.SENSORS)
        node.create_timer(0.004, self._publish)

    def _on_command(self, msg: Float64MultiArray) -> None:
        self.q = np.array(msg.data)

    def _publish(self) -> None:
        if not self.publishing:
            return
        reading = (self.q if self.frozen is None else self.frozen) + self.offset
        msg = JointState(name=[*ARM_JOINTS, "finger_left_joint"], position=[*reading, 0.04])
        stamp_ns = self.node.get_clock().now().nanoseconds + self.stamp_offset_ns
        msg.header.stamp = ns_to_time(0 if self.zero_stamps else stamp_ns)
        self._publisher.publish(msg)
        self.published += 1

    def wait_published(self, count: int) -> None:
        start = self.published
        assert wait_for(lambda: self.published >= start + count, timeout_s=30.0)


class Rig:
    """The controller node, a test arm, a client node; the controller's commands recorded."""

    def __init__(self, ros_context, spinner, namespace: str, **params) -> None:
        overrides = [Parameter("robot_description", value=urdf_string())]
        overrides += [Parameter("diagnostics_period", value=0.1)]
        overrides += [Parameter(name, value=value) for name, value in params.items()]
        self.controller = spinner.add(
            ControllerNode(namespace=namespace, context=ros_context, parameter_overrides=overrides)
        )
        self.commands: list[ControlCommand] = []
        publish = self.controller._publish

        def record(command: ControlCommand, now_ns: int) -> None:
            self.commands.append(command)
            publish(command, now_ns)

        self.controller._publish = record
        self.namespace = namespace
        self.node = spinner.add(Node("client", namespace=namespace, context=ros_context))
        self.arm = FakeArm(self.node)
        self.chunks = self.node.create_publisher(ActionChunkMsg, "action_chunk", qos.COMMANDS)
        self.estop = self.node.create_publisher(Bool, "estop", qos.ESTOP)
        self.diagnostics: list[dict[str, str]] = []
        self.states: list[tuple[int, str]] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.node.create_subscription(
            ControllerState,
            "controller_state",
            lambda m: self.states.append((m.state, m.reason)),
            qos.LATCHED,
        )
        assert wait_for(lambda: self.chunks.get_subscription_count() > 0)
        assert wait_for(lambda: self.estop.get_subscription_count() > 0)
        self.wait_ticks(50)  # holding at the measured state

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"{self.namespace}/controller_node"):
                self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def wait_ticks(self, count: int) -> None:
        start = len(self.commands)
        assert wait_for(lambda: len(self.commands) >= start + count, timeout_s=30.0)

    def wait_diagnostics(self, predicate) -> dict[str, str]:
        start = len(self.diagnostics)
        assert wait_for(
            lambda: any(predicate(d) for d in self.diagnostics[start:]), timeout_s=20.0
        ), self.diagnostics[-1:]
        return next(d for d in self.diagnostics[start:] if predicate(d))

    def reset_estop(self) -> Trigger.Response:
        client = self.node.create_client(Trigger, "reset_estop")
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(Trigger.Request())
        assert wait_for(future.done, timeout_s=20.0)
        self.node.destroy_client(client)
        return future.result()

    def assert_commands_within_limits(self, start: int = 0) -> None:
        """Every recorded command obeys the velocity, acceleration and jerk limits, and
        consecutive commands are at most one control period of motion apart."""
        commands = [c for c in self.commands[start:] if c.positions is not None]
        config = self.controller.controller.config
        dt = config.period_ns / 1e9
        vmax = self.controller.controller.max_velocity
        positions = np.array([c.positions for c in commands])
        velocities = np.array([c.velocities for c in commands])
        accelerations = np.array([c.accelerations for c in commands])
        steps = np.abs(np.diff(positions, axis=0))
        assert np.all(steps <= vmax * dt * (1 + 1e-6) + 1e-12), np.max(steps / (vmax * dt))
        assert np.all(np.abs(velocities) <= vmax * (1 + 1e-6))
        assert np.all(np.abs(accelerations) <= config.max_acceleration * (1 + 1e-6))
        jerk = np.abs(np.diff(accelerations, axis=0)) / dt
        assert np.all(jerk <= config.max_jerk * (1 + 1e-4))


def line_chunk(node: Node, kinematics, start_q, offset, steps=20, **fields) -> ActionChunk:
    start = kinematics.forward(start_q)
    quaternion = transforms3d.quaternions.mat2quat(start.rotation)
    fractions = np.linspace(0.0, 1.0, steps)[:, None]
    positions = start.position + fractions * np.asarray(offset)
    return ActionChunk(
        stamp_ns=node.get_clock().now().nanoseconds,
        step_period_ns=50_000_000,
        frame_id="base_link",
        arm_names=("arm",),
        ee_frames=("tool0",),
        positions=positions[:, None, :],
        quaternions=np.tile(quaternion, (steps, 1, 1)),
        gripper=np.zeros((steps, 1)),
        **fields,
    )


def _int(values: dict[str, str], key: str) -> int:
    return int(values.get(key, "-1"))


# ------------------------------------------------------------------------------ item 1


def test_a_wrong_joint_reading_never_moves_the_command(ros_context, spinner, namespace):
    """Joint1 reported 0.4 rad off for 0.2 s (50 readings at 250 Hz): before issue 14 the
    controller re-anchored its command there in one tick."""
    rig = Rig(ros_context, spinner, namespace)
    start = len(rig.commands)
    rig.arm.offset = np.array([0.4, 0.0, 0.0, 0.0, 0.0, 0.0])
    rig.arm.wait_published(50)
    rig.arm.offset = np.zeros(6)
    rig.arm.wait_published(50)
    rig.wait_ticks(50)

    rig.assert_commands_within_limits(start)
    commanded = np.array([c.positions for c in rig.commands[start:]])
    assert np.max(np.abs(commanded - HOME)) < 1e-9  # no chunk: the command never moved
    values = rig.wait_diagnostics(lambda d: _int(d, "joint_states_implausible") >= 1)
    assert "implausible jump: joint1" in values["last_joint_state_rejection"]


def test_stray_zero_joint_states_beside_the_real_stream_are_rejected(
    ros_context, spinner, namespace, kinematics
):
    """An all-zero JointState at 10 Hz beside the real stream, while a chunk executes: before
    issue 14 each one gave a ~1.9 rad single-tick command step (re-anchoring)."""
    rig = Rig(ros_context, spinner, namespace)
    stray_node = spinner.add(Node("stray", namespace=namespace, context=ros_context))
    stray = stray_node.create_publisher(JointState, "joint_states", qos.SENSORS)
    sent = []

    def publish_zeros() -> None:
        msg = JointState(name=[*ARM_JOINTS, "finger_left_joint"], position=[0.0] * 7)
        msg.header.stamp = stray_node.get_clock().now().to_msg()
        stray.publish(msg)
        sent.append(msg)

    start = len(rig.commands)
    chunk = line_chunk(rig.node, kinematics, HOME, [0.0, 0.1, -0.05], steps=40)
    rig.chunks.publish(chunk_to_msg(chunk))
    stray_node.create_timer(0.1, publish_zeros)
    assert wait_for(lambda: len(sent) >= 8, timeout_s=30.0)
    rig.wait_ticks(20)

    rig.assert_commands_within_limits(start)
    values = rig.wait_diagnostics(lambda d: _int(d, "joint_states_implausible") >= 3)
    assert _int(values, "chunks_accepted") == 1
    assert "joint3" in values["last_joint_state_rejection"]  # 1.88 rad off: the largest jump


def test_an_arm_that_does_not_follow_holds_then_faults_and_the_command_never_jumps(
    ros_context, spinner, namespace, kinematics
):
    """The arm stays at home (blocked) while a chunk commands 0.5 rad of joint1: the command
    holds within limits, then the controller faults; before issue 14 it jumped back to home."""
    rig = Rig(ros_context, spinner, namespace)
    rig.arm.frozen = HOME.copy()
    start = len(rig.commands)
    rig.chunks.publish(chunk_to_msg(line_chunk(rig.node, kinematics, HOME, [0.0, 0.25, 0.0])))
    assert wait_for(lambda: rig.states and rig.states[-1][0] == ControllerState.FAULT, 30.0)
    rig.wait_ticks(100)

    rig.assert_commands_within_limits(start)
    states = [c.state.name for c in rig.commands[start:]]
    assert "HOLDING" in states and states[-1] == "FAULT"
    assert states.index("HOLDING") < states.index("FAULT")
    assert "following error" in rig.states[-1][1]
    held = rig.commands[-1].positions
    assert np.max(np.abs(held - HOME)) > 0.25  # held where it was commanded, not pulled back
    values = rig.wait_diagnostics(lambda d: d.get("state") == "FAULT")
    assert "following error" in values["fault"] and _int(values, "following_error_holds") >= 1

    # chunks are ignored while faulted; a reset (arm free again) restarts at the measured pose
    rig.chunks.publish(chunk_to_msg(line_chunk(rig.node, kinematics, HOME, [0.0, 0.05, 0.0])))
    values = rig.wait_diagnostics(lambda d: "controller fault" in d.get("last_rejection", ""))
    rig.arm.frozen = None  # freed, the arm goes to the held command: a jump, then steady
    replies = []

    def try_reset() -> bool:
        response = rig.reset_estop()
        replies.append(response.message)
        return response.success

    assert wait_for(try_reset, timeout_s=20.0, poll_s=0.2), replies
    assert wait_for(lambda: rig.states[-1][0] == ControllerState.IDLE)


# ------------------------------------------------------------------------------ item 2


def _engage_estop(rig: Rig) -> None:
    rig.estop.publish(Bool(data=True))
    assert wait_for(lambda: rig.controller.controller.status().estop_engaged)


def test_a_future_stamp_does_not_keep_a_stopped_stream_fresh(ros_context, spinner, namespace):
    """One joint state stamped 1000 s ahead, then the stream stops: before issue 14 the stamp
    kept it "fresh", so reset_estop was accepted with no joint states at all."""
    rig = Rig(ros_context, spinner, namespace)
    _engage_estop(rig)
    rig.arm.stamp_offset_ns = 1000 * 1_000_000_000
    rig.arm.wait_published(5)
    rig.arm.publishing = False
    time.sleep(0.3)  # three joint-state time-outs without a message (scenario, not a check)

    response = rig.reset_estop()
    assert not response.success and "stale" in response.message, response.message
    values = rig.wait_diagnostics(lambda d: _int(d, "joint_states_rejected") >= 5)
    assert "ahead of the controller's clock" in values["last_joint_state_rejection"]
    assert "stale" in values["reasons"] or values["state"] == "ESTOP"

    rig.arm.stamp_offset_ns = 0  # the real stream returns: the reset is accepted
    rig.arm.publishing = True
    assert wait_for(lambda: rig.reset_estop().success, timeout_s=20.0, poll_s=0.2)


def test_zero_stamped_joint_states_are_rejected(ros_context, spinner, namespace):
    """Zero stamps were read as "now": a stream of them counted as fresh."""
    rig = Rig(ros_context, spinner, namespace)
    _engage_estop(rig)
    rig.arm.zero_stamps = True
    rig.arm.wait_published(25)
    time.sleep(0.3)  # only zero-stamped joint states for three time-outs (scenario)

    response = rig.reset_estop()
    assert not response.success and "stale" in response.message, response.message
    values = rig.wait_diagnostics(lambda d: "zero stamp" in d["last_joint_state_rejection"])
    assert _int(values, "joint_states_rejected") >= 25

    rig.arm.zero_stamps = False
    assert wait_for(lambda: rig.reset_estop().success, timeout_s=20.0, poll_s=0.2)


# ------------------------------------------------------------------------------ item 3


def test_a_100000_step_chunk_is_rejected_before_conversion(
    ros_context, spinner, namespace, kinematics
):
    """83 minutes of steps were accepted (and their conversion stalled the loop)."""
    rig = Rig(ros_context, spinner, namespace)
    small = chunk_to_msg(line_chunk(rig.node, kinematics, HOME, [0.0, 0.0, 0.0], steps=2))
    huge = ActionChunkMsg(header=small.header, step_period=small.step_period, num_steps=100_000)
    arm = small.arms[0]
    arm.poses = [arm.poses[0]] * 100_000
    arm.gripper = [0.0] * 100_000
    huge.arms = [arm]
    rig.chunks.publish(huge)

    values = rig.wait_diagnostics(lambda d: _int(d, "chunks_rejected") >= 1)
    assert "100000 steps, more than max_chunk_steps" in values["last_rejection"]
    assert _int(values, "chunks_accepted") == 0


def test_a_target_far_outside_the_workspace_is_rejected_and_nothing_moves(
    ros_context, spinner, namespace, kinematics
):
    """A target 5 m away was clamped into the box and executed (1.06 rad of motion)."""
    rig = Rig(ros_context, spinner, namespace)
    start = len(rig.commands)
    chunk = line_chunk(rig.node, kinematics, HOME, [5.0, 0.0, 0.0], steps=10)
    rig.chunks.publish(chunk_to_msg(chunk))
    values = rig.wait_diagnostics(lambda d: _int(d, "chunks_rejected") >= 1)
    rig.wait_ticks(100)

    assert "outside the workspace box" in values["last_rejection"]
    assert "more than workspace_margin" in values["last_rejection"]
    assert _int(values, "chunks_accepted") == 0
    commanded = np.array([c.positions for c in rig.commands[start:]])
    assert np.max(np.abs(commanded - HOME)) < 1e-9


def test_every_chunk_rejection_updates_last_rejection(ros_context, spinner, namespace, kinematics):
    """A chunk rejected while converting the message (NaN) left ``last_rejection`` empty."""
    rig = Rig(ros_context, spinner, namespace)
    msg = chunk_to_msg(line_chunk(rig.node, kinematics, HOME, [0.0, 0.05, 0.0]))
    msg.arms[0].poses[3].position.x = math.nan
    rig.chunks.publish(msg)
    values = rig.wait_diagnostics(lambda d: _int(d, "chunks_rejected") >= 1)
    assert "NaN" in values["last_rejection"], values

    wrong_frame = chunk_to_msg(line_chunk(rig.node, kinematics, HOME, [0.0, 0.05, 0.0]))
    wrong_frame.header.frame_id = "world"
    rig.chunks.publish(wrong_frame)
    values = rig.wait_diagnostics(lambda d: _int(d, "chunks_rejected") >= 2)
    assert "base frame" in values["last_rejection"]


# ------------------------------------------------------------------------------ items 4, 5


def _replay_yaml(kinematics, seconds: float, offset) -> str:
    """One 'long move' event: a straight line from home over ``seconds`` in ONE chunk, and a
    'stay' event at home."""
    start = kinematics.forward(HOME)
    w, x, y, z = transforms3d.quaternions.mat2quat(start.rotation)
    here = [float(v) for v in start.position]
    there = [float(v) for v in start.position + np.asarray(offset)]
    pose = f"quaternion_wxyz: [{w}, {x}, {y}, {z}], gripper: 0.0"
    steps = round(seconds / 0.05) + 1
    return f"""
frame_id: base_link
step_period: 0.05
chunk_steps: {steps}
arms: [{{name: arm, ee_frame: tool0}}]
events:
  - instruction: long move
    waypoints:
      - {{time: 0.0, targets: {{arm: {{position: {here}, {pose}}}}}}}
      - {{time: {seconds}, targets: {{arm: {{position: {there}, {pose}}}}}}}
  - instruction: stay
    waypoints:
      - {{time: 0.0, targets: {{arm: {{position: {here}, {pose}}}}}}}
      - {{time: 0.5, targets: {{arm: {{position: {here}, {pose}}}}}}}
"""


class PolicyRig:
    """A controller rig plus the replay policy node and an observer of chunks and status."""

    def __init__(self, ros_context, spinner, namespace, replay_file, **policy_params) -> None:
        self.rig = Rig(ros_context, spinner, namespace)
        overrides = [Parameter("policy_type", value="replay")]
        overrides += [Parameter("replay_file", value=str(replay_file))]
        overrides += [Parameter(name, value=value) for name, value in policy_params.items()]
        self.policy = spinner.add(
            PolicyNode(namespace=namespace, context=ros_context, parameter_overrides=overrides)
        )
        self.node = self.rig.node
        self.chunks: list[ActionChunkMsg] = []
        self.status: list[tuple[int, str]] = []
        self.node.create_subscription(
            ActionChunkMsg, "action_chunk", self.chunks.append, ALL_COMMANDS
        )
        self.node.create_subscription(
            PolicyStatus,
            "policy_status",
            lambda m: self.status.append((m.state, m.fault)),
            qos.LATCHED,
        )
        assert wait_for(lambda: self.status)

    def send(self, instruction: str):
        client = SpinSafeActionClient(self.node, ExecuteEvent, "execute_event")
        assert client.wait_for_server(timeout_sec=10.0)
        future = client.send_goal_async(ExecuteEvent.Goal(instruction=instruction))
        assert wait_for(future.done, timeout_s=20.0)
        handle = future.result()
        assert handle.accepted
        return handle

    @staticmethod
    def result(handle) -> ExecuteEvent.Result:
        future = handle.get_result_async()
        assert wait_for(future.done, timeout_s=60.0)
        return future.result().result


def test_cancel_right_after_accept_stops_the_chunk_already_sent(
    ros_context, spinner, namespace, kinematics, tmp_path
):
    """The goal's one chunk moves the tool 0.2 m over 4 s; it is canceled as soon as the chunk
    is out. Before issue 14 the controller still executed all of it."""
    replay = tmp_path / "replay.yaml"
    replay.write_text(_replay_yaml(kinematics, 4.0, [0.0, 0.2, 0.0]))
    loop = PolicyRig(ros_context, spinner, namespace, replay)
    rig = loop.rig
    start = len(rig.commands)
    handle = loop.send("long move")
    assert wait_for(lambda: len(loop.chunks) >= 1)
    handle.cancel_goal_async()
    result = loop.result(handle)
    assert result.outcome == Outcome.CANCELED

    assert wait_for(  # at rest, holding
        lambda: (
            np.max(np.abs(rig.commands[-1].velocities)) < 1e-9
            and rig.commands[-1].state.name == "HOLDING"
        ),
        timeout_s=30.0,
    )
    target = kinematics.forward(HOME).position + np.array([0.0, 0.2, 0.0])
    rest = kinematics.forward(rig.commands[-1].positions).position
    assert np.linalg.norm(rest - target) > 0.1, rest  # stopped early, not run to the end
    rig.assert_commands_within_limits(start)
    values = rig.wait_diagnostics(lambda d: _int(d, "chunks_canceled") >= 1)
    assert _int(values, "chunks_accepted") == 1


def test_a_preempted_goal_has_its_chunks_stopped(
    ros_context, spinner, namespace, kinematics, tmp_path
):
    replay = tmp_path / "replay.yaml"
    replay.write_text(_replay_yaml(kinematics, 4.0, [0.0, 0.2, 0.0]))
    loop = PolicyRig(ros_context, spinner, namespace, replay, goal_conflict="preempt")
    first = loop.send("long move")
    assert wait_for(lambda: len(loop.chunks) >= 1)
    second = loop.send("stay")
    assert loop.result(first).outcome == Outcome.CANCELED
    assert loop.result(second).outcome == Outcome.SUCCEEDED
    values = loop.rig.wait_diagnostics(lambda d: _int(d, "chunks_canceled") >= 1)
    assert _int(values, "chunks_accepted") >= 2


def test_estop_reaches_the_policy_and_no_chunk_is_published_into_it(
    ros_context, spinner, namespace, kinematics, tmp_path
):
    """During a latched e-stop the policy kept publishing chunks and reported SUCCEEDED."""
    replay = tmp_path / "replay.yaml"
    replay.write_text(_replay_yaml(kinematics, 4.0, [0.0, 0.2, 0.0]))
    loop = PolicyRig(ros_context, spinner, namespace, replay)
    rig = loop.rig
    handle = loop.send("long move")
    assert wait_for(lambda: len(loop.chunks) >= 1)
    rig.estop.publish(Bool(data=True))
    result = loop.result(handle)
    assert Outcome(result.outcome).name == "ESTOP", (result.outcome, result.message)
    assert "e-stop" in result.message
    assert wait_for(lambda: loop.status[-1][0] == PolicyState.ESTOP)

    # a goal while the e-stop is latched ends at once, and not one chunk is published
    published = loop.policy._counters.chunks
    result = loop.result(loop.send("stay"))
    assert result.outcome == Outcome.ESTOP and result.chunks_executed == 0
    assert loop.policy._counters.chunks == published
    assert loop.status[-1][0] == PolicyState.ESTOP  # also shown while idle

    assert wait_for(lambda: rig.reset_estop().success, timeout_s=20.0, poll_s=0.2)
    assert wait_for(lambda: loop.status[-1][0] == PolicyState.IDLE)
    assert loop.result(loop.send("stay")).outcome == Outcome.SUCCEEDED


def test_a_controller_fault_ends_the_goal_with_fault(ros_context, spinner, namespace, replay_file):
    """The policy side of a controller fault (the controller's side is item 1's test)."""
    overrides = [Parameter("policy_type", value="replay")]
    overrides += [Parameter("replay_file", value=str(replay_file))]
    policy = spinner.add(
        PolicyNode(namespace=namespace, context=ros_context, parameter_overrides=overrides)
    )
    node = spinner.add(Node("fake_controller", namespace=namespace, context=ros_context))
    status: list[tuple[int, str]] = []
    node.create_subscription(
        PolicyStatus, "policy_status", lambda m: status.append((m.state, m.fault)), qos.LATCHED
    )
    state = node.create_publisher(ControllerState, "controller_state", qos.LATCHED)
    state.publish(ControllerState(state=ControllerState.FAULT, reason="following error"))
    faulted = (PolicyState.FAULT, "controller fault: following error")
    assert wait_for(lambda: status[-1:] == [faulted])
    result = execute_event(node, "long wipe")
    assert result.outcome == Outcome.FAULT and "controller fault" in result.message
    assert result.chunks_executed == 0 and policy._counters.chunks == 0

    state.publish(ControllerState(state=ControllerState.IDLE))
    assert wait_for(lambda: status[-1][0] == PolicyState.IDLE)
    assert execute_event(node, "reach").outcome == Outcome.SUCCEEDED


# ------------------------------------------------------------------------------ item 6


def test_future_stamped_frames_and_joint_states_do_not_blind_the_policy(
    ros_context, spinner, namespace, replay_file
):
    """One frame stamped +100 s made every goal FAULT for 100 s, a burst at +1000 s blocked all
    real frames: they stayed at the end of the sorted buffers."""
    overrides = [Parameter("policy_type", value="replay")]
    overrides += [Parameter("replay_file", value=str(replay_file))]
    overrides += [Parameter("diagnostics_period", value=0.1)]
    overrides += [Parameter(name, value=value) for name, value in sensor_parameters().items()]
    spinner.add(PolicyNode(namespace=namespace, context=ros_context, parameter_overrides=overrides))
    node = spinner.add(Node("sensors", namespace=namespace, context=ros_context))
    sensors = SyntheticSensors(node)
    attacker = spinner.add(Node("attacker", namespace=namespace, context=ros_context))
    images = {c: attacker.create_publisher(Image, f"{c}/image", qos.SENSORS) for c in CAMERAS}
    joints = attacker.create_publisher(JointState, "joint_states", qos.SENSORS)
    diagnostics: list[dict[str, str]] = []

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"{namespace}/policy_node"):
                diagnostics.append({kv.key: kv.value for kv in status.values})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
    assert wait_for(lambda: all(images[c].get_subscription_count() > 0 for c in CAMERAS))
    assert wait_for(sensors.connected)
    now_ns = attacker.get_clock().now().nanoseconds

    def frame(stamp_ns: int) -> Image:
        msg = Image(height=32, width=32, encoding="rgb8", step=96, data=bytes(32 * 32 * 3))
        msg.header.stamp = ns_to_time(stamp_ns)
        return msg

    images["front"].publish(frame(now_ns + 100 * 1_000_000_000))  # one frame at +100 s
    for i in range(20):  # a burst at +1000 s
        images["wrist"].publish(frame(now_ns + 1000 * 1_000_000_000 + i))
    future_joints = JointState(name=list(JOINTS), position=[0.0, 0.0, 0.0])
    future_joints.header.stamp = ns_to_time(now_ns + 100 * 1_000_000_000)
    joints.publish(future_joints)

    def dropped(values: dict[str, str]) -> bool:
        return (
            _int(values, "camera front dropped future_stamp") >= 1
            and _int(values, "camera wrist dropped future_stamp") >= 1
            and _int(values, "joint_states dropped future_stamp") >= 1
        )

    time.sleep(0.5)  # the attack is delivered before the goal (scenario, not a check)
    result = execute_event(node, "reach")
    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert wait_for(lambda: any(dropped(d) for d in diagnostics), timeout_s=20.0)


# ------------------------------------------------------------------------------ item 7


def _bare_server(node: Node, action_type) -> ActionServer:
    """A server that marks every goal succeeded but never fills in its result's outcome."""

    def execute(handle):
        handle.succeed()
        result = action_type.Result()
        if action_type is ExecuteTask:
            result.event_outcomes = [EventOutcome(instruction="reach")]
        return result

    name = "execute_task" if action_type is ExecuteTask else "execute_event"
    return ActionServer(node, action_type, name, execute_callback=execute)


def test_a_result_with_no_outcome_set_is_a_failure(ros_context, spinner, namespace):
    """Outcome 0 read as SUCCEEDED: an empty result (rclpy's answer after its result time-out)
    looked like success."""
    server = spinner.add(Node("bare_server", namespace=namespace, context=ros_context))
    _bare_server(server, ExecuteEvent)
    _bare_server(server, ExecuteTask)
    client = spinner.add(Node("client", namespace=namespace, context=ros_context))

    event = execute_event(client, "reach")
    assert event.accepted and event.outcome == Outcome.UNKNOWN
    task = execute_task(client, "tidy up", ["reach"])
    assert task.outcome == Outcome.UNKNOWN
    assert [outcome for _, outcome, _ in task.events] == [Outcome.UNKNOWN]
    # no code that is no outcome, and no SUCCEEDED the goal status contradicts, reads as success
    assert outcome_of(99)[0] == Outcome.UNKNOWN
    assert outcome_of(Outcome.SUCCEEDED, GoalStatus.STATUS_ABORTED)[0] == Outcome.UNKNOWN
    assert outcome_of(Outcome.SUCCEEDED) == (Outcome.SUCCEEDED, "")

    cli = subprocess.run(
        [sys.executable, "-m", "wallwm_ros.send_goal", "reach", "--ros-args", "-r",
         f"__ns:={namespace}"],
        env=dict(os.environ), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 1 and "result: UNKNOWN" in cli.stdout, cli.stdout + cli.stderr


def test_send_goal_gives_up_soon_after_the_policy_node_is_killed(
    ros_context, spinner, namespace, replay_file
):
    """After ``kill -9`` of the policy node send_goal waited 22.9 s (the DDS lease). Now the
    policy node's status heartbeat stops, and the client gives up after HEARTBEAT_LOST_S; while
    the node lives, a goal longer than that keeps running."""
    policy = subprocess.Popen(
        [sys.executable, "-m", "wallwm_ros.policy_node", "--ros-args", "-r", f"__ns:={namespace}",
         "-p", "policy_type:=replay", "-p", f"replay_file:={replay_file}"],
        env=dict(os.environ),  # this process's domain: the client below talks to it
    )  # fmt: skip
    client = spinner.add(Node("client", namespace=namespace, context=ros_context))
    started, outcome = threading.Event(), {}

    def wait_for_goal() -> None:
        try:
            outcome["result"] = execute_event(
                client, "long wipe", server_wait_s=60.0, on_feedback=lambda _: started.set()
            )
        except NoServerError as error:
            outcome["error"] = str(error)
            outcome["after_kill_s"] = time.monotonic() - killed_at[0]

    killed_at = [0.0]
    waiter = threading.Thread(target=wait_for_goal, daemon=True)
    waiter.start()
    try:
        assert started.wait(60.0)
        waiter.join(HEARTBEAT_LOST_S + 1.0)  # the node lives: its goal (30 s) goes on
        assert waiter.is_alive(), outcome
        killed_at[0] = time.monotonic()
        policy.send_signal(signal.SIGKILL)
        policy.wait(timeout=10)
        waiter.join(60.0)
    finally:
        if policy.poll() is None:
            policy.kill()
    assert not waiter.is_alive()
    # the heartbeat ended the wait, not the DDS lease (about 20 s)
    assert "policy_status stopped" in outcome.get("error", ""), outcome
    print(f"send_goal gave up {outcome['after_kill_s']:.1f} s after kill -9")


# ------------------------------------------------------------------------------ item 8


def test_lockstep_simulation_waits_for_a_slow_controller_and_faults_when_it_stops(
    ros_context, spinner, namespace
):
    """On a busy machine the simulation ran ahead of the controller (the expert scored 20, not
    100). In lockstep it advances one control period per controller answer, however slow."""
    overrides = [Parameter("control_rate_hz", value=100.0), Parameter("real_time", value=False)]
    overrides += [Parameter("lockstep", value=True), Parameter("lockstep_timeout", value=2.0)]
    sim = spinner.add(
        SimNode(
            namespace=namespace,
            context=ros_context,
            parameter_overrides=overrides,
            cli_args=["--ros-args", "-p", "cameras:=[]"],
        )
    )
    node = spinner.add(Node("slow_controller", namespace=namespace, context=ros_context))
    latest_clock = [0]
    node.create_subscription(
        Clock, "/clock", lambda m: latest_clock.__setitem__(0, time_to_ns(m.clock)), CLOCK_QOS
    )
    commands = node.create_publisher(
        Float64MultiArray, "forward_position_controller/commands", qos.COMMANDS
    )
    assert wait_for(lambda: commands.get_subscription_count() > 0 and latest_clock[0] > 0)
    answered: list[int] = []
    stop = threading.Event()

    def slow_controller() -> None:
        """Answers each new simulation time 20 ms of wall time late (a loaded controller)."""
        last = -1
        while not stop.is_set():
            now = latest_clock[0]
            if now == last:
                time.sleep(0.001)
                continue
            time.sleep(0.02)
            commands.publish(Float64MultiArray(data=HOME.tolist()))
            answered.append(now)
            last = now

    thread = threading.Thread(target=slow_controller, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: len(answered) >= 5, timeout_s=30.0)
        steps_before, answers_before = sim.loop.counters().control_steps, len(answered)
        assert wait_for(lambda: len(answered) >= answers_before + 40, timeout_s=60.0)
        steps_after, answers_after = sim.loop.counters().control_steps, len(answered)
    finally:
        stop.set()
        thread.join(5.0)
    # one period per answer (the answer to the previous period may count for the next: +2)
    assert steps_after - steps_before <= answers_after - answers_before + 2, (
        steps_after - steps_before,
        answers_after - answers_before,
    )
    # the controller went silent: the simulation stops with a clear fault, it does not run on
    assert wait_for(lambda: not sim.loop.running, timeout_s=30.0)
    fault = sim.loop.counters().fault
    assert "lockstep: no arm command from the controller" in fault, fault
    assert sim.loop.counters().control_steps <= steps_after + 3


# ------------------------------------------------------------------------------ item 9


def test_two_harness_runs_at_once_keep_apart(tmp_path):
    """Two main jobs started a second apart shared DDS traffic (clock jumps, chunks from the
    future), both printed SUCCEEDED with Task Progress 0/100 and wrote to the same folder."""
    env = {**child_env(), "WALLWM_LOCK_DIR": str(tmp_path / "locks")}
    command = [sys.executable, "-m", "wallwm_ros.closed_loop.run_sim", "--policy", "expert",
               "--fast", "--task", "pick_place"]  # fmt: skip
    runs = []
    for _ in range(2):
        run = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        runs.append(run)
        time.sleep(1.0)  # as in the report: the second starts a second later
    outputs = []
    try:
        for run in runs:
            outputs.append(run.communicate(timeout=400)[0])
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    domain = str(child_domain_id())
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
        assert "Task Progress (rubric): 100/100" in output, output[-3000:]
        assert "disagree" not in output and "clock jumped" not in output, output[-3000:]
    folders = [re.search(r"^output: (\S+);", output, re.M)[1] for output in outputs]
    assert folders[0] != folders[1] and all((tmp_path / f).is_dir() for f in folders)
    assert f"; ROS domain {domain}\n" in outputs[0]
    assert f"domain {domain} is in use by another wallwm run" in outputs[1], outputs[1][:500]


def test_a_second_run_into_the_same_output_folder_is_refused(tmp_path):
    first = claim_output(tmp_path / "out")
    try:
        with pytest.raises(ConfigError, match=r"another run .* is writing to"):
            claim_output(tmp_path / "out")
    finally:
        first.release()
    claim_output(tmp_path / "out").release()  # free again once the first run ended

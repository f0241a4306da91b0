"""The controller node: ``ActionChunk`` end-effector targets -> joint commands at control rate.

A thin ROS layer over :class:`wallwm_core.control.JointController` (time indexing, blending, IK,
limits, watchdog, e-stop), run by a :class:`~wallwm_core.control.ControlLoop` thread on absolute
deadlines (not an rclpy timer); with ``use_sim_time`` the deadlines are on the /clock time line.

Interfaces (relative names):
- subscribes ``action_chunk`` (wallwm_msgs/ActionChunk; its size is checked before any
  conversion), the joint states (checked by the core: stamps, jumps), ``estop`` (std_msgs/Bool,
  reliable; true engages the latched e-stop), ``cancel_chunks`` (wallwm_msgs/CancelChunks: a
  canceled or preempted event's chunks stop at once) and ``arm_reset`` (std_msgs/Header: a
  trusted announcement, e.g. by the simulator at an episode reset, that the arm was moved at
  ``stamp``; the command restarts at the joint states from then on);
- service ``reset_estop`` (std_srvs/Trigger): clears a latched e-stop or fault once the arm is
  at rest and its joint states are steady;
- publishes ``controller_state`` (wallwm_msgs/ControllerState, transient local, on change);
- publishes, by ``output``: ``forward_position`` -> std_msgs/Float64MultiArray of the arm joints
  (a ros2_control forward_command_controller) every tick, or ``joint_trajectory`` ->
  trajectory_msgs/JointTrajectory with one point ``trajectory_lead`` ahead (a
  joint_trajectory_controller) at ``trajectory_rate_hz``; plus the gripper command
  (Float64MultiArray ``[g]``, 0 open .. 1 closed) and ``/diagnostics``.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, Header
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from wallwm_core.action_chunk import NS_PER_S, InvalidChunkError
from wallwm_core.config_loading import ConfigError
from wallwm_core.control import (
    ControlCommand,
    ControllerState,
    ControlLoop,
    JointController,
    LoopTick,
    load_controller_config,
)
from wallwm_msgs.msg import ActionChunk as ActionChunkMsg
from wallwm_msgs.msg import CancelChunks
from wallwm_msgs.msg import ControllerState as ControllerStateMsg
from wallwm_ros import qos
from wallwm_ros.conversions import (
    chunk_from_msg,
    duration_to_ns,
    ns_to_duration,
    ns_to_time,
    time_to_ns,
)
from wallwm_ros.node_main import spin_node
from wallwm_ros.parameters import declare_config
from wallwm_ros.robot_config import resolve_file

OUTPUTS = ("forward_position", "joint_trajectory")
GRIPPER_REPEAT_S = 0.1  # the gripper command is re-sent at least this often
STATE_CODES = {
    ControllerState.IDLE: ControllerStateMsg.IDLE,
    ControllerState.TRACKING: ControllerStateMsg.TRACKING,
    ControllerState.HOLDING: ControllerStateMsg.HOLDING,
    ControllerState.FAULT: ControllerStateMsg.FAULT,
    ControllerState.ESTOP: ControllerStateMsg.ESTOP,
}
SIM_TIME_POLL_S = 0.0002


@dataclasses.dataclass(frozen=True)
class ControllerNodeConfig:
    robot_description: str = ""
    urdf_file: str = ""
    controller_config: str = "python://wallwm_core/configs/controller_sim_arm.yaml"
    output: str = "forward_position"
    chunk_topic: str = "action_chunk"
    joint_state_topic: str = "joint_states"
    position_command_topic: str = "forward_position_controller/commands"
    trajectory_topic: str = "joint_trajectory_controller/joint_trajectory"
    gripper_command_topic: str = "gripper_controller/commands"
    trajectory_rate_hz: float = 100.0
    trajectory_lead: float = 0.05
    diagnostics_period: float = 1.0

    def __post_init__(self) -> None:
        if not self.robot_description and not self.urdf_file:
            raise ConfigError(
                "parameter 'robot_description' (URDF text) or 'urdf_file' must give the robot"
            )
        if self.output not in OUTPUTS:
            raise ConfigError(f"parameter 'output' is {self.output!r}; expected one of {OUTPUTS}")
        for name in ("trajectory_rate_hz", "trajectory_lead", "diagnostics_period"):
            if not getattr(self, name) > 0.0:
                raise ConfigError(f"parameter '{name}' must be positive, got {getattr(self, name)}")


PARAMETER_DESCRIPTIONS = {
    "robot_description": "The robot's URDF text (as robot_state_publisher takes it).",
    "urdf_file": "URDF file, used when robot_description is empty (python://pkg/path allowed).",
    "controller_config": "wallwm_core.control ControllerConfig YAML: arms, limits, workspace, IK.",
    "output": "'forward_position' (Float64MultiArray) or 'joint_trajectory' (JointTrajectory).",
    "chunk_topic": "wallwm_msgs/ActionChunk input.",
    "joint_state_topic": "sensor_msgs/JointState of the arm.",
    "position_command_topic": "forward_command_controller input (arm joints, URDF order).",
    "trajectory_topic": "joint_trajectory_controller input.",
    "gripper_command_topic": "Gripper command: Float64MultiArray [g], 0 open .. 1 closed.",
    "trajectory_rate_hz": "Rate of JointTrajectory messages in 'joint_trajectory' output.",
    "trajectory_lead": "Seconds ahead of now the streamed trajectory point is due.",
    "diagnostics_period": "Seconds between /diagnostics messages.",
}


class ControllerNode(Node):
    """Executes action chunks on the arm; see the module doc."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(node_kwargs.pop("node_name", "controller_node"), **node_kwargs)
        self.config = declare_config(self, ControllerNodeConfig, PARAMETER_DESCRIPTIONS)
        urdf = self.config.robot_description
        if not urdf:
            urdf = resolve_file(self.config.urdf_file, relative_to=Path.cwd()).read_text()
        control_config = load_controller_config(
            resolve_file(self.config.controller_config, relative_to=Path.cwd())
        )
        try:
            self.controller = JointController.from_urdf(urdf, control_config)
        except Exception as error:  # pinocchio raises its own types for a broken URDF
            raise ConfigError(f"parameter 'robot_description'/'urdf_file': {error}") from error
        self._joint_index = {name: i for i, name in enumerate(self.controller.joint_names)}
        self._lock = threading.Lock()
        self._joint_state_problem = ""
        self._published_state: tuple[ControllerState, str] | None = None
        self._state_lock = threading.RLock()
        self._last_gripper: tuple[float, ...] | None = None
        self._last_gripper_sent_ns = 0
        self._last_trajectory_ns = 0
        self._closing = threading.Event()

        self._use_sim_time = self.get_parameter("use_sim_time").value
        if self.config.output == "forward_position":
            self._position_pub = self.create_publisher(
                Float64MultiArray, self.config.position_command_topic, qos.COMMANDS
            )
        else:
            self._trajectory_pub = self.create_publisher(
                JointTrajectory, self.config.trajectory_topic, qos.COMMANDS
            )
        self._gripper_pub = self.create_publisher(
            Float64MultiArray, self.config.gripper_command_topic, qos.COMMANDS
        )
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._state_pub = self.create_publisher(ControllerStateMsg, "controller_state", qos.LATCHED)
        self.create_subscription(
            ActionChunkMsg, self.config.chunk_topic, self._on_chunk, qos.COMMANDS
        )
        self.create_subscription(
            JointState, self.config.joint_state_topic, self._on_joint_state, qos.SENSORS
        )
        self.create_subscription(Bool, "estop", self._on_estop, qos.ESTOP)
        self.create_subscription(CancelChunks, "cancel_chunks", self._on_cancel, qos.COMMANDS)
        self.create_subscription(Header, "arm_reset", self._on_arm_reset, qos.COMMANDS)
        self.create_service(Trigger, "reset_estop", self._on_reset_estop)
        self.create_timer(self.config.diagnostics_period, self._publish_diagnostics)

        self._loop = ControlLoop(
            control_config.period_ns,
            self._tick,
            clock=self._now_ns,
            sleep_until=self._sleep_until_sim if self._use_sim_time else None,
            name="wallwm_control_loop",
        )
        self._loop.start()
        self.get_logger().info(
            f"ready: {len(self.controller.joint_names)} arm joints at "
            f"{control_config.control_rate_hz:.0f} Hz, output={self.config.output}"
            + (", sim time" if self._use_sim_time else "")
        )

    def destroy_node(self) -> None:
        self._closing.set()
        self._loop.stop()
        super().destroy_node()

    # --- clock -----------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _sleep_until_sim(self, deadline_ns: int) -> None:
        """Wait for /clock to reach the deadline (a paused simulation pauses the loop)."""
        while self._now_ns() < deadline_ns and not self._closing.is_set():
            time.sleep(SIM_TIME_POLL_S)

    # --- inputs ----------------------------------------------------------------------------

    def _on_chunk(self, msg: ActionChunkMsg) -> None:
        # Size first: a huge chunk must not stall this callback with its conversion.
        lengths = [msg.num_steps]
        lengths += [max(len(arm.poses), len(arm.gripper)) for arm in msg.arms]
        too_big = self.controller.check_chunk_size(max(lengths), duration_to_ns(msg.step_period))
        try:
            if too_big:
                raise InvalidChunkError(too_big)
            chunk = chunk_from_msg(msg)
        except InvalidChunkError as error:
            self.controller.note_rejected_chunk(str(error))
            self.get_logger().error(f"chunk rejected: {error}", throttle_duration_sec=1.0)
            return
        result = self.controller.submit_chunk(chunk, self._now_ns())
        if not result.accepted:
            self.get_logger().warning(
                f"chunk {chunk.event_id}/{chunk.chunk_index} rejected: {result.reason}",
                throttle_duration_sec=1.0,
            )

    def _on_joint_state(self, msg: JointState) -> None:
        index = self._joint_index
        positions = np.full(len(index), np.nan)
        found = 0
        for name, value in zip(msg.name, msg.position, strict=False):
            slot = index.get(name)
            if slot is not None:
                positions[slot] = value
                found += 1
        if found < len(index):
            missing = [n for n, i in index.items() if np.isnan(positions[i])]
            with self._lock:
                self._joint_state_problem = f"joint state lacks {missing}"
            return
        problem = self.controller.submit_joint_state(
            positions, time_to_ns(msg.header.stamp), self._now_ns()
        )
        with self._lock:
            self._joint_state_problem = problem

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self.controller.engage_estop("estop topic")
            self.get_logger().error(
                "e-stop engaged (estop topic); reset with the reset_estop service"
            )

    def _on_cancel(self, msg: CancelChunks) -> None:
        if self.controller.cancel_event(msg.event_id, time_to_ns(msg.header.stamp)):
            self.get_logger().warning(f"event {msg.event_id} canceled: its chunks stopped")

    def _on_arm_reset(self, msg: Header) -> None:
        stamp_ns = time_to_ns(msg.stamp)
        self.controller.resync(stamp_ns)
        self.get_logger().info(
            f"arm reset announced at {stamp_ns / NS_PER_S:.3f} s: the command restarts at the "
            "joint states from then on"
        )

    def _on_reset_estop(self, request: Trigger.Request, response: Trigger.Response):
        now_ns = self._now_ns()
        result = self.controller.reset_estop(now_ns)
        response.success, response.message = result.ok, result.reason
        if result.ok:
            # Tell the policy before the caller hears back: a goal sent right after a
            # successful reset must not meet the stale ESTOP state.
            self._send_state(ControllerState.IDLE, result.reason, now_ns)
            self.get_logger().info("e-stop reset")
        else:
            self.get_logger().warning(f"e-stop reset refused: {result.reason}")
        return response

    # --- control tick (loop thread) --------------------------------------------------------

    def _tick(self, tick: LoopTick) -> None:
        command = self.controller.update(tick.start_ns)
        self._publish(command, tick.start_ns)
        self._publish_state(command)

    def _publish_state(self, command: ControlCommand) -> None:
        """``controller_state`` on every change of state (and of the latched reason)."""
        latched = command.state in (ControllerState.FAULT, ControllerState.ESTOP)
        reason = command.reasons[0] if command.reasons else ""
        key = (command.state, reason if latched else "")
        with self._state_lock:
            if key == self._published_state:
                return
            self._published_state = key
            self._send_state(command.state, reason, command.stamp_ns)

    def _send_state(self, state: ControllerState, reason: str, stamp_ns: int) -> None:
        with self._state_lock:
            if state not in (ControllerState.FAULT, ControllerState.ESTOP):
                self._published_state = (state, "")
            msg = ControllerStateMsg(state=STATE_CODES[state], reason=reason)
            msg.header.stamp = ns_to_time(stamp_ns)
            self._state_pub.publish(msg)

    def _publish(self, command: ControlCommand, now_ns: int) -> None:
        if command.positions is not None:
            if self.config.output == "forward_position":
                self._position_pub.publish(Float64MultiArray(data=command.positions.tolist()))
            elif now_ns - self._last_trajectory_ns >= NS_PER_S / self.config.trajectory_rate_hz:
                self._last_trajectory_ns = now_ns
                self._trajectory_pub.publish(self._trajectory(command, now_ns))
        if command.gripper is not None:
            gripper = tuple(float(g) for g in command.gripper)
            repeat_due = now_ns - self._last_gripper_sent_ns >= GRIPPER_REPEAT_S * NS_PER_S
            if gripper != self._last_gripper or repeat_due:
                self._last_gripper, self._last_gripper_sent_ns = gripper, now_ns
                self._gripper_pub.publish(Float64MultiArray(data=list(gripper)))

    def _trajectory(self, command: ControlCommand, now_ns: int) -> JointTrajectory:
        lead_s = self.config.trajectory_lead
        velocities = command.velocities if command.velocities is not None else 0.0
        positions = command.positions + velocities * lead_s  # where the command will be
        msg = JointTrajectory(joint_names=list(command.joint_names))
        msg.header.stamp = ns_to_time(now_ns)
        msg.points = [
            JointTrajectoryPoint(
                positions=positions.tolist(),
                velocities=np.broadcast_to(velocities, positions.shape).tolist(),
                time_from_start=ns_to_duration(round(lead_s * NS_PER_S)),
            )
        ]
        return msg

    # --- diagnostics -------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        self.controller.note_loop_stats(self._loop.stats())
        status = self.controller.status()
        with self._lock:
            joint_problem = self._joint_state_problem
        level = {
            ControllerState.IDLE: DiagnosticStatus.OK,
            ControllerState.TRACKING: DiagnosticStatus.OK,
            ControllerState.HOLDING: DiagnosticStatus.WARN,
        }.get(status.state, DiagnosticStatus.ERROR)
        loop = status.loop
        values = {
            "state": status.state.name,
            "reasons": "; ".join(status.reasons),
            "estop": f"{status.estop_engaged} {status.estop_reason}".strip(),
            "chunks_accepted": str(status.chunks_accepted),
            "fault": status.fault_reason,
            "chunks_rejected": str(status.chunks_rejected),
            "last_rejection": status.last_rejection,
            "ik_failures": str(status.ik_failures),
            "workspace_clamped_steps": str(status.workspace_clamped_steps),
            "ee_speed_limited_ticks": str(status.ee_speed_limited_ticks),
            "joint_limit_clips": str(status.joint_limit_clips),
            "following_error_holds": str(status.following_error_holds),
            "chunks_canceled": str(status.chunks_canceled),
            "arm_resets": str(status.resyncs),
            "joint_states_rejected": str(status.joint_states_rejected),
            "joint_states_implausible": str(status.joint_states_implausible),
            "last_joint_state_rejection": status.last_joint_state_rejection,
            "joint_state_age_ms": "none"
            if status.joint_state_age_ns is None
            else f"{status.joint_state_age_ns / 1e6:.1f}",
            "joint_state_problem": joint_problem,
        }
        if loop is not None:
            values.update(
                {
                    "loop_rate_hz": f"{loop.achieved_rate_hz:.1f}",
                    "loop_period_error_p99_ms": f"{loop.period_error_p99_ns / 1e6:.3f}",
                    "loop_overruns": str(loop.overruns),
                    "loop_missed_deadlines": str(loop.missed_deadlines),
                }
            )
        message = status.reasons[0] if status.reasons else status.state.name
        diagnostic = DiagnosticStatus(
            level=level,
            name=f"{self.get_fully_qualified_name()}: controller",
            hardware_id="wallwm",
            message=message,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[diagnostic])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)


def main(args: list[str] | None = None) -> int:
    return spin_node(ControllerNode, "controller_node", args)


if __name__ == "__main__":
    sys.exit(main())

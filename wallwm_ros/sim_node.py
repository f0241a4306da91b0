"""The simulation node: TabletopSim behind the ROS 2 interfaces of a ros2_control arm.

Publishes (relative names, so namespaces work; defaults shown):
- ``/clock`` (rosgraph_msgs/Clock): simulation time, every control period; run the other nodes
  with ``use_sim_time:=true``. Never goes back, also across resets.
- ``joint_states`` (sensor_msgs/JointState): the six arm joints and the two finger joints,
  positions, velocities and efforts, every control period.
- ``<camera>/image_raw`` (sensor_msgs/Image, rgb8) and ``<camera>/camera_info`` per camera at
  the camera rate, all cameras rendered at the same simulation time.
- ``/diagnostics``: achieved rates, real-time factor, rejected commands, lockstep waiting.
- ``arm_reset`` (std_msgs/Header): after every reset, announces that the arm moved (see docs/safety.md).
All stamped with simulation time; sensor streams with sensor-data QoS.

With ``lockstep`` the simulation waits for the controller's arm command after each control
period (see wallwm_sim.sim_loop): tests and evaluation use it; demos run in real time.

Subscribes, as ros2_control's controllers do:
- ``forward_position_controller/commands`` (std_msgs/Float64MultiArray): six arm joint
  positions in URDF order (``joint1`` .. ``joint6``), as ``forward_command_controller`` takes;
- ``joint_trajectory_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory),
  interpolated over simulation time as ``joint_trajectory_controller`` does (see
  wallwm_sim.joint_trajectory); the newest position command or trajectory wins;
- ``gripper_controller/commands`` (std_msgs/Float64MultiArray): one value, 0 open .. 1 closed.
Bad commands are rejected with a logged error (throttled) and the previous command stays.

Services: ``reset_simulation`` (wallwm_msgs/srv/ResetSimulation) and ``get_task_progress``
(wallwm_msgs/srv/GetTaskProgress). The simulation runs in a thread of its own
(wallwm_sim.sim_loop); this module only translates.
"""

from __future__ import annotations

import dataclasses
import math
import string
import sys
from collections.abc import Mapping

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidTopicNameException
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.validate_topic_name import validate_topic_name
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.msg import JointState as JointStateMsg
from std_msgs.msg import Float64MultiArray, Header
from trajectory_msgs.msg import JointTrajectory

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.config_loading import ConfigError
from wallwm_msgs.srv import GetTaskProgress, ResetSimulation
from wallwm_ros import qos
from wallwm_ros.conversions import ns_to_time
from wallwm_ros.node_main import spin_node
from wallwm_ros.parameters import declare_config
from wallwm_ros.sim_conversions import (
    camera_info_to_msg,
    clock_to_msg,
    image_to_msg,
    joint_state_to_msg,
    trajectory_from_msg,
)
from wallwm_sim import cameras, scene
from wallwm_sim.joint_trajectory import TrajectoryError
from wallwm_sim.sim import InvalidCommandError, JointState, SimConfig, TabletopSim
from wallwm_sim.sim_loop import LoopConfig, LoopCounters, LoopRates, SimulationLoop
from wallwm_sim.tasks import TASK_NAMES, TaskError, get_task

REJECTION_LOG_PERIOD_S = 2.0
BEHIND_LOG_PERIOD_S = 10.0
BEHIND_REAL_TIME_FACTOR = 0.9  # real_time runs below this factor count as falling behind
# /clock: reliable depth 1 matches the best-effort time sources of rclpy/rclcpp and reliable tools.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
_MAX_IMAGE = (SimConfig.max_image_height, SimConfig.max_image_width)


@dataclasses.dataclass(frozen=True)
class SimNodeConfig:
    """The simulation node's parameters, validated; errors name the parameter."""

    task: str = "pick_place"
    seed: int = 0
    variant: str = "train"
    control_rate_hz: float = 500.0
    camera_rate_hz: float = 10.0
    cameras: tuple[str, ...] = cameras.CAMERA_NAMES
    image_height: int = 224
    image_width: int = 224
    real_time: bool = True
    max_lag: float = 0.1
    lockstep: bool = False
    lockstep_timeout: float = 10.0
    frame_prefix: str = ""
    joint_states_topic: str = "joint_states"
    image_topic_format: str = "{camera}/image_raw"
    camera_info_topic_format: str = "{camera}/camera_info"
    position_command_topic: str = "forward_position_controller/commands"
    trajectory_topic: str = "joint_trajectory_controller/joint_trajectory"
    gripper_command_topic: str = "gripper_controller/commands"
    diagnostics_period: float = 1.0

    def __post_init__(self) -> None:
        if self.task and self.task not in TASK_NAMES:
            raise ConfigError(
                f"parameter 'task' is {self.task!r}; expected '' (empty table) or one of {TASK_NAMES}"
            )
        if self.task and self.variant not in get_task(self.task).variants:
            raise ConfigError(
                f"parameter 'variant' is {self.variant!r}; task {self.task!r} has "
                f"{get_task(self.task).variants}"
            )
        if self.seed < 0:
            raise ConfigError(f"parameter 'seed' must not be negative, got {self.seed}")
        self._check_control_rate()
        for name in ("camera_rate_hz", "max_lag", "lockstep_timeout", "diagnostics_period"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ConfigError(f"parameter '{name}' must be positive, got {value}")
        if self.camera_rate_hz > self.control_rate_hz:
            raise ConfigError(
                f"parameter 'camera_rate_hz' ({self.camera_rate_hz}) must not exceed "
                f"control_rate_hz ({self.control_rate_hz})"
            )
        unknown = [name for name in self.cameras if name not in cameras.CAMERA_NAMES]
        if unknown or len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(
                f"parameter 'cameras' is {list(self.cameras)}; use distinct names from "
                f"{cameras.CAMERA_NAMES}"
            )
        for name, limit in zip(("image_height", "image_width"), _MAX_IMAGE, strict=True):
            if not 0 < getattr(self, name) <= limit:
                raise ConfigError(
                    f"parameter '{name}' must lie in 1..{limit}, got {getattr(self, name)}"
                )
        for name in ("image_topic_format", "camera_info_topic_format"):
            fields = {
                f for _, f, _, _ in string.Formatter().parse(getattr(self, name)) if f is not None
            }
            if fields != {"camera"}:
                raise ConfigError(
                    f"parameter '{name}' must contain '{{camera}}' and no other field, "
                    f"got {getattr(self, name)!r}"
                )
        for name in self._topic_parameters():
            try:
                validate_topic_name(self.topic(name, "front"))
            except InvalidTopicNameException as error:
                raise ConfigError(
                    f"parameter '{name}' is not a valid topic name: {error}"
                ) from None

    def _check_control_rate(self) -> None:
        rate = self.control_rate_hz
        if not (math.isfinite(rate) and rate > 0.0):
            raise ConfigError(f"parameter 'control_rate_hz' must be positive, got {rate}")
        steps = 1.0 / (rate * scene.TIMESTEP_S)
        if steps < 1.0 - 1e-9 or abs(steps - round(steps)) > 1e-6:
            raise ConfigError(
                f"parameter 'control_rate_hz' must divide the physics rate "
                f"{1.0 / scene.TIMESTEP_S:g} Hz by a whole number (e.g. 500, 250, 100, 50), "
                f"got {rate}"
            )

    @staticmethod
    def _topic_parameters() -> tuple[str, ...]:
        return (
            "joint_states_topic",
            "image_topic_format",
            "camera_info_topic_format",
            "position_command_topic",
            "trajectory_topic",
            "gripper_command_topic",
        )

    def topic(self, parameter: str, camera: str = "") -> str:
        """The topic a ``*_topic`` parameter names, or a ``*_format`` one gives for ``camera``."""
        value = getattr(self, parameter)
        return value.format(camera=camera) if parameter.endswith("_format") else value

    @property
    def control_period_ns(self) -> int:
        return round(NS_PER_S / self.control_rate_hz)

    @property
    def camera_period_ns(self) -> int:
        return round(NS_PER_S / self.camera_rate_hz)


PARAMETER_DESCRIPTIONS = {
    "task": f"Task at start-up and after resets that name none: one of {TASK_NAMES}, or '' for "
    "an empty table.",
    "seed": "Seed of the task's randomiser (object layout, colours) at start-up.",
    "variant": "'train' or a generalisation variant (novel_layout, novel_colours, novel_order).",
    "control_rate_hz": "Control periods per second of simulation time: joint commands apply, "
    "/clock and joint_states publish at this rate. Must divide the 500 Hz physics rate.",
    "camera_rate_hz": "Camera frames per second of simulation time (all cameras together).",
    "cameras": f"Cameras to render and publish, from {cameras.CAMERA_NAMES}; empty for none.",
    "image_height": "Rendered image height in pixels.",
    "image_width": "Rendered image width in pixels.",
    "real_time": "true: keep simulation time with the wall clock; false: run as fast as "
    "possible (other nodes follow /clock).",
    "max_lag": "Seconds the real-time loop may fall behind the wall clock before it gives up "
    "catching up (the real-time factor then drops below 1, reported in /diagnostics).",
    "lockstep": "true: simulated time advances only when the controller has answered the last "
    "control period with an arm command (tests, evaluation: results do not depend on machine "
    "load); false: the simulation does not wait for the controller (demos).",
    "lockstep_timeout": "Wall-clock seconds the lockstep simulation waits for an arm command "
    "before it stops with a fault.",
    "frame_prefix": "Prefix of the camera optical frame ids (e.g. 'arm1/').",
    "joint_states_topic": "sensor_msgs/JointState output.",
    "image_topic_format": "Image topic per camera; '{camera}' is replaced by the camera name.",
    "camera_info_topic_format": "CameraInfo topic per camera; '{camera}' as above.",
    "position_command_topic": "std_msgs/Float64MultiArray input: six arm joint positions (rad) "
    "in URDF order, as forward_command_controller takes.",
    "trajectory_topic": "trajectory_msgs/JointTrajectory input, as joint_trajectory_controller "
    "takes.",
    "gripper_command_topic": "std_msgs/Float64MultiArray input: one value, 0 open .. 1 closed.",
    "diagnostics_period": "Wall-clock seconds between /diagnostics messages.",
}


class _Publishers:
    """The loop's output sink: turns its values into messages (called on the loop thread)."""

    def __init__(self, node: SimNode, config: SimNodeConfig, sim: TabletopSim) -> None:
        self._node = node
        self._clock = node.create_publisher(ClockMsg, "/clock", CLOCK_QOS)
        self._joint_states = node.create_publisher(
            JointStateMsg, config.joint_states_topic, qos.SENSORS
        )
        self._images = {
            name: node.create_publisher(
                Image, config.topic("image_topic_format", name), qos.SENSORS
            )
            for name in config.cameras
        }
        self._infos = {
            name: node.create_publisher(
                CameraInfo, config.topic("camera_info_topic_format", name), qos.SENSORS
            )
            for name in config.cameras
        }
        self._info_msgs = {}
        self._frame_ids = {}
        for name in config.cameras:
            info = sim.camera_info(name)
            self._frame_ids[name] = config.frame_prefix + info.frame_id
            self._info_msgs[name] = camera_info_to_msg(info, self._frame_ids[name])

    def clock(self, time_ns: int) -> None:
        self._send(self._clock, clock_to_msg(time_ns))

    def joint_state(self, time_ns: int, state: JointState) -> None:
        self._send(self._joint_states, joint_state_to_msg(time_ns, state))

    def images(self, time_ns: int, images: Mapping[str, np.ndarray]) -> None:
        for name, rgb in images.items():
            image = image_to_msg(time_ns, self._frame_ids[name], rgb)
            info = self._info_msgs[name]
            info.header.stamp = image.header.stamp
            self._send(self._images[name], image)
            self._send(self._infos[name], info)

    def fault(self, message: str) -> None:
        self._node.get_logger().error(message)

    def _send(self, publisher: Publisher, msg: object) -> None:
        """Publish; once the context is shut down (Ctrl-C) publishing fails, which is fine."""
        try:
            publisher.publish(msg)
        except Exception:
            if self._node.context.ok():
                raise


class SimNode(Node):
    """Runs TabletopSim in a loop thread and connects it to ROS topics and services."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(node_kwargs.pop("node_name", "sim_node"), **node_kwargs)
        self.config = declare_config(self, SimNodeConfig, PARAMETER_DESCRIPTIONS)
        config = self.config
        self._sim = TabletopSim(
            SimConfig(
                control_period_s=config.control_period_ns / NS_PER_S,
                image_height=config.image_height,
                image_width=config.image_width,
            )
        )
        self._sim.reset(config.task or None, config.seed, config.variant)
        self._loop = SimulationLoop(
            self._sim,
            LoopConfig(
                control_period_ns=config.control_period_ns,
                camera_period_ns=config.camera_period_ns,
                cameras=config.cameras,
                real_time=config.real_time,
                max_lag_ns=round(config.max_lag * NS_PER_S),
                lockstep=config.lockstep,
                lockstep_timeout_ns=round(config.lockstep_timeout * NS_PER_S),
            ),
            _Publishers(self, config, self._sim),
        )
        self.create_subscription(
            Float64MultiArray, config.position_command_topic, self._on_positions, qos.COMMANDS
        )
        self.create_subscription(
            JointTrajectory, config.trajectory_topic, self._on_trajectory, qos.COMMANDS
        )
        self.create_subscription(
            Float64MultiArray, config.gripper_command_topic, self._on_gripper, qos.COMMANDS
        )
        self.create_service(ResetSimulation, "reset_simulation", self._on_reset)
        # A reset teleports the arm: announce it, so the controller restarts at the new pose.
        self._arm_reset_pub = self.create_publisher(Header, "arm_reset", qos.COMMANDS)
        self.create_service(GetTaskProgress, "get_task_progress", self._on_get_progress)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._last_counters: LoopCounters | None = None  # set once the loop runs
        self._ignored_reported = 0
        self._diagnostics_timer = self.create_timer(
            config.diagnostics_period,
            self._publish_diagnostics,
            callback_group=MutuallyExclusiveCallbackGroup(),
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self._loop.start()
        self.get_logger().info(
            f"ready: task={config.task or '<empty table>'} seed={config.seed} "
            f"variant={config.variant}; control {config.control_rate_hz:g} Hz, cameras "
            f"{list(config.cameras)} at {config.camera_rate_hz:g} Hz "
            f"{config.image_height}x{config.image_width}; real_time={config.real_time} "
            f"lockstep={config.lockstep}"
        )

    @property
    def loop(self) -> SimulationLoop:
        return self._loop

    def destroy_node(self) -> None:
        """Stop the loop thread (it closes the renderers), then the node."""
        loop = getattr(self, "_loop", None)  # absent when __init__ failed
        if loop is not None:
            loop.stop()
        super().destroy_node()

    # --- commands -------------------------------------------------------------------------

    def _on_positions(self, msg: Float64MultiArray) -> None:
        try:
            self._loop.command_positions(np.asarray(msg.data, dtype=np.float64))
        except InvalidCommandError as error:
            self.get_logger().error(
                f"rejected position command: {error}", throttle_duration_sec=REJECTION_LOG_PERIOD_S
            )

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            self._loop.command_trajectory(trajectory_from_msg(msg))
        except TrajectoryError as error:
            self.get_logger().error(
                f"rejected joint trajectory: {error}", throttle_duration_sec=REJECTION_LOG_PERIOD_S
            )

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        try:
            self._loop.command_gripper(np.asarray(msg.data, dtype=np.float64))
        except InvalidCommandError as error:
            self.get_logger().error(
                f"rejected gripper command: {error}", throttle_duration_sec=REJECTION_LOG_PERIOD_S
            )

    # --- services -------------------------------------------------------------------------

    def _on_reset(
        self, request: ResetSimulation.Request, response: ResetSimulation.Response
    ) -> ResetSimulation.Response:
        current = self._loop.instance
        task = request.task or (current.task if current is not None else None)
        variant = request.variant or "train"
        try:
            instance = self._loop.reset(task, int(request.seed), variant)
        except TaskError as error:
            response.success = False
            response.message = str(error)
            self.get_logger().warning(f"reset_simulation refused: {error}")
            return response
        response.success = True
        self._arm_reset_pub.publish(Header(stamp=ns_to_time(self._loop.clock_ns + 1)))
        if instance is None:
            response.message = "reset to an empty table (no task)"
        else:
            response.message = f"reset to {instance.task} seed {instance.seed} ({variant})"
            response.task_description = instance.instruction
            response.event_instructions = [subtask.caption for subtask in instance.subtasks]
        self.get_logger().info(response.message)
        return response

    def _on_get_progress(
        self, _request: GetTaskProgress.Request, response: GetTaskProgress.Response
    ) -> GetTaskProgress.Response:
        report = self._loop.progress()
        response.success = report.task is not None
        response.message = f"task {report.task}" if report.task else "no task loaded (empty table)"
        response.progress = float(report.progress)
        response.points = report.points
        response.max_points = report.max_points
        response.criteria_met = list(report.criteria_met)
        return response

    # --- diagnostics ----------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        counters = self._loop.counters()
        if counters.ignored_after_reset > self._ignored_reported:
            self.get_logger().info(
                f"ignored {counters.ignored_after_reset - self._ignored_reported} command(s) from "
                "before the last reset (far from the start pose, or stamped earlier)"
            )
            self._ignored_reported = counters.ignored_after_reset
        if self._last_counters is None:
            # Rates need two samples; the first is taken once the renderers are set up.
            if self._loop.warmed_up:
                self._last_counters = counters
            return
        rates = LoopRates.between(self._last_counters, counters)
        self._last_counters = counters
        behind = self.config.real_time and rates.real_time_factor < BEHIND_REAL_TIME_FACTOR
        if behind:
            self.get_logger().warning(
                f"simulation runs behind real time: factor {rates.real_time_factor:.2f}, "
                f"{rates.mean_step_ms:.2f} ms per control step, {rates.mean_render_ms:.1f} ms "
                "per camera frame",
                throttle_duration_sec=BEHIND_LOG_PERIOD_S,
            )
        if counters.fault or not self._loop.running:
            level, message = DiagnosticStatus.ERROR, counters.fault or "simulation stopped"
        elif behind:
            level, message = DiagnosticStatus.WARN, "behind real time"
        else:
            level, message = DiagnosticStatus.OK, "running"
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_fully_qualified_name()}: simulation",
            hardware_id="wallwm_sim",
            message=message,
            values=[
                KeyValue(key=key, value=value)
                for key, value in self._diagnostic_values(counters, rates).items()
            ],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = ns_to_time(counters.clock_ns)
        self._diagnostics_pub.publish(array)

    def _diagnostic_values(self, counters: LoopCounters, rates: LoopRates) -> dict[str, str]:
        config = self.config
        instance = self._loop.instance
        sim_rate = rates.real_time_factor
        values = {
            "task": instance.task if instance is not None else "",
            "seed": str(instance.seed) if instance is not None else "",
            "variant": instance.variant if instance is not None else "",
            "sim_time_s": f"{counters.clock_ns / NS_PER_S:.3f}",
            "real_time": str(config.real_time),
            "lockstep": str(config.lockstep),
            "lockstep_wait_s": f"{counters.lockstep_wait_s:.3f}",
            "real_time_factor": f"{rates.real_time_factor:.3f}",
            "control_rate_hz": f"{rates.control_hz:.1f}",
            "control_rate_configured_hz": f"{config.control_rate_hz:g}",
            "physics_rate_hz": f"{rates.physics_hz:.1f}",
            "joint_states_rate_hz": f"{rates.joint_states_hz:.1f}",
            "mean_step_ms": f"{rates.mean_step_ms:.3f}",
            "mean_render_ms_per_frame": f"{rates.mean_render_ms:.2f}",
            "overruns": str(counters.overruns),
        }
        for name, hz in rates.frames_hz.items():
            values[f"camera_{name}_rate_hz"] = f"{hz:.2f}"
            per_sim_s = hz / sim_rate if sim_rate > 0 else 0.0
            values[f"camera_{name}_rate_per_sim_s"] = f"{per_sim_s:.2f}"
        values["camera_rate_configured_hz"] = f"{config.camera_rate_hz:g}"
        for kind, count in counters.rejected.items():
            values[f"rejected_{kind}_commands"] = str(count)
        values["last_rejection"] = counters.last_rejection
        values["commands_ignored_after_reset"] = str(counters.ignored_after_reset)
        return values


def main(args: list[str] | None = None) -> int:
    return spin_node(SimNode, "sim_node", args)


if __name__ == "__main__":
    sys.exit(main())

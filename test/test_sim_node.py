"""The simulation node over real rclpy/DDS: streams, commands, trajectories, resets, rejections.

Small images, low camera and control rates, so the whole file stays well under its 90 s budget
on a loaded 2-core machine. Trajectory interpolation is also checked without ROS.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import child_env, wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Log
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.config_loading import ConfigError
from wallwm_msgs.srv import GetTaskProgress, ResetSimulation
from wallwm_ros import qos
from wallwm_ros.conversions import ns_to_duration, ns_to_time, time_to_ns
from wallwm_ros.sim_node import CLOCK_QOS, SimNode, main
from wallwm_sim import cameras, description
from wallwm_sim.joint_trajectory import (
    TrajectoryError,
    TrajectoryRequest,
    TrajectoryWaypoint,
    plan_trajectory,
)
from wallwm_sim.sim import HOME_JOINT_POSITIONS
from wallwm_sim.tasks import get_task

HOME = np.array(HOME_JOINT_POSITIONS)
ARM = description.ARM_JOINT_NAMES
# Control 100 Hz (10 ms), no cameras unless a test asks for them.
FAST = {"control_rate_hz": 100.0, "cameras": [], "diagnostics_period": 0.2}
CONTROL_PERIOD_NS = 10_000_000
SETTLED_RAD = 0.01  # position servos settle to within this of a held target
TRACKING_RAD = 0.05  # and follow a moving reference within this


class Probe:
    """The test's side of the node: records every stream, sends commands, calls services."""

    def __init__(self, node: Node, namespace: str) -> None:
        self.node = node
        self.namespace = namespace.strip("/")
        self.lock = threading.Lock()
        self.clock: list[int] = []
        self.joints: list[JointState] = []
        self.images: dict[str, list[Image]] = {}
        self.infos: dict[str, list[CameraInfo]] = {}
        self.diagnostics: list[dict[str, str]] = []
        self.errors: list[str] = []
        node.create_subscription(Clock, "/clock", self._on_clock, CLOCK_QOS)
        self.joint_subscription = node.create_subscription(
            JointState, "joint_states", self._keep(self.joints), qos.SENSORS
        )
        for camera in cameras.CAMERA_NAMES:
            self.images[camera], self.infos[camera] = [], []
            node.create_subscription(
                Image, f"{camera}/image_raw", self._keep(self.images[camera]), qos.SENSORS
            )
            node.create_subscription(
                CameraInfo, f"{camera}/camera_info", self._keep(self.infos[camera]), qos.SENSORS
            )
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        node.create_subscription(
            Log,
            "/rosout",
            self._on_log,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
        )
        self.positions = node.create_publisher(
            Float64MultiArray, "forward_position_controller/commands", qos.COMMANDS
        )
        self.trajectory = node.create_publisher(
            JointTrajectory, "joint_trajectory_controller/joint_trajectory", qos.COMMANDS
        )
        self.gripper = node.create_publisher(
            Float64MultiArray, "gripper_controller/commands", qos.COMMANDS
        )
        self.reset_client = node.create_client(ResetSimulation, "reset_simulation")
        self.progress_client = node.create_client(GetTaskProgress, "get_task_progress")

    def _keep(self, into: list):
        def keep(msg) -> None:
            with self.lock:
                into.append(msg)

        return keep

    def _on_clock(self, msg: Clock) -> None:
        with self.lock:
            self.clock.append(time_to_ns(msg.clock))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if self.namespace in status.name:
                with self.lock:
                    self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def _on_log(self, msg: Log) -> None:
        if msg.level >= Log.ERROR and self.namespace in msg.name:
            with self.lock:
                self.errors.append(msg.msg)

    # --- reading ---------------------------------------------------------------------------

    def latest_joints(self) -> JointState | None:
        with self.lock:
            return self.joints[-1] if self.joints else None

    def arm_positions(self) -> np.ndarray:
        return np.array(self.latest_joints().position[:6])

    def latest_clock(self) -> int:
        with self.lock:
            return self.clock[-1] if self.clock else 0

    def joints_after(self, stamp_ns: int) -> bool:
        latest = self.latest_joints()
        return latest is not None and time_to_ns(latest.header.stamp) > stamp_ns

    def wait_sim_time(self, seconds: float, timeout_s: float = 20.0) -> None:
        """Wait until joint states ``seconds`` of simulation time after the latest clock arrive."""
        target = self.latest_clock() + round(seconds * NS_PER_S)
        assert wait_for(lambda: self.joints_after(target), timeout_s), "simulation time stalled"

    def diagnostic(self, key: str) -> str | None:
        with self.lock:
            return self.diagnostics[-1].get(key) if self.diagnostics else None

    def arm_near(self, target: np.ndarray, tolerance: float = SETTLED_RAD) -> bool:
        latest = self.latest_joints()
        return latest is not None and np.allclose(latest.position[:6], target, atol=tolerance)

    # --- sending ---------------------------------------------------------------------------

    def send_positions(self, values) -> None:
        self.positions.publish(Float64MultiArray(data=[float(v) for v in values]))

    def send_gripper(self, values) -> None:
        self.gripper.publish(Float64MultiArray(data=[float(v) for v in values]))

    def call(self, client, request, timeout_s: float = 10.0):
        assert client.wait_for_service(timeout_sec=timeout_s)
        future = client.call_async(request)
        assert wait_for(future.done, timeout_s)
        return future.result()


def _start(ros_context, spinner, namespace, **params) -> tuple[SimNode, Probe]:
    overrides = [Parameter(n, value=v) for n, v in params.items() if v != []]
    # Empty lists only keep their type when given as arguments (as from a params file).
    empty = [arg for n, v in params.items() if v == [] for arg in ("-p", f"{n}:=[]")]
    sim = spinner.add(
        SimNode(
            namespace=namespace,
            context=ros_context,
            parameter_overrides=overrides,
            cli_args=["--ros-args", *empty] if empty else None,
        )
    )
    probe = Probe(spinner.add(Node("probe", namespace=namespace, context=ros_context)), namespace)
    assert wait_for(lambda: probe.joint_subscription.get_publisher_count() > 0)
    assert wait_for(lambda: len(probe.joints) > 5, 20.0)
    return sim, probe


def _trajectory(names, points, start_ns: int = 0) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    msg.header.stamp = ns_to_time(start_ns)
    for time_s, positions in points:
        msg.points.append(
            JointTrajectoryPoint(
                positions=[float(p) for p in positions],
                time_from_start=ns_to_duration(round(time_s * NS_PER_S)),
            )
        )
    return msg


# ------------------------------------------------------------------------ streams


@pytest.mark.parametrize("real_time", [True, False])
def test_streams_images_camera_info_joint_states_and_clock(
    ros_context, spinner, namespace, real_time
):
    height, width, camera_period = 48, 64, 200_000_000
    _, probe = _start(
        ros_context,
        spinner,
        namespace,
        control_rate_hz=100.0,
        camera_rate_hz=5.0,
        cameras=["front", "wrist"],
        image_height=height,
        image_width=width,
        real_time=real_time,
        diagnostics_period=0.2,
    )
    assert wait_for(lambda: all(len(probe.images[c]) >= 3 for c in ("front", "wrist")), 30.0)
    assert wait_for(lambda: all(len(probe.infos[c]) >= 3 for c in ("front", "wrist")))
    assert wait_for(lambda: probe.diagnostic("real_time") == str(real_time))
    assert wait_for(lambda: len(probe.clock) > 5)  # depth 1: a busy subscriber misses some
    with probe.lock:
        clock = list(probe.clock)
        joints = list(probe.joints)
        images = {c: list(probe.images[c]) for c in ("front", "wrist")}
        infos = {c: list(probe.infos[c]) for c in ("front", "wrist")}
    assert not probe.images["overhead"]  # only the configured cameras publish

    # The clock advances in control periods; joint states are stamped with simulation time.
    assert len(clock) > 5 and clock == sorted(set(clock))
    assert all(t % CONTROL_PERIOD_NS == 0 for t in clock)
    stamps = [time_to_ns(m.header.stamp) for m in joints]
    assert stamps == sorted(set(stamps)) and all(t % CONTROL_PERIOD_NS == 0 for t in stamps)
    assert wait_for(lambda: probe.latest_clock() >= stamps[-1])
    latest = joints[-1]
    assert tuple(latest.name) == description.ALL_JOINT_NAMES
    assert len(latest.position) == len(latest.velocity) == len(description.ALL_JOINT_NAMES)
    np.testing.assert_allclose(latest.position[:6], HOME, atol=0.02)  # holds home
    assert latest.position[6] == pytest.approx(description.FINGER_OPEN_POSITION, abs=2e-3)

    for camera in ("front", "wrist"):
        image = images[camera][-1]
        assert (image.height, image.width, image.encoding) == (height, width, "rgb8")
        assert image.step == 3 * width and len(image.data) == height * width * 3
        assert image.header.frame_id == f"{camera}_camera_optical_frame"
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(height, width, 3)
        assert pixels.std() > 5.0 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
        # Frames come every camera period of simulation time (after the first one at start-up).
        frame_stamps = [time_to_ns(m.header.stamp) for m in images[camera]]
        assert frame_stamps == sorted(set(frame_stamps))
        assert all(t % camera_period == 0 for t in frame_stamps if t > camera_period)
        # CameraInfo matches the image size and the camera's field of view, frame and stamps.
        info = infos[camera][-1]
        assert (info.height, info.width) == (height, width)
        assert info.header.frame_id == image.header.frame_id
        focal = 0.5 * height / math.tan(math.radians(cameras.camera_spec(camera).fovy_deg) / 2)
        k = np.array(info.k).reshape(3, 3)
        np.testing.assert_allclose(
            k, [[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]]
        )
        np.testing.assert_allclose(np.array(info.p).reshape(3, 4)[:, :3], k)
        info_stamps = {time_to_ns(m.header.stamp) for m in infos[camera]}
        assert info_stamps & set(frame_stamps)
    # All cameras render at the same simulation times.
    assert {time_to_ns(m.header.stamp) for m in images["front"]} & {
        time_to_ns(m.header.stamp) for m in images["wrist"]
    }
    # Rates are per diagnostics period (0.2 s, one frame period here): on a busy machine a window
    # can hold no frame, so wait for one that does.
    assert wait_for(lambda: float(probe.diagnostic("camera_front_rate_hz") or 0.0) > 0.0)


# ------------------------------------------------------------------------ commands


def test_position_and_gripper_commands_and_bad_commands(ros_context, spinner, namespace):
    sim, probe = _start(ros_context, spinner, namespace, **FAST)
    target = HOME + np.array([0.3, -0.2, 0.2, 0.4, -0.3, 0.5])
    probe.send_positions(target)
    assert wait_for(lambda: probe.arm_near(target), 20.0), probe.arm_positions()
    probe.send_gripper([1.0])
    assert wait_for(lambda: probe.latest_joints().position[6] < 0.004, 20.0)

    bad_positions = [
        [0.1] * 5,  # wrong length
        [*target[:5], float("nan")],
        [3.5, *target[1:]],  # joint1 beyond its 2.9 rad limit
    ]
    bad_gripper = [[1.5], [0.5, 0.5], [float("inf")]]
    for values in bad_positions:
        probe.send_positions(values)
    for values in bad_gripper:
        probe.send_gripper(values)
    assert wait_for(lambda: probe.diagnostic("rejected_position_commands") == "3", 15.0)
    assert wait_for(lambda: probe.diagnostic("rejected_gripper_commands") == "3", 15.0)
    assert wait_for(lambda: len(probe.errors) >= 2)
    assert any("rejected position command" in e and "6 values" in e for e in probe.errors)
    assert any("rejected gripper command" in e and "[0, 1]" in e for e in probe.errors)

    # The simulation keeps running with the previous commands.
    probe.wait_sim_time(0.3)
    assert probe.arm_near(target)
    assert probe.latest_joints().position[6] < 0.004
    commanded, gripper = sim.loop.joint_command()
    np.testing.assert_allclose(commanded, target)
    assert gripper == 1.0


def test_trajectory_is_followed_and_bad_trajectories_rejected(ros_context, spinner, namespace):
    sim, probe = _start(ros_context, spinner, namespace, **FAST)
    middle = HOME + np.array([0.3, -0.15, 0.2, 0.3, -0.2, 0.4])
    final = HOME + np.array([0.5, 0.1, -0.2, 0.6, 0.1, -0.4])
    order = list(reversed(range(6)))  # joint names in another order than the URDF's
    start = probe.latest_clock() + 300_000_000  # begins 0.3 s from now, from home
    points = [(0.0, HOME), (0.6, middle), (1.2, final)]
    probe.trajectory.publish(
        _trajectory([ARM[i] for i in order], [(t, p[order]) for t, p in points], start)
    )
    end = start + 1_200_000_000
    assert wait_for(lambda: probe.joints_after(end + 500_000_000), 30.0)

    def reference(t_ns: int) -> np.ndarray:
        t = (t_ns - start) / NS_PER_S
        times = [p[0] for p in points]
        return np.array([np.interp(t, times, [p[1][j] for p in points]) for j in range(6)])

    with probe.lock:
        samples = [(time_to_ns(m.header.stamp), np.array(m.position[:6])) for m in probe.joints]
    during = [(t, q) for t, q in samples if start + 100_000_000 <= t <= end]
    assert len(during) > 20
    errors = [np.abs(q - reference(t)).max() for t, q in during]
    assert max(errors) < TRACKING_RAD, max(errors)
    halfway = min(during, key=lambda s: abs(s[0] - (start + 600_000_000)))
    np.testing.assert_allclose(halfway[1], middle, atol=TRACKING_RAD)
    assert probe.arm_near(final)

    good = list(points)
    bad = [
        _trajectory([*ARM[:5], "elbow"], good),  # unknown joint
        _trajectory(ARM[:5], [(t, p[:5]) for t, p in good]),  # a joint missing
        _trajectory(ARM, [(0.5, middle), (0.5, final)]),  # times do not increase
        _trajectory(ARM, [(0.5, middle), (1.0, [3.5, *final[1:]])]),  # beyond the limit
        _trajectory(ARM, [(0.5, [float("nan"), *middle[1:]])]),
        _trajectory(ARM, [(0.5, middle[:4])]),  # too few positions
    ]
    for msg in bad:
        probe.trajectory.publish(msg)
    assert wait_for(lambda: probe.diagnostic("rejected_trajectory_commands") == "6", 15.0)
    assert any("rejected joint trajectory" in e and "elbow" in e for e in probe.errors)
    probe.wait_sim_time(0.3)
    assert probe.arm_near(final)

    # A trajectory without points stops the running one where it is.
    probe.trajectory.publish(_trajectory(ARM, [(4.0, HOME)]))
    probe.wait_sim_time(0.3)
    probe.trajectory.publish(_trajectory(ARM, []))

    def command_holds() -> bool:
        before = sim.loop.joint_command()[0]
        probe.wait_sim_time(0.05)
        return np.array_equal(before, sim.loop.joint_command()[0])

    assert wait_for(command_holds)
    held = sim.loop.joint_command()[0]
    probe.wait_sim_time(0.3)
    np.testing.assert_allclose(sim.loop.joint_command()[0], held)
    assert not np.allclose(held, final, atol=0.02) and not np.allclose(held, HOME, atol=0.1)


# ------------------------------------------------------------------------ services


def test_reset_and_task_progress_services(ros_context, spinner, namespace):
    sim, probe = _start(ros_context, spinner, namespace, **FAST)
    progress = probe.call(probe.progress_client, GetTaskProgress.Request())
    assert progress.success and progress.max_points == 10
    assert progress.progress == pytest.approx(10.0 * progress.points)
    assert "pick_place" in progress.message

    # Move away from home, close the gripper and start a long trajectory: a reset undoes all.
    target = HOME + np.array([0.4, 0.0, 0.0, 0.0, 0.0, 0.0])
    probe.send_positions(target)
    probe.send_gripper([1.0])
    assert wait_for(lambda: probe.arm_near(target), 20.0)
    probe.trajectory.publish(_trajectory(ARM, [(5.0, HOME - 0.3)]))
    probe.wait_sim_time(0.2)
    before_reset = probe.latest_clock()

    request = ResetSimulation.Request(task="press_buttons", variant="novel_order", seed=3)
    response = probe.call(probe.reset_client, request)
    expected = get_task("press_buttons").sample(3, "novel_order")
    assert response.success, response.message
    assert response.task_description == expected.instruction
    assert list(response.event_instructions) == [s.caption for s in expected.subtasks]
    assert (sim.loop.instance.task, sim.loop.instance.seed) == ("press_buttons", 3)
    probe.wait_sim_time(0.5)
    assert probe.latest_clock() > before_reset  # the clock does not go back
    assert probe.arm_near(HOME)  # home, and the trajectory is gone
    assert probe.latest_joints().position[6] == pytest.approx(
        description.FINGER_OPEN_POSITION, abs=2e-3
    )
    progress = probe.call(probe.progress_client, GetTaskProgress.Request())
    assert progress.success and "press_buttons" in progress.message
    assert (progress.progress, progress.points, list(progress.criteria_met)) == (0.0, 0, [])

    # An empty task keeps the current one; bad requests change nothing.
    response = probe.call(probe.reset_client, ResetSimulation.Request(seed=4))
    assert response.success
    assert response.task_description == get_task("press_buttons").sample(4).instruction
    response = probe.call(probe.reset_client, ResetSimulation.Request(task="press_button"))
    assert not response.success and "unknown task" in response.message
    response = probe.call(
        probe.reset_client, ResetSimulation.Request(task="stack", variant="novel_order")
    )
    assert not response.success and "novel_order" in response.message
    assert (sim.loop.instance.task, sim.loop.instance.seed) == ("press_buttons", 4)
    probe.wait_sim_time(0.1)  # still running


# ------------------------------------------------------------------------ start and stop


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("control_rate_hz", 333.0),
        ("camera_rate_hz", 0.0),
        ("camera_rate_hz", 1000.0),
        ("cameras", ["front", "side"]),
        ("task", "pick_plac"),
        ("variant", "novel_order"),
        ("seed", -1),
        ("image_width", 0),
        ("image_topic_format", "camera/image_raw"),
        ("trajectory_topic", "joint trajectory"),
        ("control_rate_hz", "fast"),
    ],
)
def test_invalid_parameters_fail_at_start_naming_the_parameter(ros_context, name, value):
    with pytest.raises(ConfigError, match=name):
        SimNode(context=ros_context, parameter_overrides=[Parameter(name, value=value)])


def test_main_exits_2_on_bad_parameters(capsys):
    assert main(["sim_node", "--ros-args", "-p", "control_rate_hz:=333.0"]) == 2
    assert "control_rate_hz" in capsys.readouterr().err


def test_sigint_stops_the_node_cleanly():
    command = [sys.executable, "-m", "wallwm_ros.sim_node", "--ros-args"]
    command += ["-p", "image_height:=32", "-p", "image_width:=32", "-p", "control_rate_hz:=100.0"]
    process = subprocess.Popen(
        command, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60.0
        lines = []
        while time.monotonic() < deadline:
            lines.append(process.stdout.readline())
            if "ready" in lines[-1] or process.poll() is not None:
                break
        assert "ready" in lines[-1], "".join(lines)
        time.sleep(1.0)  # let the loop run and render
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20.0)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "Traceback" not in output and "simulation stopped" not in output


# ------------------------------------------------------------------------ interpolation (no ROS)

LOWER, UPPER = -np.full(6, 2.5), np.full(6, 2.5)


def _plan(waypoints, names=ARM, start_ns=0, now_ns=1_000_000_000, current=None):
    request = TrajectoryRequest(tuple(names), tuple(waypoints), start_ns)
    current = np.zeros(6) if current is None else current
    return plan_trajectory(request, ARM, LOWER, UPPER, now_ns, current)


def test_trajectory_interpolation_linear_cubic_and_joint_order():
    now = 1_000_000_000
    a, b = np.linspace(0.1, 0.6, 6), np.linspace(-0.5, 0.5, 6)
    # Positions only: linear from the current command (at now) to each waypoint, then held.
    plan = _plan(
        [TrajectoryWaypoint(500_000_000, tuple(a)), TrajectoryWaypoint(1_500_000_000, tuple(b))],
        current=np.full(6, 0.2),
    )
    np.testing.assert_allclose(plan.sample(now), np.full(6, 0.2))
    np.testing.assert_allclose(plan.sample(now + 250_000_000), (0.2 + a) / 2)
    np.testing.assert_allclose(plan.sample(now + 1_000_000_000), (a + b) / 2)
    np.testing.assert_allclose(plan.sample(now + 9 * NS_PER_S), b)
    assert plan.end_ns == now + 1_500_000_000
    # Names in another order are mapped to the arm's order.
    order = [5, 4, 3, 2, 1, 0]
    plan = _plan([TrajectoryWaypoint(NS_PER_S, tuple(a[order]))], names=[ARM[i] for i in order])
    np.testing.assert_allclose(plan.sample(now + NS_PER_S), a)
    # With velocities: cubic, passing the waypoints with their velocities.
    velocity = np.full(6, 0.4)
    plan = _plan(
        [
            TrajectoryWaypoint(0, tuple(a), tuple(np.zeros(6))),
            TrajectoryWaypoint(NS_PER_S, tuple(b), tuple(velocity)),
            TrajectoryWaypoint(2 * NS_PER_S, tuple(a), tuple(np.zeros(6))),
        ],
        start_ns=now,
    )
    np.testing.assert_allclose(plan.sample(now + NS_PER_S), b)
    step = 1_000_000
    slope = (plan.sample(now + NS_PER_S + step) - plan.sample(now + NS_PER_S - step)) / (2e-3)
    np.testing.assert_allclose(slope, velocity, atol=2e-3)  # central difference
    midpoint = plan.sample(now + NS_PER_S // 2)
    assert not np.allclose(midpoint, (a + b) / 2)  # not linear
    np.testing.assert_allclose(plan.sample(now + 3 * NS_PER_S), a)


@pytest.mark.parametrize(
    ("waypoints", "names", "message"),
    [
        ([], ARM, "no waypoints"),
        ([TrajectoryWaypoint(1, (0.0,) * 6)], (*ARM[:5], "x"), "unknown joints"),
        ([TrajectoryWaypoint(1, (0.0,) * 6)], (*ARM[:5], ARM[0]), "repeat"),
        ([TrajectoryWaypoint(1, (0.0,) * 5)], ARM[:5], "lacks joints"),
        ([TrajectoryWaypoint(1, (0.0,) * 5)], ARM, "5 positions"),
        ([TrajectoryWaypoint(-1, (0.0,) * 6)], ARM, "negative"),
        (
            [TrajectoryWaypoint(5, (0.0,) * 6), TrajectoryWaypoint(5, (0.1,) * 6)],
            ARM,
            "strictly increase",
        ),
        ([TrajectoryWaypoint(1, (0.0,) * 5 + (2.6,))], ARM, "limits of joint6"),
        ([TrajectoryWaypoint(1, (float("nan"),) * 6)], ARM, "NaN"),
        (
            [TrajectoryWaypoint(1, (0.0,) * 6, (0.0,) * 6), TrajectoryWaypoint(2, (0.0,) * 6)],
            ARM,
            "all waypoints or none",
        ),
        ([TrajectoryWaypoint(1, (0.0,) * 6, (), (0.0,) * 6)], ARM, "also give velocities"),
    ],
)
def test_bad_trajectories_are_refused(waypoints, names, message):
    with pytest.raises(TrajectoryError, match=message):
        _plan(waypoints, names=names)


def test_trajectory_that_ended_before_now_is_refused():
    with pytest.raises(TrajectoryError, match="before the current time"):
        _plan([TrajectoryWaypoint(NS_PER_S, (0.0,) * 6)], start_ns=1, now_ns=5 * NS_PER_S)

"""The controller node over real rclpy/DDS, driving an ideal position-controlled arm."""

from __future__ import annotations

import numpy as np
import pytest
import transforms3d
from conftest import wait_for
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from wallwm_core.action_chunk import ActionChunk
from wallwm_core.config_loading import ConfigError
from wallwm_core.control import ArmKinematics
from wallwm_msgs.msg import ActionChunk as ActionChunkMsg
from wallwm_ros import qos
from wallwm_ros.controller_node import ControllerNode
from wallwm_ros.conversions import chunk_to_msg
from wallwm_sim.description import urdf_string

ARM_JOINTS = [f"joint{i}" for i in range(1, 7)]
HOME = np.array([0.0, 0.0571, 1.8769, 0.0, 1.2076, 0.0])


class IdealArm:
    """Joint states at 250 Hz that are exactly the last position command (and gripper)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.q = HOME.copy()
        self.gripper: list[float] = []
        self.trajectories: list[JointTrajectory] = []
        self.commands = 0
        node.create_subscription(
            Float64MultiArray, "forward_position_controller/commands", self._on_command, 10
        )
        node.create_subscription(
            Float64MultiArray,
            "gripper_controller/commands",
            lambda m: self.gripper.append(m.data[0]),
            10,
        )
        node.create_subscription(
            JointTrajectory,
            "joint_trajectory_controller/joint_trajectory",
            self._on_trajectory,
            10,
        )
        self.publisher = node.create_publisher(JointState, "joint_states", qos.SENSORS)
        node.create_timer(0.004, self._publish)

    def _on_command(self, msg: Float64MultiArray) -> None:
        self.q = np.array(msg.data)
        self.commands += 1

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        self.trajectories.append(msg)
        self.q = np.array(msg.points[0].positions)

    def _publish(self) -> None:
        msg = JointState(name=[*ARM_JOINTS, "finger_left_joint"], position=[*self.q, 0.04])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.publisher.publish(msg)


@pytest.fixture
def kinematics() -> ArmKinematics:
    return ArmKinematics(urdf_string(), ARM_JOINTS, "tool0")


def _start(ros_context, spinner, namespace, **params):
    overrides = [Parameter("robot_description", value=urdf_string())]
    overrides += [Parameter(name, value=value) for name, value in params.items()]
    controller = spinner.add(
        ControllerNode(namespace=namespace, context=ros_context, parameter_overrides=overrides)
    )
    client = spinner.add(Node("client", namespace=namespace, context=ros_context))
    arm = IdealArm(client)
    chunks = client.create_publisher(ActionChunkMsg, "action_chunk", qos.COMMANDS)
    assert wait_for(lambda: chunks.get_subscription_count() > 0)
    return controller, client, arm, chunks


def _line_chunk(node, kinematics, start_q, offset, steps=10, gripper=0.0) -> ActionChunk:
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
        gripper=np.full((steps, 1), gripper),
    )


def test_chunk_moves_the_arm_to_its_final_target(ros_context, spinner, namespace, kinematics):
    _, client, arm, chunks = _start(ros_context, spinner, namespace)
    assert wait_for(lambda: arm.commands > 10)  # holding at the measured state before a chunk
    np.testing.assert_allclose(arm.q, HOME, atol=1e-6)

    chunk = _line_chunk(client, kinematics, HOME, [0.06, 0.04, -0.03], gripper=1.0)
    chunks.publish(chunk_to_msg(chunk))
    target = chunk.positions[-1, 0]
    assert wait_for(
        lambda: np.linalg.norm(kinematics.forward(arm.q).position - target) < 1e-3, timeout_s=30
    )
    assert wait_for(lambda: arm.gripper[-1:] == [1.0])


def test_estop_latches_until_reset(ros_context, spinner, namespace, kinematics):
    controller, client, arm, chunks = _start(ros_context, spinner, namespace)
    assert wait_for(lambda: arm.commands > 10)
    estop = client.create_publisher(Bool, "estop", qos.ESTOP)
    assert wait_for(lambda: estop.get_subscription_count() > 0)
    estop.publish(Bool(data=True))
    assert wait_for(lambda: controller.controller.status().estop_engaged)

    chunks.publish(chunk_to_msg(_line_chunk(client, kinematics, HOME, [0.06, 0.0, 0.0])))
    commands_before = arm.commands
    assert wait_for(lambda: arm.commands > commands_before + 200)
    np.testing.assert_allclose(arm.q, HOME, atol=1e-6)  # the chunk was not executed

    reset = client.create_client(Trigger, "reset_estop")
    assert reset.wait_for_service(timeout_sec=5.0)
    replies = []

    def try_reset() -> bool:  # refused while joint states are late (a loaded machine): retry
        future = reset.call_async(Trigger.Request())
        assert wait_for(future.done)
        replies.append(future.result().message)
        return future.result().success

    assert wait_for(try_reset, poll_s=0.2), replies
    assert controller.controller.status().estop_engaged is False

    chunk = _line_chunk(client, kinematics, HOME, [0.0, 0.05, 0.0])
    chunks.publish(chunk_to_msg(chunk))
    target = chunk.positions[-1, 0]
    assert wait_for(
        lambda: np.linalg.norm(kinematics.forward(arm.q).position - target) < 1e-3, timeout_s=30
    )


def test_malformed_chunk_is_rejected_and_the_loop_keeps_running(
    ros_context, spinner, namespace, kinematics
):
    controller, client, arm, chunks = _start(ros_context, spinner, namespace)
    assert wait_for(lambda: arm.commands > 10)
    msg = chunk_to_msg(_line_chunk(client, kinematics, HOME, [0.06, 0.0, 0.0]))
    msg.arms[0].poses[3].position.x = float("nan")
    chunks.publish(msg)
    commands_before = arm.commands
    assert wait_for(lambda: arm.commands > commands_before + 200)
    np.testing.assert_allclose(arm.q, HOME, atol=1e-6)
    assert controller.controller.status().chunks_accepted == 0


def test_joint_trajectory_output(ros_context, spinner, namespace, kinematics):
    _, client, arm, chunks = _start(
        ros_context, spinner, namespace, output="joint_trajectory", trajectory_rate_hz=50.0
    )
    assert wait_for(lambda: len(arm.trajectories) > 3)
    assert arm.trajectories[-1].joint_names == ARM_JOINTS
    chunk = _line_chunk(client, kinematics, HOME, [0.05, 0.0, 0.02])
    chunks.publish(chunk_to_msg(chunk))
    target = chunk.positions[-1, 0]
    assert wait_for(
        lambda: np.linalg.norm(kinematics.forward(arm.q).position - target) < 2e-3, timeout_s=30
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("output", "velocity", "output"),
        ("controller_config", "/no/such.yaml", "no such file"),
        ("robot_description", "<robot name='broken'>", "robot_description"),
    ],
)
def test_invalid_parameters_fail_at_start(ros_context, name, value, message):
    overrides = [Parameter("robot_description", value=urdf_string()), Parameter(name, value=value)]
    with pytest.raises(ConfigError, match=message):
        ControllerNode(context=ros_context, parameter_overrides=overrides)

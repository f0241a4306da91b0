"""Pinocchio FK/IK of one arm: round trips on the simulated arm and the demo arm, failures."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from wallwm_core.config_loading import ConfigError
from wallwm_core.control.demo_arm import demo_arm_joints, demo_arm_urdf
from wallwm_core.control.kinematics import ArmKinematics, Pose
from wallwm_sim.description import ARM_JOINT_NAMES, TOOL_FRAME, urdf_string

ARMS = {
    "sim_arm": lambda: ArmKinematics(urdf_string(), ARM_JOINT_NAMES, TOOL_FRAME),
    "demo_arm": lambda: ArmKinematics(demo_arm_urdf(), demo_arm_joints(), "tool0"),
}


@pytest.fixture(params=sorted(ARMS))
def kinematics(request) -> ArmKinematics:
    return ARMS[request.param]()


def test_ik_round_trips(kinematics: ArmKinematics) -> None:
    """FK(random q within limits) -> IK from a perturbed seed -> FK matches."""
    rng = np.random.default_rng(7)
    lower, upper = kinematics.limits.lower, kinematics.limits.upper
    span = upper - lower
    for _ in range(40):
        q = rng.uniform(lower + 0.1 * span, upper - 0.1 * span)
        target = kinematics.forward(q)
        seed = np.clip(q + rng.normal(0.0, 0.1, size=q.shape), lower, upper)
        result = kinematics.solve(target, seed)
        assert result.success, result.reason
        reached = kinematics.forward(result.q)
        assert np.linalg.norm(reached.position - target.position) <= 1e-4
        assert np.linalg.norm(pin.log3(reached.rotation.T @ target.rotation)) <= 1e-3
        assert np.all(result.q >= lower) and np.all(result.q <= upper)


def test_joint_order_follows_the_caller() -> None:
    forward = ArmKinematics(urdf_string(), ARM_JOINT_NAMES, TOOL_FRAME)
    backward = ArmKinematics(urdf_string(), ARM_JOINT_NAMES[::-1], TOOL_FRAME)
    q = np.array([0.3, -0.4, 1.1, 0.2, 0.7, -0.5])
    np.testing.assert_allclose(forward.forward(q).position, backward.forward(q[::-1]).position)
    np.testing.assert_allclose(backward.limits.velocity, forward.limits.velocity[::-1])


def test_unreachable_target_reports_errors(kinematics: ArmKinematics) -> None:
    start = np.clip(
        np.full(kinematics.num_joints, 0.3), kinematics.limits.lower, kinematics.limits.upper
    )
    target = Pose(np.array([2.0, 0.0, 0.3]), kinematics.forward(start).rotation)
    result = kinematics.solve(target, start)
    assert not result.success
    assert result.position_error > 0.5
    assert "did not converge" in result.reason and "position error" in result.reason
    assert np.all(result.q >= kinematics.limits.lower) and np.all(
        result.q <= kinematics.limits.upper
    )


def test_solution_respects_tighter_limits() -> None:
    kinematics = ArmKinematics(urdf_string(), ARM_JOINT_NAMES, TOOL_FRAME)
    q = np.array([0.8, 0.4, 1.2, 0.0, 1.0, 0.8])
    target = kinematics.forward(q)
    lower = kinematics.limits.lower.copy()
    lower[0] = 1.0  # joint1 may not reach the 0.8 the target needs
    result = kinematics.solve(target, np.clip(q, lower, kinematics.limits.upper), lower=lower)
    assert result.q[0] >= 1.0
    if not result.success:
        assert "joint1" in result.reason


def test_non_finite_target_fails_without_raising() -> None:
    kinematics = ArmKinematics(urdf_string(), ARM_JOINT_NAMES, TOOL_FRAME)
    result = kinematics.solve(Pose(np.array([np.nan, 0.0, 0.3]), np.eye(3)), np.zeros(6))
    assert not result.success and "not finite" in result.reason


@pytest.mark.parametrize(
    ("joints", "frame", "message"),
    [
        (("joint1", "nope"), TOOL_FRAME, "not in the URDF"),
        (ARM_JOINT_NAMES, "no_such_frame", "frame 'no_such_frame'"),
    ],
)
def test_bad_names_are_config_errors(joints, frame, message) -> None:
    with pytest.raises(ConfigError, match=message):
        ArmKinematics(urdf_string(), joints, frame)


def test_bad_urdf_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="URDF"):
        ArmKinematics("<robot name='x'><link name='a'/><joint name='j'", ("j",), "a")


def test_continuous_joint_is_refused() -> None:
    urdf = (
        '<robot name="r"><link name="base_link"/><link name="l1"/>'
        '<joint name="spin" type="continuous"><parent link="base_link"/><child link="l1"/>'
        '<axis xyz="0 0 1"/></joint></robot>'
    )
    with pytest.raises(ConfigError, match="continuous"):
        ArmKinematics(urdf, ("spin",), "l1")

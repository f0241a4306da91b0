"""The URDF as MuJoCo simulates it and as Pinocchio reads it describe the same arm."""

from __future__ import annotations

import mujoco
import numpy as np
import pinocchio as pin
import pytest

from wallwm_core.control.kinematics import Pose
from wallwm_sim import description, scene
from wallwm_sim.kinematics import sim_arm_kinematics, top_down_rotation


@pytest.fixture(scope="module")
def mujoco_scene() -> tuple[mujoco.MjModel, mujoco.MjData]:
    model = scene.build_model()
    return model, mujoco.MjData(model)


def test_joint_names_and_limits_agree(mujoco_scene) -> None:
    model, _ = mujoco_scene
    pin_model = pin.buildModelFromXML(description.urdf_string())
    assert tuple(pin_model.names[1:]) == description.ALL_JOINT_NAMES
    for index, name in enumerate(description.ALL_JOINT_NAMES):
        joint = model.joint(name)
        np.testing.assert_allclose(
            joint.range,
            [pin_model.lowerPositionLimit[index], pin_model.upperPositionLimit[index]],
        )
        np.testing.assert_allclose(model.jnt_actfrcrange[joint.id][1], pin_model.effortLimit[index])


def test_forward_kinematics_agree_on_every_link(mujoco_scene) -> None:
    model, data = mujoco_scene
    ids = scene.resolve_ids(model)
    pin_model = pin.buildModelFromXML(description.urdf_string())
    pin_data = pin_model.createData()
    rng = np.random.default_rng(0)
    frames = ("link3", "hand", "finger_left", "finger_right", description.TOOL_FRAME)
    for _ in range(50):
        q = rng.uniform(pin_model.lowerPositionLimit, pin_model.upperPositionLimit)
        q[7] = q[6]  # the mimic finger
        data.qpos[ids.arm_qpos] = q[:6]
        data.qpos[ids.finger_qpos] = q[6:]
        mujoco.mj_kinematics(model, data)
        pin.framesForwardKinematics(pin_model, pin_data, q)
        for frame in frames:
            placement = pin_data.oMf[pin_model.getFrameId(frame)]
            body = model.body(frame).id
            np.testing.assert_allclose(data.xpos[body], placement.translation, atol=1e-6)
            np.testing.assert_allclose(data.xmat[body].reshape(3, 3), placement.rotation, atol=1e-6)


def test_ik_reaches_top_down_poses() -> None:
    kinematics = sim_arm_kinematics()
    q_init = np.array([0.0, 0.3, 1.6, 0.0, 1.2, 0.0])
    for position in ([0.45, 0.0, 0.1], [0.6, 0.25, 0.03], [0.3, -0.3, 0.25]):
        result = kinematics.solve(Pose(np.array(position), top_down_rotation(0.3)), q_init)
        assert result.success, result
        pose = kinematics.forward(result.q)
        np.testing.assert_allclose(pose.position, position, atol=1e-4)
        np.testing.assert_allclose(pose.rotation, top_down_rotation(0.3), atol=1e-3)

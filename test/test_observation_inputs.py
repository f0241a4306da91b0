"""Sensor parameters of the policy node, and the poses of cameras that ride on the arm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.config_loading import ConfigError
from wallwm_core.policy import Observation
from wallwm_ros.bringup import PolicyChoice, policy_node_spec
from wallwm_ros.observation_inputs import ObservationInputsConfig, _camera_mounts
from wallwm_ros.robot_config import load_robot_config

SIM_ARM = (
    Path(__file__).resolve().parents[1] / "wallwm_bringup" / "config" / "robots" / "sim_arm.yaml"
)


def _sim_arm_inputs() -> ObservationInputsConfig:
    robot = load_robot_config(SIM_ARM)
    spec = policy_node_spec(robot, PolicyChoice("replay", replay_file="x"), Path("."), True)
    names = [f.name for f in ObservationInputsConfig.__dataclass_fields__.values()]
    return ObservationInputsConfig(
        **{
            k: tuple(v) if isinstance(v, list) else v
            for k, v in spec.parameters.items()
            if k in names
        }
    )


def test_wrist_camera_pose_follows_the_arm_like_in_the_simulation():
    from wallwm_sim.sim import HOME_JOINT_POSITIONS, SimConfig, TabletopSim

    config = _sim_arm_inputs()
    mounts = _camera_mounts(config)
    assert mounts is not None
    extrinsics = config.extrinsics()
    cameras = {
        name: CameraGeometry(np.eye(3), (8, 8), extrinsics[name].base_from_camera())
        for name in config.camera_names
    }
    q = np.array([*HOME_JOINT_POSITIONS, 0.04])
    observation = mounts.apply(Observation(0, {}, q, config.joint_names, cameras))

    with TabletopSim(SimConfig()) as sim:
        sim.reset("pick_place", 0)
        for name in config.camera_names:
            expected = sim.camera_geometry(name).world_from_camera
            np.testing.assert_allclose(
                observation.cameras[name].world_from_camera, expected, atol=2e-5, err_msg=name
            )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"camera_extrinsics": (0.0,) * 6}, "camera_extrinsics"),
        ({"camera_info_topics": ("a",)}, "camera_info_topics"),
        ({"image_transport": "theora"}, "image_transport"),
        ({"robot_description": ""}, "robot_description"),
        ({"camera_parent_frames": ("",)}, "camera_parent_frames"),
    ],
)
def test_sensor_parameter_mistakes_are_named(changes, message):
    import dataclasses

    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(_sim_arm_inputs(), **changes)


def test_unknown_mount_link_is_a_config_error():
    import dataclasses

    config = dataclasses.replace(_sim_arm_inputs(), camera_parent_frames=("", "", "no_such_link"))
    with pytest.raises(ConfigError, match="camera_parent_frames"):
        _camera_mounts(config)

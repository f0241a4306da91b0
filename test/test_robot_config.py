"""Robot deployment files: the shipped ones load, references resolve, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import transforms3d

from wallwm_core.config_loading import ConfigError
from wallwm_ros.robot_config import load_robot_config

ROBOTS = Path(__file__).resolve().parents[1] / "wallwm_bringup" / "config" / "robots"


def test_sim_arm_config_matches_the_simulation():
    from wallwm_sim import cameras as sim_cameras
    from wallwm_sim.description import urdf_string

    robot = load_robot_config(ROBOTS / "sim_arm.yaml")
    assert robot.urdf_xml() == urdf_string()
    assert [c.name for c in robot.cameras] == list(sim_cameras.CAMERA_NAMES)
    for camera in robot.cameras:
        spec = sim_cameras.camera_spec(camera.name)
        expected = spec.parent_from_optical()
        rotation = transforms3d.quaternions.quat2mat(camera.quaternion_wxyz)
        np.testing.assert_allclose(camera.translation, expected[:3, 3], atol=1e-6)
        np.testing.assert_allclose(rotation, expected[:3, :3], atol=1e-5)
        assert (camera.parent_frame or "world") == (
            "world" if spec.parent_body == "world" else spec.parent_body
        )
    assert len(robot.camera_extrinsics()) == 7 * len(robot.cameras)


def test_template_is_complete_apart_from_its_files(tmp_path):
    text = (ROBOTS / "robot_template.yaml").read_text()
    (tmp_path / "my_arm_controller.yaml").write_text("{}")
    (tmp_path / "arm.urdf").write_text("<robot name='x'/>")
    (tmp_path / "robot.yaml").write_text(text.replace("/path/to/my_arm.urdf", "arm.urdf"))
    robot = load_robot_config(tmp_path / "robot.yaml")
    assert robot.controller.output == "joint_trajectory"
    assert robot.resolve(robot.urdf) == tmp_path / "arm.urdf"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("output: forward_position", "output: velocity"), "controller.output"),
        (("base_frame: base_link", "base_frame: 3"), "base_frame"),
        (("name: wallwm_sim_arm", "name: wallwm_sim_arm\nspeed: 2"), "speed"),
        (("python://wallwm_sim/description/wallwm_arm.urdf", "missing.urdf"), "missing.urdf"),
        (("python://wallwm_sim/", "python://no_such_package/"), "no_such_package"),
    ],
)
def test_mistakes_are_named(tmp_path, edit, message):
    text = (ROBOTS / "sim_arm.yaml").read_text().replace(*edit)
    (tmp_path / "robot.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_robot_config(tmp_path / "robot.yaml")

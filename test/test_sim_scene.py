"""The simulation: scene, rendering, camera calibration, joint state and command validation."""

from __future__ import annotations

import numpy as np
import pytest

from wallwm_core.camera_geometry import CameraGeometry
from wallwm_sim import description
from wallwm_sim.cameras import CAMERA_NAMES, project_points
from wallwm_sim.sim import HOME_JOINT_POSITIONS, InvalidCommandError, SimConfig, TabletopSim
from wallwm_sim.tasks import TaskError

HEIGHT, WIDTH = 96, 128


@pytest.fixture(scope="module")
def sim():
    with TabletopSim(SimConfig(image_height=HEIGHT, image_width=WIDTH)) as simulation:
        yield simulation


def test_scene_loads_with_arm_objects_and_cameras(sim: TabletopSim) -> None:
    sim.reset("build_and_signal", seed=3)
    assert sim.joint_names == description.ALL_JOINT_NAMES
    assert sim.camera_names == CAMERA_NAMES and len(CAMERA_NAMES) >= 3
    state = sim.scene_state()
    assert state.cube_active.sum() == 3
    np.testing.assert_allclose(sim.joint_state().positions[:6], HOME_JOINT_POSITIONS)
    sim.step(25)  # 0.5 s holding still: the arm must not sag, objects stay put
    assert sim.time_ns == 25 * 20_000_000
    np.testing.assert_allclose(sim.joint_state().positions[:6], HOME_JOINT_POSITIONS, atol=2e-3)
    np.testing.assert_allclose(sim.scene_state().cube_positions, state.cube_positions, atol=2e-3)
    assert sim.task_progress() == 0.0


def test_reset_is_deterministic_and_checks_names(sim: TabletopSim) -> None:
    first = sim.reset("stack", seed=11).cubes
    sim.step(5)
    assert sim.reset("stack", seed=11).cubes == first
    assert sim.reset("stack", seed=12).cubes != first
    with pytest.raises(TaskError, match="did you mean 'stack'"):
        sim.reset("stak", seed=0)
    with pytest.raises(TaskError, match="no variant"):
        sim.reset("stack", seed=0, variant="novel_order")


def test_images_have_the_right_shape_and_are_not_blank(sim: TabletopSim) -> None:
    sim.reset("pick_place", seed=0)
    images = sim.render_all()
    assert set(images) == set(CAMERA_NAMES)
    for name, image in images.items():
        assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8, name
        assert image.std() > 10.0, f"{name} looks blank"
    assert sim.render("front", 64, 64).shape == (64, 64, 3)
    depth = sim.render_depth("overhead")
    assert depth.shape == (HEIGHT, WIDTH) and 0.9 < float(np.median(depth)) < 1.3
    with pytest.raises(KeyError, match="unknown camera"):
        sim.render("side")


def _marker_centroid(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(int)
    mask = (rgb[..., 0] > 110) & (rgb[..., 2] > 110) & (rgb[..., 1] < 70)
    assert mask.sum() >= 3, "calibration marker not visible"
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


@pytest.mark.parametrize("camera", CAMERA_NAMES)
def test_known_point_projects_where_the_renderer_draws_it(sim: TabletopSim, camera: str) -> None:
    sim.reset(None)
    geometry = sim.camera_geometry(camera)
    assert isinstance(geometry, CameraGeometry) and geometry.image_size == (HEIGHT, WIDTH)
    # Points at known pixels (away from the wrist view's fingers) and depths, back-projected.
    for u, v, depth in ((0.3 * WIDTH, 0.3 * HEIGHT, 0.25), (0.7 * WIDTH, 0.45 * HEIGHT, 0.32)):
        ray = np.linalg.inv(geometry.K) @ np.array([u, v, 1.0])
        point = geometry.rotation @ (ray * depth) + geometry.centre
        sim.set_marker(point)
        drawn = _marker_centroid(sim.render(camera))
        projected = project_points(geometry, point[None])[0]
        np.testing.assert_allclose(projected, [u, v], atol=1e-9)
        assert np.linalg.norm(drawn - projected) < 1.5, (camera, drawn, projected)
    sim.set_marker(None)


def test_camera_info_matches_the_geometry(sim: TabletopSim) -> None:
    sim.reset(None)
    for camera in CAMERA_NAMES:
        info = sim.camera_info(camera)
        geometry = sim.camera_geometry(camera)
        assert (info.height, info.width) == (HEIGHT, WIDTH)
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), geometry.K)
        np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], geometry.K)
        assert info.frame_id == f"{camera}_camera_optical_frame" and not any(info.d)
    front = sim.camera_info("front")
    assert front.parent_frame == description.BASE_FRAME
    np.testing.assert_allclose(front.parent_translation, sim.camera_geometry("front").centre)
    assert sim.camera_info("wrist").parent_frame == description.HAND_LINK


def test_position_command_moves_the_arm(sim: TabletopSim) -> None:
    sim.reset(None)
    target = np.array(HOME_JOINT_POSITIONS) + np.array([0.3, -0.1, 0.1, 0.2, -0.2, 0.4])
    sim.set_command(target, 1.0)
    sim.advance(2.0)
    np.testing.assert_allclose(sim.joint_state().positions[:6], target, atol=5e-3)
    assert sim.gripper_state() > 0.95


@pytest.mark.parametrize(
    ("joints", "gripper", "message"),
    [
        ([0.0] * 5, 0.0, "must have 6 values"),
        ([0.0, np.nan, 0.0, 0.0, 0.0, 0.0], 0.0, r"NaN/inf values for \['joint2'\]"),
        ([0.0, 0.0, 3.5, 0.0, 0.0, 0.0], 0.0, "joint3=3.5000 not in"),
        (["a"] * 6, 0.0, "not numeric"),
        (list(HOME_JOINT_POSITIONS), 1.5, r"in \[0, 1\]"),
        (list(HOME_JOINT_POSITIONS), float("nan"), "finite"),
    ],
)
def test_bad_commands_are_rejected_and_the_sim_keeps_running(
    sim: TabletopSim, joints, gripper, message
) -> None:
    sim.reset("press_buttons", seed=0)
    good = np.array(HOME_JOINT_POSITIONS) + 0.05
    sim.set_command(good, 0.5)
    with pytest.raises(InvalidCommandError, match=message):
        sim.set_command(joints, gripper)
    np.testing.assert_array_equal(sim.joint_command, good)
    assert sim.gripper_command == 0.5
    before = sim.time_ns
    sim.step(10)
    assert sim.time_ns > before
    np.testing.assert_allclose(sim.joint_state().positions[:6], good, atol=0.02)

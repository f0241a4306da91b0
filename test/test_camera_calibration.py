"""CameraInfo fields + configured extrinsics -> CameraGeometry; validation; K under resizing."""

from __future__ import annotations

import numpy as np
import pytest
import transforms3d

from wallwm_core.config_loading import ConfigError, config_from_dict
from wallwm_ros.camera_calibration import (
    CalibrationError,
    CameraExtrinsics,
    camera_geometry,
    intrinsics_from_camera_info,
    scale_to_size,
)

K = (500.0, 0.0, 319.5, 0.0, 510.0, 239.5, 0.0, 0.0, 1.0)
HEIGHT, WIDTH = 480, 640
PLUMB_BOB = (0.1, -0.05, 0.001, 0.0, 0.0)


def project(geometry, point_world: np.ndarray) -> np.ndarray:
    """Pixel (u, v) of a world point through ``geometry`` (pinhole)."""
    camera_from_world = np.linalg.inv(geometry.world_from_camera)
    point = camera_from_world[:3, :3] @ point_world + camera_from_world[:3, 3]
    pixel = geometry.K @ point
    return pixel[:2] / pixel[2]


def test_geometry_from_camera_info_and_pose():
    quaternion = transforms3d.euler.euler2quat(0.3, -0.2, 1.0)  # (w, x, y, z)
    extrinsics = CameraExtrinsics(translation=(0.5, -0.1, 0.8), quaternion_wxyz=tuple(quaternion))
    intrinsics = intrinsics_from_camera_info(K, HEIGHT, WIDTH, "plumb_bob", PLUMB_BOB)
    geometry = camera_geometry(intrinsics, extrinsics, image_size=(HEIGHT, WIDTH))
    np.testing.assert_allclose(geometry.K, np.reshape(K, (3, 3)))
    assert geometry.image_size == (HEIGHT, WIDTH)
    np.testing.assert_allclose(geometry.centre, (0.5, -0.1, 0.8))
    np.testing.assert_allclose(geometry.rotation, transforms3d.quaternions.quat2mat(quaternion))
    assert intrinsics.distortion == PLUMB_BOB  # recorded, not applied


def test_matrix_extrinsics_equal_pose_extrinsics():
    quaternion = transforms3d.euler.euler2quat(-0.4, 0.7, 0.1)
    from_pose = CameraExtrinsics(translation=(1.0, 2.0, 3.0), quaternion_wxyz=tuple(quaternion))
    rows = tuple(tuple(float(v) for v in row) for row in from_pose.base_from_camera())
    from_matrix = CameraExtrinsics(matrix=rows)
    np.testing.assert_allclose(from_matrix.base_from_camera(), from_pose.base_from_camera())


def test_body_frame_extrinsics_look_along_body_x():
    # A camera_link at the origin with identity pose looks along base +x, with image right = -y.
    geometry = camera_geometry(
        intrinsics_from_camera_info(K, HEIGHT, WIDTH),
        CameraExtrinsics(translation=(0, 0, 0), quaternion_wxyz=(1, 0, 0, 0), frame="body"),
    )
    np.testing.assert_allclose(project(geometry, np.array([2.0, 0.0, 0.0])), (319.5, 239.5))
    u, v = project(geometry, np.array([2.0, -0.5, 0.2]))
    assert u > 319.5 and v < 239.5  # right of and above the centre


def test_extrinsics_load_from_yaml_dict_with_rounding():
    # Rotation about z by 90 degrees written with 4 decimals: rounding is accepted and cleaned.
    data = {"translation": [0.1, 0.0, 1.0], "quaternion_wxyz": [0.7071, 0.0, 0.0, 0.7071]}
    extrinsics = config_from_dict(CameraExtrinsics, data)
    rotation = extrinsics.base_from_camera()[:3, :3]
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rotation @ (1, 0, 0), (0, 1, 0), atol=1e-12)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"translation": [0, 0, 0], "quaternion_wxyz": [1, 0, 0, 0.5]}, "norm"),
        ({"translation": [0, 0, 0], "quaternion_wxyz": [0, 0, 0, 0]}, "norm"),
        ({"translation": [0, 0, 0]}, "both translation and quaternion_wxyz"),
        ({}, "either"),
        (
            {"translation": [0, 0, 0], "quaternion_wxyz": [1, 0, 0, 0], "frame": "link"},
            "frame must be one of",
        ),
        ({"matrix": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, "not a rotation"),
        ({"matrix": [[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, "not a rotation"),
        ({"matrix": [[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, "reflection"),
        ({"matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]}, "last row"),
        ({"matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]}, "16 values"),
        (
            {"translation": [0, float("nan"), 0], "quaternion_wxyz": [1, 0, 0, 0]},
            "NaN or infinite",
        ),
    ],
)
def test_invalid_extrinsics_are_rejected(data, fragment):
    with pytest.raises(CalibrationError, match=fragment):
        CameraExtrinsics(**data)
    with pytest.raises(ConfigError, match=fragment):  # the same message through the config loader
        config_from_dict(CameraExtrinsics, data, source="cameras.yaml")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (dict(k=(0.0,) * 9), "uncalibrated"),
        (dict(k=(0.0, 0, 319.5, 0, 510.0, 239.5, 0, 0, 1)), "focal lengths must be positive"),
        (dict(k=(500.0, 0, 319.5, 0, -1.0, 239.5, 0, 0, 1)), "focal lengths must be positive"),
        (dict(k=K[:8]), "needs 9 values"),
        (dict(k=(500.0, 0, 319.5, 0, 510.0, 239.5, 0, 0, 2)), "last row"),
        (dict(k=(500.0, 0, float("nan"), 0, 510.0, 239.5, 0, 0, 1)), "NaN"),
        (dict(height=0, width=0), "zero image size"),
        (dict(distortion_model="equidistant", d=(0.1, 0.0, 0.0, 0.0)), "rectified"),
        (dict(distortion_model="kannala", d=()), "unknown distortion model"),
        (dict(distortion_model="plumb_bob", d=(0.1, float("inf"), 0, 0, 0)), "NaN"),
        (dict(rectified=True), "projection matrix"),
    ],
)
def test_invalid_camera_info_is_rejected(kwargs, fragment):
    fields = dict(k=K, height=HEIGHT, width=WIDTH)
    fields.update(kwargs)
    with pytest.raises(CalibrationError, match=fragment):
        intrinsics_from_camera_info(**fields)


def test_rectified_images_use_the_projection_matrix():
    p = (480.0, 0.0, 320.0, 0.0, 0.0, 480.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    intrinsics = intrinsics_from_camera_info(
        K, HEIGHT, WIDTH, "equidistant", (0.1, 0.02, 0.0, 0.0), p=p, rectified=True
    )
    np.testing.assert_allclose(intrinsics.K, [[480, 0, 320], [0, 480, 240], [0, 0, 1]])
    assert intrinsics.distortion == ()


def test_image_size_mismatch_is_rejected():
    intrinsics = intrinsics_from_camera_info(K, HEIGHT, WIDTH)
    extrinsics = CameraExtrinsics(translation=(0, 0, 0), quaternion_wxyz=(1, 0, 0, 0))
    with pytest.raises(CalibrationError, match=r"image is 240x320 .* calibration is for 480x640"):
        camera_geometry(intrinsics, extrinsics, image_size=(240, 320))


@pytest.mark.parametrize("target", [(240, 320), (224, 224), (960, 1280)])
def test_scaled_intrinsics_project_to_scaled_pixel_centres(target):
    geometry = camera_geometry(
        intrinsics_from_camera_info(
            (500.0, 2.0, 300.0, 0.0, 510.0, 250.0, 0.0, 0.0, 1.0), 480, 640
        ),
        CameraExtrinsics(translation=(0.1, 0.2, -0.5), quaternion_wxyz=(1, 0, 0, 0)),
    )
    scaled = scale_to_size(geometry, target)
    assert scaled.image_size == target
    scale_v, scale_u = target[0] / 480, target[1] / 640
    points = np.random.default_rng(3).uniform((-0.5, -0.5, 1.0), (0.5, 0.5, 3.0), (10, 3))
    for point in points:
        u, v = project(geometry, point)
        # A continuous image coordinate x maps to (x + 0.5) * s - 0.5 (pixel centres).
        expected = ((u + 0.5) * scale_u - 0.5, (v + 0.5) * scale_v - 0.5)
        np.testing.assert_allclose(project(scaled, point), expected, atol=1e-9)
    # The image corners map onto the new image's corners.
    corner_ray = np.linalg.inv(geometry.K) @ (639.5, 479.5, 1.0)
    corner = geometry.rotation @ corner_ray + geometry.centre
    np.testing.assert_allclose(project(scaled, corner), (target[1] - 0.5, target[0] - 0.5))

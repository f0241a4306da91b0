"""Camera calibration for the sight-cone mask: ``CameraInfo`` fields + configured extrinsics.

Plain Python (no rclpy): the node passes the fields of a ``sensor_msgs/CameraInfo`` message.
The result is a :class:`wallwm_core.model.sight_cone.CameraGeometry`: ``K`` in pixels for
``image_size = (height, width)`` and ``world_from_camera``, the pose of the camera's **optical**
frame (OpenCV/ROS optical: x right, y down, z forward) in the arm's base frame.

Lens distortion: ``CameraGeometry`` is a pinhole model. For ``plumb_bob`` and
``rational_polynomial`` the coefficients are kept in :class:`CameraIntrinsics` but not applied:
the sight cone works at latent-patch resolution, where ordinary lens distortion moves rays by a
fraction of a patch. Fisheye (``equidistant``) distortion is too strong for that and is rejected
unless the images are rectified; for rectified images (``image_rect``) pass ``rectified=True``
so the intrinsics come from the projection matrix ``P``, as image_proc defines them.

Every check raises :class:`CalibrationError` naming what is wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import transforms3d

from wallwm_core.camera_geometry import CameraGeometry

# Configured rotations may carry rounding (YAML with few decimals): within these tolerances they
# are projected onto the nearest rotation; beyond them they are rejected as non-rigid.
QUATERNION_NORM_TOLERANCE = 1e-3
ORTHONORMAL_TOLERANCE = 1e-3

PINHOLE_DISTORTION_MODELS = ("", "none", "plumb_bob", "rational_polynomial")
FISHEYE_DISTORTION_MODELS = ("equidistant",)

# REP 103 camera body frame (x forward, y left, z up) from the optical frame (x right, y down,
# z forward): its columns are the optical axes written in the body frame.
BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
CAMERA_FRAMES = ("optical", "body")


class CalibrationError(ValueError):
    """Camera intrinsics or extrinsics that cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True, eq=False)
class CameraIntrinsics:
    """Pinhole intrinsics ``K`` ``[3, 3]`` for ``image_size = (height, width)``, plus the
    distortion the camera reported (kept for reference, not applied; see the module doc)."""

    K: np.ndarray
    image_size: tuple[int, int]
    distortion_model: str = ""
    distortion: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class CameraExtrinsics:
    """Where a camera sits: the pose of its frame in the arm base frame (configuration).

    Give either ``translation`` (metres) and ``quaternion_wxyz`` (w, x, y, z), or ``matrix``, the
    4x4 ``base_from_camera`` transform as four rows. ``frame`` says which camera frame the pose
    is of: ``"optical"`` (x right, y down, z forward; the ``*_optical_frame`` of a URDF) or
    ``"body"`` (REP 103 ``camera_link``: x forward, y left, z up), which is converted to optical.
    """

    translation: tuple[float, float, float] | None = None
    quaternion_wxyz: tuple[float, float, float, float] | None = None
    matrix: tuple[tuple[float, float, float, float], ...] | None = None
    frame: str = "optical"
    _base_from_optical: np.ndarray = dataclasses.field(
        init=False, repr=False, compare=False, default=None
    )

    def __post_init__(self) -> None:
        if self.frame not in CAMERA_FRAMES:
            raise CalibrationError(
                f"extrinsics frame must be one of {CAMERA_FRAMES}, got {self.frame=}"
            )
        pose_given = self.translation is not None or self.quaternion_wxyz is not None
        if pose_given == (self.matrix is not None):
            raise CalibrationError(
                "extrinsics need either translation + quaternion_wxyz or matrix, not both/neither"
            )
        if self.matrix is not None:
            transform = _rigid_from_matrix(self.matrix)
        else:
            if self.translation is None or self.quaternion_wxyz is None:
                raise CalibrationError("extrinsics need both translation and quaternion_wxyz")
            transform = _rigid_from_pose(self.translation, self.quaternion_wxyz)
        if self.frame == "body":
            transform[:3, :3] = transform[:3, :3] @ BODY_FROM_OPTICAL
        transform.setflags(write=False)
        object.__setattr__(self, "_base_from_optical", transform)

    def base_from_camera(self) -> np.ndarray:
        """``[4, 4]`` rigid transform from the camera's optical frame to the arm base frame."""
        return self._base_from_optical


def _finite_vector(values: Sequence[float], size: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size != size:
        raise CalibrationError(f"{name} needs {size} values, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise CalibrationError(f"{name} contains NaN or infinite values: {array.tolist()}")
    return array


def _nearest_rotation(rotation: np.ndarray, what: str) -> np.ndarray:
    error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
    if error > ORTHONORMAL_TOLERANCE:
        raise CalibrationError(
            f"{what} is not a rotation: |R^T R - I| = {error:.3g} > {ORTHONORMAL_TOLERANCE} "
            "(scaling or shear are not rigid)"
        )
    if np.linalg.det(rotation) < 0.0:
        raise CalibrationError(f"{what} is a reflection (determinant < 0), not a rotation")
    u, _, vt = np.linalg.svd(rotation)
    return u @ vt


def _rigid_from_matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    transform = _finite_vector(np.asarray(rows, dtype=np.float64), 16, "extrinsics matrix")
    transform = transform.reshape(4, 4)
    if not np.allclose(transform[3], (0.0, 0.0, 0.0, 1.0)):
        raise CalibrationError(
            f"extrinsics matrix last row must be (0, 0, 0, 1), got {transform[3].tolist()}"
        )
    transform[:3, :3] = _nearest_rotation(transform[:3, :3], "extrinsics matrix rotation")
    return transform


def _rigid_from_pose(translation: Sequence[float], quaternion_wxyz: Sequence[float]) -> np.ndarray:
    position = _finite_vector(translation, 3, "extrinsics translation")
    quaternion = _finite_vector(quaternion_wxyz, 4, "extrinsics quaternion_wxyz")
    norm = float(np.linalg.norm(quaternion))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise CalibrationError(
            f"extrinsics quaternion_wxyz {quaternion.tolist()} has norm {norm:.6g}, not 1 "
            "(order is w, x, y, z)"
        )
    transform = np.eye(4)
    transform[:3, :3] = transforms3d.quaternions.quat2mat(quaternion / norm)
    transform[:3, 3] = position
    return transform


def intrinsics_from_camera_info(
    k: Sequence[float],
    height: int,
    width: int,
    distortion_model: str = "",
    d: Sequence[float] = (),
    p: Sequence[float] | None = None,
    rectified: bool = False,
) -> CameraIntrinsics:
    """Validated intrinsics from ``CameraInfo`` fields (``k`` and ``p`` row-major, 9 and 12).

    With ``rectified=True`` (images from image_proc's ``image_rect``) ``K`` is ``P[:, :3]`` and
    distortion does not apply.
    """
    if height <= 0 or width <= 0:
        raise CalibrationError(f"CameraInfo has zero image size ({height=}, {width=})")
    if rectified:
        if p is None:
            raise CalibrationError("rectified=True needs the CameraInfo projection matrix p")
        projection = _finite_vector(p, 12, "CameraInfo p").reshape(3, 4)
        matrix, source = projection[:, :3].copy(), "P"
        distortion_model, distortion = "none", ()
    else:
        matrix, source = _finite_vector(k, 9, "CameraInfo k").reshape(3, 3), "K"
        distortion = tuple(float(v) for v in _finite_vector(d, len(d), "CameraInfo d"))
        if distortion_model in FISHEYE_DISTORTION_MODELS and any(distortion):
            raise CalibrationError(
                f"distortion model {distortion_model!r} cannot be approximated by a pinhole: "
                "subscribe to rectified images and pass rectified=True"
            )
        if distortion_model not in PINHOLE_DISTORTION_MODELS + FISHEYE_DISTORTION_MODELS:
            raise CalibrationError(f"unknown distortion model {distortion_model!r}")
    if not np.any(matrix):
        raise CalibrationError(f"CameraInfo {source} is all zeros: the camera is uncalibrated")
    fx, fy = matrix[0, 0], matrix[1, 1]
    if fx <= 0.0 or fy <= 0.0:
        raise CalibrationError(
            f"CameraInfo {source} focal lengths must be positive, got {fx=} {fy=}"
        )
    if not np.allclose(matrix[2], (0.0, 0.0, 1.0)) or matrix[1, 0] != 0.0:
        raise CalibrationError(
            f"CameraInfo {source} is not an upper-triangular camera matrix with last row "
            f"(0, 0, 1): {matrix.tolist()}"
        )
    matrix.setflags(write=False)
    return CameraIntrinsics(
        K=matrix,
        image_size=(int(height), int(width)),
        distortion_model=distortion_model,
        distortion=distortion,
    )


def camera_geometry(
    intrinsics: CameraIntrinsics,
    extrinsics: CameraExtrinsics,
    image_size: tuple[int, int] | None = None,
) -> CameraGeometry:
    """The sight-cone camera; ``image_size`` (height, width), if given, must match the
    calibration (a mismatch means CameraInfo and image disagree, e.g. binning or a wrong topic)."""
    if image_size is not None:
        check_image_size(intrinsics.image_size, image_size)
    try:
        return CameraGeometry(
            K=intrinsics.K,
            image_size=intrinsics.image_size,
            world_from_camera=extrinsics.base_from_camera(),
        )
    except ValueError as error:
        raise CalibrationError(str(error)) from error


def check_image_size(calibrated_size: tuple[int, int], image_size: tuple[int, int]) -> None:
    """Raise CalibrationError unless the image is ``calibrated_size`` (height, width)."""
    if tuple(calibrated_size) != tuple(image_size):
        raise CalibrationError(
            f"image is {image_size[0]}x{image_size[1]} (height x width) but the calibration is "
            f"for {calibrated_size[0]}x{calibrated_size[1]}"
        )


def scale_to_size(geometry: CameraGeometry, image_size: tuple[int, int]) -> CameraGeometry:
    """The same camera after resizing its whole image to ``image_size`` (height, width).

    Pixel coordinates are pixel centres (the sight-cone convention), so a resize by ``s`` maps
    ``u -> s * (u + 0.5) - 0.5``: ``fx, skew, cx`` scale with the width ratio (``cx`` also shifts
    by ``(s - 1) / 2``), ``fy, cy`` with the height ratio. Cropping is not a resize: crop first
    and shift the principal point yourself.
    """
    height, width = image_size
    if height <= 0 or width <= 0:
        raise CalibrationError(f"target image size must be positive, got {image_size=}")
    scale_y = height / geometry.image_size[0]
    scale_x = width / geometry.image_size[1]
    resized_from_original = np.array(
        [
            [scale_x, 0.0, 0.5 * (scale_x - 1.0)],
            [0.0, scale_y, 0.5 * (scale_y - 1.0)],
            [0.0, 0.0, 1.0],
        ]
    )
    return CameraGeometry(
        K=resized_from_original @ geometry.K,
        image_size=(int(height), int(width)),
        world_from_camera=geometry.world_from_camera,
    )

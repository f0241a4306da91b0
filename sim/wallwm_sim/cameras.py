"""Camera definitions and calibration export (CameraGeometry and ROS CameraInfo data).

Conventions: the world frame is the arm's ``base_link`` (identity transform), so extrinsics are
in the arm base frame. Camera frames are OpenCV optical frames (x right, y down, z forward), as
:class:`wallwm_core.model.sight_cone.CameraGeometry` uses; a MuJoCo camera looks along its -z
with y up, so ``R_mujoco = R_opencv @ diag(1, -1, -1)``. Pixel coordinates are OpenCV's (integer
coordinates are pixel centres), so the principal point of an undistorted MuJoCo camera is
``((width - 1) / 2, (height - 1) / 2)`` and ``fx = fy = (height / 2) / tan(fovy / 2)``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from wallwm_core.camera_geometry import CameraGeometry

# OpenCV optical frame <-> MuJoCo camera frame (both directions: the matrix is its own inverse).
OPENCV_FROM_MUJOCO_CAMERA = np.diag([1.0, -1.0, -1.0])


@dataclasses.dataclass(frozen=True)
class CameraSpec:
    """A camera mounted on ``parent_body``, aimed with a look-at in that body's frame.

    ``up`` is the direction that appears upwards in the image (must not be parallel to the view
    direction). ``frame_id`` is the OpenCV optical frame's name for ROS/TF.
    """

    name: str
    parent_body: str
    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    up: tuple[float, float, float]
    fovy_deg: float

    @property
    def frame_id(self) -> str:
        return f"{self.name}_camera_optical_frame"

    def parent_from_optical(self) -> np.ndarray:
        """``[4, 4]`` transform from the OpenCV optical frame to ``parent_body``'s frame."""
        position = np.asarray(self.position, dtype=np.float64)
        forward = np.asarray(self.look_at, dtype=np.float64) - position
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, np.asarray(self.up, dtype=np.float64))
        if np.linalg.norm(right) < 1e-9:
            raise ValueError(f"camera {self.name!r}: up vector is parallel to the view direction")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        transform = np.eye(4)
        transform[:3, :3] = np.column_stack([right, down, forward])
        transform[:3, 3] = position
        return transform


# Fixed cameras are on the world (= base_link); the wrist camera rides on the hand, looking along
# the approach axis past the fingers, tilted slightly towards the grasp centre.
CAMERA_SPECS: tuple[CameraSpec, ...] = (
    CameraSpec("front", "world", (1.05, 0.0, 0.5), (0.42, 0.0, 0.0), (0.0, 0.0, 1.0), 55.0),
    CameraSpec("overhead", "world", (0.45, 0.0, 1.1), (0.45, 0.0, 0.0), (-1.0, 0.0, 0.0), 45.0),
    CameraSpec("wrist", "hand", (0.08, 0.0, -0.02), (0.0, 0.0, 0.22), (1.0, 0.0, 0.0), 70.0),
)
CAMERA_NAMES: tuple[str, ...] = tuple(spec.name for spec in CAMERA_SPECS)


def camera_spec(name: str) -> CameraSpec:
    for spec in CAMERA_SPECS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown camera {name!r}; cameras are {CAMERA_NAMES}")


def intrinsics(fovy_deg: float, height: int, width: int) -> np.ndarray:
    """Pinhole ``K`` ``[3, 3]`` of a MuJoCo camera with vertical field of view ``fovy_deg``."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height=} {width=}")
    focal = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    return np.array(
        [[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]]
    )


@dataclasses.dataclass(frozen=True)
class CameraInfoData:
    """Everything a ROS node needs for ``sensor_msgs/CameraInfo`` (plain Python types).

    ``k`` (9) and ``p`` (12) are row-major; distortion is none (``plumb_bob`` with zeros).
    ``parent_frame`` / ``parent_from_optical`` give the static TF of the optical frame
    (translation ``[3]`` m, rotation quaternion ``[4]`` (w, x, y, z)).
    """

    width: int
    height: int
    frame_id: str
    k: tuple[float, ...]
    p: tuple[float, ...]
    d: tuple[float, ...]
    r: tuple[float, ...]
    distortion_model: str
    parent_frame: str
    parent_translation: tuple[float, float, float]
    parent_rotation_wxyz: tuple[float, float, float, float]


def camera_info_data(spec: CameraSpec, height: int, width: int, base_frame: str) -> CameraInfoData:
    """CameraInfo content for ``spec`` rendered at ``height x width``."""
    import transforms3d

    k = intrinsics(spec.fovy_deg, height, width)
    p = np.hstack([k, np.zeros((3, 1))])
    transform = spec.parent_from_optical()
    quaternion = transforms3d.quaternions.mat2quat(transform[:3, :3])
    return CameraInfoData(
        width=int(width),
        height=int(height),
        frame_id=spec.frame_id,
        k=tuple(float(x) for x in k.ravel()),
        p=tuple(float(x) for x in p.ravel()),
        d=(0.0, 0.0, 0.0, 0.0, 0.0),
        r=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        distortion_model="plumb_bob",
        parent_frame=base_frame if spec.parent_body == "world" else spec.parent_body,
        parent_translation=tuple(float(x) for x in transform[:3, 3]),
        parent_rotation_wxyz=tuple(float(x) for x in quaternion),
    )


def camera_geometry_from_pose(
    camera_position: np.ndarray,
    camera_xmat_mujoco: np.ndarray,
    fovy_deg: float,
    height: int,
    width: int,
) -> CameraGeometry:
    """CameraGeometry from a MuJoCo camera pose (``data.cam_xpos``, ``data.cam_xmat``)."""
    world_from_camera = np.eye(4)
    world_from_camera[:3, :3] = (
        np.asarray(camera_xmat_mujoco).reshape(3, 3) @ OPENCV_FROM_MUJOCO_CAMERA
    )
    world_from_camera[:3, 3] = camera_position
    return CameraGeometry(
        K=intrinsics(fovy_deg, height, width),
        image_size=(int(height), int(width)),
        world_from_camera=world_from_camera,
    )


def project_points(camera: CameraGeometry, points_world: np.ndarray) -> np.ndarray:
    """Project world points ``[N, 3]`` to pixels ``[N, 2]`` (u, v); points behind give NaN."""
    points = np.atleast_2d(np.asarray(points_world, dtype=np.float64))
    rotation, centre = camera.rotation, camera.centre
    in_camera = (points - centre) @ rotation
    depth = in_camera[:, 2:3]
    pixels = (in_camera / np.where(depth > 0, depth, np.nan)) @ camera.K.T
    return pixels[:, :2]

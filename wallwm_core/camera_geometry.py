"""A calibrated pinhole camera, the geometry the sight-cone mask is built from (numpy only).

Conventions as in :mod:`wallwm_core.model.sight_cone`: OpenCV camera frame (x right, y down,
z forward); ``K`` in pixels for ``image_size = (height, width)``; ``world_from_camera`` maps
camera-frame points to world (the arm's base frame) points.
"""

from __future__ import annotations

import dataclasses

import numpy as np

ROTATION_TOLERANCE = 1e-5


@dataclasses.dataclass(frozen=True, eq=False)
class CameraGeometry:
    """A pinhole camera: intrinsics ``K`` ``[3, 3]`` (pixels for ``image_size``), extrinsics.

    ``image_size`` is ``(height, width)`` in pixels. ``world_from_camera`` ``[4, 4]`` is a rigid
    transform from the OpenCV camera frame (x right, y down, z forward) to the world frame.
    Arrays are stored as read-only float64 numpy arrays; construction validates everything and
    raises ``ValueError`` naming the problem.
    """

    K: np.ndarray
    image_size: tuple[int, int]
    world_from_camera: np.ndarray

    def __post_init__(self) -> None:
        for name in ("K", "world_from_camera"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, "image_size", tuple(self.image_size))
        self._validate()

    def _validate(self) -> None:
        if len(self.image_size) != 2 or not all(
            isinstance(n, int | np.integer) and n > 0 for n in self.image_size
        ):
            raise ValueError(
                f"image_size must be two positive integers (height, width), got {self.image_size=}"
            )
        if self.K.shape != (3, 3):
            raise ValueError(f"intrinsics K must be [3, 3], got {self.K.shape=}")
        if not np.all(np.isfinite(self.K)):
            raise ValueError(f"intrinsics K contain NaN or infinite values: {self.K.tolist()}")
        if not np.allclose(self.K[2], (0.0, 0.0, 1.0)):
            raise ValueError(f"intrinsics K must have last row (0, 0, 1), got {self.K[2].tolist()}")
        if self.K[0, 0] <= 0.0 or self.K[1, 1] <= 0.0:
            raise ValueError(
                f"focal lengths must be positive, got fx={self.K[0, 0]} fy={self.K[1, 1]}"
            )
        if abs(np.linalg.det(self.K)) < 1e-12:
            raise ValueError(f"intrinsics K must be invertible, got {self.K.tolist()}")
        transform = self.world_from_camera
        if transform.shape != (4, 4):
            raise ValueError(f"world_from_camera must be [4, 4], got {transform.shape=}")
        if not np.all(np.isfinite(transform)):
            raise ValueError("world_from_camera contains NaN or infinite values")
        if not np.allclose(transform[3], (0.0, 0.0, 0.0, 1.0)):
            raise ValueError(
                f"world_from_camera must have last row (0, 0, 0, 1), got {transform[3].tolist()}"
            )
        rotation = self.rotation
        orthonormal_error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
        if orthonormal_error > ROTATION_TOLERANCE:
            raise ValueError(
                f"world_from_camera rotation is not orthonormal ({orthonormal_error=:.3g})"
            )
        if np.linalg.det(rotation) < 0.0:
            raise ValueError("world_from_camera rotation is a reflection (determinant -1)")

    @property
    def rotation(self) -> np.ndarray:
        """World-from-camera rotation ``[3, 3]``: its columns are the camera axes in the world."""
        return self.world_from_camera[:3, :3]

    @property
    def centre(self) -> np.ndarray:
        """Camera centre in the world, ``[3]``."""
        return self.world_from_camera[:3, 3]

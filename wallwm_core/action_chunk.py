"""The policy's output for one chunk: per step and per arm an end-effector pose and a gripper.

Conventions (used everywhere in wallwm_core):
- times are integer nanoseconds; step ``i`` is due at ``stamp_ns + i * step_period_ns``, where
  ``stamp_ns`` is the time of the observation the chunk was conditioned on;
- positions are metres in ``frame_id`` (the arm's base frame);
- quaternions are unit quaternions in (w, x, y, z) order (transforms3d/MuJoCo order; ROS
  messages use (x, y, z, w): wallwm_ros.conversions converts);
- gripper commands are normalised: 0.0 fully open, 1.0 fully closed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

QUATERNION_NORM_TOLERANCE = 1e-3
NS_PER_S = 1_000_000_000  # wallwm_core times are integer nanoseconds


class InvalidChunkError(ValueError):
    """An action chunk that must not be executed (wrong shapes, NaN, non-unit rotation, ...)."""


@dataclasses.dataclass(frozen=True)
class ActionChunk:
    """End-effector targets for ``num_steps`` steps of ``num_arms`` arms.

    Arrays: positions ``[T, A, 3]``, quaternions ``[T, A, 4]`` (w, x, y, z), gripper ``[T, A]``.
    Construction validates everything and raises :class:`InvalidChunkError`.
    """

    stamp_ns: int
    step_period_ns: int
    frame_id: str
    arm_names: tuple[str, ...]
    ee_frames: tuple[str, ...]
    positions: np.ndarray
    quaternions: np.ndarray
    gripper: np.ndarray
    event_id: int = 0
    event_instruction: str = ""
    chunk_index: int = 0
    ends_event: bool = False

    def __post_init__(self) -> None:
        for name in ("positions", "quaternions", "gripper"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        object.__setattr__(self, "arm_names", tuple(self.arm_names))
        object.__setattr__(self, "ee_frames", tuple(self.ee_frames))
        self._validate()

    def _validate(self) -> None:
        if self.step_period_ns <= 0:
            raise InvalidChunkError(f"step period must be positive, got {self.step_period_ns=}")
        if self.stamp_ns < 0:
            raise InvalidChunkError(f"stamp must not be negative, got {self.stamp_ns=}")
        num_arms = len(self.arm_names)
        if num_arms == 0:
            raise InvalidChunkError("a chunk needs at least one arm")
        if len(self.ee_frames) != num_arms:
            raise InvalidChunkError(
                f"{len(self.ee_frames)} end-effector frames for {num_arms} arms {self.arm_names}"
            )
        if len(set(self.arm_names)) != num_arms:
            raise InvalidChunkError(f"duplicate arm names {self.arm_names}")
        if self.positions.ndim != 3 or self.positions.shape[1:] != (num_arms, 3):
            raise InvalidChunkError(
                f"positions must be [T, {num_arms}, 3], got {self.positions.shape}"
            )
        num_steps = self.positions.shape[0]
        if num_steps == 0:
            raise InvalidChunkError("a chunk needs at least one step")
        if self.quaternions.shape != (num_steps, num_arms, 4):
            raise InvalidChunkError(
                f"quaternions must be [{num_steps}, {num_arms}, 4], got {self.quaternions.shape}"
            )
        if self.gripper.shape != (num_steps, num_arms):
            raise InvalidChunkError(
                f"gripper must be [{num_steps}, {num_arms}], got {self.gripper.shape}"
            )
        for name in ("positions", "quaternions", "gripper"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise InvalidChunkError(f"{name} contain NaN or infinite values")
        norms = np.linalg.norm(self.quaternions, axis=-1)
        if np.any(np.abs(norms - 1.0) > QUATERNION_NORM_TOLERANCE):
            worst = float(norms.flat[np.argmax(np.abs(norms - 1.0))])
            raise InvalidChunkError(f"quaternions must be unit length, found norm {worst:.6f}")
        if np.any(self.gripper < 0.0) or np.any(self.gripper > 1.0):
            raise InvalidChunkError("gripper commands must lie in [0, 1]")

    @property
    def num_steps(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_arms(self) -> int:
        return len(self.arm_names)

    @property
    def duration_ns(self) -> int:
        """Time from the first step to the end of the last step's period."""
        return self.num_steps * self.step_period_ns

    def step_times_ns(self) -> np.ndarray:
        """Due time of each step, ``[T]`` int64 nanoseconds."""
        return self.stamp_ns + np.arange(self.num_steps, dtype=np.int64) * self.step_period_ns

"""Cartesian safety stages: the end-effector workspace box and the end-effector speed limit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pinocchio as pin

from wallwm_core.control.config import WorkspaceBox


@dataclasses.dataclass(frozen=True)
class WorkspaceCheck:
    """Targets of one arm against its box: positions ``[T, 3]`` clamped into the box."""

    clamped: np.ndarray
    outside_steps: np.ndarray  # indices of steps that were outside
    worst_distance: float  # metres the furthest step was outside (0 when all inside)
    worst_step: int


def check_workspace(positions: np.ndarray, box: WorkspaceBox) -> WorkspaceCheck:
    """Clamp ``positions`` ``[T, 3]`` into ``box`` and report which steps were outside."""
    lower, upper = np.asarray(box.min), np.asarray(box.max)
    clamped = np.clip(positions, lower, upper)
    distance = np.linalg.norm(positions - clamped, axis=-1)
    outside = np.flatnonzero(distance > 0.0)
    worst = int(np.argmax(distance)) if len(distance) else 0
    return WorkspaceCheck(clamped, outside, float(distance[worst]) if len(distance) else 0.0, worst)


class EeSpeedLimiter:
    """Moves a commanded end-effector pose toward its target at bounded speed.

    Each tick the commanded pose advances toward the requested target by at most
    ``max_linear_speed * dt`` metres and ``max_angular_speed * dt`` radians, along the straight
    line and the shortest rotation. A target that would need a faster motion is therefore reached
    later instead of jumped to. :meth:`reset` puts the commanded pose where the arm is (e.g. its
    forward kinematics when tracking starts).
    """

    def __init__(self, max_linear_speed: float, max_angular_speed: float) -> None:
        self.max_linear_speed = max_linear_speed
        self.max_angular_speed = max_angular_speed
        self.position: np.ndarray | None = None
        self.rotation: np.ndarray | None = None

    def reset(self, position: np.ndarray, rotation: np.ndarray) -> None:
        self.position = np.array(position, dtype=float)
        self.rotation = np.array(rotation, dtype=float)

    def step(
        self, position: np.ndarray, rotation: np.ndarray, dt: float
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """New commanded ``(position, rotation, was_limited)`` after one tick of ``dt`` s."""
        if self.position is None or self.rotation is None:
            self.reset(position, rotation)
            return self.position.copy(), self.rotation.copy(), False
        limited = False
        delta = position - self.position
        distance = float(np.linalg.norm(delta))
        max_distance = self.max_linear_speed * dt
        if distance > max_distance:
            delta *= max_distance / distance
            limited = True
        rotvec = pin.log3(self.rotation.T @ rotation)
        angle = float(np.linalg.norm(rotvec))
        max_angle = self.max_angular_speed * dt
        if angle > max_angle:
            rotvec *= max_angle / angle
            limited = True
        self.position = self.position + delta
        self.rotation = self.rotation @ pin.exp3(rotvec)
        return self.position.copy(), self.rotation.copy(), limited

"""Jerk-limited straight-line tool motions (ruckig) tracked with IK (Pinocchio).

A motion is planned over ``(x, y, z, yaw)`` of a top-down tool pose: ruckig computes a
time-optimal, jerk-limited, phase-synchronised (straight-line, since motions start and end at
rest) trajectory; each control period samples it and solves IK warm-started at the previous
solution, which gives joint position targets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import ruckig

from wallwm_core.control.kinematics import ArmKinematics, Pose
from wallwm_sim.kinematics import top_down_rotation


@dataclasses.dataclass(frozen=True)
class MotionLimits:
    """Per-axis limits for (x, y, z) in m/s, m/s^2, m/s^3 and yaw in rad/s, rad/s^2, rad/s^3."""

    linear_velocity: float = 0.35
    linear_acceleration: float = 1.5
    linear_jerk: float = 12.0
    yaw_velocity: float = 1.5
    yaw_acceleration: float = 5.0
    yaw_jerk: float = 30.0

    def scaled(self, factor: float) -> MotionLimits:
        return dataclasses.replace(
            self,
            linear_velocity=self.linear_velocity * factor,
            yaw_velocity=self.yaw_velocity * factor,
        )


FAST = MotionLimits()
SLOW = FAST.scaled(0.35)


def plan_tool_motion(
    start: np.ndarray, goal: np.ndarray, limits: MotionLimits
) -> ruckig.Trajectory:
    """Trajectory from ``start`` to ``goal`` (both ``[4]`` = x, y, z, yaw), at rest at both ends."""
    trajectory = ruckig.Trajectory(4)
    if np.allclose(start, goal, atol=1e-9):
        goal = np.asarray(goal, dtype=np.float64) + np.array([1e-9, 0.0, 0.0, 0.0])
    parameters = ruckig.InputParameter(4)
    parameters.current_position = [float(v) for v in start]
    parameters.target_position = [float(v) for v in goal]
    parameters.max_velocity = [limits.linear_velocity] * 3 + [limits.yaw_velocity]
    parameters.max_acceleration = [limits.linear_acceleration] * 3 + [limits.yaw_acceleration]
    parameters.max_jerk = [limits.linear_jerk] * 3 + [limits.yaw_jerk]
    parameters.synchronization = ruckig.Synchronization.Phase
    result = ruckig.Ruckig(4).calculate(parameters, trajectory)
    if result not in (ruckig.Result.Working, ruckig.Result.Finished):
        raise RuntimeError(f"ruckig could not plan {start} -> {goal}: {result}")
    return trajectory


class ToolMotionTracker:
    """Turns tool-pose waypoints into joint targets, one per control period."""

    def __init__(self, kinematics: ArmKinematics, control_period_s: float) -> None:
        self.kinematics = kinematics
        self.control_period_s = control_period_s
        self.q = np.zeros(kinematics.num_joints)
        self.pose = np.zeros(4)  # commanded x, y, z, yaw

    def start_at(self, q: np.ndarray, yaw: float | None = None) -> None:
        """Begin from joint positions ``q`` (the tool pose is their FK; yaw from the tool x axis)."""
        self.q = np.asarray(q, dtype=np.float64).copy()
        pose = self.kinematics.forward(self.q)
        if yaw is None:
            # top_down_rotation(yaw) has tool x = (-cos yaw, -sin yaw, 0).
            x_axis = pose.rotation[:, 0]
            yaw = float(np.arctan2(-x_axis[1], -x_axis[0]))
        self.pose = np.array([*pose.position, yaw])

    def move(self, goal: np.ndarray, limits: MotionLimits = FAST) -> Iterator[np.ndarray]:
        """Yield joint targets ``[6]`` every control period until ``goal`` (x, y, z, yaw) is reached."""
        goal = np.asarray(goal, dtype=np.float64)
        trajectory = plan_tool_motion(self.pose, goal, limits)
        steps = max(1, int(np.ceil(trajectory.duration / self.control_period_s)))
        for step in range(1, steps + 1):
            time = min(step * self.control_period_s, trajectory.duration)
            pose = np.array(trajectory.at_time(time)[0])
            yield self._solve(pose)
        self.pose = goal.copy()

    def _solve(self, pose: np.ndarray) -> np.ndarray:
        result = self.kinematics.solve(
            Pose(pose[:3], top_down_rotation(pose[3])), self.q, max_iterations=30
        )
        self.q = result.q
        self.pose = pose
        return self.q.copy()

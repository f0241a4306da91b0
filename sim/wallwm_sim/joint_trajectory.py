"""Joint trajectories followed the way ros2_control's ``joint_trajectory_controller`` does; no ROS.

Conventions (as in ``joint_trajectory_controller``): waypoint times are ``time_from_start`` after
the trajectory's start time, and a start time of 0 means "when received". The reference moves
from the joint command in force when the trajectory arrives (at rest) to the first waypoint,
then through the waypoints: linear between positions when the waypoints give positions only,
cubic when they also give velocities, quintic when they also give accelerations. After the last
waypoint it holds the last position. Waypoints may list the joints in any order, but must list
every arm joint. Times are integer nanoseconds of simulation time; positions rad, velocities
rad/s, accelerations rad/s^2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import BPoly

from wallwm_core.action_chunk import NS_PER_S

LIMIT_TOLERANCE = 1e-6  # as wallwm_sim.sim: commands this far beyond a limit are clipped


class TrajectoryError(ValueError):
    """A joint trajectory that cannot be followed; the message says what is wrong."""


@dataclasses.dataclass(frozen=True)
class TrajectoryWaypoint:
    """One point of a trajectory; ``velocities`` / ``accelerations`` empty when not given."""

    time_from_start_ns: int
    positions: tuple[float, ...]
    velocities: tuple[float, ...] = ()
    accelerations: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class TrajectoryRequest:
    """A received trajectory: joint order of its waypoints, the waypoints, the start time (0: now)."""

    joint_names: tuple[str, ...]
    waypoints: tuple[TrajectoryWaypoint, ...]
    start_ns: int = 0


class ActiveTrajectory:
    """The reference of an accepted trajectory, sampled at simulation times (arm joint order)."""

    def __init__(
        self, origin_ns: int, spline: BPoly, end_s: float, lower: np.ndarray, upper: np.ndarray
    ) -> None:
        self._origin_ns = origin_ns
        self._spline = spline
        self._end_s = end_s
        self._lower, self._upper = lower, upper

    @property
    def end_ns(self) -> int:
        """When the last waypoint is reached."""
        return self._origin_ns + round(self._end_s * NS_PER_S)

    def sample(self, time_ns: int) -> np.ndarray:
        """Reference positions ``[J]`` at ``time_ns``, held before the start and after the end.

        Clipped to the joint limits: cubic and quintic segments may overshoot between waypoints.
        """
        t = min(max((time_ns - self._origin_ns) / NS_PER_S, 0.0), self._end_s)
        return np.clip(self._spline(t), self._lower, self._upper)


def plan_trajectory(
    request: TrajectoryRequest,
    joint_names: Sequence[str],
    lower: np.ndarray,
    upper: np.ndarray,
    now_ns: int,
    current_positions: np.ndarray,
) -> ActiveTrajectory:
    """Check ``request`` against the arm and build its reference from ``current_positions``.

    ``joint_names``, ``lower``, ``upper`` and ``current_positions`` are in the arm's joint order.
    Raises :class:`TrajectoryError` for: no waypoints, unknown, repeated or missing joint names,
    waypoints of the wrong length or with velocities/accelerations on some points only,
    non-finite values, negative or non-increasing times, positions beyond the joint limits, and
    a trajectory that ends before ``now_ns``.
    """
    order = _joint_order(request.joint_names, tuple(joint_names))
    points = request.waypoints
    if not points:
        raise TrajectoryError("trajectory has no waypoints")
    derivatives = _derivative_count(points, len(order))
    times_ns = np.array([p.time_from_start_ns for p in points], dtype=np.int64)
    if times_ns[0] < 0:
        raise TrajectoryError(f"time_from_start must not be negative, got {times_ns[0]} ns")
    if np.any(np.diff(times_ns) <= 0):
        raise TrajectoryError(
            f"time_from_start must strictly increase, got {(times_ns / NS_PER_S).tolist()} s"
        )
    # values[i, k, j]: the k-th derivative of joint j at waypoint i, in the arm's joint order.
    values = np.array(
        [[p.positions, p.velocities, p.accelerations][:derivatives] for p in points],
        dtype=np.float64,
    )[:, :, order]
    if not np.all(np.isfinite(values)):
        bad = sorted({joint_names[j] for j in np.argwhere(~np.isfinite(values))[:, 2]})
        raise TrajectoryError(f"trajectory has NaN/inf values for {bad}")
    _check_limits(values[:, 0], tuple(joint_names), lower, upper)

    start_ns = request.start_ns if request.start_ns > 0 else now_ns
    knots_ns = start_ns + times_ns
    if knots_ns[-1] < now_ns:
        raise TrajectoryError(
            f"trajectory ends at {knots_ns[-1] / NS_PER_S:.3f} s, before the current time "
            f"{now_ns / NS_PER_S:.3f} s"
        )
    if knots_ns[0] > now_ns:
        # Move from the current command, at rest, to the first waypoint.
        current = np.zeros((1, derivatives, len(order)))
        current[0, 0] = current_positions
        values = np.concatenate([current, values])
        knots_ns = np.concatenate([[now_ns], knots_ns])
    origin_ns = int(knots_ns[0])
    knots_s = (knots_ns - origin_ns) / NS_PER_S
    if len(knots_s) == 1:  # a single waypoint at (or before) now: hold it
        knots_s = np.array([0.0, 1.0])
        values = np.concatenate([values, values])
    spline = BPoly.from_derivatives(knots_s, values)
    return ActiveTrajectory(origin_ns, spline, float(knots_s[-1]), lower, upper)


def _joint_order(names: tuple[str, ...], arm_joints: tuple[str, ...]) -> list[int]:
    """Index into the message's joint order for each arm joint."""
    if len(set(names)) != len(names):
        raise TrajectoryError(f"trajectory joint_names repeat a name: {list(names)}")
    unknown = [name for name in names if name not in arm_joints]
    if unknown:
        raise TrajectoryError(
            f"trajectory has unknown joints {unknown}; arm joints are {arm_joints}"
        )
    missing = [name for name in arm_joints if name not in names]
    if missing:
        raise TrajectoryError(
            f"trajectory lacks joints {missing}; it must command all of {arm_joints}"
        )
    return [names.index(name) for name in arm_joints]


def _derivative_count(points: Sequence[TrajectoryWaypoint], joints: int) -> int:
    """1 (positions), 2 (+ velocities) or 3 (+ accelerations), the same on every waypoint."""
    for index, point in enumerate(points):
        if len(point.positions) != joints:
            raise TrajectoryError(
                f"waypoint {index} has {len(point.positions)} positions, expected {joints}"
            )
        for field in ("velocities", "accelerations"):
            count = len(getattr(point, field))
            if count not in (0, joints):
                raise TrajectoryError(
                    f"waypoint {index} has {count} {field}, expected 0 or {joints}"
                )
    has_velocities = {bool(p.velocities) for p in points}
    has_accelerations = {bool(p.accelerations) for p in points}
    if len(has_velocities) > 1 or len(has_accelerations) > 1:
        raise TrajectoryError("velocities and accelerations must be given on all waypoints or none")
    if has_accelerations == {True} and has_velocities == {False}:
        raise TrajectoryError("waypoints with accelerations must also give velocities")
    return 1 + int(has_velocities == {True}) + int(has_accelerations == {True})


def _check_limits(
    positions: np.ndarray, joint_names: tuple[str, ...], lower: np.ndarray, upper: np.ndarray
) -> None:
    outside = (positions < lower - LIMIT_TOLERANCE) | (positions > upper + LIMIT_TOLERANCE)
    if outside.any():
        index, joint = np.argwhere(outside)[0]
        raise TrajectoryError(
            f"waypoint {index} is beyond the limits of {joint_names[joint]}: "
            f"{positions[index, joint]:.4f} not in [{lower[joint]:.4f}, {upper[joint]:.4f}]"
            + (
                f" ({int(outside.sum()) - 1} more values beyond limits)"
                if outside.sum() > 1
                else ""
            )
        )

"""Time-indexed execution of action chunks: which end-effector target is due *now*.

Step ``i`` of a chunk is due at ``stamp_ns + i * step_period_ns`` (the stamp is the observation
time the chunk was conditioned on). Sampling at the present time therefore skips the steps that
went by during inference instead of replaying them, which is what made earlier deployments jump
back. Between steps, positions are interpolated linearly or with a cubic spline and orientations
by slerp (constant angular velocity about the relative rotation axis).

A newer chunk does not replace the executing one abruptly: over ``blend_window`` the target
cross-fades from the old chunk's sample to the new chunk's sample with a smoothstep weight (so
the blended target's velocity stays continuous too). After its last step a chunk holds that
target for ``end_hold``; later than that, no chunk covers the present and :meth:`sample` returns
``None`` (the controller's watchdog then holds the arm).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pinocchio as pin
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation

from wallwm_core.action_chunk import ActionChunk

MAX_BLEND_DEPTH = 4  # chunks arriving faster than the blend window: collapse older blends


@dataclasses.dataclass(frozen=True)
class CartesianTarget:
    """Targets of every arm at one instant: positions ``[A, 3]``, rotations ``[A, 3, 3]``,
    gripper ``[A]`` (0 open .. 1 closed), arms in the controller's order."""

    positions: np.ndarray
    rotations: np.ndarray
    gripper: np.ndarray


def blend_targets(old: CartesianTarget, new: CartesianTarget, weight: float) -> CartesianTarget:
    """``weight`` 0 gives ``old``, 1 gives ``new``; rotations are slerped."""
    if weight <= 0.0:
        return old
    if weight >= 1.0:
        return new
    rotations = np.empty_like(old.rotations)
    for arm, (r_old, r_new) in enumerate(zip(old.rotations, new.rotations, strict=True)):
        rotations[arm] = r_old @ pin.exp3(weight * pin.log3(r_old.T @ r_new))
    return CartesianTarget(
        positions=old.positions + weight * (new.positions - old.positions),
        rotations=rotations,
        gripper=old.gripper + weight * (new.gripper - old.gripper),
    )


def smoothstep(x: float) -> float:
    """0 below 0, 1 above 1, ``3x^2 - 2x^3`` between: zero slope at both ends."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


class ChunkTrajectory:
    """One accepted chunk, prepared for sampling at arbitrary times.

    ``positions`` ``[T, A, 3]`` and ``quaternions`` ``[T, A, 4]`` (w, x, y, z) must already be
    in the controller's arm order (and clamped to the workspace, if configured).
    """

    def __init__(
        self,
        chunk: ActionChunk,
        positions: np.ndarray,
        quaternions: np.ndarray,
        gripper: np.ndarray,
        interpolation: str,
        end_hold_ns: int,
    ) -> None:
        self.chunk = chunk
        self.stamp_ns = chunk.stamp_ns
        self.step_period_ns = chunk.step_period_ns
        self.num_steps = positions.shape[0]
        self.last_step_ns = self.stamp_ns + (self.num_steps - 1) * self.step_period_ns
        self.end_ns = self.last_step_ns + end_hold_ns  # covered until (inclusive)
        self._positions = positions
        self._gripper = gripper
        num_arms = positions.shape[1]
        rotations = Rotation.from_quat(quaternions.reshape(-1, 4), scalar_first=True)
        self._rotations = rotations.as_matrix().reshape(self.num_steps, num_arms, 3, 3)
        if self.num_steps > 1:
            # Relative rotation from each step to the next, as rotation vectors [T-1, A, 3].
            step_from = rotations[:-num_arms]
            step_to = rotations[num_arms:]
            self._deltas = (
                (step_from.inv() * step_to).as_rotvec().reshape(self.num_steps - 1, num_arms, 3)
            )
        self._spline = None
        if interpolation == "cubic" and self.num_steps > 2:
            self._spline = CubicSpline(
                np.arange(self.num_steps), positions, axis=0, bc_type="natural"
            )

    def covers(self, now_ns: int) -> bool:
        return self.stamp_ns <= now_ns <= self.end_ns

    def steps_due_before(self, now_ns: int) -> int:
        """How many steps were already due before ``now_ns`` (the part inference latency ate)."""
        if now_ns <= self.stamp_ns:
            return 0
        return min(self.num_steps, math.ceil((now_ns - self.stamp_ns) / self.step_period_ns))

    def sample(self, now_ns: int) -> CartesianTarget:
        """Target at ``now_ns``, holding the first/last step outside the chunk's span."""
        u = (now_ns - self.stamp_ns) / self.step_period_ns
        u = min(max(u, 0.0), self.num_steps - 1.0)
        index = min(int(u), self.num_steps - 1)
        fraction = u - index
        if fraction <= 0.0 or index == self.num_steps - 1:
            return CartesianTarget(
                self._positions[index].copy(),
                self._rotations[index].copy(),
                self._gripper[index].copy(),
            )
        if self._spline is not None:
            positions = self._spline(u)
        else:
            positions = self._positions[index] + fraction * (
                self._positions[index + 1] - self._positions[index]
            )
        rotations = np.empty_like(self._rotations[index])
        for arm in range(rotations.shape[0]):
            rotations[arm] = self._rotations[index, arm] @ pin.exp3(
                fraction * self._deltas[index, arm]
            )
        gripper = self._gripper[index] + fraction * (
            self._gripper[index + 1] - self._gripper[index]
        )
        return CartesianTarget(np.asarray(positions), rotations, gripper)


class _Blend:
    """Cross-fade from ``old`` (a trajectory or an earlier blend) to ``new``."""

    def __init__(
        self, old: ChunkTrajectory | _Blend, new: ChunkTrajectory, start_ns: int, window_ns: int
    ):
        self.old, self.new, self.start_ns, self.window_ns = old, new, start_ns, window_ns

    @property
    def depth(self) -> int:
        return 1 + (self.old.depth if isinstance(self.old, _Blend) else 0)

    def finished(self, now_ns: int) -> bool:
        return now_ns >= self.start_ns + self.window_ns

    def covers(self, now_ns: int) -> bool:
        return self.new.covers(now_ns) if now_ns >= self.start_ns else self.old.covers(now_ns)

    def sample(self, now_ns: int) -> CartesianTarget:
        if now_ns < self.start_ns:
            return self.old.sample(now_ns)
        weight = smoothstep((now_ns - self.start_ns) / self.window_ns)
        if weight >= 1.0:
            return self.new.sample(now_ns)
        return blend_targets(self.old.sample(now_ns), self.new.sample(now_ns), weight)


def _collapse(source: ChunkTrajectory | _Blend, now_ns: int) -> ChunkTrajectory | _Blend:
    """Drop blends that have finished (their new chunk alone is what is executed)."""
    if isinstance(source, ChunkTrajectory):
        return source
    if source.finished(now_ns):
        return source.new
    source.old = _collapse(source.old, now_ns)
    return source


def _drop_oldest_blend(source: _Blend) -> ChunkTrajectory | _Blend:
    """Replace the innermost blend by its new chunk (bounds the work per sample)."""
    if isinstance(source.old, _Blend):
        source.old = _drop_oldest_blend(source.old)
        return source
    return source.new


def _contains_event(source: ChunkTrajectory | _Blend | None, event_id: int) -> bool:
    if source is None:
        return False
    if isinstance(source, ChunkTrajectory):
        return source.chunk.event_id == event_id
    return source.new.chunk.event_id == event_id or _contains_event(source.old, event_id)


class ChunkSchedule:
    """The chunks being executed and the blends between them. Not thread safe (the controller
    serialises access)."""

    def __init__(self, blend_window_ns: int) -> None:
        self.blend_window_ns = blend_window_ns
        self._source: ChunkTrajectory | _Blend | None = None
        self.newest: ChunkTrajectory | None = None

    def clear(self) -> None:
        self._source = None
        self.newest = None

    def add(self, trajectory: ChunkTrajectory, now_ns: int) -> None:
        """Start executing ``trajectory`` (already checked to be newer than :attr:`newest`)."""
        if self._source is None or not self._source.covers(now_ns):
            # Nothing is being executed (or it ran out): start directly; the controller's
            # end-effector speed limit and jerk-limited joint trajectory make this smooth.
            self._source = trajectory
        else:
            source = _collapse(self._source, now_ns)
            if isinstance(source, _Blend) and source.depth >= MAX_BLEND_DEPTH:
                source = _drop_oldest_blend(source)
            start_ns = max(now_ns, trajectory.stamp_ns)
            self._source = _Blend(source, trajectory, start_ns, self.blend_window_ns)
        self.newest = trajectory

    def drop_event(self, event_id: int) -> bool:
        """Stop executing the chunks of ``event_id``: when the newest chunk is of that event,
        nothing is left; when a newer event's chunk is blending in from it, that chunk runs
        alone. True if anything was dropped."""
        if self.newest is None:
            return False
        if self.newest.chunk.event_id == event_id:
            self.clear()
            return True
        if _contains_event(self._source, event_id):
            self._source = self.newest
            return True
        return False

    def sample(self, now_ns: int) -> CartesianTarget | None:
        """The blended target due at ``now_ns``, or ``None`` when no chunk covers it."""
        if self._source is None:
            return None
        self._source = _collapse(self._source, now_ns)
        if not self._source.covers(now_ns):
            return None
        return self._source.sample(now_ns)

"""Jerk-limited joint motion with ruckig: one trajectory cycle per control tick.

The limiter owns the commanded joint state (position, velocity, acceleration). Every tick either
:meth:`JointMotionLimiter.follow_velocity` (or a committed :meth:`JointMotionLimiter.preview_move_to`)
moves it toward a joint target or
:meth:`JointMotionLimiter.stop` brings it to rest; each is one ruckig cycle, so every command
respects the velocity, acceleration and jerk limits and consecutive commands never jump.

A target at rest can be approached with the position interface (:meth:`preview_move_to`, then
:meth:`commit`: time-optimal, no overshoot, exact arrival) when the caller accepts the resulting
speed. Moving targets are followed with ruckig's velocity interface toward :meth:`tracking_velocity`,
``v_ff + feedback(error)``, where the feedback is ``gain * error`` capped by the braking curve
``sqrt(2 * BRAKING_FRACTION * a_max * |error|)`` (no overshoot on steps). Reason: ruckig's
position interface treats every new target as a state to stop-and-match, so a target that keeps
moving is chased with a lag that decays only slowly (measured on a 0.5 rad/s ramp: 0.061 rad
peak lag, still 0.011 rad after 0.4 s; this loop: 0.006 rad peak), and its time-optimal catch-up
ignores the end-effector speed limit that the caller applies to the commanded velocity.

The commanded state, not the measured one, is ruckig's current state (the usual choice for
position-controlled arms: feeding back noisy measurements would inject that noise into the
command).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from ruckig import ControlInterface, InputParameter, OutputParameter, Result, Ruckig, RuckigError

# Commanded velocities are kept strictly inside the limit (ruckig rejects targets at it).
VELOCITY_TARGET_FRACTION = 0.95
# Share of the acceleration limit the feedback's braking curve assumes (the rest absorbs the
# jerk-limited ramp of the deceleration): keeps steps free of overshoot.
BRAKING_FRACTION = 0.3


@dataclasses.dataclass(frozen=True)
class JointMotion:
    """The commanded joint state after one tick, ``[n]`` each."""

    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray


class JointMotionLimiter:
    """Velocity/acceleration/jerk-limited streaming of joint targets (all arm joints at once)."""

    def __init__(
        self,
        period_s: float,
        max_velocity: np.ndarray,
        max_acceleration: np.ndarray,
        max_jerk: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        tracking_gain: float = 15.0,
    ) -> None:
        self.num_joints = len(max_velocity)
        self.period_s = period_s
        self.max_velocity = np.asarray(max_velocity, dtype=float)
        self.lower = np.asarray(lower, dtype=float)
        self.upper = np.asarray(upper, dtype=float)
        self.tracking_gain = tracking_gain
        self._braking_acceleration = (
            2.0 * BRAKING_FRACTION * np.asarray(max_acceleration, dtype=float)
        )
        self._otg = Ruckig(self.num_joints, period_s)
        self._input = InputParameter(self.num_joints)
        self._output = OutputParameter(self.num_joints)
        self._input.max_velocity = self.max_velocity
        self._input.max_acceleration = np.asarray(max_acceleration, dtype=float)
        self._input.max_jerk = np.asarray(max_jerk, dtype=float)
        self._input.target_acceleration = np.zeros(self.num_joints)
        self._state: JointMotion | None = None
        self.last_error = ""

    @property
    def initialized(self) -> bool:
        return self._state is not None

    @property
    def state(self) -> JointMotion:
        if self._state is None:
            raise RuntimeError("JointMotionLimiter.reset() must be called before use")
        return self._state

    def reset(self, positions: np.ndarray) -> None:
        """Start (again) at rest at ``positions``."""
        zeros = np.zeros(self.num_joints)
        self._state = JointMotion(np.array(positions, dtype=float), zeros, zeros.copy())

    def is_at_rest(self, velocity_tolerance: float) -> bool:
        state = self.state
        return bool(np.max(np.abs(state.velocities)) <= velocity_tolerance)

    def preview_move_to(self, target_positions: np.ndarray) -> JointMotion | None:
        """The next state toward a target at rest with the position interface (time-optimal, no
        overshoot), *not* applied: :meth:`commit` it if acceptable. ``None`` if ruckig fails."""
        self._input.control_interface = ControlInterface.Position
        self._input.target_position = np.clip(target_positions, self.lower, self.upper)
        self._input.target_velocity = np.zeros(self.num_joints)
        self._load_current_state()
        try:
            result = self._otg.update(self._input, self._output)
        except RuckigError:
            return None
        if result not in (Result.Working, Result.Finished):
            return None
        return self._output_motion()

    def commit(self, motion: JointMotion) -> JointMotion:
        """Make a previewed state the commanded one."""
        self.last_error = ""
        self._state = motion
        return motion

    def tracking_velocity(
        self, target_positions: np.ndarray, target_velocities: np.ndarray
    ) -> np.ndarray:
        """Velocity to follow a moving target: feed-forward plus capped error feedback."""
        error = np.clip(target_positions, self.lower, self.upper) - self.state.positions
        magnitude = np.abs(error)
        feedback = np.sign(error) * np.minimum(
            self.tracking_gain * magnitude, np.sqrt(self._braking_acceleration * magnitude)
        )
        limit = VELOCITY_TARGET_FRACTION * self.max_velocity
        return np.clip(target_velocities + feedback, -limit, limit)

    def follow_velocity(self, velocities: np.ndarray) -> JointMotion:
        """One tick toward joint ``velocities`` (velocity interface), clipped inside the velocity
        limits and to what still allows braking before the position limits (a target that runs
        into a joint limit at speed must not carry the arm past it)."""
        positions = self.state.positions
        toward_upper = np.sqrt(self._braking_acceleration * np.maximum(self.upper - positions, 0.0))
        toward_lower = np.sqrt(self._braking_acceleration * np.maximum(positions - self.lower, 0.0))
        limit = VELOCITY_TARGET_FRACTION * self.max_velocity
        self._input.control_interface = ControlInterface.Velocity
        self._input.target_velocity = np.clip(
            velocities, -np.minimum(limit, toward_lower), np.minimum(limit, toward_upper)
        )
        return self._cycle()

    def stop(self) -> JointMotion:
        """One tick of decelerating to zero velocity (then holding) within the limits."""
        self._input.control_interface = ControlInterface.Velocity
        self._input.target_velocity = np.zeros(self.num_joints)
        return self._cycle()

    def clamp_positions(self, lower: np.ndarray, upper: np.ndarray) -> bool:
        """Clamp the commanded state into ``[lower, upper]``; clamped joints stop (velocity and
        acceleration zero). True if anything was clamped."""
        state = self.state
        outside = (state.positions < lower) | (state.positions > upper)
        if not outside.any():
            return False
        velocities, accelerations = state.velocities.copy(), state.accelerations.copy()
        velocities[outside] = 0.0
        accelerations[outside] = 0.0
        self._state = JointMotion(np.clip(state.positions, lower, upper), velocities, accelerations)
        return True

    def _load_current_state(self) -> None:
        state = self.state
        self._input.current_position = state.positions
        self._input.current_velocity = state.velocities
        self._input.current_acceleration = state.accelerations

    def _output_motion(self) -> JointMotion:
        return JointMotion(
            np.array(self._output.new_position),
            np.array(self._output.new_velocity),
            np.array(self._output.new_acceleration),
        )

    def _cycle(self) -> JointMotion:
        state = self.state
        self._load_current_state()
        try:
            result = self._otg.update(self._input, self._output)
        except RuckigError as error:
            result, self.last_error = Result.Error, str(error).strip()
        if result not in (Result.Working, Result.Finished):
            # Should not happen with inputs kept inside the limits. Try to brake within the
            # limits; if even that fails, freeze at the last commanded position and report.
            self.last_error = self.last_error or f"ruckig returned {result}"
            if np.any(self._input.target_velocity):
                error = self.last_error
                motion = self.stop()
                self.last_error = f"{error} (braking instead)"
                return motion
            zeros = np.zeros(self.num_joints)
            self._state = JointMotion(state.positions.copy(), zeros, zeros.copy())
            return self._state
        self.last_error = ""
        self._state = self._output_motion()
        return self._state

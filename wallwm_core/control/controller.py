"""The chunk-to-joint-command controller: chunk -> time index -> blend -> IK -> limits -> command.

Per control tick (:meth:`JointController.update`):

1. the schedule gives the end-effector target due now (time-indexed, interpolated, blended
   across chunk switches) or ``None`` when no valid chunk covers the present;
2. the target is kept inside the workspace box and moved toward at bounded end-effector speed;
3. IK (seeded from the previous solution, starting at the commanded state) gives joint targets
   within the URDF position limits minus a margin;
4. ruckig advances the commanded joint state toward them within velocity, acceleration and jerk
   limits, with the joint velocity scaled so the end effector stays under its speed limits (or
   decelerates to rest: the watchdog/e-stop/IK-failure hold).

Measured joint states never move the arm: the command is the controller's own jerk-limited
state, and every command obeys the velocity, acceleration and jerk limits. Joint states are
checked when they arrive (:meth:`JointController.submit_joint_state`): malformed ones, zero stamps,
stamps further ahead than ``joint_state_max_lead`` and jumps further than physically possible
since the last accepted one (URDF velocity x dt + ``joint_state_jump_margin``) are rejected and
counted. Joint states count as stale by stamp *and* by receive time. If the accepted measurement
is farther than ``max_following_error`` from every command of the last two joint-state time-outs
(a delayed measurement matches the command of its time), the controller drops its chunks and
holds; if that, or a run of implausible joint states, lasts ``joint_fault_after``, it latches a
FAULT. The command is re-synchronised to the measured position (at rest) only when the arm is
where it is measured to be by someone's word: at start, at an e-stop/fault reset
(:meth:`JointController.reset_estop`) and when an arm reset is announced
(:meth:`JointController.resync`, e.g. by a simulator that teleports the arm).

The class is thread safe: a ROS node calls :meth:`submit_chunk` from its subscription callback
and :meth:`update` from the control loop thread. Nothing here raises on bad input at run time;
problems are reported as reasons in the returned results and in :meth:`status`.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import threading
from collections.abc import Sequence

import numpy as np

from wallwm_core.action_chunk import NS_PER_S, ActionChunk
from wallwm_core.config_loading import ConfigError
from wallwm_core.control.chunk_schedule import ChunkSchedule, ChunkTrajectory
from wallwm_core.control.config import ControllerConfig
from wallwm_core.control.gripper import GripperMapping
from wallwm_core.control.joint_limiter import JointMotionLimiter
from wallwm_core.control.kinematics import ArmKinematics, Pose
from wallwm_core.control.loop_stats import LoopStats
from wallwm_core.control.safety import EeSpeedLimiter, check_workspace

logger = logging.getLogger(__name__)

MAX_CANCELED_EVENTS = 64  # canceled event ids remembered (their late chunks are rejected)


class ControllerState(enum.Enum):
    IDLE = "idle"  # no chunk since start (or since the e-stop reset): holding still
    TRACKING = "tracking"  # following a chunk
    HOLDING = "holding"  # watchdog: no chunk covers now, stale joint states, following error,
    # canceled chunks or IK failure
    FAULT = "fault"  # latched fault (joint states): decelerate, hold, ignore chunks until reset
    ESTOP = "estop"  # latched e-stop: decelerate, hold, ignore chunks until reset


class ChunkRejectedError(ValueError):
    """A chunk that will not be executed; the message says why."""


@dataclasses.dataclass(frozen=True)
class SubmitResult:
    accepted: bool
    reason: str = ""  # why it was rejected, or what was changed (workspace clamps)
    skipped_steps: int = 0  # steps already due on arrival (inference latency), not executed
    clamped_steps: int = 0  # steps moved into the workspace box


@dataclasses.dataclass(frozen=True)
class ResetResult:
    ok: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class ControlCommand:
    """What to send to the arm this tick.

    ``positions``/``velocities``/``accelerations`` ``[n]`` follow ``joint_names``; they are
    ``None`` until the first valid joint state arrived (publish nothing then). ``gripper`` ``[A]``
    (0 open .. 1 closed, arms in config order) and ``gripper_positions`` ``[G]`` are ``None``
    until a chunk has commanded the gripper; after that the last command is held.
    """

    stamp_ns: int
    state: ControllerState
    joint_names: tuple[str, ...]
    positions: np.ndarray | None
    velocities: np.ndarray | None
    accelerations: np.ndarray | None
    gripper: np.ndarray | None
    gripper_joint_names: tuple[str, ...]
    gripper_positions: np.ndarray | None
    reasons: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ControllerStatus:
    """A snapshot for diagnostics."""

    state: ControllerState
    reasons: tuple[str, ...]
    estop_engaged: bool
    estop_reason: str
    chunks_accepted: int
    chunks_rejected: int
    last_rejection: str
    ik_failures: int
    ee_speed_limited_ticks: int
    workspace_clamped_steps: int
    joint_limit_clips: int
    following_error_holds: int
    updates: int
    active_chunk_stamp_ns: int | None
    active_event_id: int | None
    joint_state_age_ns: int | None
    loop: LoopStats | None
    fault_reason: str = ""
    joint_states_rejected: int = 0  # every rejected joint state, implausible ones included
    joint_states_implausible: int = 0
    last_joint_state_rejection: str = ""
    resyncs: int = 0  # announced arm resets applied
    chunks_canceled: int = 0  # cancel requests that dropped scheduled chunks


@dataclasses.dataclass(frozen=True)
class _Reading:
    """A well-formed joint state: positions ``[n]``, its stamp and when it was received (ns)."""

    q: np.ndarray
    stamp_ns: int
    received_ns: int


class JointController:
    """Turns :class:`ActionChunk` end-effector targets into limited joint commands."""

    def __init__(self, config: ControllerConfig, kinematics: Sequence[ArmKinematics]) -> None:
        if [k.joint_names for k in kinematics] != [arm.joint_names for arm in config.arms]:
            raise ConfigError("one ArmKinematics per configured arm, with the same joint names")
        self.config = config
        self._kinematics = tuple(kinematics)
        self.joint_names = config.arm_joint_names
        self.arm_names = tuple(arm.name for arm in config.arms)
        self._arm_slices = []
        offset = 0
        for kin in self._kinematics:
            self._arm_slices.append(slice(offset, offset + kin.num_joints))
            offset += kin.num_joints
        self._period_ns = config.period_ns
        self._dt = self._period_ns / NS_PER_S

        lower = np.concatenate([k.limits.lower for k in self._kinematics])
        upper = np.concatenate([k.limits.upper for k in self._kinematics])
        margin = config.position_limit_margin
        too_narrow = [
            n
            for n, lo, hi in zip(self.joint_names, lower, upper, strict=True)
            if hi - lo <= 2 * margin
        ]
        if too_narrow:
            raise ConfigError(
                f"position_limit_margin {margin} leaves no range for joints {too_narrow}"
            )
        self._urdf_lower, self._urdf_upper = lower, upper
        self._ik_lower, self._ik_upper = lower + margin, upper - margin
        max_velocity = config.velocity_scale * np.concatenate(
            [k.limits.velocity for k in self._kinematics]
        )
        n = len(self.joint_names)
        self._limiter = JointMotionLimiter(
            period_s=self._dt,
            max_velocity=max_velocity,
            max_acceleration=np.full(n, float(config.max_acceleration)),
            max_jerk=np.full(n, float(config.max_jerk)),
            lower=self._ik_lower,
            upper=self._ik_upper,
            tracking_gain=config.tracking_gain,
        )
        self.max_velocity = max_velocity
        # What the arm can physically do (the plausibility bound of measured jumps).
        self._urdf_velocity = np.concatenate([k.limits.velocity for k in self._kinematics])
        self._ee_limiters = [
            EeSpeedLimiter(config.max_ee_linear_speed, config.max_ee_angular_speed)
            for _ in config.arms
        ]
        self._gripper_mapping = GripperMapping(config.arms)
        self._schedule = ChunkSchedule(blend_window_ns=round(config.blend_window * NS_PER_S))
        self._end_hold_ns = round(config.end_hold * NS_PER_S)
        self._lead_ns = round(config.max_stamp_lead * NS_PER_S)
        self._joint_state_timeout_ns = round(config.joint_state_timeout * NS_PER_S)
        self._joint_lead_ns = round(config.joint_state_max_lead * NS_PER_S)
        self._fault_after_ns = round(config.joint_fault_after * NS_PER_S)
        self._max_chunk_duration_ns = round(config.max_chunk_duration * NS_PER_S)
        # The commands of the last two joint-state time-outs: a measurement may be that old, so
        # the following error compares it with the closest of them, not with the newest.
        self._recent_commands = np.full(
            (2 + 2 * self._joint_state_timeout_ns // self._period_ns, n), np.nan
        )
        self._recent_index = 0

        self._lock = threading.Lock()
        # The last accepted joint state (the reference of the plausibility check).
        self._measured_q: np.ndarray | None = None
        self._measured_stamp_ns: int | None = None
        self._measured_received_ns: int | None = None
        self._new_measurement = False
        # The last well-formed joint state, accepted or not, and since when the stream of them
        # has been self-consistent (what an e-stop/fault reset re-synchronises to).
        self._latest_reading: _Reading | None = None
        self._reading_stable_since_ns: int | None = None
        self._implausible_since_ns: int | None = None
        self._following_error_since_ns: int | None = None
        self._following_error = ""
        self._fault_reason = ""
        self._resync_from_ns: int | None = None
        self._canceled: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._hold_note = ""
        self._joint_rejections: collections.Counter[str] = collections.Counter()
        self._last_joint_rejection = ""
        self._tracking = False
        self._ik_solution = np.zeros(n)
        self._ik_previous = np.zeros(n)
        self._gripper: np.ndarray | None = None
        self._had_chunk = False
        self._estop = False
        self._estop_reason = ""
        self._min_stamp_ns = -1
        self._state = ControllerState.IDLE
        self._reasons: tuple[str, ...] = ()
        self._last_now_ns: int | None = None
        self._counts = dict(
            accepted=0,
            rejected=0,
            ik_failures=0,
            ee_limited=0,
            clamped=0,
            joint_clips=0,
            following_error_holds=0,
            updates=0,
            implausible=0,
            resyncs=0,
            canceled=0,
        )
        self._last_rejection = ""
        self._loop_stats: LoopStats | None = None

    @classmethod
    def from_urdf(cls, urdf_xml: str, config: ControllerConfig) -> JointController:
        """Build the kinematics of every configured arm from one URDF string."""
        kinematics = [
            ArmKinematics(urdf_xml, arm.joint_names, arm.ee_frame, config.ik) for arm in config.arms
        ]
        return cls(config, kinematics)

    @property
    def gripper_joint_names(self) -> tuple[str, ...]:
        return self._gripper_mapping.joint_names

    @property
    def kinematics(self) -> tuple[ArmKinematics, ...]:
        return self._kinematics

    # ----------------------------------------------------------------------------- chunks

    def submit_chunk(self, chunk: ActionChunk, now_ns: int) -> SubmitResult:
        """Check ``chunk`` and, if valid, schedule it (blending from the executing one)."""
        try:
            trajectory, clamped, clamp_note = self._prepare(chunk)
        except ChunkRejectedError as error:
            return self._reject(str(error))
        with self._lock:
            if self._estop:
                return self._reject("e-stop engaged: chunks are ignored until reset", locked=True)
            if self._fault_reason:
                return self._reject(
                    f"controller fault: {self._fault_reason}; chunks are ignored until reset",
                    locked=True,
                )
            if self._following_error_since_ns is not None:
                return self._reject(
                    f"holding on a following error: {self._following_error}", locked=True
                )
            canceled_at = self._canceled.get(chunk.event_id)
            if canceled_at is not None and chunk.stamp_ns <= canceled_at:
                return self._reject(
                    f"event {chunk.event_id} was canceled: its chunks are not executed",
                    locked=True,
                )
            newest = self._schedule.newest
            if newest is not None and chunk.stamp_ns <= newest.stamp_ns:
                return self._reject(
                    f"chunk stamp {chunk.stamp_ns} is not newer than the executing chunk's "
                    f"{newest.stamp_ns}",
                    locked=True,
                )
            if chunk.stamp_ns < self._min_stamp_ns:
                return self._reject(
                    "chunk is stamped before the last e-stop/fault reset, arm reset or following "
                    "error",
                    locked=True,
                )
            if chunk.stamp_ns > now_ns + self._lead_ns:
                return self._reject(
                    f"chunk is stamped {(chunk.stamp_ns - now_ns) / NS_PER_S:.3f} s in the future "
                    f"(more than max_stamp_lead {self.config.max_stamp_lead} s): do the clocks "
                    "agree (use_sim_time)?",
                    locked=True,
                )
            if trajectory.end_ns < now_ns:
                return self._reject(
                    f"chunk arrived {(now_ns - chunk.stamp_ns) / NS_PER_S:.3f} s after its stamp, "
                    f"after its last step and end hold: nothing left to execute",
                    locked=True,
                )
            skipped = trajectory.steps_due_before(now_ns)
            self._schedule.add(trajectory, now_ns)
            self._had_chunk = True
            self._hold_note = ""
            self._counts["accepted"] += 1
            self._counts["clamped"] += clamped
        if clamp_note:
            logger.warning("chunk %d: %s", chunk.chunk_index, clamp_note)
        return SubmitResult(True, clamp_note, skipped, clamped)

    def check_chunk_size(self, num_steps: int, step_period_ns: int) -> str:
        """Why a chunk of this size is refused (``max_chunk_steps``, ``max_chunk_duration``),
        or ``""``. Cheap: callers check it before converting a message."""
        if num_steps > self.config.max_chunk_steps:
            return (
                f"chunk has {num_steps} steps, more than max_chunk_steps "
                f"{self.config.max_chunk_steps}"
            )
        duration_ns = num_steps * max(int(step_period_ns), 0)
        if duration_ns > self._max_chunk_duration_ns:
            return (
                f"chunk spans {duration_ns / NS_PER_S:.3f} s, more than max_chunk_duration "
                f"{self.config.max_chunk_duration} s"
            )
        return ""

    def note_rejected_chunk(self, reason: str) -> None:
        """Count a chunk rejected before it reached :meth:`submit_chunk` (e.g. a malformed
        message), so that ``chunks_rejected`` and ``last_rejection`` cover every rejection."""
        self._reject(reason)

    def cancel_event(self, event_id: int, stamp_ns: int) -> bool:
        """Stop executing the chunks of ``event_id`` (a canceled or preempted goal): they are
        dropped at once, the arm decelerates to a hold within the limits on the next tick, and
        chunks of that event stamped at or before ``stamp_ns`` that arrive later are rejected.
        True if scheduled chunks were dropped."""
        with self._lock:
            self._canceled[event_id] = max(stamp_ns, self._canceled.get(event_id, stamp_ns))
            self._canceled.move_to_end(event_id)
            while len(self._canceled) > MAX_CANCELED_EVENTS:
                self._canceled.popitem(last=False)
            dropped = self._schedule.drop_event(event_id)
            if dropped:
                self._counts["canceled"] += 1
                self._hold_note = f"the chunks of event {event_id} were canceled"
                if self._schedule.newest is None:
                    self._tracking = False
                logger.warning("%s: holding", self._hold_note)
            return dropped

    def _reject(self, reason: str, locked: bool = False) -> SubmitResult:
        if locked:
            self._counts["rejected"] += 1
            self._last_rejection = reason
        else:
            with self._lock:
                self._counts["rejected"] += 1
                self._last_rejection = reason
        logger.warning("chunk rejected: %s", reason)
        return SubmitResult(False, reason)

    def _prepare(self, chunk: ActionChunk) -> tuple[ChunkTrajectory, int, str]:
        """Config-only checks (no controller state): size, frames, arms, values, workspace."""
        if not isinstance(chunk, ActionChunk):
            raise ChunkRejectedError(f"expected an ActionChunk, got {type(chunk).__name__}")
        too_big = self.check_chunk_size(chunk.num_steps, chunk.step_period_ns)
        if too_big:
            raise ChunkRejectedError(too_big)
        if chunk.frame_id != self.config.base_frame:
            raise ChunkRejectedError(
                f"chunk frame {chunk.frame_id!r} is not the controller's base frame "
                f"{self.config.base_frame!r}"
            )
        if sorted(chunk.arm_names) != sorted(self.arm_names):
            raise ChunkRejectedError(
                f"chunk arms {chunk.arm_names} do not match the controller's {self.arm_names}"
            )
        order = [chunk.arm_names.index(name) for name in self.arm_names]
        for arm, index in zip(self.config.arms, order, strict=True):
            if chunk.ee_frames[index] != arm.ee_frame:
                raise ChunkRejectedError(
                    f"arm {arm.name!r}: chunk targets frame {chunk.ee_frames[index]!r}, the "
                    f"controller drives {arm.ee_frame!r}"
                )
        positions = np.array(chunk.positions[:, order], dtype=float)
        quaternions = np.array(chunk.quaternions[:, order], dtype=float)
        gripper = np.array(chunk.gripper[:, order], dtype=float)
        for name, values in (
            ("positions", positions),
            ("quaternions", quaternions),
            ("gripper", gripper),
        ):
            if not np.all(np.isfinite(values)):
                bad = int(np.argwhere(~np.isfinite(values))[0][0])
                raise ChunkRejectedError(
                    f"{name} contain NaN or infinite values (first at step {bad})"
                )
        norms = np.linalg.norm(quaternions, axis=-1)
        if np.any(np.abs(norms - 1.0) > 1e-3):
            raise ChunkRejectedError("quaternions must be unit length")
        quaternions /= norms[..., None]
        if np.any(gripper < 0.0) or np.any(gripper > 1.0):
            raise ChunkRejectedError("gripper commands must lie in [0, 1]")

        clamped_steps, notes = 0, []
        for arm_index, arm in enumerate(self.config.arms):
            check = check_workspace(positions[:, arm_index], arm.workspace)
            if len(check.outside_steps) == 0:
                continue
            where = (
                f"arm {arm.name!r}: {len(check.outside_steps)} of {chunk.num_steps} steps outside "
                f"the workspace box (worst: step {check.worst_step} by {check.worst_distance:.3f} m "
                f"at {np.round(positions[check.worst_step, arm_index], 3).tolist()})"
            )
            beyond_margin = check.worst_distance > self.config.workspace_margin
            if beyond_margin and self.config.workspace_violation == "reject":
                raise ChunkRejectedError(
                    f"{where}, more than workspace_margin {self.config.workspace_margin} m "
                    "(workspace_violation: reject)"
                )
            positions[:, arm_index] = check.clamped
            clamped_steps += len(check.outside_steps)
            notes.append(where + ", clamped into the box")
        trajectory = ChunkTrajectory(
            chunk,
            positions,
            quaternions,
            gripper,
            self.config.position_interpolation,
            self._end_hold_ns,
        )
        return trajectory, clamped_steps, "; ".join(notes)

    # ----------------------------------------------------------------------------- e-stop

    def engage_estop(self, reason: str = "requested") -> None:
        """Latch the e-stop: decelerate to rest within limits, hold, ignore chunks."""
        with self._lock:
            if not self._estop:
                logger.error("e-stop engaged: %s", reason)
            self._estop = True
            self._estop_reason = reason
            self._schedule.clear()
            self._tracking = False

    def reset_estop(self, now_ns: int) -> ResetResult:
        """Clear a latched e-stop and a latched fault. Refused while the arm is still
        decelerating, or while the joint states are missing, stale or not self-consistent for a
        joint-state time-out. After a reset the command restarts at rest from the latest joint
        state (the operator vouches for it: it may have been rejected as a jump, e.g. after the
        arm was moved by hand), and only chunks stamped at or after ``now_ns`` are accepted."""
        with self._lock:
            if not self._estop and not self._fault_reason:
                return ResetResult(True, "e-stop was not engaged")
            problem = self._reading_problem(now_ns)
            if problem:
                return ResetResult(False, f"reset refused: {problem}")
            if self._limiter.initialized and not self._limiter.is_at_rest(
                self.config.estop_reset_max_speed
            ):
                speed = float(np.max(np.abs(self._limiter.state.velocities)))
                return ResetResult(
                    False,
                    f"reset refused: the arm is still decelerating ({speed:.4f} rad/s > "
                    f"{self.config.estop_reset_max_speed} rad/s)",
                )
            what = " and ".join(
                name for name, on in (("e-stop", self._estop), ("fault", self._fault_reason)) if on
            )
            self._estop = False
            self._estop_reason = ""
            self._fault_reason = ""
            self._restart_at(self._latest_reading, now_ns)
            logger.warning("%s reset; chunks stamped before %d are rejected", what, now_ns)
            return ResetResult(True, f"{what} reset")

    def resync(self, at_ns: int) -> None:
        """An announced arm reset: something trusted (a simulator resetting its episode) moved
        the arm at ``at_ns``. The first joint state stamped at or after ``at_ns`` is accepted
        without the jump check, the command restarts there at rest, the chunks are dropped (and
        those stamped before ``at_ns`` rejected), and a latched fault is cleared. A latched e-stop
        stays latched."""
        with self._lock:
            self._resync_from_ns = int(at_ns)
            reading = self._latest_reading
            if reading is not None and reading.stamp_ns >= at_ns:
                self._apply_resync(reading)

    def _apply_resync(self, reading: _Reading) -> None:
        at_ns = self._resync_from_ns if self._resync_from_ns is not None else reading.stamp_ns
        self._resync_from_ns = None
        self._counts["resyncs"] += 1
        if self._fault_reason:
            logger.warning("fault cleared by an arm reset: %s", self._fault_reason)
            self._fault_reason = ""
        self._restart_at(reading, at_ns)
        logger.warning("arm reset announced: the command restarts at the measured position")

    def _restart_at(self, reading: _Reading | None, min_stamp_ns: int) -> None:
        """Re-synchronise: ``reading`` becomes the accepted measurement and the commanded state
        (at rest); chunks are dropped and those stamped before ``min_stamp_ns`` rejected."""
        self._schedule.clear()
        self._tracking = False
        self._had_chunk = False
        self._hold_note = ""
        self._min_stamp_ns = max(self._min_stamp_ns, min_stamp_ns)
        self._implausible_since_ns = None
        self._following_error_since_ns = None
        self._following_error = ""
        self._new_measurement = False
        if reading is None:
            return
        self._measured_q = reading.q.copy()
        self._measured_stamp_ns = reading.stamp_ns
        self._measured_received_ns = reading.received_ns
        self._limiter.reset(reading.q)
        self._recent_commands[:] = np.nan

    # ----------------------------------------------------------------------------- joint states

    def submit_joint_state(self, positions: np.ndarray, stamp_ns: int, now_ns: int) -> str:
        """Check a measured joint state (``joint_names`` order) received at ``now_ns`` and, if it
        is valid and plausible, make it the measurement. Returns why it was rejected, or ``""``."""
        with self._lock:
            return self._take_joint_state(positions, stamp_ns, now_ns)

    def _reject_joint_state(self, kind: str, reason: str) -> str:
        self._joint_rejections[kind] += 1
        self._last_joint_rejection = reason
        count = self._joint_rejections[kind]
        if count == 1 or count % 500 == 0:
            logger.warning("%s (%d %s so far)", reason, count, kind)
        return reason

    def _take_joint_state(self, positions: np.ndarray, stamp_ns: int, now_ns: int) -> str:
        q = np.asarray(positions, dtype=float)
        if q.shape != (len(self.joint_names),):
            return self._reject_joint_state(
                "malformed",
                f"joint state ignored: expected {len(self.joint_names)} positions "
                f"{self.joint_names}, got shape {q.shape}",
            )
        if not np.all(np.isfinite(q)):
            return self._reject_joint_state(
                "non_finite", "joint state ignored: NaN or infinite positions"
            )
        stamp_ns = int(stamp_ns)
        if stamp_ns <= 0:
            return self._reject_joint_state(
                "zero_stamp",
                "joint state ignored: zero stamp (stamp joint states with their measurement time)",
            )
        lead_ns = stamp_ns - now_ns
        if lead_ns > self._joint_lead_ns:
            return self._reject_joint_state(
                "future_stamp",
                f"joint state ignored: stamped {lead_ns / NS_PER_S:.3f} s ahead of the "
                f"controller's clock (joint_state_max_lead {self.config.joint_state_max_lead} s): "
                "do the clocks agree (use_sim_time)?",
            )
        # The latest reading (accepted or not) only moves forward in time; the accepted
        # measurement is judged against the last accepted one, so a stray message cannot make
        # the real stream look out of order or implausible.
        previous = self._latest_reading
        reading = _Reading(q.copy(), stamp_ns, now_ns)
        if previous is None or stamp_ns > previous.stamp_ns:
            if previous is None or self._jump(previous.q, previous.stamp_ns, q, stamp_ns):
                self._reading_stable_since_ns = now_ns
            self._latest_reading = reading
        if self._resync_from_ns is not None and stamp_ns >= self._resync_from_ns:
            self._apply_resync(reading)
            return ""
        if self._measured_q is not None and self._measured_stamp_ns is not None:
            if stamp_ns <= self._measured_stamp_ns:
                return self._reject_joint_state(
                    "out_of_order",
                    f"joint state ignored: stamp {stamp_ns} is not newer than the last accepted "
                    f"one ({self._measured_stamp_ns})",
                )
            jump = self._jump(self._measured_q, self._measured_stamp_ns, q, stamp_ns)
            if jump:
                self._counts["implausible"] += 1
                if self._implausible_since_ns is None:
                    self._implausible_since_ns = now_ns
                return self._reject_joint_state("implausible", f"joint state rejected: {jump}")
        self._measured_q = reading.q
        self._measured_stamp_ns = stamp_ns
        self._measured_received_ns = now_ns
        self._implausible_since_ns = None
        self._new_measurement = True
        return ""

    def _jump(self, q0: np.ndarray, stamp0_ns: int, q1: np.ndarray, stamp1_ns: int) -> str:
        """Why moving from ``q0`` to ``q1`` in the time between the stamps is physically
        impossible (URDF velocity x dt + ``joint_state_jump_margin``), or ``""``. ``dt`` is at
        most the joint-state time-out: after that long without joint states the controller has
        been holding, so a far-away reading stays implausible however late it comes."""
        dt = min(max(stamp1_ns - stamp0_ns, 0), self._joint_state_timeout_ns) / NS_PER_S
        allowed = self._urdf_velocity * dt + self.config.joint_state_jump_margin
        excess = np.abs(q1 - q0) - allowed
        worst = int(np.argmax(excess))
        if excess[worst] <= 0.0:
            return ""
        return (
            f"implausible jump: {self.joint_names[worst]} moved {abs(q1[worst] - q0[worst]):.3f} "
            f"rad in {dt * 1e3:.1f} ms (at most {allowed[worst]:.3f} rad: velocity limit x dt + "
            f"joint_state_jump_margin {self.config.joint_state_jump_margin} rad)"
        )

    def _joint_state_problem(self, now_ns: int) -> str:
        """Why the accepted measurement is unusable now (missing, stale by stamp or receive)."""
        rejected = f" (last rejected: {self._last_joint_rejection})"
        if self._measured_stamp_ns is None or self._measured_received_ns is None:
            return "no joint state received" + (rejected if self._last_joint_rejection else "")
        limit = f"{self.config.joint_state_timeout * 1e3:.0f} ms"
        age = now_ns - self._measured_stamp_ns
        if age > self._joint_state_timeout_ns:
            why = rejected if self._last_joint_rejection else ""
            return f"joint states are stale ({age / 1e6:.1f} ms old > {limit}){why}"
        received_age = now_ns - self._measured_received_ns
        if received_age > self._joint_state_timeout_ns:
            why = rejected if self._last_joint_rejection else ""
            return (
                f"joint states are stale (none accepted for {received_age / 1e6:.1f} ms of "
                f"receive time > {limit}){why}"
            )
        return ""

    def _reading_problem(self, now_ns: int) -> str:
        """Why the latest joint state cannot be re-synchronised to (missing, stale, unsteady)."""
        reading = self._latest_reading
        if reading is None or self._reading_stable_since_ns is None:
            return "no joint state received"
        timeout = self._joint_state_timeout_ns
        age = max(now_ns - reading.stamp_ns, now_ns - reading.received_ns)
        if age > timeout:
            return f"joint states are stale ({age / 1e6:.1f} ms old)"
        if now_ns - self._reading_stable_since_ns < timeout:
            return (
                "the joint states jumped within the last "
                f"{self.config.joint_state_timeout * 1e3:.0f} ms: wait until they are steady"
            )
        return ""

    # ----------------------------------------------------------------------------- control tick

    def update(
        self,
        now_ns: int,
        measured_q: np.ndarray | None = None,
        measured_stamp_ns: int | None = None,
    ) -> ControlCommand:
        """One control tick at ``now_ns``. ``measured_q`` (``joint_names`` order, stamped
        ``measured_stamp_ns``, default ``now_ns``) is a new joint state received now, or ``None``
        (joint states may also arrive through :meth:`submit_joint_state`)."""
        with self._lock:
            self._counts["updates"] += 1
            reasons: list[str] = []
            if self._last_now_ns is not None and now_ns < self._last_now_ns:
                # A restarted (simulation) clock: the executing chunks, the stamp ordering and
                # the joint states belong to the old time line.
                reasons.append(
                    f"clock jumped back by {(self._last_now_ns - now_ns) / NS_PER_S:.3f} s: "
                    "chunks cleared"
                )
                logger.warning("%s", reasons[-1])
                self._schedule.clear()
                self._tracking = False
                self._min_stamp_ns = -1
                self._measured_stamp_ns = self._measured_received_ns = None
                self._latest_reading = self._reading_stable_since_ns = None
                self._implausible_since_ns = None
                self._canceled.clear()
            if measured_q is not None:
                problem = self._take_joint_state(
                    measured_q, now_ns if measured_stamp_ns is None else measured_stamp_ns, now_ns
                )
                if problem:
                    reasons.append(problem)
            if not self._limiter.initialized:
                if self._measured_q is None or self._joint_state_problem(now_ns):
                    reasons.append("waiting for joint states")
                    return self._finish(now_ns, ControllerState.IDLE, None, reasons)
                self._limiter.reset(self._measured_q)
                self._new_measurement = False
            if self._new_measurement:
                self._new_measurement = False
                self._check_following_error(now_ns, reasons)
            self._check_joint_faults(now_ns)

            state = self._decide_and_move(now_ns, reasons)
            if self._limiter.clamp_positions(self._urdf_lower, self._urdf_upper):
                # Safety net: braking toward a limit can pass the IK margin; never the URDF
                # limit (the clamped joint stops at once: position wins over acceleration).
                self._counts["joint_clips"] += 1
                reasons.append("joint command clamped to the URDF position limits")
            if self._limiter.last_error:
                reasons.append(f"trajectory generation: {self._limiter.last_error}")
            motion = self._limiter.state
            self._recent_commands[self._recent_index] = motion.positions
            self._recent_index = (self._recent_index + 1) % len(self._recent_commands)
            return self._finish(
                now_ns, state, (motion.positions, motion.velocities, motion.accelerations), reasons
            )

    def _check_following_error(self, now_ns: int, reasons: list[str]) -> None:
        """Hold when the measurement is far from every recent command (a delayed joint state is
        close to the command of its time; an arm that does not follow, or a wrong reading, to
        none). The command is never moved toward the measurement."""
        recent = self._recent_commands[~np.isnan(self._recent_commands[:, 0])]
        candidates = np.vstack([recent, self._limiter.state.positions])
        distances = np.max(np.abs(candidates - self._measured_q), axis=1)
        closest = int(np.argmin(distances))
        if distances[closest] <= self.config.max_following_error:
            if self._following_error_since_ns is not None:
                logger.warning("following error cleared: %s", self._following_error)
                self._following_error_since_ns = None
                self._following_error = ""
            return
        worst = int(np.argmax(np.abs(candidates[closest] - self._measured_q)))
        self._following_error = (
            f"{self.joint_names[worst]} is {distances[closest]:.3f} rad from the command "
            f"(max_following_error {self.config.max_following_error} rad)"
        )
        if self._following_error_since_ns is None:
            self._following_error_since_ns = now_ns
            self._counts["following_error_holds"] += 1
            reasons.append(
                f"following error: {self._following_error}: chunks dropped, holding; a fault "
                f"follows if it lasts {self.config.joint_fault_after} s"
            )
            logger.warning("%s", reasons[-1])
            self._schedule.clear()
            self._tracking = False
            self._min_stamp_ns = max(self._min_stamp_ns, now_ns)

    def _check_joint_faults(self, now_ns: int) -> None:
        """Latch a fault when a following error or a run of implausible joint states lasts."""
        if self._fault_reason:
            return
        since = self._following_error_since_ns
        if since is not None and now_ns - since >= self._fault_after_ns:
            self._engage_fault(
                f"following error for {(now_ns - since) / NS_PER_S:.3f} s: {self._following_error}"
            )
            return
        since = self._implausible_since_ns
        if since is not None and now_ns - since >= self._fault_after_ns:
            self._engage_fault(
                f"joint states implausible for {(now_ns - since) / NS_PER_S:.3f} s: "
                f"{self._last_joint_rejection}"
            )

    def _engage_fault(self, reason: str) -> None:
        logger.error("controller fault: %s; reset with reset_estop", reason)
        self._fault_reason = reason
        self._schedule.clear()
        self._tracking = False
        self._following_error_since_ns = None
        self._implausible_since_ns = None

    def _decide_and_move(self, now_ns: int, reasons: list[str]) -> ControllerState:
        """Pick this tick's mode and advance the limiter once (track or stop)."""
        if self._estop:
            reasons.append(f"e-stop engaged: {self._estop_reason}")
            return self._hold(ControllerState.ESTOP)
        if self._fault_reason:
            reasons.append(f"fault: {self._fault_reason}")
            return self._hold(ControllerState.FAULT)
        stale = self._joint_state_problem(now_ns)
        if stale:
            reasons.append(stale)
            return self._hold(ControllerState.HOLDING)
        if self._following_error_since_ns is not None:
            reasons.append(f"following error: {self._following_error}")
            return self._hold(ControllerState.HOLDING)
        target = self._schedule.sample(now_ns)
        if target is None:
            if not self._had_chunk:
                return self._hold(ControllerState.IDLE)
            reasons.append(
                f"{self._hold_note}: holding"
                if self._hold_note
                else "watchdog: no valid chunk covers the present time"
            )
            return self._hold(ControllerState.HOLDING)

        commanded = self._limiter.state.positions
        if not self._tracking:
            for kin, limiter, arm_slice in zip(
                self._kinematics, self._ee_limiters, self._arm_slices, strict=True
            ):
                pose = kin.forward(commanded[arm_slice])
                limiter.reset(pose.position, pose.rotation)
            self._ik_solution = commanded.copy()
            self._ik_previous = commanded.copy()

        solution = self._ik_solution.copy()
        previous_targets = [(limiter.position, limiter.rotation) for limiter in self._ee_limiters]
        for arm_index, (arm, kin, limiter, arm_slice) in enumerate(
            zip(
                self.config.arms, self._kinematics, self._ee_limiters, self._arm_slices, strict=True
            )
        ):
            position = np.clip(target.positions[arm_index], arm.workspace.min, arm.workspace.max)
            position, rotation, limited = limiter.step(
                position, target.rotations[arm_index], self._dt
            )
            if limited:
                self._counts["ee_limited"] += 1
                reasons.append(f"arm {arm.name!r}: end-effector target speed limited")
            result = kin.solve(
                Pose(position, rotation),
                solution[arm_slice],
                self._ik_lower[arm_slice],
                self._ik_upper[arm_slice],
                max_iterations=self.config.ik.max_tracking_iterations,
            )
            if not result.success:
                # Hold at the last reachable target (the last good IK solution), keeping the
                # tracking state (targets as before this tick, seed) so that a later reachable
                # target resumes without a reset.
                self._counts["ik_failures"] += 1
                reasons.append(f"arm {arm.name!r}: {result.reason}")
                for ee_limiter, (position, rotation) in zip(
                    self._ee_limiters, previous_targets, strict=True
                ):
                    ee_limiter.reset(position, rotation)
                self._ik_previous = self._ik_solution
                self._approach(commanded, self._ik_solution, np.zeros_like(commanded))
                return ControllerState.HOLDING
            solution[arm_slice] = result.q

        feed_forward = (solution - self._ik_previous) / self._dt
        self._ik_previous = self._ik_solution = solution
        self._approach(commanded, solution, feed_forward)
        self._tracking = True
        self._gripper = target.gripper.copy()
        return ControllerState.TRACKING

    def _approach(
        self, commanded: np.ndarray, solution: np.ndarray, feed_forward: np.ndarray
    ) -> None:
        """One limiter cycle toward the joint target ``solution`` moving at ``feed_forward``.

        A target at rest is approached time-optimally (exact arrival, no overshoot) unless that
        would break the end-effector speed limits; otherwise, and for moving targets, the
        velocity loop with its end-effector speed cap follows it.
        """
        preview = None if np.any(feed_forward) else self._limiter.preview_move_to(solution)
        if preview is not None and self._ee_speed_ok(commanded, preview.velocities):
            self._limiter.commit(preview)
        else:
            velocity = self._limiter.tracking_velocity(solution, feed_forward)
            self._limiter.follow_velocity(self._cap_ee_speed(commanded, velocity))

    def _ee_speed_scales(self, positions: np.ndarray, velocity: np.ndarray) -> list[float]:
        """Per arm, the factor (<= 1) that brings its end-effector speeds under the limits."""
        scales = []
        for kin, arm_slice in zip(self._kinematics, self._arm_slices, strict=True):
            twist = kin.jacobian(positions[arm_slice]) @ velocity[arm_slice]
            linear, angular = float(np.linalg.norm(twist[:3])), float(np.linalg.norm(twist[3:]))
            scales.append(
                min(
                    1.0,
                    self.config.max_ee_linear_speed / linear if linear > 0 else 1.0,
                    self.config.max_ee_angular_speed / angular if angular > 0 else 1.0,
                )
            )
        return scales

    def _ee_speed_ok(self, positions: np.ndarray, velocity: np.ndarray) -> bool:
        return all(scale >= 1.0 for scale in self._ee_speed_scales(positions, velocity))

    def _cap_ee_speed(self, positions: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """Scale each arm's joint velocity so its end effector stays under the speed limits
        (catching up after a lag would otherwise exceed them)."""
        velocity = velocity.copy()
        for scale, arm_slice in zip(
            self._ee_speed_scales(positions, velocity), self._arm_slices, strict=True
        ):
            velocity[arm_slice] *= scale
        return velocity

    def _hold(self, state: ControllerState) -> ControllerState:
        self._tracking = False
        self._limiter.stop()
        return state

    def _finish(
        self,
        now_ns: int,
        state: ControllerState,
        motion: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
        reasons: list[str],
    ) -> ControlCommand:
        if state != self._state:
            log = (
                logger.warning
                if state in (ControllerState.HOLDING, ControllerState.FAULT, ControllerState.ESTOP)
                else logger.info
            )
            log(
                "controller %s -> %s%s",
                self._state.value,
                state.value,
                f": {'; '.join(reasons)}" if reasons else "",
            )
        self._state = state
        self._reasons = tuple(reasons)
        self._last_now_ns = now_ns
        gripper = None if self._gripper is None else self._gripper.copy()
        return ControlCommand(
            stamp_ns=now_ns,
            state=state,
            joint_names=self.joint_names,
            positions=None if motion is None else motion[0].copy(),
            velocities=None if motion is None else motion[1].copy(),
            accelerations=None if motion is None else motion[2].copy(),
            gripper=gripper,
            gripper_joint_names=self.gripper_joint_names,
            gripper_positions=None
            if gripper is None
            else self._gripper_mapping.joint_positions(gripper),
            reasons=self._reasons,
        )

    # ----------------------------------------------------------------------------- diagnostics

    def note_loop_stats(self, stats: LoopStats) -> None:
        """The control loop reports its rate and period errors here, for :meth:`status`."""
        with self._lock:
            self._loop_stats = stats

    def status(self) -> ControllerStatus:
        with self._lock:
            newest = self._schedule.newest
            age = None
            if self._measured_stamp_ns is not None and self._last_now_ns is not None:
                age = self._last_now_ns - self._measured_stamp_ns
                if self._measured_received_ns is not None:
                    age = max(age, self._last_now_ns - self._measured_received_ns)
            return ControllerStatus(
                state=self._state,
                reasons=self._reasons,
                estop_engaged=self._estop,
                estop_reason=self._estop_reason,
                chunks_accepted=self._counts["accepted"],
                chunks_rejected=self._counts["rejected"],
                last_rejection=self._last_rejection,
                ik_failures=self._counts["ik_failures"],
                ee_speed_limited_ticks=self._counts["ee_limited"],
                workspace_clamped_steps=self._counts["clamped"],
                joint_limit_clips=self._counts["joint_clips"],
                following_error_holds=self._counts["following_error_holds"],
                updates=self._counts["updates"],
                active_chunk_stamp_ns=None if newest is None else newest.stamp_ns,
                active_event_id=None if newest is None else newest.chunk.event_id,
                joint_state_age_ns=age,
                loop=self._loop_stats,
                fault_reason=self._fault_reason,
                joint_states_rejected=sum(self._joint_rejections.values()),
                joint_states_implausible=self._counts["implausible"],
                last_joint_state_rejection=self._last_joint_rejection,
                resyncs=self._counts["resyncs"],
                chunks_canceled=self._counts["canceled"],
            )

"""The simulation node's loop, without ROS: TabletopSim stepped in a thread of its own.

Each iteration runs one control period: the active trajectory (if any) sets the joint command,
physics steps, and the clock, the joint state and, when due, the camera images go to a
:class:`LoopOutputs` sink (the ROS node publishes them). With ``real_time`` the loop sleeps to
keep simulation time with the wall clock; when it falls more than ``max_lag_ns`` behind (e.g.
rendering is slow) it counts an overrun and continues from the wall clock's present instead of
racing to catch up, so the real-time factor drops below 1. Without ``real_time`` it runs as fast
as it can.

Lockstep (``lockstep``): simulated time advances only when the controller has kept up. After
publishing control period k the loop waits until an arm command (position or trajectory) has
arrived since then, i.e. the controller has answered (at most one period late: an answer to k-1
that arrives after k was published also counts). It engages at the first arm command after the
start or a reset, so a controller that starts later or a scene without a controller does not
stall. If no command comes for ``lockstep_timeout_ns`` of wall time the loop stops with a fault
(:class:`LockstepTimeoutError`): a controller that died must not leave the simulation waiting
silently. On a busy machine lockstep makes closed-loop results independent of how fast the
nodes run; it needs a controller that sends an arm command every control period (the
controller node's ``forward_position`` output at the simulation's control rate does).

Time: the loop's clock (``clock_ns``, what ``/clock`` carries) starts at 0 and never goes back:
a reset starts a new episode (TabletopSim's own time restarts at 0) but the clock carries on.
Commands, resets and queries come from other threads; one lock serialises them with the loop.

After a reset the arm stands at the new episode's start pose while commands sent before the reset
are still in flight (and a controller needs a moment to see the new joint states). Until a
position command within ``RESET_COMMAND_MATCH_RAD`` of the start pose arrives, or for at most
``RESET_COMMAND_HOLD_S``, position commands farther away are ignored and counted
(``ignored_after_reset``), and trajectories stamped before the reset are too: a reset must not be
followed by a jump back to the old episode's pose.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from wallwm_core.action_chunk import NS_PER_S
from wallwm_sim.joint_trajectory import (
    ActiveTrajectory,
    TrajectoryError,
    TrajectoryRequest,
    plan_trajectory,
)
from wallwm_sim.rendering import RenderError
from wallwm_sim.sim import InvalidCommandError, JointState, TabletopSim
from wallwm_sim.tasks import TaskInstance
from wallwm_sim.tasks.base import TOTAL_POINTS

COMMAND_KINDS = ("position", "trajectory", "gripper")
RESET_COMMAND_HOLD_S = 1.0
RESET_COMMAND_MATCH_RAD = 0.1


class LockstepTimeoutError(RuntimeError):
    """In lockstep, the controller sent no arm command for the time-out."""


class LoopOutputs(Protocol):
    """Where the loop's outputs go; called from the loop thread, outside the lock."""

    def clock(self, time_ns: int) -> None: ...

    def joint_state(self, time_ns: int, state: JointState) -> None: ...

    def images(self, time_ns: int, images: Mapping[str, np.ndarray]) -> None: ...

    def fault(self, message: str) -> None:
        """Something went wrong in the loop (rendering failed, a step raised)."""


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Rates as periods in ns; ``cameras`` empty (or ``camera_period_ns`` 0) renders nothing."""

    control_period_ns: int
    camera_period_ns: int
    cameras: tuple[str, ...]
    real_time: bool = True
    max_lag_ns: int = 100_000_000
    lockstep: bool = False
    lockstep_timeout_ns: int = 10_000_000_000

    def __post_init__(self) -> None:
        if self.control_period_ns <= 0:
            raise ValueError(f"control_period_ns must be positive, got {self.control_period_ns}")
        if self.camera_period_ns < 0 or self.max_lag_ns <= 0 or self.lockstep_timeout_ns <= 0:
            raise ValueError(
                f"bad periods: {self.camera_period_ns=} {self.max_lag_ns=} "
                f"{self.lockstep_timeout_ns=}"
            )


@dataclasses.dataclass(frozen=True)
class LoopCounters:
    """Cumulative counts since the loop was made; two snapshots give rates (:class:`LoopRates`)."""

    wall_s: float
    clock_ns: int
    control_steps: int
    physics_steps: int
    joint_states: int
    frames: Mapping[str, int]
    step_time_s: float
    render_time_s: float
    overruns: int
    rejected: Mapping[str, int]
    last_rejection: str
    fault: str
    ignored_after_reset: int = 0
    lockstep_wait_s: float = 0.0  # wall time spent waiting for the controller (lockstep)


@dataclasses.dataclass(frozen=True)
class LoopRates:
    """Achieved rates over a window between two :class:`LoopCounters` (per wall second)."""

    wall_s: float
    sim_s: float
    control_hz: float
    physics_hz: float
    joint_states_hz: float
    frames_hz: Mapping[str, float]
    mean_step_ms: float
    mean_render_ms: float  # per camera frame
    overruns: int

    @property
    def real_time_factor(self) -> float:
        return self.sim_s / self.wall_s if self.wall_s > 0 else 0.0

    @classmethod
    def between(cls, before: LoopCounters, after: LoopCounters) -> LoopRates:
        wall = max(after.wall_s - before.wall_s, 1e-9)
        steps = after.control_steps - before.control_steps
        frames = {n: after.frames[n] - before.frames.get(n, 0) for n in after.frames}
        total_frames = sum(frames.values())
        return cls(
            wall_s=wall,
            sim_s=(after.clock_ns - before.clock_ns) / NS_PER_S,
            control_hz=steps / wall,
            physics_hz=(after.physics_steps - before.physics_steps) / wall,
            joint_states_hz=(after.joint_states - before.joint_states) / wall,
            frames_hz={n: count / wall for n, count in frames.items()},
            mean_step_ms=1e3 * (after.step_time_s - before.step_time_s) / max(steps, 1),
            mean_render_ms=1e3
            * (after.render_time_s - before.render_time_s)
            / max(total_frames, 1),
            overruns=after.overruns - before.overruns,
        )


@dataclasses.dataclass(frozen=True)
class TaskProgressReport:
    """The current episode's Task Progress (``task`` None: empty table, nothing to score)."""

    task: str | None
    progress: float  # 0..100
    points: int
    max_points: int
    criteria_met: tuple[str, ...]


class SimulationLoop:
    """Steps ``sim`` in a thread, publishes through ``outputs``; commands are thread-safe."""

    def __init__(
        self,
        sim: TabletopSim,
        config: LoopConfig,
        outputs: LoopOutputs,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._sim = sim
        self._outputs = outputs
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._warmed_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._cameras = config.cameras if config.camera_period_ns > 0 else ()
        self._trajectory: ActiveTrajectory | None = None
        self._clock_offset_ns = 0  # clock time at which the current episode began
        self._next_frame_ns = 0
        self._control_steps = 0
        self._joint_states = 0
        self._frames = dict.fromkeys(self._cameras, 0)
        self._step_time_s = 0.0
        self._render_time_s = 0.0
        self._overruns = 0
        self._rejected = dict.fromkeys(COMMAND_KINDS, 0)
        self._last_rejection = ""
        self._fault = ""
        self._reset_clock_ns = -1  # clock time of the last reset
        self._reset_hold_until_ns = -1  # stale commands are ignored until then (see module doc)
        self._ignored_after_reset = 0
        # Lockstep: arm commands received, and how many had arrived when the last period was
        # published; engaged from the first command after the start or a reset.
        self._arrivals = threading.Condition(threading.Lock())
        self._arm_commands = 0
        self._published_after = 0
        self._lockstep_engaged = False
        self._lockstep_wait_s = 0.0

    # ------------------------------------------------------------------ lifetime

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the simulation loop is already started")
        self._thread = threading.Thread(target=self._run, name="simulation", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop and join the loop thread, then close the renderers (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"the simulation loop did not stop within {timeout_s} s")
        self._close_sim()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _close_sim(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sim.close()

    @property
    def warmed_up(self) -> bool:
        """Whether the loop has set up its renderers and started stepping."""
        return self._warmed_up.is_set()

    def _run(self) -> None:
        try:
            with self._lock:  # the first render sets up the GL context: keep it out of the pacing
                self._render_cameras()
            self._warmed_up.set()
            anchor_wall, anchor_clock = self._wall_clock(), self.clock_ns
            while not self._stop.is_set():
                self.step_once()
                if self.config.lockstep:
                    self._wait_for_controller()
                if not self.config.real_time:
                    continue
                delay = anchor_wall + (self.clock_ns - anchor_clock) / NS_PER_S - self._wall_clock()
                if delay > 0:
                    self._stop.wait(delay)
                elif -delay > self.config.max_lag_ns / NS_PER_S:
                    self._overruns += 1
                    anchor_wall, anchor_clock = self._wall_clock(), self.clock_ns
        except Exception as error:  # keep the node alive and say why the simulation stopped
            self._fault = f"simulation stopped: {type(error).__name__}: {error}"
            self._outputs.fault(self._fault)
        finally:
            self._warmed_up.set()
            # The renderers' GL contexts belong to this thread: release them here.
            self._close_sim()

    # ------------------------------------------------------------------ stepping

    @property
    def clock_ns(self) -> int:
        return self._clock_offset_ns + self._sim.time_ns

    def step_once(self) -> None:
        """One control period; outputs the clock, the joint state and any due images."""
        images: dict[str, np.ndarray] = {}
        with self._lock:
            if self._closed:
                return
            started = time.perf_counter()
            period = self.config.control_period_ns
            if self._trajectory is not None:
                # The reference at the end of the coming control period.
                end_of_period = self.clock_ns + period
                self._sim.set_joint_command(self._trajectory.sample(end_of_period))
                if end_of_period >= self._trajectory.end_ns:
                    self._trajectory = None
            self._sim.step(1)
            self._control_steps += 1
            now = self.clock_ns
            state = self._sim.joint_state()
            self._step_time_s += time.perf_counter() - started
            if self._cameras and now >= self._next_frame_ns:
                images = self._render(now)
        with self._arrivals:
            self._published_after = self._arm_commands
        self._outputs.clock(now)
        self._outputs.joint_state(now, state)
        self._joint_states += 1
        if images:
            self._outputs.images(now, images)
            for name in images:
                self._frames[name] += 1

    def _wait_for_controller(self) -> None:
        """Lockstep: block until an arm command arrived after the last published period."""
        timeout_s = self.config.lockstep_timeout_ns / NS_PER_S
        started = time.monotonic()
        with self._arrivals:
            while self._lockstep_engaged and self._arm_commands <= self._published_after:
                waited = time.monotonic() - started
                if self._stop.is_set():
                    return
                if waited > timeout_s:
                    raise LockstepTimeoutError(
                        f"lockstep: no arm command from the controller for {waited:.1f} s of wall "
                        f"time at simulation time {self.clock_ns / NS_PER_S:.3f} s (did the "
                        "controller stop?)"
                    )
                self._arrivals.wait(min(0.05, timeout_s - waited + 1e-3))
            self._lockstep_wait_s += time.monotonic() - started

    def _note_arm_command(self) -> None:
        with self._arrivals:
            self._arm_commands += 1
            self._lockstep_engaged = True
            self._arrivals.notify_all()

    def _render(self, now_ns: int) -> dict[str, np.ndarray]:
        camera_period = self.config.camera_period_ns
        self._next_frame_ns = (now_ns // camera_period + 1) * camera_period
        started = time.perf_counter()
        images = self._render_cameras()
        self._render_time_s += time.perf_counter() - started
        return images

    def _render_cameras(self) -> dict[str, np.ndarray]:
        """One image per camera; a renderer that fails disables the cameras, not the loop."""
        try:
            return {name: self._sim.render(name) for name in self._cameras}
        except RenderError as error:
            self._cameras = ()
            self._fault = f"cameras disabled: {error}"
            self._outputs.fault(self._fault)
            return {}

    # ------------------------------------------------------------------ commands (any thread)

    def command_positions(self, positions: Sequence[float] | np.ndarray) -> None:
        """Arm joint targets (rad, arm joint order); replaces any running trajectory."""
        self._note_arm_command()
        with self._lock:
            if self._stale_after_reset(positions):
                return
            try:
                self._sim.set_joint_command(np.asarray(positions, dtype=np.float64))
            except InvalidCommandError as error:
                self._reject("position", error)
            self._trajectory = None

    def _stale_after_reset(self, positions: Sequence[float] | np.ndarray) -> bool:
        """Whether a position command is one of the old episode's, still in flight (locked)."""
        if self._reset_hold_until_ns < 0:
            return False
        try:
            target = np.asarray(positions, dtype=np.float64)
            distance = float(np.max(np.abs(target - self._sim.joint_command)))
        except ValueError:  # malformed: set_joint_command rejects it with the reason
            return False
        if not np.isfinite(distance):  # NaN/inf: likewise
            return False
        if self.clock_ns < self._reset_hold_until_ns and not distance <= RESET_COMMAND_MATCH_RAD:
            self._ignored_after_reset += 1
            return True
        self._reset_hold_until_ns = -1
        return False

    def command_trajectory(self, request: TrajectoryRequest) -> None:
        """Follow ``request`` from now; replaces any running trajectory.

        A trajectory without waypoints stops the running one and holds the current command (as
        ``joint_trajectory_controller`` does).
        """
        self._note_arm_command()
        with self._lock:
            if 0 < request.start_ns < self._reset_clock_ns:
                self._ignored_after_reset += 1
                return
            if not request.waypoints:
                self._trajectory = None
                return
            try:
                self._trajectory = plan_trajectory(
                    request,
                    self._sim.arm_joint_names,
                    self._sim.joint_lower_limits,
                    self._sim.joint_upper_limits,
                    self.clock_ns,
                    self._sim.joint_command,
                )
            except TrajectoryError as error:
                self._reject("trajectory", error)

    def command_gripper(self, values: Sequence[float] | np.ndarray) -> None:
        """One normalised value, 0 (open) .. 1 (closed)."""
        with self._lock:
            try:
                if len(values) != 1:
                    raise InvalidCommandError(
                        f"gripper command needs exactly 1 value (0 open .. 1 closed), "
                        f"got {len(values)}"
                    )
                self._sim.set_gripper_command(values[0])
            except InvalidCommandError as error:
                self._reject("gripper", error)

    def _reject(self, kind: str, error: Exception) -> None:
        self._rejected[kind] += 1
        self._last_rejection = f"{kind}: {error}"
        raise error

    def reset(self, task: str | None, seed: int, variant: str) -> TaskInstance | None:
        """New episode (see :meth:`TabletopSim.reset`); drops the running trajectory.

        Raises :class:`~wallwm_sim.tasks.TaskError` for an unknown task, variant or bad seed,
        leaving the current episode as it was.
        """
        with self._lock:
            clock = self.clock_ns
            instance = self._sim.reset(task, seed, variant)
            self._clock_offset_ns = clock
            self._trajectory = None
            self._reset_clock_ns = clock
            self._reset_hold_until_ns = clock + round(RESET_COMMAND_HOLD_S * NS_PER_S)
            self._next_frame_ns = clock  # show the new scene on the next step
        with self._arrivals:  # lockstep re-engages at the next arm command
            self._lockstep_engaged = False
        return instance

    @property
    def instance(self) -> TaskInstance | None:
        with self._lock:
            return self._sim.instance

    def progress(self) -> TaskProgressReport:
        with self._lock:
            instance = self._sim.instance
            progress = self._sim.task_progress()
            achieved = self._sim.progress_breakdown()
        return TaskProgressReport(
            task=instance.task if instance is not None else None,
            progress=progress,
            points=round(progress * TOTAL_POINTS / 100.0),
            max_points=TOTAL_POINTS,
            criteria_met=tuple(name for name, met in achieved.items() if met),
        )

    def joint_command(self) -> tuple[np.ndarray, float]:
        """The arm and gripper commands in force."""
        with self._lock:
            return self._sim.joint_command, self._sim.gripper_command

    # ------------------------------------------------------------------ statistics

    def counters(self) -> LoopCounters:
        with self._lock:
            return LoopCounters(
                wall_s=self._wall_clock(),
                clock_ns=self.clock_ns,
                control_steps=self._control_steps,
                physics_steps=self._control_steps * self._sim.config.substeps,
                joint_states=self._joint_states,
                frames=dict(self._frames),
                step_time_s=self._step_time_s,
                render_time_s=self._render_time_s,
                overruns=self._overruns,
                rejected=dict(self._rejected),
                last_rejection=self._last_rejection,
                fault=self._fault,
                ignored_after_reset=self._ignored_after_reset,
                lockstep_wait_s=self._lockstep_wait_s,
            )

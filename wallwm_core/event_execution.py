"""Running one event, or a whole task, with an EventPolicy: the loop behind the policy node's goals.

Plain Python with everything outside injected through :class:`ExecutionIO` (clock, fresh
observations, publishing, goal interruptions), so the same code runs under ROS and in tests.

One event: ``start_event``, then repeatedly take the freshest observation *newer than the last one
used*, infer a chunk, publish it, and wait until a ``replan_fraction`` of the chunk has run; the
event succeeds once the chunk marked ``ends_event`` has run to its end. Old data is never reused:
without a fresh observation no chunk is produced, the state is HOLDING with the reason, and after
``stale_hold_timeout_ns`` without one the event ends with FAULT. An exception from the policy
ends the event with FAULT at once. Either way the caller's node stays up for the next goal.
An event that ends any other way than SUCCEEDED after publishing chunks (canceled, preempted,
timed out, faulted, e-stopped) asks the controller to stop executing them
(:meth:`ExecutionIO.cancel_chunks`). An interruption with the ESTOP or FAULT outcome (the node
reports the controller's latched e-stop or fault there) ends the event before its next chunk.

A task: an :class:`~wallwm_core.planner.EventPlanner` decides which event runs next; each event
runs as above, and its estimates and outcome go back to the planner.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from wallwm_core.action_chunk import NS_PER_S, ActionChunk
from wallwm_core.outcome import Outcome, PolicyState
from wallwm_core.planner import EventPlanner, EventRecord, PlannerDecision
from wallwm_core.policy import EventPolicy, Observation, PolicyStep, UnknownInstructionError

Interruption = tuple[Outcome, str]


@dataclasses.dataclass(frozen=True)
class ExecutionLimits:
    """Limits of one event run (nanoseconds)."""

    timeout_ns: int  # the whole goal
    max_duration_ns: int  # the event itself
    replan_fraction: float = 0.8  # infer the next chunk once this fraction of a chunk has run
    stale_hold_timeout_ns: int = 500_000_000  # hold this long for fresh observations, then FAULT
    poll_period_s: float = 0.005

    def __post_init__(self) -> None:
        if self.timeout_ns <= 0 or self.max_duration_ns <= 0:
            raise ValueError(f"time limits must be positive: {self}")
        if not 0.0 < self.replan_fraction <= 1.0:
            raise ValueError(f"replan_fraction must lie in (0, 1], got {self.replan_fraction}")
        if self.stale_hold_timeout_ns < 0:
            raise ValueError("stale_hold_timeout_ns must not be negative")


@dataclasses.dataclass(frozen=True)
class EventProgress:
    """What is reported after each chunk (the ExecuteEvent feedback)."""

    event_id: int
    instruction: str
    progress: float
    predicted_remaining_ns: int
    chunks: int
    inference_latency_ns: int


@dataclasses.dataclass(frozen=True)
class EventResult:
    instruction: str
    event_id: int
    outcome: Outcome
    message: str
    chunks: int
    duration_ns: int
    last_inference_latency_ns: int


class ExecutionIO(Protocol):
    """Everything the loop needs from outside."""

    def now_ns(self) -> int:
        """The clock the observations and chunks are stamped with (sim time under /clock)."""

    def fresh_observation(self, newer_than_ns: int) -> Observation | str:
        """The freshest observation stamped after ``newer_than_ns``, or why there is none."""

    def interruption(self) -> Interruption | None:
        """Cancel, preemption or shutdown of the goal, if any."""

    def publish_chunk(self, chunk: ActionChunk) -> None: ...

    def cancel_chunks(self, event_id: int) -> None:
        """Stop the controller executing the published chunks of ``event_id`` (it ended early)."""

    def report(self, progress: EventProgress) -> None:
        """Feedback after each published chunk."""

    def set_state(self, state: PolicyState, instruction: str, event_id: int, fault: str) -> None:
        """Policy state changes (RUNNING, HOLDING with the reason, FAULT with the reason)."""


class EventIdSource:
    """Unique event ids for one node (thread-safe enough: ``next`` on itertools.count is atomic)."""

    def __init__(self) -> None:
        self._ids: Iterator[int] = itertools.count(1)

    def next(self) -> int:
        return next(self._ids)


def run_event(
    policy: EventPolicy,
    instruction: str,
    event_id: int,
    limits: ExecutionLimits,
    io: ExecutionIO,
    on_step: Callable[[PolicyStep, int], Interruption | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> EventResult:
    """Run one event to its end; never raises for policy or input failures (they become FAULT).

    ``on_step(step, now_ns)`` sees every chunk after it is published and may stop the event.
    ``sleep(seconds)`` is how the loop waits between polls of the clock and the observations:
    wall-clock sleeping under ROS; a simulated-time driver advances its simulation there instead
    (wallwm_sim.closed_loop_policy), so the loop itself runs unchanged on simulated time.
    """
    start_ns = io.now_ns()
    chunks = 0
    latency_ns = 0
    last_stamp_ns = -1
    reported: tuple[PolicyState, str] | None = None

    def set_state(new_state: PolicyState, fault: str = "") -> None:
        nonlocal reported
        if (new_state, fault) != reported:  # changes only: status is not re-sent every poll
            reported = (new_state, fault)
            io.set_state(new_state, instruction, event_id, fault)

    def finish(outcome: Outcome, message: str) -> EventResult:
        if outcome != Outcome.SUCCEEDED and chunks > 0:
            io.cancel_chunks(event_id)
        if outcome == Outcome.FAULT:
            set_state(PolicyState.FAULT, message)
        elif outcome == Outcome.ESTOP:
            set_state(PolicyState.ESTOP, message)
        return EventResult(
            instruction, event_id, outcome, message, chunks, io.now_ns() - start_ns, latency_ns
        )

    def interruption() -> Interruption | None:
        if (reason := io.interruption()) is not None:
            return reason
        elapsed = io.now_ns() - start_ns
        if elapsed > limits.timeout_ns:  # the limit itself is allowed, as in the planner
            return (
                Outcome.TIMED_OUT,
                f"goal timeout of {limits.timeout_ns / NS_PER_S:.3f} s reached",
            )
        if elapsed > limits.max_duration_ns:
            return (
                Outcome.TIMED_OUT,
                f"event exceeded max duration {limits.max_duration_ns / NS_PER_S:.3f} s",
            )
        return None

    def wait_until(deadline_ns: int) -> Interruption | None:
        while io.now_ns() < deadline_ns:
            if (reason := interruption()) is not None:
                return reason
            sleep(limits.poll_period_s)
        return interruption()

    def wait_for_observation() -> Observation | Interruption:
        hold_start_ns = io.now_ns()
        while True:
            if (reason := interruption()) is not None:
                return reason
            observation = io.fresh_observation(last_stamp_ns)
            if isinstance(observation, Observation):
                return observation
            waited_ns = io.now_ns() - hold_start_ns
            if waited_ns > limits.stale_hold_timeout_ns:
                return (
                    Outcome.FAULT,
                    f"no fresh observation for {waited_ns / 1e6:.0f} ms: {observation}",
                )
            set_state(PolicyState.HOLDING, f"waiting for a fresh observation: {observation}")
            sleep(limits.poll_period_s)

    try:
        policy.start_event(instruction, event_id, limits.max_duration_ns)
    except UnknownInstructionError as error:
        return finish(Outcome.ABORTED, str(error))
    except Exception as error:  # a policy failure ends the event, never the caller's loop
        return finish(Outcome.FAULT, f"policy failed to start the event: {error}")

    while True:
        observed = wait_for_observation()
        if not isinstance(observed, Observation):
            return finish(*observed)
        set_state(PolicyState.RUNNING)
        started = time.perf_counter_ns()
        try:
            step = policy.next_chunk(observed)
        except Exception as error:
            return finish(Outcome.FAULT, f"inference failed: {type(error).__name__}: {error}")
        latency_ns = time.perf_counter_ns() - started
        last_stamp_ns = observed.stamp_ns
        chunk = step.chunk
        if chunk.stamp_ns != observed.stamp_ns:
            return finish(
                Outcome.FAULT,
                f"policy stamped its chunk {chunk.stamp_ns / NS_PER_S:.6f} s instead of the "
                f"observation time {observed.stamp_ns / NS_PER_S:.6f} s",
            )
        # Cancel or preemption during inference: the chunk is dropped, not published.
        if (reason := interruption()) is not None:
            return finish(*reason)
        io.publish_chunk(chunk)
        chunks += 1
        io.report(
            EventProgress(
                event_id=event_id,
                instruction=instruction,
                progress=float(min(max(step.progress, 0.0), 1.0)),
                predicted_remaining_ns=max(int(step.predicted_remaining_ns), 0),
                chunks=chunks,
                inference_latency_ns=latency_ns,
            )
        )
        if on_step is not None and (reason := on_step(step, io.now_ns())) is not None:
            return finish(*reason)
        if chunk.ends_event:
            if (reason := wait_until(chunk.stamp_ns + chunk.duration_ns)) is not None:
                return finish(*reason)
            return finish(Outcome.SUCCEEDED, f"event finished after {chunks} chunks")
        replan_at = chunk.stamp_ns + int(limits.replan_fraction * chunk.duration_ns)
        if (reason := wait_until(replan_at)) is not None:
            return finish(*reason)


@dataclasses.dataclass(frozen=True)
class TaskProgress:
    """What is reported after each chunk of a task (the ExecuteTask feedback)."""

    event_index: int
    instruction: str
    events_total: int  # 0 when the planner proposes events
    event_progress: float
    task_progress: float


@dataclasses.dataclass(frozen=True)
class TaskResult:
    outcome: Outcome
    message: str
    duration_ns: int
    events: tuple[EventRecord, ...]


def run_task(
    policy: EventPolicy,
    planner: EventPlanner,
    event_ids: EventIdSource,
    limits: ExecutionLimits,
    io: ExecutionIO,
    on_progress: Callable[[TaskProgress], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TaskResult:
    """Run the planner's events one after another until it is done or gives up.

    ``limits.timeout_ns``/``max_duration_ns`` are replaced per event by the planner's remaining
    task time and event budget. A proposer that raises ends the task with FAULT. ``sleep`` as in
    :func:`run_event`.
    """
    start_ns = io.now_ns()

    def result(outcome: Outcome, message: str) -> TaskResult:
        return TaskResult(outcome, message, io.now_ns() - start_ns, planner.records)

    try:
        planner.start(start_ns)
    except Exception as error:
        return result(Outcome.FAULT, f"the planner could not propose an event: {error}")

    while not planner.finished:
        instruction = planner.current_instruction
        assert instruction is not None
        now_ns = io.now_ns()
        event_limits = dataclasses.replace(
            limits,
            timeout_ns=max(1, planner.task_time_left_ns(now_ns)),
            max_duration_ns=max(1, planner.event_budget_ns(now_ns)),
        )
        attempts_before = len(planner.records)

        def feed_planner(
            step: PolicyStep, now_ns: int, instruction: str = instruction
        ) -> Interruption | None:
            progress = step.progress if math.isfinite(step.progress) else 0.0
            decision = planner.on_chunk(now_ns, progress, step.predicted_remaining_ns)
            if on_progress is not None:
                on_progress(
                    TaskProgress(
                        event_index=planner.event_index,
                        instruction=instruction,
                        events_total=planner.events_total or 0,
                        event_progress=planner.event_progress,
                        task_progress=planner.progress(),
                    )
                )
            if decision is PlannerDecision.CONTINUE:
                return None
            reason = planner.records[-1].message if planner.records else decision.name
            return Outcome.TIMED_OUT, f"the planner stopped the event: {reason}"

        event = run_event(
            policy, instruction, event_ids.next(), event_limits, io, feed_planner, sleep
        )
        if planner.finished or len(planner.records) > attempts_before:
            continue  # the planner already ended this attempt (timeout or stall) and decided
        try:
            now_ns = max(io.now_ns(), now_ns)
            if event.outcome in (
                Outcome.SUCCEEDED,
                Outcome.CANCELED,
                Outcome.ABORTED,
                Outcome.ESTOP,
            ):
                planner.on_event_outcome(now_ns, event.outcome, event.message)
            elif planner.tick(now_ns) is PlannerDecision.CONTINUE:
                planner.on_event_outcome(now_ns, event.outcome, event.message)
        except Exception as error:
            return result(Outcome.FAULT, f"the planner could not propose an event: {error}")

    if planner.done:
        return result(Outcome.SUCCEEDED, f"task finished after {len(planner.records)} events")
    return result(planner.task_outcome or Outcome.ABORTED, planner.abort_reason)

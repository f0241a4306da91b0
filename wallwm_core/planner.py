"""The event planner: which semantic event to run next, and when to give up.

A task is either a fixed, ordered list of event instructions, or a task text plus a *proposer*
(e.g. the VLM's next-event head) that returns the next instruction, or None when the task is done.
The planner is a plain state machine: the caller runs the current event with the policy and feeds
in what happens (model estimates per chunk, the executor's event outcome, cancellation, or just
the clock); every call returns a :class:`PlannerDecision`:

- CONTINUE: keep running the current event;
- ADVANCE: the current event finished; run the new ``current_instruction``, or stop if ``done``;
- REPLAN: the current attempt failed (timed out, stalled, faulted) and the planner set up another:
  stop the event and start ``current_instruction`` (the same event in list mode, a freshly
  proposed one in proposer mode);
- ABORT: the task is over and failed; ``abort_reason`` and ``task_outcome`` say why.

Time is injected: every call takes ``now_ns`` (integer nanoseconds, any monotonic clock, never
going backwards), so the planner is deterministic and tests need no sleeping.

Failure budget: ``max_retries_per_event`` failed attempts may be retried. In list mode the count is
per event; in proposer mode it counts consecutive failures since the last success (a re-proposed
event may be a different instruction). Every attempt is recorded as one :class:`EventRecord`, in
order, as the ExecuteTask result reports them ("one per event started").

Exceptions raised by a proposer propagate to the caller, which ends the task as it sees fit.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from typing import Protocol

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.outcome import Outcome


class PlannerDecision(enum.Enum):
    """What the caller should do after feeding the planner."""

    CONTINUE = enum.auto()
    ADVANCE = enum.auto()
    REPLAN = enum.auto()
    ABORT = enum.auto()


class PlannerState(enum.Enum):
    NOT_STARTED = enum.auto()
    RUNNING = enum.auto()
    DONE = enum.auto()
    ABORTED = enum.auto()


class EventProposer(Protocol):
    """Proposes the next event instruction for ``task`` given the attempts so far; None = done."""

    def __call__(self, task: str, history: tuple[EventRecord, ...]) -> str | None: ...


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """Limits of one task run. Times in nanoseconds; ``stall_timeout_ns = 0`` disables stalls."""

    task_timeout_ns: int
    event_timeout_ns: int
    max_retries_per_event: int = 2
    max_events: int = 32  # proposer mode: bound on events started (attempts included)
    stall_timeout_ns: int = 0
    min_progress_delta: float = 0.02  # progress gain that counts as "not stalled"

    def __post_init__(self) -> None:
        if self.task_timeout_ns <= 0:
            raise ValueError(f"task_timeout_ns must be positive, got {self.task_timeout_ns=}")
        if self.event_timeout_ns <= 0:
            raise ValueError(f"event_timeout_ns must be positive, got {self.event_timeout_ns=}")
        if self.max_retries_per_event < 0:
            raise ValueError(
                f"max_retries_per_event must not be negative, got {self.max_retries_per_event=}"
            )
        if self.max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {self.max_events=}")
        if self.stall_timeout_ns < 0:
            raise ValueError(
                f"stall_timeout_ns must not be negative (0 disables), got {self.stall_timeout_ns=}"
            )
        if not 0.0 < self.min_progress_delta <= 1.0:
            raise ValueError(
                f"min_progress_delta must lie in (0, 1], got {self.min_progress_delta=}"
            )


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """One attempt at one event: ``index`` counts events (0-based), ``attempt`` retries (1-based)."""

    index: int
    instruction: str
    attempt: int
    outcome: Outcome
    message: str
    start_ns: int
    end_ns: int
    chunks: int

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


_FAILURES_TO_RETRY = (Outcome.TIMED_OUT, Outcome.FAULT)


class EventPlanner:
    """Runs one task; see the module doc for the protocol. Exactly one of ``events`` / ``proposer``."""

    def __init__(
        self,
        config: PlannerConfig,
        *,
        events: Sequence[str] | None = None,
        task: str = "",
        proposer: EventProposer | None = None,
    ) -> None:
        if (events is None) == (proposer is None):
            raise ValueError("give exactly one of events (a fixed list) or proposer")
        if events is not None:
            events = tuple(events)
            if not events:
                raise ValueError("events must not be empty")
            if any(not isinstance(e, str) or not e.strip() for e in events):
                raise ValueError(f"every event instruction must be a non-empty string: {events}")
        self.config = config
        self.task = task
        self._events: tuple[str, ...] | None = events
        self._proposer = proposer
        self._state = PlannerState.NOT_STARTED
        self._records: list[EventRecord] = []
        self._task_start_ns = 0
        self._last_ns = 0
        self._abort_reason = ""
        self._task_outcome: Outcome | None = None
        # The current event.
        self._index = 0  # events completed so far == index of the current event
        self._instruction: str | None = None
        self._attempt = 0
        self._failures = 0  # toward max_retries_per_event (see module doc)
        self._event_start_ns = 0
        self._chunks = 0
        self._progress = 0.0  # latest estimate for the current attempt
        self._best_progress = 0.0  # max over the current event's attempts (monotonic reporting)
        self._predicted_end_ns: int | None = None
        self._stall_ref_progress = 0.0
        self._stall_ref_ns = 0

    # ----------------------------------------------------------------------------- properties
    @property
    def state(self) -> PlannerState:
        return self._state

    @property
    def done(self) -> bool:
        """The task finished successfully."""
        return self._state is PlannerState.DONE

    @property
    def finished(self) -> bool:
        return self._state in (PlannerState.DONE, PlannerState.ABORTED)

    @property
    def current_instruction(self) -> str | None:
        """The event to run now; None before start and once finished."""
        return self._instruction

    @property
    def event_index(self) -> int:
        """0-based index of the current event (== number of events completed)."""
        return self._index

    @property
    def attempt(self) -> int:
        """1-based attempt number of the current event."""
        return self._attempt

    @property
    def events_total(self) -> int | None:
        """Number of events when the list is fixed; None in proposer mode."""
        return None if self._events is None else len(self._events)

    @property
    def event_progress(self) -> float:
        """Latest model estimate (0..1) for the current attempt."""
        return self._progress

    @property
    def records(self) -> tuple[EventRecord, ...]:
        return tuple(self._records)

    @property
    def abort_reason(self) -> str:
        return self._abort_reason

    @property
    def task_outcome(self) -> Outcome | None:
        """SUCCEEDED when done; TIMED_OUT, CANCELED or ABORTED when aborted; None while running."""
        return self._task_outcome

    @property
    def predicted_event_end_ns(self) -> int | None:
        """When the model expects the current event to end (time of the estimate + remaining)."""
        return self._predicted_end_ns

    def progress(self) -> float:
        """Task progress in 0..1, non-decreasing over the run.

        Fixed list: (completed events + best progress of the current event) / events. Proposer
        mode has no known total; the same sum over ``max_events`` is a lower bound. 1.0 once done.
        """
        if self._state is PlannerState.DONE:
            return 1.0
        total = len(self._events) if self._events is not None else self.config.max_events
        return min(1.0, (self._index + self._best_progress) / total)

    def task_time_left_ns(self, now_ns: int) -> int:
        """Time until the task deadline (never negative)."""
        return max(0, self._task_start_ns + self.config.task_timeout_ns - now_ns)

    def event_budget_ns(self, now_ns: int) -> int:
        """Time the current attempt may still take: the event and task deadlines, the nearer.

        Pass it to ``EventPolicy.start_event`` as ``max_duration_ns``.
        """
        event_left = self._event_start_ns + self.config.event_timeout_ns - now_ns
        return max(0, min(event_left, self.task_time_left_ns(now_ns)))

    # ----------------------------------------------------------------------------- inputs
    def start(self, now_ns: int) -> PlannerDecision:
        """Start the task: ADVANCE to the first event (or to done, if the proposer has none)."""
        if self._state is not PlannerState.NOT_STARTED:
            raise RuntimeError("the planner was already started")
        self._task_start_ns = self._last_ns = now_ns
        self._state = PlannerState.RUNNING
        return self._begin_next_event(now_ns)

    def on_chunk(
        self,
        now_ns: int,
        progress: float,
        predicted_remaining_ns: int,
        ends_event: bool = False,
    ) -> PlannerDecision:
        """Feed the model's estimates for a new chunk of the current event.

        progress: 0..1 within the event (clipped); predicted_remaining_ns: time until the event
        ends, from ``now_ns`` (negative values clip to 0). ``ends_event`` means the event is
        finished (call it once the final chunk has run, or use :meth:`on_event_outcome`).
        """
        self._check_running(now_ns)
        if not math.isfinite(progress):
            raise ValueError(f"progress must be finite, got {progress=}")
        if decision := self._check_task_timeout(now_ns):
            return decision
        self._chunks += 1
        self._progress = min(1.0, max(0.0, float(progress)))
        self._best_progress = max(self._best_progress, self._progress)
        self._predicted_end_ns = now_ns + max(0, int(predicted_remaining_ns))
        if ends_event:
            return self._succeed(now_ns, "the policy reported the event finished")
        if self._progress >= self._stall_ref_progress + self.config.min_progress_delta:
            self._stall_ref_progress = self._progress
            self._stall_ref_ns = now_ns
        return self._check_event_time(now_ns)

    def on_event_outcome(self, now_ns: int, outcome: Outcome, message: str = "") -> PlannerDecision:
        """The executor ended the current event with ``outcome``.

        SUCCEEDED -> ADVANCE; TIMED_OUT or FAULT -> REPLAN while retries remain, else ABORT;
        CANCELED, ABORTED or ESTOP -> ABORT (someone above the planner stopped it).
        """
        self._check_running(now_ns)
        outcome = Outcome(outcome)
        if outcome is Outcome.SUCCEEDED:
            return self._succeed(now_ns, message or "the event succeeded")
        if outcome in _FAILURES_TO_RETRY:
            return self._fail(now_ns, outcome, message or f"the event ended {outcome.name}")
        self._end_attempt(now_ns, outcome, message or f"the event ended {outcome.name}")
        return self._abort(
            outcome,
            f"event {self._index + 1} {self._last_instruction!r} was {outcome.name.lower()}"
            + (f": {message}" if message else ""),
        )

    def tick(self, now_ns: int) -> PlannerDecision:
        """Check the clock alone (task and event timeouts, stalls) when no chunk arrived."""
        self._check_running(now_ns)
        if decision := self._check_task_timeout(now_ns):
            return decision
        return self._check_event_time(now_ns)

    def cancel(self, now_ns: int, message: str = "canceled by the client") -> PlannerDecision:
        """Cancel the task: the current attempt is recorded CANCELED; always ABORT."""
        self._check_running(now_ns)
        self._end_attempt(now_ns, Outcome.CANCELED, message)
        return self._abort(Outcome.CANCELED, message)

    # ----------------------------------------------------------------------------- internals
    @property
    def _last_instruction(self) -> str:
        return self._records[-1].instruction if self._records else ""

    def _check_running(self, now_ns: int) -> None:
        if self._state is not PlannerState.RUNNING:
            raise RuntimeError(f"the planner is not running (state {self._state.name})")
        if now_ns < self._last_ns:
            raise ValueError(f"time went backwards: {now_ns=} < last {self._last_ns}")
        self._last_ns = now_ns

    def _check_task_timeout(self, now_ns: int) -> PlannerDecision | None:
        elapsed = now_ns - self._task_start_ns
        if elapsed <= self.config.task_timeout_ns:
            return None
        self._end_attempt(now_ns, Outcome.TIMED_OUT, "the task timed out")
        return self._abort(
            Outcome.TIMED_OUT,
            f"task timed out after {elapsed / NS_PER_S:.2f} s (limit "
            f"{self.config.task_timeout_ns / NS_PER_S:.2f} s) "
            f"during event {self._index + 1} {self._last_instruction!r}",
        )

    def _check_event_time(self, now_ns: int) -> PlannerDecision:
        elapsed = now_ns - self._event_start_ns
        if elapsed > self.config.event_timeout_ns:
            return self._fail(
                now_ns,
                Outcome.TIMED_OUT,
                f"event timed out after {elapsed / NS_PER_S:.2f} s (limit "
                f"{self.config.event_timeout_ns / NS_PER_S:.2f} s)",
            )
        stalled_for = now_ns - self._stall_ref_ns
        if self.config.stall_timeout_ns and stalled_for > self.config.stall_timeout_ns:
            return self._fail(
                now_ns,
                Outcome.TIMED_OUT,
                f"stalled: progress stayed below {self._stall_ref_progress:.3f} + "
                f"{self.config.min_progress_delta} for {stalled_for / NS_PER_S:.2f} s",
            )
        return PlannerDecision.CONTINUE

    def _end_attempt(self, now_ns: int, outcome: Outcome, message: str) -> None:
        assert self._instruction is not None
        self._records.append(
            EventRecord(
                index=self._index,
                instruction=self._instruction,
                attempt=self._attempt,
                outcome=outcome,
                message=message,
                start_ns=self._event_start_ns,
                end_ns=now_ns,
                chunks=self._chunks,
            )
        )
        self._instruction = None

    def _succeed(self, now_ns: int, message: str) -> PlannerDecision:
        self._end_attempt(now_ns, Outcome.SUCCEEDED, message)
        self._index += 1
        self._failures = 0
        self._best_progress = 0.0
        return self._begin_next_event(now_ns)

    def _fail(self, now_ns: int, outcome: Outcome, message: str) -> PlannerDecision:
        instruction = self._instruction
        self._end_attempt(now_ns, outcome, message)
        self._failures += 1
        if self._failures > self.config.max_retries_per_event:
            scope = "this event" if self._events is not None else "consecutive"
            return self._abort(
                Outcome.ABORTED,
                f"event {self._index + 1} {instruction!r} failed {self._failures} times "
                f"({scope}; max_retries_per_event={self.config.max_retries_per_event}); "
                f"last: {outcome.name}: {message}",
            )
        if self._events is not None:
            assert instruction is not None
            self._start_attempt(instruction, self._attempt + 1, now_ns)
            return PlannerDecision.REPLAN
        decision = self._propose(now_ns, attempt=self._attempt + 1)
        if decision is PlannerDecision.ADVANCE and not self.done:
            return PlannerDecision.REPLAN
        return decision

    def _begin_next_event(self, now_ns: int) -> PlannerDecision:
        if self._events is not None:
            if self._index >= len(self._events):
                return self._finish()
            self._start_attempt(self._events[self._index], 1, now_ns)
            return PlannerDecision.ADVANCE
        return self._propose(now_ns, attempt=1)

    def _propose(self, now_ns: int, attempt: int) -> PlannerDecision:
        assert self._proposer is not None
        instruction = self._proposer(self.task, self.records)
        if instruction is None:  # trusted even right after a failure: the proposer sees the scene
            return self._finish()
        if not isinstance(instruction, str) or not instruction.strip():
            return self._abort(
                Outcome.ABORTED, f"the proposer returned an invalid instruction {instruction!r}"
            )
        if len(self._records) >= self.config.max_events:
            return self._abort(
                Outcome.ABORTED,
                f"max_events={self.config.max_events} events started and the proposer still "
                f"proposes {instruction!r}",
            )
        self._start_attempt(instruction, attempt, now_ns)
        return PlannerDecision.ADVANCE

    def _start_attempt(self, instruction: str, attempt: int, now_ns: int) -> None:
        self._instruction = instruction
        self._attempt = attempt
        self._event_start_ns = now_ns
        self._chunks = 0
        self._progress = 0.0
        self._predicted_end_ns = None
        self._stall_ref_progress = 0.0
        self._stall_ref_ns = now_ns

    def _finish(self) -> PlannerDecision:
        self._state = PlannerState.DONE
        self._task_outcome = Outcome.SUCCEEDED
        self._instruction = None
        return PlannerDecision.ADVANCE

    def _abort(self, outcome: Outcome, reason: str) -> PlannerDecision:
        self._state = PlannerState.ABORTED
        self._task_outcome = outcome
        self._abort_reason = reason
        self._instruction = None
        return PlannerDecision.ABORT

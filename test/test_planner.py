"""The event planner: decisions, retries, timeouts, stalls, proposer mode, records, progress."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from wallwm_core.outcome import Outcome
from wallwm_core.planner import (
    EventPlanner,
    EventRecord,
    PlannerConfig,
    PlannerDecision,
    PlannerState,
)

S = 1_000_000_000
CONFIG = PlannerConfig(
    task_timeout_ns=100 * S,
    event_timeout_ns=20 * S,
    max_retries_per_event=1,
    max_events=5,
    stall_timeout_ns=0,
    min_progress_delta=0.05,
)
EVENTS = ("open the drawer", "pick the cup", "close the drawer")


def _run_event(planner: EventPlanner, now_ns: int, steps: int = 4) -> tuple[int, PlannerDecision]:
    """Feed chunks with rising progress; the last one ends the event."""
    decision = PlannerDecision.CONTINUE
    for k in range(1, steps + 1):
        now_ns += S
        decision = planner.on_chunk(
            now_ns,
            progress=k / steps,
            predicted_remaining_ns=(steps - k) * S,
            ends_event=k == steps,
        )
        if k < steps:
            assert decision is PlannerDecision.CONTINUE
    return now_ns, decision


def test_fixed_list_runs_in_order_to_completion() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS, task="tidy up")
    assert planner.state is PlannerState.NOT_STARTED
    assert planner.start(0) is PlannerDecision.ADVANCE
    seen = [planner.current_instruction]
    now = 0
    for index in range(len(EVENTS)):
        assert planner.event_index == index
        now, decision = _run_event(planner, now)
        assert decision is PlannerDecision.ADVANCE
        if planner.current_instruction is not None:
            seen.append(planner.current_instruction)
    assert seen == list(EVENTS)
    assert planner.done and planner.finished and planner.current_instruction is None
    assert planner.task_outcome is Outcome.SUCCEEDED
    assert [(r.instruction, r.outcome, r.attempt, r.chunks) for r in planner.records] == [
        (e, Outcome.SUCCEEDED, 1, 4) for e in EVENTS
    ]
    assert [(r.start_ns, r.end_ns) for r in planner.records] == [
        (0, 4 * S),
        (4 * S, 8 * S),
        (8 * S, 12 * S),
    ]
    assert planner.progress() == 1.0
    with pytest.raises(RuntimeError, match="not running"):
        planner.tick(now)


def test_executor_outcome_succeeded_advances() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS[:2])
    planner.start(0)
    assert planner.on_chunk(S, 0.3, 2 * S) is PlannerDecision.CONTINUE
    assert planner.on_event_outcome(3 * S, Outcome.SUCCEEDED) is PlannerDecision.ADVANCE
    assert planner.current_instruction == EVENTS[1]
    assert planner.records[0].outcome is Outcome.SUCCEEDED


def test_failure_replans_the_same_event_then_succeeds() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS[:2])
    planner.start(0)
    decision = planner.on_event_outcome(5 * S, Outcome.FAULT, "camera stale")
    assert decision is PlannerDecision.REPLAN
    assert planner.current_instruction == EVENTS[0]
    assert planner.attempt == 2 and planner.event_index == 0
    _, decision = _run_event(planner, 5 * S)
    assert decision is PlannerDecision.ADVANCE
    assert planner.current_instruction == EVENTS[1]
    assert planner.attempt == 1
    first, retry = planner.records
    assert (first.outcome, first.message, first.attempt) == (Outcome.FAULT, "camera stale", 1)
    assert (retry.outcome, retry.attempt, retry.start_ns) == (Outcome.SUCCEEDED, 2, 5 * S)


def test_retries_exhausted_aborts_with_reason() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS)
    planner.start(0)
    assert planner.on_event_outcome(S, Outcome.TIMED_OUT) is PlannerDecision.REPLAN
    assert planner.on_event_outcome(2 * S, Outcome.FAULT, "joint limit") is PlannerDecision.ABORT
    assert planner.state is PlannerState.ABORTED and not planner.done
    assert planner.task_outcome is Outcome.ABORTED
    assert "'open the drawer' failed 2 times" in planner.abort_reason
    assert "max_retries_per_event=1" in planner.abort_reason
    assert "joint limit" in planner.abort_reason
    assert [r.outcome for r in planner.records] == [Outcome.TIMED_OUT, Outcome.FAULT]
    assert planner.current_instruction is None


def test_successes_reset_the_failure_budget() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS[:2])
    planner.start(0)
    assert planner.on_event_outcome(S, Outcome.FAULT) is PlannerDecision.REPLAN
    assert planner.on_event_outcome(2 * S, Outcome.SUCCEEDED) is PlannerDecision.ADVANCE
    assert planner.on_event_outcome(3 * S, Outcome.FAULT) is PlannerDecision.REPLAN


def test_event_timeout_replans() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS)
    planner.start(0)
    assert planner.tick(20 * S) is PlannerDecision.CONTINUE  # the limit itself is allowed
    assert planner.on_chunk(20 * S + 1, 0.9, S) is PlannerDecision.REPLAN
    assert planner.records[-1].outcome is Outcome.TIMED_OUT
    # seconds, not raw nanoseconds (issue 14, item 12)
    assert "event timed out after 20.00 s (limit 20.00 s)" in planner.records[-1].message
    assert planner.event_budget_ns(20 * S + 1) == 20 * S  # a fresh attempt gets the full budget


def test_task_timeout_aborts() -> None:
    config = dataclasses.replace(CONFIG, task_timeout_ns=10 * S)
    planner = EventPlanner(config, events=EVENTS)
    planner.start(0)
    now, _ = _run_event(planner, 0, steps=4)
    assert planner.event_budget_ns(now) == 6 * S  # task deadline nearer than the event's
    assert planner.tick(10 * S) is PlannerDecision.CONTINUE
    assert planner.on_chunk(10 * S + 1, 0.5, S) is PlannerDecision.ABORT
    assert planner.task_outcome is Outcome.TIMED_OUT
    assert "task timed out after 10.00 s (limit 10.00 s)" in planner.abort_reason
    assert "during event 2 'pick the cup'" in planner.abort_reason  # events count from 1
    assert planner.records[-1].outcome is Outcome.TIMED_OUT
    assert planner.task_time_left_ns(10 * S + 1) == 0


def test_stall_replans() -> None:
    config = dataclasses.replace(CONFIG, stall_timeout_ns=3 * S, min_progress_delta=0.1)
    planner = EventPlanner(config, events=EVENTS)
    planner.start(0)
    assert planner.on_chunk(1 * S, 0.2, 5 * S) is PlannerDecision.CONTINUE  # +0.2 from 0
    assert planner.on_chunk(2 * S, 0.25, 5 * S) is PlannerDecision.CONTINUE  # +0.05: too little
    assert planner.on_chunk(3 * S, 0.28, 5 * S) is PlannerDecision.CONTINUE
    assert planner.on_chunk(4 * S, 0.29, 5 * S) is PlannerDecision.CONTINUE  # 3 s since 0.2
    assert planner.on_chunk(4 * S + 1, 0.29, 5 * S) is PlannerDecision.REPLAN
    assert "stalled" in planner.records[-1].message
    assert planner.current_instruction == EVENTS[0] and planner.attempt == 2


def test_steady_progress_does_not_stall() -> None:
    config = dataclasses.replace(CONFIG, stall_timeout_ns=3 * S, min_progress_delta=0.1)
    planner = EventPlanner(config, events=EVENTS)
    planner.start(0)
    for k in range(1, 10):
        assert planner.on_chunk(2 * k * S, 0.1 * k, S) is PlannerDecision.CONTINUE


def test_proposer_proposes_until_none() -> None:
    plan = iter(["press red", "press green", "press blue"])
    calls: list[tuple[str, tuple[EventRecord, ...]]] = []

    def proposer(task: str, history: tuple[EventRecord, ...]) -> str | None:
        calls.append((task, history))
        return next(plan, None)

    planner = EventPlanner(CONFIG, task="press the buttons", proposer=proposer)
    assert planner.events_total is None
    assert planner.start(0) is PlannerDecision.ADVANCE
    now = 0
    seen = []
    while not planner.finished:
        seen.append(planner.current_instruction)
        now, decision = _run_event(planner, now)
        assert decision is PlannerDecision.ADVANCE
    assert seen == ["press red", "press green", "press blue"]
    assert planner.done and planner.task_outcome is Outcome.SUCCEEDED
    assert [len(history) for _, history in calls] == [0, 1, 2, 3]
    assert all(task == "press the buttons" for task, _ in calls)
    assert calls[-1][1][-1].instruction == "press blue"


def test_proposer_is_asked_again_after_a_failure() -> None:
    answers = iter(["grasp handle", "grasp handle from the left", None])
    planner = EventPlanner(
        CONFIG, task="open the drawer", proposer=lambda task, history: next(answers)
    )
    planner.start(0)
    assert planner.on_event_outcome(S, Outcome.FAULT) is PlannerDecision.REPLAN
    assert planner.current_instruction == "grasp handle from the left"
    assert planner.on_event_outcome(2 * S, Outcome.SUCCEEDED) is PlannerDecision.ADVANCE
    assert planner.done


def test_proposer_mode_is_bounded_by_max_events() -> None:
    config = dataclasses.replace(CONFIG, max_events=3)
    planner = EventPlanner(config, task="forever", proposer=lambda task, history: "wiggle")
    planner.start(0)
    decisions = [planner.on_event_outcome(k * S, Outcome.SUCCEEDED) for k in range(1, 4)]
    assert decisions == [PlannerDecision.ADVANCE, PlannerDecision.ADVANCE, PlannerDecision.ABORT]
    assert len(planner.records) == 3
    assert planner.task_outcome is Outcome.ABORTED
    assert "max_events=3" in planner.abort_reason


def test_proposer_with_nothing_to_do_is_done_immediately() -> None:
    planner = EventPlanner(CONFIG, task="nothing", proposer=lambda task, history: None)
    assert planner.start(0) is PlannerDecision.ADVANCE
    assert planner.done and planner.records == ()


def test_cancel_aborts_and_records_canceled() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS)
    planner.start(0)
    _run_event(planner, 0)
    assert planner.cancel(6 * S) is PlannerDecision.ABORT
    assert planner.task_outcome is Outcome.CANCELED
    assert planner.records[-1].outcome is Outcome.CANCELED
    assert planner.records[-1].instruction == EVENTS[1]
    assert planner.records[-1].end_ns == 6 * S


@pytest.mark.parametrize("outcome", [Outcome.CANCELED, Outcome.ABORTED])
def test_canceled_or_aborted_event_aborts_without_retry(outcome: Outcome) -> None:
    planner = EventPlanner(CONFIG, events=EVENTS)
    planner.start(0)
    assert planner.on_event_outcome(S, outcome, "preempted") is PlannerDecision.ABORT
    assert planner.task_outcome is outcome
    assert "preempted" in planner.abort_reason
    assert [r.outcome for r in planner.records] == [outcome]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task_timeout_ns", 0),
        ("event_timeout_ns", -1),
        ("max_retries_per_event", -1),
        ("max_events", 0),
        ("stall_timeout_ns", -5),
        ("min_progress_delta", 0.0),
        ("min_progress_delta", 1.5),
    ],
)
def test_invalid_config_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(CONFIG, **{field: value})


def test_invalid_task_definitions_raise() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        EventPlanner(CONFIG)
    with pytest.raises(ValueError, match="exactly one"):
        EventPlanner(CONFIG, events=EVENTS, proposer=lambda task, history: None)
    with pytest.raises(ValueError, match="must not be empty"):
        EventPlanner(CONFIG, events=[])
    with pytest.raises(ValueError, match="non-empty string"):
        EventPlanner(CONFIG, events=["ok", " "])


def test_misuse_raises() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS)
    with pytest.raises(RuntimeError, match="not running"):
        planner.on_chunk(0, 0.1, S)
    planner.start(10)
    with pytest.raises(RuntimeError, match="already started"):
        planner.start(10)
    with pytest.raises(ValueError, match="backwards"):
        planner.tick(5)
    with pytest.raises(ValueError, match="finite"):
        planner.on_chunk(11, float("nan"), S)


def test_overall_progress_is_monotonic() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS[:2])
    planner.start(0)
    history = [planner.progress()]
    # Noisy estimates, a failure and retry (progress restarts at 0), then success.
    for now, progress in [(1, 0.4), (2, 0.3), (3, 0.6)]:
        planner.on_chunk(now * S, progress, S)
        history.append(planner.progress())
    assert planner.on_event_outcome(4 * S, Outcome.FAULT) is PlannerDecision.REPLAN
    history.append(planner.progress())
    planner.on_chunk(5 * S, 0.1, S)
    history.append(planner.progress())
    planner.on_chunk(6 * S, 0.9, S, ends_event=True)
    history.append(planner.progress())
    planner.on_chunk(7 * S, 0.5, S)
    history.append(planner.progress())
    planner.on_event_outcome(8 * S, Outcome.SUCCEEDED)
    history.append(planner.progress())
    assert all(b >= a for a, b in itertools.pairwise(history))
    assert history[1] == pytest.approx(0.2)  # (0 + 0.4) / 2
    assert history[2] == history[1]  # the estimate dropped to 0.3: reported progress holds
    assert history[4] == history[5] == pytest.approx(0.3)  # the retry keeps the best so far
    assert history[6] == pytest.approx(0.5)  # first event done
    assert history[7] == pytest.approx(0.75)
    assert history[-1] == 1.0


def test_predicted_end_follows_the_latest_estimate() -> None:
    planner = EventPlanner(CONFIG, events=EVENTS)
    planner.start(0)
    assert planner.predicted_event_end_ns is None
    planner.on_chunk(2 * S, 0.5, 3 * S)
    assert planner.predicted_event_end_ns == 5 * S
    assert planner.event_progress == 0.5

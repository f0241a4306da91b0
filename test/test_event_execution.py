"""The event/task loop without ROS: a fake clock and fake observations drive it deterministically."""

from __future__ import annotations

import dataclasses

import pytest

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.event_execution import (
    EventIdSource,
    ExecutionLimits,
    run_event,
    run_task,
)
from wallwm_core.outcome import Outcome, PolicyState
from wallwm_core.planner import EventPlanner, PlannerConfig
from wallwm_core.policy import Observation, PolicyStep
from wallwm_core.replay_policy import ReplayPolicy

MS = 1_000_000


class FakeIO:
    """Clock advancing 1 ms per reading; observations every ``frame_ns`` unless cameras stop."""

    def __init__(self, frame_ns: int = 20 * MS) -> None:
        self.clock_ns = 0
        self.frame_ns = frame_ns
        self.cameras_stop_at_ns: int | None = None
        self.cameras_resume_at_ns: int | None = None
        self.chunks = []
        self.feedback = []
        self.states: list[tuple[PolicyState, str]] = []
        self.cancel_after_chunks: int | None = None
        self.controller_latched_after_chunks: int | None = None
        self.canceled_events: list[int] = []

    def now_ns(self) -> int:
        self.clock_ns += MS
        return self.clock_ns

    def fresh_observation(self, newer_than_ns: int):
        now = self.clock_ns
        stopped = self.cameras_stop_at_ns is not None and now >= self.cameras_stop_at_ns
        resumed = self.cameras_resume_at_ns is not None and now >= self.cameras_resume_at_ns
        if stopped and not resumed:
            return "camera 'front' is 120 ms old (bound 100 ms)"
        stamp = now - now % self.frame_ns
        if stamp <= newer_than_ns:
            return "no observation newer than the last one used"
        return Observation(stamp_ns=stamp)

    def interruption(self):
        latched = self.controller_latched_after_chunks
        if latched is not None and len(self.chunks) >= latched:
            return Outcome.ESTOP, "the controller's e-stop is engaged"
        if self.cancel_after_chunks is not None and len(self.chunks) >= self.cancel_after_chunks:
            return Outcome.CANCELED, "canceled by the client"
        return None

    def publish_chunk(self, chunk) -> None:
        self.chunks.append(chunk)

    def cancel_chunks(self, event_id: int) -> None:
        self.canceled_events.append(event_id)

    def report(self, progress) -> None:
        self.feedback.append(progress)

    def set_state(self, state, instruction, event_id, fault) -> None:
        self.states.append((state, fault))


LIMITS = ExecutionLimits(
    timeout_ns=60 * NS_PER_S,
    max_duration_ns=30 * NS_PER_S,
    stale_hold_timeout_ns=200 * MS,
    poll_period_s=0.0,
)


@pytest.fixture
def policy(replay_file) -> ReplayPolicy:
    return ReplayPolicy.from_yaml(replay_file)


def test_event_succeeds_with_each_chunk_on_a_fresh_observation(policy):
    io = FakeIO()
    result = run_event(policy, "reach", 7, LIMITS, io)

    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert result.chunks == len(io.chunks) == len(io.feedback) >= 3
    stamps = [c.stamp_ns for c in io.chunks]
    assert stamps == sorted(set(stamps))  # never the same observation twice
    assert io.chunks[-1].ends_event and not any(c.ends_event for c in io.chunks[:-1])
    # success only once the final chunk has run to its end
    last = io.chunks[-1]
    assert result.duration_ns >= last.stamp_ns + last.duration_ns - 0
    assert [f.chunks for f in io.feedback] == list(range(1, result.chunks + 1))
    assert io.states[0][0] == PolicyState.RUNNING


def test_unknown_instruction_aborts_without_chunks(policy):
    io = FakeIO()
    result = run_event(policy, "juggle", 1, LIMITS, io)
    assert result.outcome == Outcome.ABORTED and "no script" in result.message
    assert io.chunks == []


def test_cameras_stopping_mid_event_holds_then_faults_without_chunks(policy):
    io = FakeIO()
    io.cameras_stop_at_ns = 300 * MS
    result = run_event(policy, "long wipe", 1, LIMITS, io)

    assert result.outcome == Outcome.FAULT
    assert "no fresh observation" in result.message and "'front'" in result.message
    assert all(c.stamp_ns < 300 * MS for c in io.chunks)
    states = [s for s, _ in io.states]
    assert PolicyState.HOLDING in states and states[-1] == PolicyState.FAULT
    assert "'front'" in io.states[-1][1]


def test_short_camera_gap_is_held_through_and_the_event_recovers(policy):
    io = FakeIO()
    io.cameras_stop_at_ns, io.cameras_resume_at_ns = 200 * MS, 300 * MS  # < hold timeout
    result = run_event(policy, "reach", 1, LIMITS, io)

    assert result.outcome == Outcome.SUCCEEDED
    states = [s for s, _ in io.states]
    assert PolicyState.HOLDING in states
    assert states[states.index(PolicyState.HOLDING) + 1] == PolicyState.RUNNING
    assert not any(200 * MS <= c.stamp_ns < 300 * MS for c in io.chunks)


def test_inference_error_faults_at_once(policy):
    class Exploding:
        def start_event(self, *args):
            pass

        def next_chunk(self, observation):
            raise RuntimeError("CUDA out of memory")

    io = FakeIO()
    result = run_event(Exploding(), "reach", 1, LIMITS, io)
    assert result.outcome == Outcome.FAULT and "CUDA out of memory" in result.message
    assert io.chunks == [] and io.states[-1][0] == PolicyState.FAULT


def test_chunk_not_stamped_with_its_observation_is_a_fault(policy):
    class WrongStamp:
        def start_event(self, *args):
            policy.start_event(*args)

        def next_chunk(self, observation):
            step = policy.next_chunk(observation)
            chunk = dataclasses.replace(step.chunk, stamp_ns=observation.stamp_ns + 1)
            return PolicyStep(chunk, step.progress, step.predicted_remaining_ns)

    io = FakeIO()
    result = run_event(WrongStamp(), "reach", 1, LIMITS, io)
    assert result.outcome == Outcome.FAULT and "instead of the observation time" in result.message
    assert io.chunks == []


def test_cancel_and_time_limits(policy):
    io = FakeIO()
    io.cancel_after_chunks = 2
    result = run_event(policy, "long wipe", 1, LIMITS, io)
    assert result.outcome == Outcome.CANCELED and result.chunks == len(io.chunks) == 2
    assert io.canceled_events == [1]  # the controller is told to stop the event's chunks

    io = FakeIO()
    short = dataclasses.replace(LIMITS, max_duration_ns=500 * MS)
    result = run_event(policy, "long wipe", 2, short, io)
    assert result.outcome == Outcome.TIMED_OUT and "max duration" in result.message
    assert 500 * MS <= result.duration_ns < 600 * MS
    assert io.canceled_events == [2]


def test_succeeded_event_cancels_nothing(policy):
    io = FakeIO()
    assert run_event(policy, "reach", 1, LIMITS, io).outcome == Outcome.SUCCEEDED
    assert io.canceled_events == []


def test_controller_estop_ends_the_event_and_the_task_without_retries(policy):
    io = FakeIO()
    io.controller_latched_after_chunks = 0
    result = run_event(policy, "long wipe", 1, LIMITS, io)
    assert result.outcome == Outcome.ESTOP and io.chunks == []  # nothing published into it
    assert io.states[-1] == (PolicyState.ESTOP, "the controller's e-stop is engaged")

    io = FakeIO()
    io.controller_latched_after_chunks = 2
    planner = _planner(events=["long wipe", "reach"], max_retries_per_event=3)
    result = run_task(policy, planner, EventIdSource(), LIMITS, io)
    assert result.outcome == Outcome.ESTOP and len(io.chunks) == 2
    assert [r.outcome for r in result.events] == [Outcome.ESTOP]  # no retry, no next event
    assert io.canceled_events == [1]


def _planner(events=None, proposer=None, **overrides) -> EventPlanner:
    config = PlannerConfig(
        task_timeout_ns=overrides.pop("task_timeout_ns", 60 * NS_PER_S),
        event_timeout_ns=overrides.pop("event_timeout_ns", 20 * NS_PER_S),
        **overrides,
    )
    return EventPlanner(config, events=events, proposer=proposer, task="demo")


def test_task_runs_events_in_order_and_reports_progress(policy):
    io = FakeIO()
    progress = []
    planner = _planner(events=["reach", "reach"])
    result = run_task(policy, planner, EventIdSource(), LIMITS, io, progress.append)

    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert [(r.instruction, r.outcome) for r in result.events] == [("reach", Outcome.SUCCEEDED)] * 2
    assert len({c.event_id for c in io.chunks}) == 2
    assert [p.event_index for p in progress] == sorted(p.event_index for p in progress)
    assert progress[-1].events_total == 2 and 0.5 <= progress[-1].task_progress <= 1.0


def test_task_event_timeout_is_retried_then_aborted(policy):
    io = FakeIO()
    planner = _planner(events=["long wipe"], event_timeout_ns=300 * MS, max_retries_per_event=1)
    result = run_task(policy, planner, EventIdSource(), LIMITS, io)

    assert result.outcome == Outcome.ABORTED
    assert [r.outcome for r in result.events] == [Outcome.TIMED_OUT] * 2
    assert "failed 2 times" in result.message


def test_task_with_proposer_and_unknown_event(policy):
    proposals = iter(["reach", "juggle"])
    planner = _planner(proposer=lambda task, history: next(proposals))
    result = run_task(policy, planner, EventIdSource(), LIMITS, FakeIO())
    assert result.outcome == Outcome.ABORTED
    assert [(r.instruction, r.outcome) for r in result.events] == [
        ("reach", Outcome.SUCCEEDED),
        ("juggle", Outcome.ABORTED),
    ]


def test_task_whose_proposer_raises_faults(policy):
    def broken(task, history):
        raise RuntimeError("VLM unavailable")

    result = run_task(policy, _planner(proposer=broken), EventIdSource(), LIMITS, FakeIO())
    assert result.outcome == Outcome.FAULT and "VLM unavailable" in result.message


def test_task_cancel_ends_with_canceled(policy):
    io = FakeIO()
    io.cancel_after_chunks = 3
    result = run_task(policy, _planner(events=["long wipe", "reach"]), EventIdSource(), LIMITS, io)
    assert result.outcome == Outcome.CANCELED
    assert [r.outcome for r in result.events] == [Outcome.CANCELED]

"""Event outcomes judged twice: by the policy's event loop (the planner) and by the rubric.

The planner's SUCCEEDED means "the policy's last chunk of the event ran to its end": the policy
*believes* the event is done. The rubric knows: each event of a task (a
:class:`~wallwm_sim.tasks.Subtask`) names the milestone that shows it done (``lift`` for a pick,
``place`` for a placement, ...). An evaluation therefore reports both for every attempt and
counts an event as **succeeded when its milestone earns its points** (events no milestone
measures fall back to the planner's outcome); every attempt where the two disagree is flagged.

Where the milestone is checked: the simulator harness (wallwm_sim.closed_loop_policy) checks it
at the end of the attempt; the ROS path only has the sim node's
``get_task_progress`` at the end of the episode and checks it there (``checked_at`` says which).
Latched milestones (reach, grasp, lift, presses) count once reached; unlatched ones (a cube
resting on a zone, in the bin, stacked) must hold at that moment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from wallwm_sim.tasks import Subtask

SUCCEEDED = "SUCCEEDED"
EVENT_END = "event_end"
EPISODE_END = "episode_end"


@dataclasses.dataclass(frozen=True)
class EventVerdict:
    """One attempt at one event, with the planner's and the rubric's verdicts.

    ``index``: the event's place in the task (0-based), ``attempt``: 1 + retries before it.
    ``chunks``: chunks the attempt executed (-1 when unknown). ``milestone``: the rubric
    milestone of the event ("" when none measures it), ``milestone_reached``: whether it earned
    its points at ``checked_at`` (None without a milestone). ``succeeded``: the rubric's verdict
    when there is a milestone, else the planner's. ``agrees``: planner and rubric say the same.
    """

    index: int
    instruction: str
    attempt: int
    planner_outcome: str
    message: str
    chunks: int
    duration_s: float
    milestone: str
    milestone_reached: bool | None
    checked_at: str
    succeeded: bool
    agrees: bool


def judge(
    index: int,
    instruction: str,
    attempt: int,
    planner_outcome: str,
    message: str,
    chunks: int,
    duration_s: float,
    milestone: str,
    milestone_reached: bool | None,
    checked_at: str,
) -> EventVerdict:
    """An :class:`EventVerdict` with ``succeeded`` and ``agrees`` derived (see its doc)."""
    planner_ok = planner_outcome == SUCCEEDED
    reached = milestone_reached if milestone else None
    return EventVerdict(
        index=index,
        instruction=instruction,
        attempt=attempt,
        planner_outcome=planner_outcome,
        message=message,
        chunks=chunks,
        duration_s=duration_s,
        milestone=milestone,
        milestone_reached=reached,
        checked_at=checked_at,
        succeeded=planner_ok if reached is None else reached,
        agrees=reached is None or reached == planner_ok,
    )


def milestone_of(subtasks: Sequence[Subtask], index: int) -> str:
    """The milestone of event ``index``; "" past the task's events."""
    return subtasks[index].milestone if 0 <= index < len(subtasks) else ""


def indices_by_repetition(instructions: Sequence[str]) -> list[tuple[int, int]]:
    """(event index, attempt) per attempt when only the instructions are known (the ROS result):
    the planner retries an event with the same instruction right after the failed attempt, so a
    repeated instruction is a retry and a new one the next event."""
    result: list[tuple[int, int]] = []
    for position, instruction in enumerate(instructions):
        if position and instruction == instructions[position - 1]:
            index, attempt = result[-1]
            result.append((index, attempt + 1))
        else:
            result.append((result[-1][0] + 1 if result else 0, 1))
    return result


def verdicts_at_episode_end(
    events: Sequence[tuple[str, str, str]],
    subtasks: Sequence[Subtask],
    achieved: Mapping[str, bool],
) -> tuple[EventVerdict, ...]:
    """Verdicts for the ROS path: ``events`` (instruction, outcome name, message) in order, the
    milestones ``achieved`` when the episode ended (names of ``criteria_met``)."""
    instructions = [instruction for instruction, _, _ in events]
    verdicts = []
    for (instruction, outcome, message), (index, attempt) in zip(
        events, indices_by_repetition(instructions), strict=True
    ):
        milestone = milestone_of(subtasks, index)
        verdicts.append(
            judge(
                index,
                instruction,
                attempt,
                outcome,
                message,
                chunks=-1,
                duration_s=float("nan"),
                milestone=milestone,
                milestone_reached=bool(achieved.get(milestone, False)) if milestone else None,
                checked_at=EPISODE_END,
            )
        )
    return tuple(verdicts)


class MilestoneTimeline:
    """Which milestones earn their points over an episode: changes only, looked up by time."""

    def __init__(self) -> None:
        self._times: list[int] = []
        self._states: list[dict[str, bool]] = []

    def record(self, time_ns: int, achieved: Mapping[str, bool]) -> None:
        """The state from ``time_ns`` on (call after every simulation step; stores changes)."""
        if not self._states or self._states[-1] != achieved:
            self._times.append(int(time_ns))
            self._states.append(dict(achieved))

    def at(self, time_ns: int) -> dict[str, bool]:
        """The milestones as they stood at ``time_ns`` (the last change at or before it)."""
        position = int(np.searchsorted(self._times, time_ns, side="right")) - 1
        return dict(self._states[position]) if position >= 0 else {}


# ----------------------------------------------------------------------------------- summaries


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int]:
    """count, mean, p50, p95 and max of per-chunk inference latencies (ms)."""
    values = np.asarray(latencies_ms, dtype=float)
    if values.size == 0:
        return {"count": 0}
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def event_summary(per_episode: Sequence[Sequence[EventVerdict]]) -> dict[str, Any]:
    """Counts over episodes (one verdict sequence each): events started, attempts, successes by
    the planner and by the rubric, disagreements, and chunks per attempt (mean over attempts
    whose count is known)."""
    verdicts = [v for episode in per_episode for v in episode]
    chunks = [v.chunks for v in verdicts if v.chunks >= 0]
    return {
        "episodes": len(per_episode),
        "events": sum(len({v.index for v in episode}) for episode in per_episode),
        "attempts": len(verdicts),
        "planner_succeeded": sum(v.planner_outcome == SUCCEEDED for v in verdicts),
        "rubric_succeeded": sum(v.succeeded for v in verdicts),
        "disagreements": sum(not v.agrees for v in verdicts),
        "chunks_per_event": float(np.mean(chunks)) if chunks else float("nan"),
    }

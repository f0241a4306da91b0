"""Where a failed episode failed: the first event of its task that did not get done.

Two views of one episode (a ``report.json`` episode row, :class:`wallwm_sim.rollout.EpisodeResult`
as JSON):

- **rubric at the end** (every arm): the first event, in task order, whose milestone
  (``report.json`` ``event_milestones``) had not earned its points when the episode ended. Index
  0 is the first event; index ``k >= 1`` means events ``0..k-1`` were done and the episode
  failed at the transition into event ``k``. Index ``len(events)`` ("after the last event")
  means every event milestone held and the task still scored below 100.
- **attempts** (arms that run the task's events, one instruction each): the first event whose
  last attempt the rubric judged failed when the attempt ended, and what the planner said about
  that attempt: ``ended early`` (the policy reported the event done, its milestone was not
  reached: it moved on too soon), ``timed out``, another planner outcome, ``not started`` (the
  task ended before it) or ``undone later`` (the milestone held when the attempt ended and was
  lost afterwards: a cube knocked off its zone). Arms that run the whole task as one instruction have no per-event
  attempts; their planner outcome is the task's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

SUCCESS_SCORE = 100.0
ENDED_EARLY = "ended early"
NOT_STARTED = "not started"
UNDONE_LATER = "undone later"


@dataclasses.dataclass(frozen=True)
class FailurePoint:
    """The first event of a failed episode that was not done (see the module doc)."""

    index: int  # event index in task order; len(events) = after the last event
    milestone: str  # "" after the last event
    kind: str  # attempts view: ENDED_EARLY, "timed out", ..., NOT_STARTED, UNDONE_LATER


def first_unmet_event(achieved: Mapping[str, bool], event_milestones: Sequence[str]) -> int:
    """Index of the first event whose milestone is not in ``achieved`` (events without a
    milestone are skipped); ``len(event_milestones)`` when all are met."""
    for index, milestone in enumerate(event_milestones):
        if milestone and not achieved.get(milestone, False):
            return index
    return len(event_milestones)


def attempt_kind(episode: Mapping[str, Any], index: int) -> str:
    """What happened to event ``index`` in the attempts view (see the module doc)."""
    attempts = [row for row in episode.get("events", ()) if row["index"] == index]
    if not attempts:
        return NOT_STARTED
    last = attempts[-1]
    if last["succeeded"]:
        return UNDONE_LATER
    outcome = str(last["planner_outcome"])
    if outcome == "SUCCEEDED":
        return ENDED_EARLY
    return outcome.lower().replace("_", " ")


def failure_point(
    episode: Mapping[str, Any], event_milestones: Sequence[str], per_event: bool
) -> FailurePoint | None:
    """Where ``episode`` failed, None if it succeeded (Task Progress 100).

    ``per_event``: the episode ran the task's events one instruction each (the attempts view
    applies); otherwise ``kind`` is the task-level planner outcome.
    """
    if float(episode["score"]) >= SUCCESS_SCORE:
        return None
    index = first_unmet_event(episode.get("milestones", {}), event_milestones)
    milestone = event_milestones[index] if index < len(event_milestones) else ""
    if per_event:
        kind = attempt_kind(episode, index) if index < len(event_milestones) else ""
    else:
        kind = str(episode.get("outcome", "")).lower().replace("_", " ")
    return FailurePoint(index, milestone, kind)

"""How long events lasted in closed loop, beside the demonstrations of the same events.

For arms that run a task's events one instruction each, the policy ends an event itself (the
chunk its Δt head marks as the last). The failure points' "ended early" says the milestone was
not reached when it did; these durations tell the two reasons apart: a policy whose events end
much sooner than the demonstrations' (the Δt head cuts them short) from one that takes about the
demonstrations' time and still misses (the motion is wrong).

Policy side: the first attempt at each (task, event index) of every episode (``report.json``
``events`` rows; attempts without a measured duration, as on the ROS path, are left out).
Demonstration side: the ``subtask`` track of every episode of the run's data folders.
"""

from __future__ import annotations

import collections
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from wallwm_core.episode_format import EpisodeFormatError, list_episodes, read_events

EventKey = tuple[str, int]  # (task, event index)


def demonstration_durations(
    paths: Iterable[str | Path], tasks: Sequence[str]
) -> tuple[dict[EventKey, list[float]], list[str]]:
    """Seconds of each ``subtask`` event of the episodes of ``tasks`` in ``paths``, per (task,
    event index); and a note per folder or episode that could not be read (skipped)."""
    durations: dict[EventKey, list[float]] = collections.defaultdict(list)
    notes: list[str] = []
    for root in map(Path, paths):
        entries = list_episodes(root) if root.is_dir() else []
        if not entries:
            notes.append(f"{root}: no demonstrations found")
            continue
        for entry in entries:
            if entry.get("task") not in tasks:
                continue
            try:
                events = read_events(root / entry["directory"])["subtask"]
            except (EpisodeFormatError, KeyError) as error:
                notes.append(f"{root}: episode {entry.get('index')} skipped ({error})")
                continue
            for position, event in enumerate(events):
                index = event.subtask_index if event.subtask_index >= 0 else position
                durations[(entry["task"], index)].append((event.end_ns - event.start_ns) / 1e9)
    return dict(durations), notes


def first_attempts(episodes: Iterable[Mapping[str, Any]]) -> dict[EventKey, list[dict[str, Any]]]:
    """The first attempt at each event of each episode, per (task, event index)."""
    found: dict[EventKey, list[dict[str, Any]]] = collections.defaultdict(list)
    for episode in episodes:
        seen: set[int] = set()
        for row in episode.get("events", ()):
            index = int(row["index"])
            if index in seen:
                continue
            seen.add(index)
            duration = float(row.get("duration_s", math.nan))
            if math.isfinite(duration):
                found[(episode["task"], index)].append(
                    {"duration_s": duration, "reached": bool(row.get("milestone_reached"))}
                )
    return dict(found)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def event_durations(
    episodes: Iterable[Mapping[str, Any]], demonstrations: Mapping[EventKey, list[float]]
) -> list[dict[str, Any]]:
    """One row per (task, event index) the policy attempted: first attempts, their median
    duration, how many reached the milestone, the share that ended before the demonstrations'
    median, and the demonstrations' count and median (None without demonstrations)."""
    rows = []
    for (task, index), attempts in sorted(first_attempts(episodes).items()):
        durations = [a["duration_s"] for a in attempts]
        demo = demonstrations.get((task, index), [])
        demo_median = _median(demo)
        rows.append(
            {
                "task": task,
                "index": index,
                "attempts": len(attempts),
                "median_s": _median(durations),
                "reached": sum(a["reached"] for a in attempts),
                "shorter_than_demonstrations": (
                    sum(d < demo_median for d in durations) / len(durations)
                    if demo_median is not None
                    else None
                ),
                "demonstrations": len(demo),
                "demonstrations_median_s": demo_median,
            }
        )
    return rows

"""How long events lasted in closed loop, beside the demonstrations of the same events.

For arms that run a task's events one instruction each, the policy ends an event itself (the
chunk its Δt head marks as the last). The failure points' "ended early" says the milestone was
not reached when it did; these durations tell the two reasons apart: a policy whose events end
much sooner than the demonstrations' (the Δt head cuts them short) from one that takes about the
demonstrations' time and still misses (the motion is wrong).

Policy side: the first attempt at each (task, event index) of every episode (``report.json``
``events`` rows), pooled over every evaluated variant; a first attempt without a measured
duration (as on the ROS path) is left out, never replaced by a retry. Demonstration side: the
``subtask`` track of every episode of the training data folders (train variant only). Event k
is the task's k-th event on both sides, whatever its colours (press_buttons' order varies).
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


def _episode_durations(folder: Path) -> list[tuple[int, float]]:
    """(event index, seconds) of the ``subtask`` track of one episode folder."""
    found = []
    for position, event in enumerate(read_events(folder)["subtask"]):
        index = event.subtask_index if event.subtask_index >= 0 else position
        found.append((int(index), (event.end_ns - event.start_ns) / 1e9))
    return found


def demonstration_durations(
    paths: Iterable[str | Path], tasks: Sequence[str]
) -> tuple[dict[EventKey, list[float]], list[str]]:
    """Seconds of each ``subtask`` event of the episodes of ``tasks`` in ``paths`` (each folder
    once), per (task, event index); and notes on what could not be read (skipped, never fatal)
    or is missing: one note per folder, and one per task without demonstrations."""
    durations: dict[EventKey, list[float]] = collections.defaultdict(list)
    notes: list[str] = []
    for root in dict.fromkeys(map(Path, paths)):
        try:
            entries = list_episodes(root) if root.is_dir() else []
        except (OSError, ValueError) as error:
            notes.append(f"{root}: unreadable episode index, skipped ({error})")
            continue
        if not entries:
            notes.append(f"{root}: no demonstrations found")
            continue
        skipped, first_error = 0, ""
        for entry in entries:
            try:
                if entry.get("task") not in tasks:
                    continue
                found = _episode_durations(root / entry["directory"])
            except (EpisodeFormatError, KeyError, TypeError, AttributeError) as error:
                skipped, first_error = skipped + 1, first_error or f"{error!r}"
                continue
            for index, seconds in found:
                durations[(entry["task"], index)].append(seconds)
        if skipped:
            notes.append(f"{root}: {skipped} episode(s) skipped, unreadable (first: {first_error})")
    for task in tasks:
        if not any(key[0] == task for key in durations):
            notes.append(f"{task}: no demonstrations in the data folders")
    return dict(durations), notes


def first_attempts(episodes: Iterable[Mapping[str, Any]]) -> dict[EventKey, list[dict[str, Any]]]:
    """The first attempt at each event of each episode with a measured duration, per (task,
    event index): its seconds and the rubric's verdict (``succeeded``: the milestone, or the
    planner's outcome for events without one)."""
    found: dict[EventKey, list[dict[str, Any]]] = collections.defaultdict(list)
    for episode in episodes:
        seen: set[int] = set()
        for row in episode.get("events", ()):
            index = int(row["index"])
            if index in seen:
                continue
            seen.add(index)
            raw = row.get("duration_s")
            duration = math.nan if raw is None else float(raw)
            if math.isfinite(duration):
                found[(episode["task"], index)].append(
                    {"duration_s": duration, "succeeded": bool(row.get("succeeded"))}
                )
    return dict(found)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def event_durations(
    episodes: Iterable[Mapping[str, Any]], demonstrations: Mapping[EventKey, list[float]]
) -> list[dict[str, Any]]:
    """One row per (task, event index) the policy attempted: its first attempts, their median
    duration, how many succeeded, the share that ended before the demonstrations' median, and
    the demonstrations' count and median (None without demonstrations)."""
    rows = []
    for (task, index), attempts in sorted(first_attempts(episodes).items()):
        durations = [a["duration_s"] for a in attempts]
        demo = demonstrations.get((task, index), [])
        demo_median = _median(demo)
        rows.append(
            {
                "task": task,
                "index": index,
                "first_attempts": len(attempts),
                "median_s": _median(durations),
                "succeeded": sum(a["succeeded"] for a in attempts),
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

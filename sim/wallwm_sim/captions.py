"""Hierarchical event captions on four tracks: task, subtask, action, segment.

The tracks and :class:`~wallwm_core.episode_format.CaptionSegment` are part of the episode
format (:mod:`wallwm_core.episode_format`, where each track is described). A policy that knows
what it is doing (the scripted expert) attaches :class:`EventLabels` to each action;
:class:`CaptionRecorder` turns the per-step labels into segments with boundaries (step
indices, end exclusive, and nanosecond times).
"""

from __future__ import annotations

import dataclasses

from wallwm_core.episode_format import TRACKS, CaptionSegment


@dataclasses.dataclass(frozen=True)
class EventLabels:
    """What the policy is doing at one step, below the task level."""

    subtask_index: int
    subtask: str
    action: str
    segment: str


class CaptionRecorder:
    """Collects per-step labels; call :meth:`add` once per step, then :meth:`finish`."""

    def __init__(self, task_caption: str) -> None:
        self.task_caption = task_caption
        self._tracks: dict[str, list[CaptionSegment]] = {track: [] for track in TRACKS}
        self._open: dict[str, tuple[str, int, int, int] | None] = dict.fromkeys(TRACKS[1:])
        self._step = 0
        self._time_ns = 0
        self._start_ns: int | None = None

    def add(self, step: int, time_ns: int, labels: EventLabels | None) -> None:
        if self._start_ns is None:
            self._start_ns = time_ns
        values = {}
        if labels is not None:
            values = {"subtask": labels.subtask, "action": labels.action, "segment": labels.segment}
        index = labels.subtask_index if labels is not None else -1
        for track in TRACKS[1:]:
            caption = values.get(track)
            current = self._open[track]
            key = (caption, index)
            if current is not None and (current[0], current[3]) != key:
                self._close(track, step, time_ns)
                current = None
            if current is None and caption:
                self._open[track] = (caption, step, time_ns, index)
        self._step, self._time_ns = step, time_ns

    def _close(self, track: str, end_step: int, end_ns: int) -> None:
        current = self._open[track]
        if current is not None:
            caption, start_step, start_ns, index = current
            self._tracks[track].append(
                CaptionSegment(caption, start_step, end_step, start_ns, end_ns, index)
            )
        self._open[track] = None

    def finish(self, end_step: int, end_ns: int) -> dict[str, list[CaptionSegment]]:
        """Close every open caption at ``end_step``/``end_ns`` and return the four tracks."""
        for track in TRACKS[1:]:
            self._close(track, end_step, end_ns)
        start_ns = self._start_ns if self._start_ns is not None else end_ns
        self._tracks["task"] = [CaptionSegment(self.task_caption, 0, end_step, start_ns, end_ns)]
        return {track: list(segments) for track, segments in self._tracks.items()}

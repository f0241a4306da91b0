"""The VLM as the event planner's proposer: next-event caption, or None when the task is done."""

from __future__ import annotations

from collections.abc import Callable

import torch

from wallwm_core.outcome import Outcome
from wallwm_core.planner import EventRecord
from wallwm_core.vlm.model import WallVLM

ImageSource = Callable[[], torch.Tensor | None]
"""Returns the current views ``[V, 3, H, W]`` in [0, 1] (or None) when a proposal is needed."""


class VLMEventProposer:
    """Implements :class:`wallwm_core.planner.EventProposer` with :meth:`WallVLM.next_event`.

    The prompt lists the events that *succeeded* so far, in order; failed attempts are left
    out, so after a failure the model proposes from the same point again (typically a retry).
    A caption equal to ``prompt.end_marker`` (after stripping) means the task is done -> None.
    Other captions are returned stripped; a blank one makes the planner abort with a message.
    """

    def __init__(self, model: WallVLM, images: ImageSource | None = None) -> None:
        self.model = model
        self.images = images

    def __call__(self, task: str, history: tuple[EventRecord, ...]) -> str | None:
        done = [r.instruction for r in history if r.outcome is Outcome.SUCCEEDED]
        views = self.images() if self.images is not None else None
        was_training = self.model.training
        self.model.eval()
        try:
            caption = self.model.next_event(task, done, views).strip()
        finally:
            self.model.train(was_training)
        if caption == self.model.config.prompt.end_marker.strip():
            return None
        return caption

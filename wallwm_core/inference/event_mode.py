"""Event mode: observation + next-event instruction -> the actions and video of the whole event.

1. The Δt head predicts the remaining event time from the clean observation window
   (:meth:`~wallwm_core.model.wallwm.WallWM.event_length`).
2. **Event-length rule** (:func:`event_action_steps`): ``T = round(Δt * control_hz)`` action
   steps (the nearest whole step: Δt is a regression estimate, so rounding up would add a
   step to almost every event), at least 1 and at most ``limits.max_action_steps`` (and at
   most ``max_steps`` if the caller has a tighter budget). ``covers_event`` says whether the
   whole predicted event fits (``round(Δt * control_hz) <= T``); if not, the chunk is the
   first ``T`` steps of a longer event and the caller re-plans from a later observation.
3. The window (:class:`~wallwm_core.inference.sampler.WindowSampler`) has ``ceil(T / K_p)``
   future latent frames; in a batch, shorter events are padded and masked.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from wallwm_core.inference.config import SamplerConfig
from wallwm_core.inference.sampler import WindowInputs, WindowNoise, WindowSample, WindowSampler
from wallwm_core.model.wallwm import WallWM


def steps_for_duration(duration_s: float, control_hz: float) -> int:
    """Action steps of an event lasting ``duration_s`` seconds: ``round(duration_s *
    control_hz)`` (halves round up), at least 1."""
    if not math.isfinite(duration_s):
        raise ValueError(f"event duration must be finite, got {duration_s}")
    return max(1, math.floor(max(duration_s, 0.0) * control_hz + 0.5))


def event_action_steps(
    event_length_s: torch.Tensor, control_hz: float, max_steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The event-length rule for a batch ``[B]`` of Δt (seconds).

    Returns (``steps`` ``[B]`` int64 in ``[1, max_steps]``, ``covers_event`` ``[B]`` bool: the
    predicted event ends within those steps).
    """
    needed = torch.tensor(
        [steps_for_duration(float(d), control_hz) for d in event_length_s.detach().cpu()],
        dtype=torch.long,
    )
    return needed.clamp(max=max_steps), needed <= max_steps


@dataclasses.dataclass(frozen=True)
class EventSample:
    """An event-mode sample: the window plus the Δt estimate behind its length.

    ``event_length_s`` ``[B]``: predicted remaining event time (seconds); ``covers_event``
    ``[B]`` bool: the whole predicted event fits in ``window.actions``.
    """

    window: WindowSample
    event_length_s: torch.Tensor
    covers_event: torch.Tensor


def predict_event_length(model: WallWM, inputs: WindowInputs) -> torch.Tensor:
    """Δt ``[B]`` seconds from the clean observation window (float32)."""
    return model.event_length(
        inputs.context_latents,
        inputs.text,
        inputs.state,
        video_mask=inputs.context_mask,
        cross_view_allowed=inputs.cross_view_allowed,
    ).float()


def sample_event(
    model: WallWM,
    inputs: WindowInputs,
    sampler: SamplerConfig,
    generator: torch.Generator | None = None,
    max_steps: int | None = None,
    noise: WindowNoise | None = None,
) -> EventSample:
    """Event-mode sampling for a batch; ``max_steps`` optionally tightens the step bound."""
    limit = model.config.limits.max_action_steps
    if max_steps is not None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        limit = min(limit, max_steps)
    event_length_s = predict_event_length(model, inputs)
    steps, covers = event_action_steps(event_length_s, model.config.action.control_hz, limit)
    window = WindowSampler(model, sampler).sample(inputs, steps, generator, noise)
    return EventSample(window=window, event_length_s=event_length_s, covers_event=covers)

"""WALL-WM inference: Euler flow sampling in event mode and unified mode.

- :mod:`.sampler`: one observation-centred window (future video, then actions; video
  features computed once per chunk at the anchor noise level, or the naive path);
- :mod:`.event_mode`: Δt -> number of action steps -> a variable-length chunk;
- :mod:`.unified_mode`: fixed-length chunks from M history + 1 anchor + N future latents;
- :mod:`.staircase`: VLM Staircase latents -> the video tower's text conditioning;
- :mod:`.observation`, :mod:`.chunks`, :mod:`.deployment`, :mod:`.runtime`: the policy's
  input/output plumbing (see :class:`wallwm_core.wallwm_policy.WallWMPolicy`).
"""

from wallwm_core.inference.config import (
    InferenceConfig,
    SamplerConfig,
    UnifiedConfig,
    default_inference_config,
)
from wallwm_core.inference.event_mode import (
    EventSample,
    event_action_steps,
    predict_event_length,
    sample_event,
    steps_for_duration,
)
from wallwm_core.inference.sampler import (
    WindowInputs,
    WindowNoise,
    WindowSample,
    WindowSampler,
    frames_for_steps,
)
from wallwm_core.inference.staircase import StaircaseCondition, StaircaseProjection
from wallwm_core.inference.unified_mode import sample_unified

__all__ = [
    "EventSample",
    "InferenceConfig",
    "SamplerConfig",
    "StaircaseCondition",
    "StaircaseProjection",
    "UnifiedConfig",
    "WindowInputs",
    "WindowNoise",
    "WindowSample",
    "WindowSampler",
    "default_inference_config",
    "event_action_steps",
    "frames_for_steps",
    "predict_event_length",
    "sample_event",
    "sample_unified",
    "steps_for_duration",
]

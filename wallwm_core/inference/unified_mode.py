"""Unified mode: fixed-length chunks from an observation-centred window.

The window is ``M`` history latent frames + 1 anchor (the current observation), all clean, then
``N`` future frames that are denoised; every chunk has the same number of action steps
(:class:`~wallwm_core.inference.config.UnifiedConfig`). The text conditioning is any
:class:`~wallwm_core.model.text_encoder.TextEmbedding`: the encoded global instruction, a short
per-chunk instruction, or Staircase latents projected to the video tower's text width
(:class:`~wallwm_core.inference.staircase.StaircaseProjection`).
"""

from __future__ import annotations

import torch

from wallwm_core.config_loading import ConfigError
from wallwm_core.inference.config import SamplerConfig, UnifiedConfig
from wallwm_core.inference.sampler import (
    WindowInputs,
    WindowNoise,
    WindowSample,
    WindowSampler,
    frames_for_steps,
)
from wallwm_core.model.wallwm import WallWM


def sample_unified(
    model: WallWM,
    inputs: WindowInputs,
    window: UnifiedConfig,
    sampler: SamplerConfig,
    generator: torch.Generator | None = None,
    noise: WindowNoise | None = None,
) -> WindowSample:
    """One fixed-length chunk per sample (``window.chunk_steps`` steps, ``window.future_frames``
    future latents); ``inputs.context_latents`` must hold ``history_frames + 1`` frames."""
    expected = window.history_frames + 1
    if inputs.num_context_frames != expected:
        raise ValueError(
            f"unified mode needs {expected} context latent frames (history_frames="
            f"{window.history_frames} + 1 anchor), got {inputs.num_context_frames}"
        )
    needed = frames_for_steps(window.chunk_steps, model.config.action.steps_per_latent_frame)
    if needed > window.future_frames:
        raise ConfigError(
            f"unified.chunk_steps={window.chunk_steps} spans {needed} future latent frames but "
            f"unified.future_frames={window.future_frames}"
        )
    return WindowSampler(model, sampler).sample(
        inputs,
        window.chunk_steps,
        generator,
        noise,
        num_future_frames=window.future_frames,
    )

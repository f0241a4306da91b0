"""Inference settings: which mode, how many Euler steps, the unified-mode window.

Stored with a checkpoint (the ``inference`` section of ``metadata.yaml``) as its defaults and
overridable when the policy is built. :meth:`InferenceConfig.validate_for` checks the settings
against a :class:`~wallwm_core.model.config.ModelConfig` (window sizes within the trained limits).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from wallwm_core.config_loading import ConfigError
from wallwm_core.model.config import ModelConfig

InferenceMode = Literal["event", "unified"]
VideoFeaturePath = Literal["cached", "naive"]
FutureVideo = Literal["predicted", "noise"]


def _positive_int(section: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{section}.{name} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """Euler flow sampling (time convention of :mod:`wallwm_core.flow_matching`).

    ``video_steps``: Euler steps that denoise the future video latents; ``action_steps``: Euler
    steps of the action tower. ``video_features``: ``"cached"`` runs the video tower once per
    chunk at the anchor noise level and reuses its per-block features for every action step;
    ``"naive"`` re-runs it at every action step (same result, for benchmarks and tests).
    ``future_video``: what the action tower reads as the future frames: ``"predicted"`` (the
    paper: the denoised future, re-noised to the anchor level) or ``"noise"`` (no video is
    denoised; the future frames are pure noise, t = 1, and the actions come from the observation
    alone; only for a model trained with ``objective.action_video_dropout > 0``).
    """

    video_steps: int = 8
    action_steps: int = 10
    video_features: VideoFeaturePath = "cached"
    future_video: FutureVideo = "predicted"

    def __post_init__(self) -> None:
        _positive_int("sampler", "video_steps", self.video_steps)
        _positive_int("sampler", "action_steps", self.action_steps)
        if self.video_features not in ("cached", "naive"):
            raise ConfigError(
                f"sampler.video_features must be 'cached' or 'naive', got {self.video_features!r}"
            )
        if self.future_video not in ("predicted", "noise"):
            raise ConfigError(
                f"sampler.future_video must be 'predicted' or 'noise', got {self.future_video!r}"
            )


@dataclasses.dataclass(frozen=True)
class UnifiedConfig:
    """The observation-centred window of unified mode: ``history_frames`` (M) clean latent
    frames before the anchor, the anchor, and ``future_frames`` (N) denoised ones; chunks have
    ``chunk_steps`` action steps (at most ``N * K_p`` and ``limits.max_action_steps``)."""

    history_frames: int = 0
    future_frames: int = 3
    chunk_steps: int = 12

    def __post_init__(self) -> None:
        if isinstance(self.history_frames, bool) or not isinstance(self.history_frames, int):
            raise ConfigError(f"unified.history_frames must be an integer: {self.history_frames!r}")
        if self.history_frames < 0:
            raise ConfigError(f"unified.history_frames must be >= 0, got {self.history_frames}")
        _positive_int("unified", "future_frames", self.future_frames)
        _positive_int("unified", "chunk_steps", self.chunk_steps)


@dataclasses.dataclass(frozen=True)
class InferenceConfig:
    """How a :class:`~wallwm_core.wallwm_policy.WallWMPolicy` serves chunks.

    ``mode``: ``"event"`` (variable-length chunks sized by the Δt head) or ``"unified"``
    (fixed-length chunks of ``unified.chunk_steps``). ``seed``: the sampling noise seed.
    """

    mode: InferenceMode = "event"
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    unified: UnifiedConfig = dataclasses.field(default_factory=UnifiedConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("event", "unified"):
            raise ConfigError(f"inference.mode must be 'event' or 'unified', got {self.mode!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"inference.seed must be a non-negative integer, got {self.seed!r}")

    def validate_for(self, model: ModelConfig) -> None:
        """Raise ConfigError if the unified window does not fit what ``model`` was trained on,
        or the sampler reads noise as future video from a model never trained to."""
        if self.sampler.future_video == "noise" and model.objective.action_video_dropout <= 0.0:
            raise ConfigError(
                "inference.sampler.future_video='noise' needs a model trained with "
                "objective.action_video_dropout > 0 (this one has 0: its actions read the "
                "predicted future video; use future_video='predicted')"
            )
        unified, limits = self.unified, model.limits
        frames = unified.history_frames + 1 + unified.future_frames
        if frames > limits.max_latent_frames:
            raise ConfigError(
                f"inference.unified window of {frames} latent frames (history_frames="
                f"{unified.history_frames} + 1 anchor + future_frames={unified.future_frames}) "
                f"exceeds limits.max_latent_frames={limits.max_latent_frames}"
            )
        covered = unified.future_frames * model.action.steps_per_latent_frame
        if unified.chunk_steps > min(covered, limits.max_action_steps):
            raise ConfigError(
                f"inference.unified.chunk_steps={unified.chunk_steps} exceeds "
                f"min(future_frames * action.steps_per_latent_frame = {covered}, "
                f"limits.max_action_steps = {limits.max_action_steps})"
            )


def default_inference_config(model: ModelConfig) -> InferenceConfig:
    """Defaults that fit ``model``: the unified window is the training window (context frames
    as anchor + history, the remaining frames as future) and the longest chunk it covers."""
    history = model.objective.context_latent_frames - 1
    future = model.limits.max_latent_frames - model.objective.context_latent_frames
    steps = min(future * model.action.steps_per_latent_frame, model.limits.max_action_steps)
    return InferenceConfig(
        unified=UnifiedConfig(history_frames=history, future_frames=future, chunk_steps=steps)
    )

"""Typed, frozen configuration of the WALL-WM dual-tower model, loaded from YAML.

One :class:`ModelConfig` describes everything needed to build and train the model: the video
latent codec, the text encoder, the video and action towers, the heads, the action space and
event limits, the training objective and the optimiser. Shipped configurations live in
``wallwm_core/configs/model_<name>.yaml`` and are resolved by :func:`load_model_config`.

Checks: dacite (strict) rejects unknown keys, missing keys and wrong types
(:mod:`wallwm_core.config_loading`); each section checks its own ranges in ``__post_init__``
and :class:`ModelConfig` checks sizes that must agree across sections. Every error is a
:class:`~wallwm_core.config_loading.ConfigError` naming the field (``video_tower.dim=...``).
Vary a config with ``dataclasses.replace``; :func:`config_to_dict` gives back plain YAML-able data.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

import yaml

from wallwm_core.action_tokens import token_dim
from wallwm_core.config_loading import ConfigError, config_from_dict, did_you_mean, require

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
# Shipped model configs are CONFIG_DIR / f"{CONFIG_PREFIX}{name}.yaml" (the folder is shared).
CONFIG_PREFIX = "model_"
# The codec's spatial downsampling; patch sizes and the sight-cone grid assume it.
SPATIAL_DOWNSAMPLE = 8
# Wan VAE temporal rule: 1 + 4N frames -> 1 + N latent frames.
WAN_TEMPORAL_STRIDE = 4

TemporalRule = Literal["per_frame", "wan_1_plus_4n"]
TimestepDistribution = Literal["uniform", "logit_normal"]


def _positive_ints(section: str, obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(
            isinstance(value, int) and not isinstance(value, bool) and value > 0,
            f"{section}.{name} must be a positive integer, got {value!r}",
        )


def _floats(section: str, obj: Any, *names: str) -> None:
    """YAML ``1`` arrives as an int: store float fields as floats, rejecting bools and NaN."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{section}.{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{section}.{name} must be finite, got {value!r}")
        object.__setattr__(obj, name, float(value))


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    """Video latent codec: ``[.., 3, H, W]`` frames <-> ``[.., latent_channels, H/8, W/8]``.

    ``temporal_rule``: ``"per_frame"`` (one latent frame per video frame, T' = T) or
    ``"wan_1_plus_4n"`` (Wan VAE: T = 1 + 4N frames -> 1 + N latent frames).
    """

    kind: Literal["conv_autoencoder"]
    latent_channels: int
    base_channels: int
    temporal_rule: TemporalRule

    def __post_init__(self) -> None:
        _positive_ints("codec", self, "latent_channels", "base_channels")


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
    """Text encoder producing ``[B, max_length, dim]`` embeddings plus a mask.

    ``"byte_transformer"``: a small trainable transformer over the ByteTokenizer (part of the
    model's weights; uses ``num_layers``, ``num_heads``, ``ffn_dim``). ``"hf_t5"``: a frozen
    Hugging Face T5 encoder read from the local directory ``hf_path`` (e.g. umT5-XXL for Wan,
    ``dim`` 4096); its weights are not part of the model's state dict.
    """

    kind: Literal["byte_transformer", "hf_t5"]
    dim: int
    max_length: int
    num_layers: int = 0
    num_heads: int = 1
    ffn_dim: int = 1
    hf_path: str | None = None

    def __post_init__(self) -> None:
        _positive_ints("text_encoder", self, "dim", "max_length", "num_heads", "ffn_dim")
        require(
            self.max_length >= 2, f"text_encoder.max_length must be >= 2, got {self.max_length}"
        )
        if self.kind == "byte_transformer":
            _positive_ints("text_encoder", self, "num_layers")
            require(
                self.dim % self.num_heads == 0,
                f"text_encoder.dim={self.dim} must be divisible by "
                f"text_encoder.num_heads={self.num_heads}",
            )


@dataclasses.dataclass(frozen=True)
class SightConeConfig:
    """The sight-cone cross-view mask (see :mod:`wallwm_core.model.sight_cone`), training only."""

    enabled: bool
    d_min: float
    d_max: float
    radius_scale: float = 1.0

    def __post_init__(self) -> None:
        _floats("sight_cone", self, "d_min", "d_max", "radius_scale")
        require(
            0.0 < self.d_min < self.d_max,
            f"need 0 < sight_cone.d_min < sight_cone.d_max, got {self.d_min=} {self.d_max=}",
        )
        require(
            self.radius_scale >= 0.0, f"sight_cone.radius_scale must be >= 0: {self.radius_scale}"
        )


@dataclasses.dataclass(frozen=True)
class VideoTowerConfig:
    """A Wan2.1-style DiT plus per-block gated cross-view attention.

    Sizes mirror Wan2.1 (``dim``, ``ffn_dim``, ``num_heads``, ``num_layers``, ``freq_dim``,
    ``text_dim``, ``text_len``, ``in_channels``, ``out_channels``, ``patch_size``
    ``(t, h, w)``). ``rope_axes_dim``: rotary channels per head for the (frame, height, width,
    view) axes; each even, summing to the head dim. ``max_views``: size of the learned per-view
    embedding table.
    """

    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    freq_dim: int
    text_dim: int
    text_len: int
    in_channels: int
    out_channels: int
    patch_size: tuple[int, int, int]
    rope_axes_dim: tuple[int, int, int, int]
    max_views: int
    sight_cone: SightConeConfig
    rope_theta: float = 10000.0
    qk_norm: bool = True
    cross_attn_norm: bool = True
    cross_view_attention: bool = True
    eps: float = 1e-6

    def __post_init__(self) -> None:
        _floats("video_tower", self, "rope_theta", "eps")
        section = "video_tower"
        _positive_ints(
            section,
            self,
            "dim",
            "ffn_dim",
            "num_heads",
            "num_layers",
            "freq_dim",
            "text_dim",
            "text_len",
            "in_channels",
            "out_channels",
            "max_views",
        )
        require(
            self.dim % self.num_heads == 0,
            f"video_tower.dim={self.dim} must be divisible by video_tower.num_heads="
            f"{self.num_heads}",
        )
        require(self.freq_dim % 2 == 0, f"video_tower.freq_dim must be even, got {self.freq_dim}")
        require(
            all(isinstance(p, int) and p > 0 for p in self.patch_size),
            f"video_tower.patch_size must be three positive integers, got {self.patch_size}",
        )
        require(
            self.patch_size[0] == 1,
            f"video_tower.patch_size[0] (temporal) must be 1 so that action tokens align to "
            f"latent frames, got {self.patch_size}",
        )
        head_dim = self.dim // self.num_heads
        require(
            all(d >= 0 and d % 2 == 0 for d in self.rope_axes_dim),
            f"video_tower.rope_axes_dim entries must be even and >= 0, got {self.rope_axes_dim}",
        )
        require(
            sum(self.rope_axes_dim) == head_dim,
            f"video_tower.rope_axes_dim={self.rope_axes_dim} (frame, height, width, view) must "
            f"sum to the head dim video_tower.dim / video_tower.num_heads = {head_dim}",
        )
        require(self.rope_theta > 0.0, f"video_tower.rope_theta must be > 0: {self.rope_theta}")
        require(self.eps > 0.0, f"video_tower.eps must be > 0: {self.eps}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


@dataclasses.dataclass(frozen=True)
class ActionTowerConfig:
    """The action tower: same depth as the video tower, its own (usually smaller) width.

    Rotary embedding over the temporal index only (all of the head dim).
    """

    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    freq_dim: int
    rope_theta: float = 10000.0
    qk_norm: bool = True
    eps: float = 1e-6

    def __post_init__(self) -> None:
        _floats("action_tower", self, "rope_theta", "eps")
        _positive_ints(
            "action_tower", self, "dim", "ffn_dim", "num_heads", "num_layers", "freq_dim"
        )
        require(
            self.dim % self.num_heads == 0,
            f"action_tower.dim={self.dim} must be divisible by action_tower.num_heads="
            f"{self.num_heads}",
        )
        require(
            (self.dim // self.num_heads) % 2 == 0,
            f"action_tower head dim {self.dim // self.num_heads} must be even (rotary pairs)",
        )
        require(self.freq_dim % 2 == 0, f"action_tower.freq_dim must be even, got {self.freq_dim}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


@dataclasses.dataclass(frozen=True)
class ActionSpaceConfig:
    """Action tokens and proprioception.

    Action tokens per step: per arm xyz + 6D rotation + gripper (:mod:`wallwm_core.action_tokens`),
    normalised with :class:`~wallwm_core.normalization.NormalizationStats`. ``state_dim``: the
    proprioceptive state vector (joint positions incl. grippers). ``steps_per_latent_frame``:
    K_p, the number of action steps per latent frame; action step k has temporal index
    ``floor(k / K_p) + 1`` (the state and latent frame 0 share index 0).
    """

    num_arms: int
    state_dim: int
    steps_per_latent_frame: int
    control_hz: float

    def __post_init__(self) -> None:
        _floats("action", self, "control_hz")
        _positive_ints("action", self, "num_arms", "state_dim", "steps_per_latent_frame")
        require(self.control_hz > 0.0, f"action.control_hz must be > 0: {self.control_hz}")

    @property
    def token_dim(self) -> int:
        return token_dim(self.num_arms)

    @property
    def latent_fps(self) -> float:
        """Latent frames per second implied by the control rate and K_p."""
        return self.control_hz / self.steps_per_latent_frame


@dataclasses.dataclass(frozen=True)
class LimitsConfig:
    """Largest event the model is trained on: action steps, latent frames, seconds."""

    max_action_steps: int
    max_latent_frames: int
    max_event_s: float

    def __post_init__(self) -> None:
        _floats("limits", self, "max_event_s")
        _positive_ints("limits", self, "max_action_steps", "max_latent_frames")
        require(self.max_event_s > 0.0, f"limits.max_event_s must be > 0: {self.max_event_s}")


@dataclasses.dataclass(frozen=True)
class EventLengthHeadConfig:
    """Δt head: an MLP over pooled observation features, state and pooled text."""

    hidden_dim: int

    def __post_init__(self) -> None:
        _positive_ints("heads.event_length", self, "hidden_dim")


@dataclasses.dataclass(frozen=True)
class HeadsConfig:
    event_length: EventLengthHeadConfig


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """Flow-matching objective (time convention of :mod:`wallwm_core.flow_matching`).

    - ``context_latent_frames``: leading latent frames given clean (t = 0) as the observation
      (history + anchor); they condition and never enter the video loss.
    - ``num_action_noise_levels``: action noise draws per sample reusing one video pass.
    - ``action_video_noise_level``: the fixed, nearly clean video noise level at which the
      action branch reads video features (the asymmetric mapping).
    - ``action_video_dropout``: the fraction of samples whose *future* frames the action branch
      reads as pure noise (t = 1) instead, so that it also learns to act from the observation
      alone (the context frames stay clean). 0 is the paper's objective; a model trained with
      it > 0 can be served with ``sampler.future_video: noise`` (docs/training.md).
    - ``dct_loss_weight``: weight of the L1 loss on the orthonormal DCT-II (over time) of the
      predicted clean action error; 0 disables it.
    - ``event_length_scale_s``: Δt is regressed in units of this many seconds (Huber, ``huber_delta``).
    """

    context_latent_frames: int
    num_action_noise_levels: int
    action_video_noise_level: float
    timestep_distribution: TimestepDistribution
    video_loss_weight: float
    action_loss_weight: float
    dct_loss_weight: float
    event_length_loss_weight: float
    huber_delta: float
    event_length_scale_s: float
    logit_mean: float = 0.0
    logit_std: float = 1.0
    action_video_dropout: float = 0.0

    def __post_init__(self) -> None:
        _floats(
            "objective",
            self,
            "action_video_noise_level",
            "action_video_dropout",
            "video_loss_weight",
            "action_loss_weight",
            "dct_loss_weight",
            "event_length_loss_weight",
            "huber_delta",
            "event_length_scale_s",
            "logit_mean",
            "logit_std",
        )
        _positive_ints("objective", self, "context_latent_frames", "num_action_noise_levels")
        require(
            0.0 <= self.action_video_noise_level < 1.0,
            f"objective.action_video_noise_level must be in [0, 1), got "
            f"{self.action_video_noise_level}",
        )
        require(
            0.0 <= self.action_video_dropout <= 1.0,
            f"objective.action_video_dropout must be in [0, 1], got {self.action_video_dropout}",
        )
        for name in (
            "video_loss_weight",
            "action_loss_weight",
            "dct_loss_weight",
            "event_length_loss_weight",
        ):
            require(getattr(self, name) >= 0.0, f"objective.{name} must be >= 0")
        require(self.huber_delta > 0.0, f"objective.huber_delta must be > 0: {self.huber_delta}")
        require(
            self.event_length_scale_s > 0.0,
            f"objective.event_length_scale_s must be > 0: {self.event_length_scale_s}",
        )
        require(self.logit_std > 0.0, f"objective.logit_std must be > 0: {self.logit_std}")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Muon for the 2-D weight matrices inside transformer blocks, AdamW for everything else.

    ``muon_adjust_lr``: torch.optim.Muon's ``adjust_lr_fn``; ``"match_rms_adamw"`` lets both
    optimisers share ``lr`` and ``weight_decay``. ``grad_clip_norm`` <= 0 disables clipping.
    """

    lr: float
    weight_decay: float
    betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = 1e-8
    muon_momentum: float = 0.95
    muon_adjust_lr: Literal["original", "match_rms_adamw"] = "match_rms_adamw"
    grad_clip_norm: float = 1.0

    def __post_init__(self) -> None:
        _floats(
            "optimizer", self, "lr", "weight_decay", "adam_eps", "muon_momentum", "grad_clip_norm"
        )
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        require(self.lr > 0.0, f"optimizer.lr must be > 0, got {self.lr}")
        require(
            self.weight_decay >= 0.0,
            f"optimizer.weight_decay must be >= 0, got {self.weight_decay}",
        )
        require(
            all(0.0 <= b < 1.0 for b in self.betas),
            f"optimizer.betas must be in [0, 1): {self.betas}",
        )
        require(self.adam_eps > 0.0, f"optimizer.adam_eps must be > 0: {self.adam_eps}")
        require(
            0.0 <= self.muon_momentum < 1.0,
            f"optimizer.muon_momentum must be in [0, 1): {self.muon_momentum}",
        )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The whole WALL-WM model; cross-section sizes are checked here."""

    name: str
    codec: CodecConfig
    text_encoder: TextEncoderConfig
    video_tower: VideoTowerConfig
    action_tower: ActionTowerConfig
    action: ActionSpaceConfig
    limits: LimitsConfig
    heads: HeadsConfig
    objective: ObjectiveConfig
    optimizer: OptimizerConfig

    def __post_init__(self) -> None:
        video, action_tower = self.video_tower, self.action_tower
        require(
            action_tower.num_layers == video.num_layers,
            f"action_tower.num_layers={action_tower.num_layers} must equal "
            f"video_tower.num_layers={video.num_layers} (one action block per video block)",
        )
        require(
            video.in_channels == self.codec.latent_channels,
            f"video_tower.in_channels={video.in_channels} must equal "
            f"codec.latent_channels={self.codec.latent_channels}",
        )
        require(
            video.out_channels == video.in_channels,
            f"video_tower.out_channels={video.out_channels} must equal "
            f"video_tower.in_channels={video.in_channels} (velocity of the latents)",
        )
        require(
            self.text_encoder.dim == video.text_dim,
            f"text_encoder.dim={self.text_encoder.dim} must equal "
            f"video_tower.text_dim={video.text_dim}",
        )
        require(
            self.text_encoder.max_length <= video.text_len,
            f"text_encoder.max_length={self.text_encoder.max_length} must be <= "
            f"video_tower.text_len={video.text_len}",
        )
        context = self.objective.context_latent_frames
        require(
            context < self.limits.max_latent_frames,
            f"objective.context_latent_frames={context} must be < "
            f"limits.max_latent_frames={self.limits.max_latent_frames} (some frames to predict)",
        )
        future_steps = (
            self.limits.max_latent_frames - context
        ) * self.action.steps_per_latent_frame
        require(
            self.limits.max_action_steps <= future_steps,
            f"limits.max_action_steps={self.limits.max_action_steps} exceeds the "
            f"(limits.max_latent_frames - objective.context_latent_frames) * "
            f"action.steps_per_latent_frame = {future_steps} steps the video covers",
        )

    def patch_grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """Token grid ``(H/ph, W/pw)`` of a latent frame; raises ConfigError if not divisible."""
        _, patch_h, patch_w = self.video_tower.patch_size
        height, width = latent_hw
        require(
            height % patch_h == 0 and width % patch_w == 0,
            f"latent size {latent_hw} is not divisible by video_tower.patch_size[1:]="
            f"{(patch_h, patch_w)}",
        )
        return height // patch_h, width // patch_w


def shipped_config_names() -> list[str]:
    """Names of the model configs shipped in ``wallwm_core/configs`` (``model_<name>.yaml``)."""
    return sorted(
        p.stem.removeprefix(CONFIG_PREFIX) for p in CONFIG_DIR.glob(CONFIG_PREFIX + "*.yaml")
    )


def model_config_from_dict(data: dict[str, Any], source: str = "<dict>") -> ModelConfig:
    """Build a :class:`ModelConfig` from plain data (the inverse of :func:`config_to_dict`)."""
    return config_from_dict(ModelConfig, data, source=source)


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """A shipped config by name (``"tiny"``, ``"small"``, ``"wan2.1-1.3b"``, ...) or a YAML path.

    Unknown names raise ConfigError listing the shipped names (and the closest match).
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        names = shipped_config_names()
        if str(name_or_path) not in names:
            hint = did_you_mean(str(name_or_path), names)
            raise ConfigError(
                f"unknown model config {str(name_or_path)!r}{hint} (shipped: {names})"
            )
        path = CONFIG_DIR / f"{CONFIG_PREFIX}{name_or_path}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read model config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    return model_config_from_dict(data if data is not None else {}, source=str(path))


def config_to_dict(config: Any) -> dict[str, Any]:
    """A (nested) config dataclass as plain dicts/lists/scalars, ready for ``yaml.safe_dump``.

    ``model_config_from_dict(config_to_dict(c)) == c`` for every :class:`ModelConfig`.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def save_model_config(config: ModelConfig, path: str | Path) -> None:
    """Write ``config`` as YAML (readable by :func:`load_model_config`)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))

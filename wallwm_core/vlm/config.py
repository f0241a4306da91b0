"""Configuration of the VLM side (language model, vision prefix, Staircase branch, heads).

One YAML file per variant in ``wallwm_core/configs/vlm_<name>.yaml``; load it with
:func:`load_vlm_config` by name (``"vlm_tiny"``) or by path. Every section is a frozen
dataclass that checks its own ranges in ``__post_init__``; cross-section checks live in
:class:`VLMConfig`. Errors are :class:`~wallwm_core.config_loading.ConfigError` and name the
field (``staircase.relay_layer=4 ...``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from wallwm_core.config_loading import ConfigError, did_you_mean, load_config, require

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclasses.dataclass(frozen=True)
class TinyLMConfig:
    """The randomly initialised decoder (pre-norm RMSNorm, RoPE, SwiGLU, SDPA)."""

    width: int
    num_layers: int
    num_heads: int
    ffn_width: int
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("width", "num_layers", "num_heads", "ffn_width"):
            value = getattr(self, name)
            require(value >= 1, f"lm.{name}={value} must be at least 1")
        require(
            self.width % self.num_heads == 0,
            f"lm.width={self.width} must be divisible by lm.num_heads={self.num_heads}",
        )
        head_dim = self.width // self.num_heads
        require(
            head_dim % 2 == 0,
            f"lm.width / lm.num_heads = {head_dim} must be even (RoPE rotates pairs)",
        )
        require(self.rope_theta > 1.0, f"lm.rope_theta={self.rope_theta} must exceed 1")
        require(self.norm_eps > 0.0, f"lm.norm_eps={self.norm_eps} must be positive")
        require(self.init_std > 0.0, f"lm.init_std={self.init_std} must be positive")


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """Patch embedding that turns images ``[B, V, 3, H, W]`` into prefix tokens."""

    image_size: int
    patch_size: int
    max_views: int

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "max_views"):
            value = getattr(self, name)
            require(value >= 1, f"vision.{name}={value} must be at least 1")
        require(
            self.image_size % self.patch_size == 0,
            f"vision.image_size={self.image_size} must be a multiple of "
            f"vision.patch_size={self.patch_size}",
        )

    @property
    def patches_per_view(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclasses.dataclass(frozen=True)
class StaircaseConfig:
    """The Staircase branch: K latents, relay depth r (latents 2..K run layers [r, L))."""

    num_latents: int
    relay_layer: int
    relay_hidden: int

    def __post_init__(self) -> None:
        require(
            self.num_latents >= 1, f"staircase.num_latents={self.num_latents} must be at least 1"
        )
        require(
            self.relay_layer >= 1, f"staircase.relay_layer={self.relay_layer} must be at least 1"
        )
        require(
            self.relay_hidden >= 1,
            f"staircase.relay_hidden={self.relay_hidden} must be at least 1",
        )


@dataclasses.dataclass(frozen=True)
class HeadsConfig:
    """Δt head (remaining time, seconds) and alignment projection (to the text encoder width)."""

    align_dim: int
    remaining_time_hidden: int

    def __post_init__(self) -> None:
        require(self.align_dim >= 1, f"heads.align_dim={self.align_dim} must be at least 1")
        require(
            self.remaining_time_hidden >= 1,
            f"heads.remaining_time_hidden={self.remaining_time_hidden} must be at least 1",
        )


@dataclasses.dataclass(frozen=True)
class PromptConfig:
    """Token budgets and the caption that means "the task is done"."""

    max_prompt_tokens: int
    max_caption_tokens: int
    end_marker: str = "[done]"

    def __post_init__(self) -> None:
        require(
            self.max_prompt_tokens >= 8,
            f"prompt.max_prompt_tokens={self.max_prompt_tokens} must be at least 8",
        )
        require(
            self.max_caption_tokens >= 2,
            f"prompt.max_caption_tokens={self.max_caption_tokens} must be at least 2 (BOS + EOS)",
        )
        require(
            bool(self.end_marker.strip()),
            f"prompt.end_marker={self.end_marker!r} must not be blank",
        )


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights of the three training terms and the Huber transition point of the Δt loss."""

    caption_weight: float = 1.0
    remaining_time_weight: float = 1.0
    alignment_weight: float = 1.0
    huber_delta_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("caption_weight", "remaining_time_weight", "alignment_weight"):
            value = getattr(self, name)
            require(value >= 0.0, f"loss.{name}={value} must not be negative")
        require(self.huber_delta_s > 0.0, f"loss.huber_delta_s={self.huber_delta_s} must be > 0")


@dataclasses.dataclass(frozen=True)
class VLMConfig:
    """A whole VLM variant. ``vision: null`` makes it text-only."""

    lm: TinyLMConfig
    staircase: StaircaseConfig
    heads: HeadsConfig
    prompt: PromptConfig
    vision: VisionConfig | None = None
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        check_staircase_fits(self.staircase, self.lm.num_layers)

    def replace_staircase(self, **changes: int) -> VLMConfig:
        """A copy with some Staircase fields changed (e.g. ``num_latents=8``)."""
        return dataclasses.replace(self, staircase=dataclasses.replace(self.staircase, **changes))


def check_staircase_fits(staircase: StaircaseConfig, num_layers: int) -> None:
    """The relay depth must leave at least one lower and one upper layer: 1 <= r <= L - 1."""
    require(
        staircase.relay_layer <= num_layers - 1,
        f"staircase.relay_layer={staircase.relay_layer} must be at most "
        f"lm.num_layers - 1 = {num_layers - 1} (latents 2..K need at least one upper layer)",
    )


def available_configs() -> list[str]:
    """Names of the shipped VLM variants (``vlm_*.yaml`` in ``wallwm_core/configs``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("vlm_*.yaml"))


def load_vlm_config(name_or_path: str | Path) -> VLMConfig:
    """Load a shipped variant by name (``"vlm_tiny"``) or any YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        names = available_configs()
        if str(name_or_path) not in names:
            hint = did_you_mean(str(name_or_path), names)
            raise ConfigError(f"unknown VLM config {str(name_or_path)!r} (have {names}){hint}")
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    return load_config(VLMConfig, path)

"""A small randomly initialised vision-language decoder that implements :class:`CausalLM`.

Text: pre-norm blocks (RMSNorm -> attention with RoPE through SDPA -> RMSNorm -> SwiGLU),
final RMSNorm, LM head tied to the token embedding, over the shared byte vocabulary.
Vision: each view ``[3, H, W]`` is cut into ``patch_size`` patches by a strided convolution and
gets a learned patch-position and view embedding; the result is a prefix of
``V * (H / p) * (W / p)`` tokens, placed before the text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from wallwm_core.tokenizer import VOCAB_SIZE
from wallwm_core.vlm.config import TinyLMConfig, VisionConfig


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables ``[B, 1, S, head_dim]`` for integer positions ``[B, S]``."""
    inv_freq = 1.0 / theta ** (
        torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    )
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq  # [B, S, head_dim / 2]
    angles = torch.cat([angles, angles], dim=-1).unsqueeze(1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, H, S, D]`` (rotate-half convention: pairs are (i, i + D/2))."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


class SelfAttention(nn.Module):
    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        batch, seq, width = x.shape
        q, k, v = (
            self.qkv(x).view(batch, seq, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        )
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.unsqueeze(1))
        return self.out(y.transpose(1, 2).reshape(batch, seq, width))


class SwiGLU(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(width, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class DecoderBlock(nn.Module):
    def __init__(self, config: TinyLMConfig) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.width, eps=config.norm_eps)
        self.attn = SelfAttention(config.width, config.num_heads)
        self.ffn_norm = nn.RMSNorm(config.width, eps=config.norm_eps)
        self.ffn = SwiGLU(config.width, config.ffn_width)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), mask, cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class PatchEmbedding(nn.Module):
    """Images ``[B, V, 3, H, W]`` in [0, 1] -> tokens ``[B, V * N, width]``, view-major."""

    def __init__(self, config: VisionConfig, width: int) -> None:
        super().__init__()
        self.config = config
        self.proj = nn.Conv2d(3, width, kernel_size=config.patch_size, stride=config.patch_size)
        self.patch_position = nn.Parameter(torch.zeros(config.patches_per_view, width))
        self.view = nn.Parameter(torch.zeros(config.max_views, width))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if images.ndim != 5 or images.shape[2:] != (3, size, size):
            raise ValueError(
                f"images must be [B, V, 3, {size}, {size}] (vision.image_size={size}), "
                f"got {tuple(images.shape)}"
            )
        batch, views = images.shape[:2]
        if not 1 <= views <= self.config.max_views:
            raise ValueError(
                f"got {views} views; vision.max_views={self.config.max_views} (at least 1)"
            )
        if not images.is_floating_point():
            raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}")
        if not torch.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        x = self.proj(images.flatten(0, 1) * 2.0 - 1.0)  # [B*V, width, h, w]
        x = x.flatten(2).transpose(1, 2) + self.patch_position  # [B*V, N, width]
        x = x.view(batch, views, -1, x.shape[-1]) + self.view[:views, None]
        return x.flatten(1, 2)


class TinyCausalLM(nn.Module):
    """The tiny VLM decoder; see the module doc. Implements :class:`CausalLM`."""

    def __init__(
        self,
        config: TinyLMConfig,
        vision: VisionConfig | None = None,
        vocab_size: int = VOCAB_SIZE,
    ) -> None:
        super().__init__()
        self.config = config
        self._vocab_size = vocab_size
        self.tokens = nn.Embedding(vocab_size, config.width)
        self.blocks = nn.ModuleList(DecoderBlock(config) for _ in range(config.num_layers))
        self.norm = nn.RMSNorm(config.width, eps=config.norm_eps)
        self.head = nn.Linear(config.width, vocab_size, bias=False)
        self.vision = PatchEmbedding(vision, config.width) if vision is not None else None
        self.init_weights()

    def init_weights(self) -> None:
        """Normal(0, init_std) for matrices and embeddings; output projections scaled by depth."""
        std = self.config.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding | nn.Conv2d):
                nn.init.normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            residual_std = std / (2 * self.config.num_layers) ** 0.5
            nn.init.normal_(block.attn.out.weight, std=residual_std)
            nn.init.normal_(block.ffn.down.weight, std=residual_std)
        if self.vision is not None:
            nn.init.normal_(self.vision.patch_position, std=std)
            nn.init.normal_(self.vision.view, std=std)
        if self.config.tie_embeddings:
            self.head.weight = self.tokens.weight

    # ------------------------------------------------------------------ CausalLM
    @property
    def width(self) -> int:
        return self.config.width

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def accepts_images(self) -> bool:
        return self.vision is not None

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tokens(ids)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        if self.vision is None:
            raise ValueError("this VLM config has no vision section (vision: null); no images")
        return self.vision(images.to(self.tokens.weight.dtype))

    def run_layers(
        self,
        hidden: torch.Tensor,
        start: int,
        end: int,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        if not 0 <= start <= end <= self.num_layers:
            raise ValueError(f"layer range [{start}, {end}) outside [0, {self.num_layers}]")
        cos, sin = rope_cos_sin(
            positions, self.width // self.config.num_heads, self.config.rope_theta, hidden.dtype
        )
        for block in self.blocks[start:end]:
            hidden = block(hidden, attention_mask, cos, sin)
        return hidden

    def final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(hidden)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)

"""Building blocks shared by the towers: norms, timestep embedding, rotary embedding, attention.

Attention goes through one entry point, :func:`torch.nn.functional.scaled_dot_product_attention`,
with boolean masks (True = may attend) built by :func:`key_padding_mask` and
:func:`pair_mask`. Both guarantee that every query row keeps at least one key, so padded rows
never produce NaN (a NaN value would leak into real tokens through ``0 * NaN``).

Tensor layout inside attention: ``[B, heads, L, head_dim]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

# Timesteps t in [0, 1] are embedded as t * TIMESTEP_SCALE, the scale of Wan's 1000-step schedule.
TIMESTEP_SCALE = 1000.0


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back (stable under bf16/fp16 weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        out = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return out.type_as(x)


class RMSNorm(nn.Module):
    """RMS normalisation over the last dimension with a learned scale, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).type_as(x)


def sinusoidal_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """``[...]`` timesteps in [0, 1] -> ``[..., dim]`` float32 ``[cos | sin]`` features.

    Frequencies ``10000^(-i / (dim/2))``; the timestep is scaled by ``TIMESTEP_SCALE`` first.
    """
    half = dim // 2
    exponent = -torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    frequencies = torch.pow(10000.0, exponent)
    angles = (timesteps.float() * TIMESTEP_SCALE)[..., None] * frequencies
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepEmbedding(nn.Module):
    """Timesteps ``[...]`` -> (embedding ``[..., dim]``, modulation ``[..., num_mod, dim]``).

    The embedding is an MLP over sinusoidal features (``time_embedding``); the modulation table
    is its SiLU-Linear projection (``time_projection``), shared by all blocks of a tower.
    """

    def __init__(self, freq_dim: int, dim: int, num_mod: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.num_mod = num_mod
        self.time_embedding = nn.Sequential(
            nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, num_mod * dim))

    def forward(self, timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = sinusoidal_embedding(timesteps, self.freq_dim)
        weight = self.time_embedding[0].weight
        embedding = self.time_embedding(features.to(weight.dtype))
        modulation = self.time_projection(embedding).unflatten(-1, (self.num_mod, -1))
        return embedding, modulation


def rope_angles(
    positions: torch.Tensor, axes_dim: tuple[int, ...] | list[int], theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables for integer positions over several axes.

    ``positions``: ``[L, A]`` (one column per axis, e.g. frame, height, width, view);
    ``axes_dim``: rotary channels per axis (even, summing to the head dim; 0 skips an axis).
    Returns ``(cos, sin)``, each ``[L, head_dim / 2]`` float32; the channel pairs of axis ``a``
    rotate at ``theta^(-2i / axes_dim[a])``, axes concatenated in order.
    """
    if positions.ndim != 2 or positions.shape[1] != len(axes_dim):
        raise ValueError(
            f"positions must be [L, {len(axes_dim)}] for axes {tuple(axes_dim)}, "
            f"got {tuple(positions.shape)}"
        )
    angles = []
    for axis, axis_dim in enumerate(axes_dim):
        if axis_dim == 0:
            continue
        exponent = torch.arange(0, axis_dim, 2, dtype=torch.float32, device=positions.device)
        inv_freq = torch.pow(theta, -exponent / axis_dim)
        angles.append(positions[:, axis].float()[:, None] * inv_freq)
    table = torch.cat(angles, dim=-1)
    return torch.cos(table), torch.sin(table)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x`` ``[B, heads, L, head_dim]`` by ``[L, head_dim/2]``.

    Pairs are ``(x[2i], x[2i+1])`` (the complex-number layout Wan uses); computed in float32.
    """
    x32 = x.float().unflatten(-1, (-1, 2))
    real, imag = x32[..., 0], x32[..., 1]
    rotated = torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)


def key_padding_mask(key_valid: torch.Tensor) -> torch.Tensor:
    """``[B, Lk]`` bool (True = real key) -> attention mask ``[B, 1, 1, Lk]``.

    A row with no real key at all (a fully padded sequence) may attend to every key: its outputs
    are padding anyway, and this keeps them finite.
    """
    if key_valid.dtype != torch.bool or key_valid.ndim != 2:
        raise ValueError(f"key_valid must be bool [B, Lk], got {key_valid.dtype} {key_valid.shape}")
    empty = ~key_valid.any(dim=-1, keepdim=True)
    return (key_valid | empty)[:, None, None, :]


def pair_mask(pair_allowed: torch.Tensor, key_valid: torch.Tensor | None) -> torch.Tensor:
    """Square pair mask ``[B, L, L]`` (True = allowed) and key validity ``[B, L]`` -> ``[B, 1, L, L]``.

    Every token may always attend to itself, so no row is empty.
    """
    allowed = pair_allowed
    if key_valid is not None:
        allowed = allowed & key_valid[:, None, :]
    eye = torch.eye(allowed.shape[-1], dtype=torch.bool, device=allowed.device)
    return (allowed | eye)[:, None]


class Attention(nn.Module):
    """Multi-head attention with optional QK RMSNorm and rotary embedding.

    Parameter names follow Wan (``q``, ``k``, ``v``, ``o``, ``norm_q``, ``norm_k``). Keys and
    values come from ``x`` (self-attention) or from a context of width ``kv_dim``
    (cross-attention); :meth:`project_kv` and :meth:`attend` split the two halves so that keys
    and values of a fixed context can be computed once and reused.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kv_dim: int | None = None,
        qk_norm: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        kv_dim = dim if kv_dim is None else kv_dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def project_kv(
        self,
        context: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``context`` ``[B, Lk, kv_dim]`` -> keys, values ``[B, heads, Lk, head_dim]``."""
        k = self._heads(self.norm_k(self.k(context)))
        if rope is not None:
            k = apply_rope(k, *rope)
        return k, self._heads(self.v(context))

    def attend(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Queries from ``x`` ``[B, Lq, dim]`` against projected ``k``, ``v`` -> ``[B, Lq, dim]``.

        ``mask``: bool, broadcastable to ``[B, heads, Lq, Lk]``, True = may attend.
        """
        q = self._heads(self.norm_q(self.q(x)))
        if rope is not None:
            q = apply_rope(q, *rope)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o(out.transpose(1, 2).flatten(2))

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        rope_q: tuple[torch.Tensor, torch.Tensor] | None = None,
        rope_k: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` ``[B, Lq, dim]``, ``context`` ``[B, Lk, kv_dim]`` (default ``x``) -> ``[B, Lq, dim]``."""
        k, v = self.project_kv(x if context is None else context, rope_k)
        return self.attend(x, k, v, rope_q, mask)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN: ``x * (1 + scale) + shift`` (float32 arithmetic, cast back to ``x``'s dtype)."""
    return (x.float() * (1.0 + scale.float()) + shift.float()).type_as(x)


def init_linear(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every ``nn.Linear`` inside ``module``."""
    for submodule in module.modules():
        if isinstance(submodule, nn.Linear):
            nn.init.xavier_uniform_(submodule.weight)
            if submodule.bias is not None:
                nn.init.zeros_(submodule.bias)


def modulation_table(num_mod: int, dim: int) -> nn.Parameter:
    """A learned ``[1, num_mod, dim]`` AdaLN table, added to the timestep projection."""
    return nn.Parameter(torch.randn(1, num_mod, dim) / math.sqrt(dim))

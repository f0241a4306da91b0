"""Staircase conditioning glue: VLM latents ``[B, K, d]`` -> the video tower's text input.

The VLM's Staircase branch (:meth:`wallwm_core.vlm.WallVLM.staircase_latents`) emits ``K``
continuous latents of the LM's width ``d``; the video tower cross-attends to text tokens of
width ``video_tower.text_dim``. :class:`StaircaseProjection` (LayerNorm + Linear, owned by the
inference side) maps one onto the other, so the latents stand in for an encoded instruction
as a :class:`~wallwm_core.model.text_encoder.TextEmbedding` of ``K`` tokens.

In a checkpoint it lives in ``staircase_projection.safetensors`` (keys ``norm.weight``,
``norm.bias``, ``linear.weight`` ``[text_dim, d]``, ``linear.bias``), its sizes in
``metadata.yaml`` (``staircase_projection: {input_dim, output_dim}``).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from wallwm_core.model.text_encoder import TextEmbedding


@dataclasses.dataclass(frozen=True)
class StaircaseCondition:
    """Staircase latents ``[B, K, d]`` and their bool mask ``[B, K]`` (True on real latents)."""

    latents: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.latents.ndim != 3 or tuple(self.mask.shape) != tuple(self.latents.shape[:2]):
            raise ValueError(
                f"staircase latents must be [B, K, d] with a [B, K] mask, got "
                f"{tuple(self.latents.shape)} and {tuple(self.mask.shape)}"
            )
        if self.mask.dtype != torch.bool:
            raise ValueError(f"staircase mask must be bool, got {self.mask.dtype}")
        if not bool(self.mask.any(dim=1).all()):
            raise ValueError("every sample needs at least one real staircase latent")
        if not bool(torch.isfinite(self.latents).all()):
            raise ValueError("staircase latents contain NaN or infinite values")


class StaircaseProjection(nn.Module):
    """``[B, K, input_dim]`` -> ``[B, K, output_dim]`` (the video tower's ``text_dim``)."""

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        if input_dim < 1 or output_dim < 1:
            raise ValueError(f"dims must be positive, got {input_dim=} {output_dim=}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.norm = nn.LayerNorm(input_dim)
        self.linear = nn.Linear(input_dim, output_dim)
        nn.init.normal_(self.linear.weight, std=input_dim**-0.5)
        nn.init.zeros_(self.linear.bias)

    def forward(self, condition: StaircaseCondition) -> TextEmbedding:
        """Projected latents as a text embedding (zero at masked latents)."""
        latents = condition.latents
        if latents.shape[-1] != self.input_dim:
            raise ValueError(
                f"staircase latents have width {latents.shape[-1]}, the projection expects "
                f"{self.input_dim} (the VLM's width)"
            )
        weight = self.linear.weight
        tokens = self.linear(self.norm(latents.to(weight.dtype)))
        mask = condition.mask.to(tokens.device)
        return TextEmbedding(tokens * mask[..., None], mask)

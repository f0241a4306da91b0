"""Heads on the Staircase latents and the three training losses.

- next-event head: the LM head itself, reading caption tokens placed after the latents
  (see :mod:`wallwm_core.vlm.model`); trained with :func:`caption_loss` (cross-entropy);
- Δt head (:class:`RemainingTimeHead`): remaining time of the event in seconds from the pooled
  latents; :func:`remaining_time_loss` (Huber);
- alignment (:class:`AlignmentHead`): pooled latents projected to the text encoder's width;
  :func:`alignment_loss` (1 - cosine similarity to the text encoder's embedding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


def pool_latents(latents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real latents: ``[B, K, d]``, mask ``[B, K]`` -> ``[B, d]``."""
    weights = mask.to(latents.dtype).unsqueeze(-1)
    return (latents * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class RemainingTimeHead(nn.Module):
    """Pooled latents ``[B, d]`` -> remaining time ``[B]`` in seconds (unclamped for training)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.mlp(pooled).squeeze(-1)


class AlignmentHead(nn.Module):
    """Pooled latents ``[B, d]`` -> ``[B, align_dim]`` in the text encoder's embedding space."""

    def __init__(self, width: int, align_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, align_dim)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.proj(pooled)


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over real target tokens: logits ``[B, T, V]``, targets/valid ``[B, T]``."""
    targets = targets.masked_fill(~valid, -100)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def remaining_time_loss(
    predicted_s: torch.Tensor, target_s: torch.Tensor, delta_s: float
) -> torch.Tensor:
    """Huber loss between predicted and true remaining time ``[B]`` (seconds)."""
    return F.huber_loss(predicted_s.float(), target_s.float(), delta=delta_s)


def alignment_loss(projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - cos(projected, target)``, mean over the batch; both ``[B, align_dim]``."""
    if projected.shape != target.shape:
        raise ValueError(
            f"target embedding must be {tuple(projected.shape)} (heads.align_dim), "
            f"got {tuple(target.shape)}"
        )
    return (1.0 - F.cosine_similarity(projected.float(), target.float(), dim=-1)).mean()

"""The event-length (Δt) head: how long until the current event ends, from the observation.

Inputs (all available before anything is denoised, so event-mode inference can size the chunk
first): the video tower's last-block hidden states of the clean context (observation) frames,
mean-pooled over valid tokens; the text tokens embedded by the video tower, mean-pooled over
real tokens; and the raw normalised proprioceptive state. An MLP maps their concatenation to a
non-negative value (softplus) in units of ``objective.event_length_scale_s`` seconds.
"""

from __future__ import annotations

import torch
from torch import nn

from wallwm_core.model.config import EventLengthHeadConfig
from wallwm_core.model.layers import LayerNorm32


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``[B, L, D]`` over positions where ``mask`` ``[B, L]`` is True -> ``[B, D]``.

    A row without any True position pools to zeros.
    """
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class EventLengthHead(nn.Module):
    """``(video [B, Dv], text [B, Dv], state [B, S])`` -> Δt ``[B]`` in scale units (>= 0)."""

    def __init__(self, config: EventLengthHeadConfig, video_dim: int, state_dim: int) -> None:
        super().__init__()
        self.norm_video = LayerNorm32(video_dim)
        self.norm_text = LayerNorm32(video_dim)
        hidden = config.hidden_dim
        self.mlp = nn.Sequential(
            nn.Linear(2 * video_dim + state_dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    def forward(
        self, video_pooled: torch.Tensor, text_pooled: torch.Tensor, state: torch.Tensor
    ) -> torch.Tensor:
        weight = self.mlp[0].weight
        features = torch.cat(
            [self.norm_video(video_pooled), self.norm_text(text_pooled), state.to(weight.dtype)],
            dim=-1,
        )
        return nn.functional.softplus(self.mlp(features.to(weight.dtype))).squeeze(-1)

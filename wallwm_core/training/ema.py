"""Exponential moving average of the trainable weights (what the inference checkpoints hold)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """``ema <- d * ema + (1 - d) * weight`` after optimiser step ``n`` (0-based), with the
    warm-up ``d = min(decay, (1 + n) / (10 + n))``: early on the average follows the weights
    (without it, 0.999 would keep ~90% of the random initialisation after 100 steps, and early
    validation would measure the initialisation).

    Holds a float32 copy of each trainable parameter (the local shard under FSDP2, a full
    tensor otherwise); frozen parameters and buffers are taken from the model when saving.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        self.shadow = {
            name: p.detach().clone().float()
            for name, p in model.named_parameters()
            if p.requires_grad
        }

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        params = dict(model.named_parameters())
        current = [params[name].detach().float() for name in self.names]
        weight = 1.0 - self.decay_at(step)
        torch._foreach_lerp_([self.shadow[n] for n in self.names], current, weight)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) - set(state)
        if missing:
            raise ValueError(f"EMA state misses {len(missing)} parameter(s), e.g. {min(missing)!r}")
        with torch.no_grad():
            for name in self.names:
                self.shadow[name].copy_(state[name])

"""Exponential moving average of the trainable weights (what the inference checkpoints hold)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """``ema <- decay * ema + (1 - decay) * weight`` after every optimiser step.

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

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        current = [params[name].detach().float() for name in self.names]
        torch._foreach_lerp_([self.shadow[n] for n in self.names], current, 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) - set(state)
        if missing:
            raise ValueError(f"EMA state misses {len(missing)} parameter(s), e.g. {min(missing)!r}")
        with torch.no_grad():
            for name in self.names:
                self.shadow[name].copy_(state[name])

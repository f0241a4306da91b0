"""Counts decoder-layer work done through a :class:`CausalLM` (to check cost formulas).

Two measures, both per sequence (batch size does not enter):

- ``layer_calls``: decoder layers applied one after another, ``sum(end - start)`` over calls
  of ``run_layers``: the depth of the computation, what latency follows on a parallel device;
- ``token_layer_passes``: ``sum((end - start) * S)``: how many (token, layer) pairs were
  computed, with ``S`` the (padded) sequence length of each call: the work.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from wallwm_core.vlm.interface import CausalLM


@dataclasses.dataclass(frozen=True)
class LayerCall:
    start: int
    end: int
    seq_len: int


class CountingLM(nn.Module):
    """Wraps a :class:`CausalLM`, records every ``run_layers`` call and delegates the rest."""

    def __init__(self, inner: CausalLM) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[LayerCall] = []

    def reset(self) -> None:
        self.calls.clear()

    @property
    def layer_calls(self) -> int:
        return sum(c.end - c.start for c in self.calls)

    @property
    def token_layer_passes(self) -> int:
        return sum((c.end - c.start) * c.seq_len for c in self.calls)

    @property
    def width(self) -> int:
        return self.inner.width

    @property
    def num_layers(self) -> int:
        return self.inner.num_layers

    @property
    def vocab_size(self) -> int:
        return self.inner.vocab_size

    @property
    def accepts_images(self) -> bool:
        return self.inner.accepts_images

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.inner.embed_tokens(ids)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner.embed_images(images)

    def run_layers(
        self,
        hidden: torch.Tensor,
        start: int,
        end: int,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        self.calls.append(LayerCall(start, end, hidden.shape[1]))
        return self.inner.run_layers(hidden, start, end, attention_mask, positions)

    def final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.inner.final_norm(hidden)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.inner.lm_head(hidden)

"""What the Staircase branch and the heads need from a causal language model, and masks.

Any decoder-only LM that exposes its pieces separately fits :class:`CausalLM`: the tiny model
in :mod:`wallwm_core.vlm.tiny_lm` and the Hugging Face adapter in
:mod:`wallwm_core.vlm.hf_adapter`. Splitting "run layers [a, b)" out of the forward pass is what
lets the Staircase branch splice new tokens in at a chosen depth.

Mask convention (one function builds it, :func:`causal_padding_mask`): a bool tensor
``[B, S, S]``, True where query ``i`` may attend to key ``j``, i.e. ``j <= i`` and key ``j`` is a
real token. Padding rows still see their real predecessors, so no row is empty and SDPA never
returns NaN; padded positions never influence real ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class CausalLM(Protocol):
    """A decoder-only (optionally vision-) language model, taken apart into its stages.

    Implementations are ``nn.Module`` objects, so freezing and optimisers see their parameters.

    Shapes: ids ``[B, T]`` int64, hidden ``[B, S, width]``, positions ``[B, S]`` int64 (RoPE
    indices), attention_mask ``[B, S, S]`` bool (see the module doc), images
    ``[B, V, 3, H, W]`` float in [0, 1].
    """

    @property
    def width(self) -> int: ...

    @property
    def num_layers(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def accepts_images(self) -> bool: ...

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` -> ``[B, T, width]``."""
        ...

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3, H, W]`` -> prefix tokens ``[B, P, width]`` (raises if unsupported)."""
        ...

    def run_layers(
        self,
        hidden: torch.Tensor,
        start: int,
        end: int,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        """Apply decoder layers ``start .. end - 1`` to ``hidden`` ``[B, S, width]``."""
        ...

    def final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        """The norm after the last layer, ``[B, S, width]`` -> same."""
        ...

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, S, width]`` (already final-normed) -> logits ``[B, S, vocab_size]``."""
        ...


class TextTokenizer(Protocol):
    """The tokenizer interface used here (:class:`wallwm_core.tokenizer.ByteTokenizer` fits)."""

    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int

    def encode(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[BOS, ..., EOS]`` ids ``[B, max_length]`` and a bool mask, True on real tokens."""
        ...

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str: ...


def causal_padding_mask(valid: torch.Tensor) -> torch.Tensor:
    """``valid`` ``[B, S]`` bool -> ``[B, S, S]`` bool: causal and only real keys."""
    if valid.ndim != 2 or valid.dtype != torch.bool:
        raise ValueError(f"valid must be bool [B, S], got {valid.dtype} {tuple(valid.shape)}")
    seq = valid.shape[1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=valid.device).tril()
    return causal.unsqueeze(0) & valid.unsqueeze(1)


def positions_from_valid(valid: torch.Tensor) -> torch.Tensor:
    """RoPE positions ``[B, S]``: real tokens count 0, 1, 2, ...; padding repeats its predecessor.

    So the same real tokens get the same positions however much padding sits between them.
    """
    return (valid.long().cumsum(dim=1) - 1).clamp(min=0)

"""Staircase Decoding: K continuous latent "reasoning" states from a (frozen) causal LM.

Layout (L = 4 layers, relay depth r = 3, K = 4 latents; one column per token, one row per
decoder layer; ``■`` = that token is computed at that layer)::

               context (T)   z1   z2   z3   z4   suffix (Tc, optional: caption tokens)
    layer 3    ■ ■ ■ ■ ■     ■    ■    ■    ■    ■ ■ ■    upper pass: layers [r, L), one call,
                                  ↑    ↑    ↑               causal mask over the whole row
    ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ s2 → s3 → s4 ─ ─ ─ ─ ─  relay depth r: seeds spliced in
    layer 2    ■ ■ ■ ■ ■     ■ ──┘                 ■ ■ ■    lower pass: layers [0, r), one
    layer 1    ■ ■ ■ ■ ■     ■                     ■ ■ ■    call; z2..zK do not exist here
    layer 0    ■ ■ ■ ■ ■     ■                     ■ ■ ■
    input      e e e e e     q                     e e e

- **Latent 1** is a learned query ``q`` appended to the context (image prefix + prompt) and run
  through all L layers, like any token.
- **Latents 2..K** start at the relay depth r from the previous latent's state there:
  ``s_2 = relay_1(h_r(z1))`` (z1 after layers 0..r-1), ``s_k = relay_{k-1}(s_{k-1})`` (a residual
  MLP plus a learned step embedding per index: the branch's "relay projections"). The seeds are
  spliced in right after z1 and all K latents (plus the context and any suffix) run the upper
  layers [r, L) together, in parallel, under the ordinary causal mask: z_k reads the context,
  z_1..z_{k-1} and itself at every upper layer, so the mask over the latents is the
  lower-triangular "staircase".
- The latents are the final-normed top states ``[B, K, width]``; the suffix (a caption being
  decoded by the next-event head) sits after them and reads them in the upper layers.

Only the branch (``q``, relay MLP, step embeddings) is new; the LM's own weights are reused and
may be frozen. Everything is one differentiable graph.

Cost, per sequence, with U = L - r upper layers and T context tokens (no suffix):

- (latent token, layer) pairs: ``L + (K - 1) * U``; with U = 1, the paper's ``L + (K - 1)``.
  The naive loop (each latent fed back as the next input, through all L layers) computes
  ``K * L`` of them even with a KV cache.
- sequential layer calls: ``L`` for any K (one lower and one upper call); naive: ``K * L``.
- all (token, layer) pairs: ``T * L + L + (K - 1) * U``; the naive loop here keeps no KV cache
  and recomputes the context every step: ``L * sum_{k=1..K} (T + k)``.

:func:`staircase_cost` and :func:`naive_cost` give these numbers; the tests check them against
:class:`~wallwm_core.vlm.layer_counting.CountingLM`.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from wallwm_core.vlm.config import StaircaseConfig
from wallwm_core.vlm.interface import CausalLM, causal_padding_mask, positions_from_valid


class StaircaseBranch(nn.Module):
    """The trainable part of Staircase Decoding: first-latent query and relay projections."""

    def __init__(self, width: int, config: StaircaseConfig, init_std: float = 0.02) -> None:
        super().__init__()
        self.config = config
        self.query = nn.Parameter(torch.randn(width) * init_std)
        self.relay_norm = nn.RMSNorm(width)
        self.relay_in = nn.Linear(width, config.relay_hidden)
        self.relay_out = nn.Linear(config.relay_hidden, width)
        self.step = nn.Parameter(torch.randn(max(config.num_latents - 1, 1), width) * init_std)
        for layer in (self.relay_in, self.relay_out):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)

    @property
    def num_latents(self) -> int:
        return self.config.num_latents

    @property
    def relay_layer(self) -> int:
        return self.config.relay_layer

    def relay(self, hidden: torch.Tensor, step: int) -> torch.Tensor:
        """Seed of latent ``step + 1`` from the state ``[B, width]`` of latent ``step``."""
        update = self.relay_out(nn.functional.gelu(self.relay_in(self.relay_norm(hidden))))
        index = min(step, self.step.shape[0]) - 1
        return hidden + (update + self.step[index]).to(hidden.dtype)

    def seeds(self, first: torch.Tensor) -> torch.Tensor:
        """Seeds of latents 2..K ``[B, K - 1, width]`` from latent 1's relay-depth state."""
        seeds = []
        state = first
        for step in range(1, self.num_latents):
            state = self.relay(state, step)
            seeds.append(state)
        if not seeds:
            return first.new_zeros(first.shape[0], 0, first.shape[1])
        return torch.stack(seeds, dim=1)


@dataclasses.dataclass(frozen=True)
class StaircaseOutput:
    """latents ``[B, K, width]`` (final-normed), latent_mask ``[B, K]`` bool (all True),
    suffix_hidden ``[B, Tc, width]`` final-normed suffix states (``Tc = 0`` without a suffix)."""

    latents: torch.Tensor
    latent_mask: torch.Tensor
    suffix_hidden: torch.Tensor


def _check_context(context: torch.Tensor, context_valid: torch.Tensor, width: int) -> None:
    if context.ndim != 3 or context.shape[-1] != width:
        raise ValueError(f"context must be [B, T, {width}], got {tuple(context.shape)}")
    if context_valid.shape != context.shape[:2] or context_valid.dtype != torch.bool:
        raise ValueError(
            f"context_valid must be bool {tuple(context.shape[:2])}, "
            f"got {context_valid.dtype} {tuple(context_valid.shape)}"
        )
    if not context_valid.any(dim=1).all():
        raise ValueError("every context row needs at least one real token")


def staircase_forward(
    lm: CausalLM,
    branch: StaircaseBranch,
    context: torch.Tensor,
    context_valid: torch.Tensor,
    suffix: torch.Tensor | None = None,
    suffix_valid: torch.Tensor | None = None,
) -> StaircaseOutput:
    """Run Staircase Decoding (see the module doc) in two ``run_layers`` calls.

    context ``[B, T, width]`` embeddings (image prefix + prompt, right-padded) with
    context_valid ``[B, T]``; optional suffix ``[B, Tc, width]`` embeddings placed after the
    latents (a caption under teacher forcing or greedy decoding) with suffix_valid ``[B, Tc]``.
    """
    _check_context(context, context_valid, lm.width)
    batch, ctx_len, width = context.shape
    num_latents, relay = branch.num_latents, branch.relay_layer
    if not 1 <= relay < lm.num_layers:
        raise ValueError(f"relay_layer={relay} must lie in [1, {lm.num_layers - 1}]")
    if suffix is None:
        suffix = context.new_zeros(batch, 0, width)
        suffix_valid = context_valid.new_zeros(batch, 0)
    elif suffix_valid is None or suffix_valid.shape != suffix.shape[:2]:
        raise ValueError("suffix_valid [B, Tc] must come with suffix [B, Tc, width]")
    suffix_len = suffix.shape[1]

    latent_valid = context_valid.new_ones(batch, num_latents)
    valid = torch.cat([context_valid, latent_valid, suffix_valid], dim=1)
    positions = positions_from_valid(valid)
    # The lower pass holds the context, z1 and the suffix (no seeds yet), in the same order.
    lower = torch.cat(
        [
            torch.arange(ctx_len + 1, device=context.device),
            torch.arange(
                ctx_len + num_latents, ctx_len + num_latents + suffix_len, device=context.device
            ),
        ]
    )
    query = branch.query.to(context.dtype).expand(batch, 1, width)
    hidden = lm.run_layers(
        torch.cat([context, query, suffix], dim=1),
        0,
        relay,
        causal_padding_mask(valid[:, lower]),
        positions[:, lower],
    )
    seeds = branch.seeds(hidden[:, ctx_len])
    hidden = torch.cat([hidden[:, : ctx_len + 1], seeds, hidden[:, ctx_len + 1 :]], dim=1)
    hidden = lm.run_layers(hidden, relay, lm.num_layers, causal_padding_mask(valid), positions)
    out = lm.final_norm(hidden[:, ctx_len:])
    return StaircaseOutput(
        latents=out[:, :num_latents],
        latent_mask=latent_valid,
        suffix_hidden=out[:, num_latents:],
    )


def naive_latent_loop(
    lm: CausalLM,
    branch: StaircaseBranch,
    context: torch.Tensor,
    context_valid: torch.Tensor,
) -> torch.Tensor:
    """Reference: K latents one after another, each through all L layers -> ``[B, K, width]``.

    Latent 1 is the query run after the context (as in the staircase); latent k + 1's input is
    ``branch.relay(top state of latent k, k)`` appended to the sequence (continuous-thought
    style). No KV cache: every step reruns the whole sequence (see :func:`naive_cost`).
    """
    _check_context(context, context_valid, lm.width)
    batch, _, width = context.shape
    sequence = torch.cat([context, branch.query.to(context.dtype).expand(batch, 1, width)], dim=1)
    valid = torch.cat([context_valid, context_valid.new_ones(batch, 1)], dim=1)
    latents = []
    for step in range(1, branch.num_latents + 1):
        hidden = lm.run_layers(
            sequence, 0, lm.num_layers, causal_padding_mask(valid), positions_from_valid(valid)
        )
        top = hidden[:, -1]
        latents.append(lm.final_norm(top))
        if step < branch.num_latents:
            sequence = torch.cat([sequence, branch.relay(top, step).unsqueeze(1)], dim=1)
            valid = torch.cat([valid, valid.new_ones(batch, 1)], dim=1)
    return torch.stack(latents, dim=1)


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """Per-sequence cost; see :mod:`wallwm_core.vlm.layer_counting` for the two measures."""

    layer_calls: int
    token_layer_passes: int


def latent_layer_passes(num_layers: int, relay_layer: int, num_latents: int) -> int:
    """(latent token, layer) pairs of the staircase: ``L + (K - 1) * (L - r)``."""
    return num_layers + (num_latents - 1) * (num_layers - relay_layer)


def staircase_cost(
    num_layers: int, relay_layer: int, num_latents: int, context_tokens: int, suffix_tokens: int = 0
) -> LayerCost:
    """Cost of :func:`staircase_forward`: lower pass ``(T + 1 + Tc) * r`` plus upper pass
    ``(T + K + Tc) * (L - r)`` = ``(T + Tc) * L + L + (K - 1) * (L - r)``."""
    return LayerCost(
        layer_calls=num_layers,
        token_layer_passes=(context_tokens + suffix_tokens) * num_layers
        + latent_layer_passes(num_layers, relay_layer, num_latents),
    )


def naive_cost(num_layers: int, num_latents: int, context_tokens: int) -> LayerCost:
    """Cost of :func:`naive_latent_loop` (no KV cache): ``K * L`` calls and
    ``L * sum_{k=1..K} (T + k)`` (token, layer) pairs."""
    return LayerCost(
        layer_calls=num_latents * num_layers,
        token_layer_passes=num_layers
        * (num_latents * context_tokens + num_latents * (num_latents + 1) // 2),
    )

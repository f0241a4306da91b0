"""WallVLM: a causal LM + the Staircase branch + next-event, Δt and alignment heads.

Sequence of one forward pass (see :mod:`wallwm_core.vlm.staircase` for the layer layout)::

    [ image prefix (V * N) | prompt (Tp, right-padded) | z1 .. zK | caption (Tc, optional) ]

- the Staircase latents ``[B, K, width]`` (+ mask ``[B, K]``) are what the unified inference
  mode feeds (projected to its width) as text conditioning of the video tower;
- the next-event head is the LM head on the caption positions: the caption is decoded after
  the latents, so the caption loss trains the branch to carry the next event; greedy decoding
  (:meth:`WallVLM.generate_captions`) reruns the whole sequence per token (no KV cache);
- the Δt head and the alignment head read the mean of the latents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.tokenizer import ByteTokenizer
from wallwm_core.vlm.config import VLMConfig, check_staircase_fits
from wallwm_core.vlm.heads import AlignmentHead, RemainingTimeHead, pool_latents
from wallwm_core.vlm.interface import CausalLM, TextTokenizer
from wallwm_core.vlm.prompt import fit_prompt
from wallwm_core.vlm.staircase import (
    StaircaseBranch,
    StaircaseOutput,
    naive_latent_loop,
    staircase_forward,
)
from wallwm_core.vlm.tiny_lm import TinyCausalLM


@dataclasses.dataclass(frozen=True)
class PromptBatch:
    """Encoded prompts: ids/valid ``[B, Tp]`` (right-padded), optional images ``[B, V, 3, H, W]``."""

    ids: torch.Tensor
    valid: torch.Tensor
    images: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.ids.shape[0]


@dataclasses.dataclass(frozen=True)
class VLMOutput:
    """latents ``[B, K, width]``, latent_mask ``[B, K]``, remaining_s ``[B]`` (Δt head,
    seconds), aligned ``[B, align_dim]``, caption_logits ``[B, Tc, vocab]`` or None."""

    latents: torch.Tensor
    latent_mask: torch.Tensor
    remaining_s: torch.Tensor
    aligned: torch.Tensor
    caption_logits: torch.Tensor | None


class WallVLM(nn.Module):
    """The VLM side of WALL-WM; build the tiny variant with :meth:`from_config`."""

    def __init__(
        self, lm: CausalLM, config: VLMConfig, tokenizer: TextTokenizer | None = None
    ) -> None:
        super().__init__()
        check_staircase_fits(config.staircase, lm.num_layers)
        self.config = config
        self.lm = lm
        self.tokenizer: TextTokenizer = tokenizer if tokenizer is not None else ByteTokenizer()
        if self.tokenizer.vocab_size > lm.vocab_size:
            raise ValueError(
                f"tokenizer vocabulary ({self.tokenizer.vocab_size}) exceeds the LM's "
                f"({lm.vocab_size})"
            )
        self.branch = StaircaseBranch(lm.width, config.staircase)
        self.remaining_time_head = RemainingTimeHead(lm.width, config.heads.remaining_time_hidden)
        self.alignment_head = AlignmentHead(lm.width, config.heads.align_dim)

    @classmethod
    def from_config(cls, config: VLMConfig, seed: int | None = 0) -> WallVLM:
        """The tiny randomly initialised VLM of ``config`` (seeded when ``seed`` is given)."""
        if seed is not None:
            torch.manual_seed(seed)
        return cls(TinyCausalLM(config.lm, config.vision), config)

    # ------------------------------------------------------------------ set-up
    def freeze_language_model(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) the LM; the branch and heads stay trainable."""
        for parameter in self.lm.parameters():
            parameter.requires_grad_(not frozen)

    def encode_prompts(
        self,
        tasks: Sequence[str],
        done_events: Sequence[Sequence[str]],
        images: torch.Tensor | None = None,
    ) -> PromptBatch:
        """Prompts for ``tasks[i]`` after ``done_events[i]`` (see :mod:`.prompt`)."""
        if isinstance(tasks, str):
            raise TypeError("tasks is a sequence of strings; use [task] for one")
        if len(tasks) != len(done_events):
            raise ValueError(f"{len(tasks)} tasks but {len(done_events)} histories")
        if images is not None and images.shape[0] != len(tasks):
            raise ValueError(f"{len(tasks)} tasks but images for {images.shape[0]}")
        limit = self.config.prompt.max_prompt_tokens
        texts = [
            fit_prompt(self.tokenizer, t, e, limit) for t, e in zip(tasks, done_events, strict=True)
        ]
        lengths = [int(m.sum()) for m in self.tokenizer.encode(texts, limit)[1]]
        ids, valid = self.tokenizer.encode(texts, max_length=max(lengths))
        device = self.branch.query.device
        return PromptBatch(ids.to(device), valid.to(device), images)

    def encode_captions(self, captions: Sequence[str]) -> tuple[torch.Tensor, ...]:
        """Teacher-forcing tensors ``[B, Tc]``: inputs ``[BOS, c...]``, targets ``[c..., EOS]``,
        inputs_valid, targets_valid. A caption longer than the budget is an error."""
        limit = self.config.prompt.max_caption_tokens
        ids, mask = self.tokenizer.encode(captions, max_length=limit + 1)
        too_long = [c for c, m in zip(captions, mask, strict=True) if int(m.sum()) > limit]
        if too_long:
            raise ValueError(
                f"caption {too_long[0]!r} exceeds prompt.max_caption_tokens={limit} tokens"
            )
        length = int(mask.sum(1).max())
        ids, mask = ids[:, :length], mask[:, :length]
        device = self.branch.query.device
        return tuple(t.to(device) for t in (ids[:, :-1], ids[:, 1:], mask[:, :-1], mask[:, 1:]))

    # ------------------------------------------------------------------ forward
    def context(self, prompt: PromptBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings ``[B, P + Tp, width]`` of image prefix + prompt, and their validity."""
        embeds = self.lm.embed_tokens(prompt.ids)
        valid = prompt.valid
        if prompt.images is not None:
            image_tokens = self.lm.embed_images(prompt.images).to(embeds.dtype)
            embeds = torch.cat([image_tokens, embeds], dim=1)
            valid = torch.cat([valid.new_ones(image_tokens.shape[:2]), valid], dim=1)
        return embeds, valid

    def staircase(
        self,
        prompt: PromptBatch,
        caption_ids: torch.Tensor | None = None,
        caption_valid: torch.Tensor | None = None,
    ) -> StaircaseOutput:
        context, valid = self.context(prompt)
        suffix = self.lm.embed_tokens(caption_ids) if caption_ids is not None else None
        return staircase_forward(self.lm, self.branch, context, valid, suffix, caption_valid)

    def forward(
        self,
        prompt: PromptBatch,
        caption_ids: torch.Tensor | None = None,
        caption_valid: torch.Tensor | None = None,
    ) -> VLMOutput:
        """Latents and heads; with ``caption_ids`` ``[B, Tc]`` also the caption logits."""
        out = self.staircase(prompt, caption_ids, caption_valid)
        pooled = pool_latents(out.latents, out.latent_mask)
        return VLMOutput(
            latents=out.latents,
            latent_mask=out.latent_mask,
            remaining_s=self.remaining_time_head(pooled),
            aligned=self.alignment_head(pooled),
            caption_logits=self.lm.lm_head(out.suffix_hidden) if caption_ids is not None else None,
        )

    def staircase_latents(self, prompt: PromptBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents ``[B, K, width]`` and mask ``[B, K]``: the unified mode's text conditioning."""
        out = self.staircase(prompt)
        return out.latents, out.latent_mask

    def naive_latents(self, prompt: PromptBatch) -> torch.Tensor:
        """Reference K x L latent loop (for cost comparisons), ``[B, K, width]``."""
        context, valid = self.context(prompt)
        return naive_latent_loop(self.lm, self.branch, context, valid)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate_captions(
        self, prompt: PromptBatch, max_new_tokens: int | None = None
    ) -> list[str]:
        """Greedy next-event captions, one per prompt."""
        limit = max_new_tokens or self.config.prompt.max_caption_tokens - 1
        batch = prompt.batch_size
        ids = torch.full(
            (batch, 1), self.tokenizer.bos_id, dtype=torch.long, device=prompt.ids.device
        )
        finished = torch.zeros(batch, dtype=torch.bool, device=ids.device)
        for _ in range(limit):
            out = self.staircase(prompt, ids, torch.ones_like(ids, dtype=torch.bool))
            next_ids = self.lm.lm_head(out.suffix_hidden[:, -1]).argmax(-1)
            next_ids = next_ids.masked_fill(finished, self.tokenizer.eos_id)
            ids = torch.cat([ids, next_ids.unsqueeze(1)], dim=1)
            finished |= next_ids == self.tokenizer.eos_id
            if finished.all():
                break
        return [self.tokenizer.decode(row[1:]) for row in ids.cpu()]

    @torch.no_grad()
    def predict_remaining_ns(self, prompt: PromptBatch) -> torch.Tensor:
        """The Δt head's remaining time as int64 nanoseconds ``[B]`` (clipped at 0)."""
        seconds = self.forward(prompt).remaining_s.clamp(min=0.0).double()
        return (seconds * NS_PER_S).round().long()

    def next_event(
        self, task: str, done_events: Sequence[str], images: torch.Tensor | None = None
    ) -> str:
        """The next event caption for one task (``images`` ``[V, 3, H, W]`` or None)."""
        batch_images = images.unsqueeze(0) if images is not None else None
        prompt = self.encode_prompts([task], [tuple(done_events)], batch_images)
        return self.generate_captions(prompt)[0]

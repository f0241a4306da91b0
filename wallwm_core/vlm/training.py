"""Training the VLM heads and the Staircase branch: examples, batches, losses, one step.

Recipe (the paper's stages 3-4): freeze the LM (:meth:`WallVLM.freeze_language_model`) and
train the branch and heads with ``caption_weight * CE(next-event caption)
+ remaining_time_weight * Huber(Δt) + alignment_weight * (1 - cos(latents, text embedding))``.
A randomly initialised tiny LM has nothing to keep, so tests train it too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from wallwm_core.vlm.heads import alignment_loss, caption_loss, remaining_time_loss
from wallwm_core.vlm.model import PromptBatch, WallVLM


@dataclasses.dataclass(frozen=True)
class NextEventExample:
    """One supervision sample: after ``done_events`` of ``task`` comes ``next_event``, which
    takes ``remaining_s`` seconds; ``target_embedding`` ``[align_dim]`` is the text encoder's
    embedding of ``next_event`` (optional; no alignment term without it)."""

    task: str
    done_events: tuple[str, ...]
    next_event: str
    remaining_s: float
    target_embedding: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.remaining_s) or self.remaining_s < 0.0:
            raise ValueError(f"remaining_s must be finite and >= 0, got {self.remaining_s=}")
        if not self.next_event.strip():
            raise ValueError("next_event must not be blank")


@dataclasses.dataclass(frozen=True)
class VLMBatch:
    """A collated batch: the prompt, caption tensors ``[B, Tc]``, remaining_s ``[B]``,
    target_embedding ``[B, align_dim]`` or None."""

    prompt: PromptBatch
    caption_inputs: torch.Tensor
    caption_targets: torch.Tensor
    caption_inputs_valid: torch.Tensor
    caption_targets_valid: torch.Tensor
    remaining_s: torch.Tensor
    target_embedding: torch.Tensor | None


@dataclasses.dataclass(frozen=True)
class VLMLosses:
    """The weighted total (to backpropagate) and the unweighted components."""

    total: torch.Tensor
    caption: torch.Tensor
    remaining_time: torch.Tensor
    alignment: torch.Tensor | None

    def as_floats(self) -> dict[str, float]:
        values = {
            "total": self.total,
            "caption": self.caption,
            "remaining_time": self.remaining_time,
            "alignment": self.alignment,
        }
        return {k: float(v.detach()) for k, v in values.items() if v is not None}


def collate(
    model: WallVLM, examples: Sequence[NextEventExample], images: torch.Tensor | None = None
) -> VLMBatch:
    """Tensors for ``examples`` (``images`` ``[B, V, 3, H, W]`` optional); all or none of the
    examples must carry a target embedding."""
    if not examples:
        raise ValueError("no examples to collate")
    prompt = model.encode_prompts(
        [e.task for e in examples], [e.done_events for e in examples], images
    )
    inputs, targets, inputs_valid, targets_valid = model.encode_captions(
        [e.next_event for e in examples]
    )
    with_target = [e.target_embedding is not None for e in examples]
    if any(with_target) and not all(with_target):
        raise ValueError("either every example has a target_embedding or none has")
    device = prompt.ids.device
    target = (
        torch.stack([e.target_embedding for e in examples]).to(device) if all(with_target) else None
    )
    return VLMBatch(
        prompt=prompt,
        caption_inputs=inputs,
        caption_targets=targets,
        caption_inputs_valid=inputs_valid,
        caption_targets_valid=targets_valid,
        remaining_s=torch.tensor([e.remaining_s for e in examples], device=device),
        target_embedding=target,
    )


def compute_losses(model: WallVLM, batch: VLMBatch) -> VLMLosses:
    """All training losses of one batch in one forward pass."""
    weights = model.config.loss
    out = model(batch.prompt, batch.caption_inputs, batch.caption_inputs_valid)
    assert out.caption_logits is not None
    caption = caption_loss(out.caption_logits, batch.caption_targets, batch.caption_targets_valid)
    remaining = remaining_time_loss(out.remaining_s, batch.remaining_s, weights.huber_delta_s)
    total = weights.caption_weight * caption + weights.remaining_time_weight * remaining
    alignment = None
    if batch.target_embedding is not None:
        alignment = alignment_loss(out.aligned, batch.target_embedding)
        total = total + weights.alignment_weight * alignment
    return VLMLosses(total=total, caption=caption, remaining_time=remaining, alignment=alignment)


def make_optimizer(
    model: WallVLM, learning_rate: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """AdamW over the parameters that require gradients (the branch and heads when frozen)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("nothing to train: every parameter is frozen")
    return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)


def train_step(
    model: WallVLM, optimizer: torch.optim.Optimizer, batch: VLMBatch, max_grad_norm: float = 1.0
) -> dict[str, float]:
    """One optimisation step; returns the loss components before the step."""
    model.train()
    losses = compute_losses(model, batch)
    if not torch.isfinite(losses.total):
        raise FloatingPointError(f"non-finite loss: {losses.as_floats()}")
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    torch.nn.utils.clip_grad_norm_(
        [p for p in model.parameters() if p.requires_grad], max_grad_norm
    )
    optimizer.step()
    return losses.as_floats()

"""Optimisers and one training step.

Muon (``torch.optim.Muon``, PyTorch >= 2.9) orthogonalises the update of 2-D weight matrices
and accepts nothing else (it raises on any parameter that is not 2-D). Following the Muon
recipe, it gets the 2-D weights inside the transformer blocks (video/action tower blocks, text
encoder layers); embeddings, input/output projections, heads, norms, biases, modulation tables
and gates go to AdamW (no weight decay on 0-/1-D parameters). With ``muon_adjust_lr =
"match_rms_adamw"`` both share ``optimizer.lr`` and ``optimizer.weight_decay``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wallwm_core.model.config import ModelConfig, OptimizerConfig
from wallwm_core.model.wallwm import WallWM
from wallwm_core.training.batch import Batch
from wallwm_core.training.objective import compute_loss

BLOCK_PREFIXES = ("video_tower.blocks.", "action_tower.blocks.", "text_encoder.layers.")


def is_muon_parameter(name: str, parameter: torch.Tensor) -> bool:
    """True for a 2-D weight matrix inside a transformer block."""
    return parameter.ndim == 2 and name.startswith(BLOCK_PREFIXES)


class MuonAdamW:
    """Muon for block matrices plus AdamW for the rest, stepped together.

    Only parameters with ``requires_grad`` are optimised (freeze a tower before building this).
    ``use_muon=False`` gives AdamW for everything; ``fused`` is AdamW's fused CUDA kernel.
    """

    def __init__(
        self,
        model: nn.Module,
        config: OptimizerConfig,
        use_muon: bool = True,
        fused: bool | None = None,
    ) -> None:
        muon_params, decay, no_decay = [], [], []
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            if use_muon and is_muon_parameter(name, parameter):
                muon_params.append(parameter)
            elif parameter.ndim >= 2:
                decay.append(parameter)
            else:
                no_decay.append(parameter)
        if not (muon_params or decay or no_decay):
            raise ValueError("the model has no trainable parameters")
        self.muon = (
            torch.optim.Muon(
                muon_params,
                lr=config.lr,
                weight_decay=config.weight_decay,
                momentum=config.muon_momentum,
                adjust_lr_fn=config.muon_adjust_lr,
            )
            if muon_params
            else None
        )
        groups = [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        self.adamw = torch.optim.AdamW(
            [g for g in groups if g["params"]],
            lr=config.lr,
            betas=config.betas,
            eps=config.adam_eps,
            fused=fused,
        )

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [opt for opt in (self.muon, self.adamw) if opt is not None]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every group (for a schedule)."""
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "muon": None if self.muon is None else self.muon.state_dict(),
            "adamw": self.adamw.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state.get("muon") is None) != (self.muon is None):
            raise ValueError("optimizer state does not match this model's Muon parameters")
        if self.muon is not None:
            self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def build_optimizer(model: WallWM, config: ModelConfig | None = None) -> MuonAdamW:
    """The Muon + AdamW optimiser for ``model`` (``config.optimizer``, default the model's)."""
    return MuonAdamW(model, (config or model.config).optimizer)


def training_step(
    model: WallWM,
    batch: Batch,
    optimizer: MuonAdamW,
    generator: torch.Generator | None = None,
    config: ModelConfig | None = None,
) -> dict[str, float]:
    """One optimisation step; returns the loss parts and the pre-clipping gradient norm."""
    config = config or model.config
    model.train()
    optimizer.zero_grad()
    losses = compute_loss(model, batch, generator, config)
    losses.total.backward()
    parameters = [p for p in model.parameters() if p.grad is not None]
    clip = config.optimizer.grad_clip_norm
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, clip if clip > 0 else float("inf"))
    optimizer.step()
    return {**losses.as_floats(), "grad_norm": float(grad_norm)}

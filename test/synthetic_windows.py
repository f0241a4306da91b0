"""A synthetic, in-memory stand-in for the data side's WindowDataset (loop mechanics tests).

Implements the contract of /work/notes/data_contract.md that the training loop uses: ``len``,
``weights`` and a deterministic ``batch(indices)``; :func:`synthetic_prepare` replaces
``prepare_data``. Window ``i`` is random but fixed (seeded by ``i``); real action steps vary
with ``i``, so masks matter. Not real data: the real-data smoke test uses generated demos.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from wallwm_core.checkpoint import identity_stats
from wallwm_core.inference.deployment import DeploymentMetadata, step_period_ns
from wallwm_core.model.codec import build_codec
from wallwm_core.model.config import ModelConfig
from wallwm_core.training.batch import Batch, make_fake_batch

NUM_VIEWS = 3
LATENT_HW = (4, 4)


class SyntheticWindows:
    """``size`` fixed random windows of ``config``'s full length; sampling weights skewed."""

    def __init__(self, config: ModelConfig, size: int, offset: int = 0) -> None:
        self.config = config
        self.size = size
        self.offset = offset
        raw = 1.0 + (np.arange(size) % 3)
        self.weights = raw / raw.sum()

    def __len__(self) -> int:
        return self.size

    def _one(self, index: int) -> Batch:
        generator = torch.Generator().manual_seed(1000 + self.offset + index)
        batch = make_fake_batch(
            self.config,
            batch_size=1,
            num_views=NUM_VIEWS,
            latent_hw=LATENT_HW,
            generator=generator,
            padded=False,
        )
        steps = batch.actions.shape[1]
        real = steps - (index % max(1, steps // 2))
        mask = torch.arange(steps)[None] < real
        return dataclasses.replace(batch, action_mask=mask, actions=batch.actions * mask[..., None])

    def batch(self, indices: Sequence[int]) -> Batch:
        parts = [self._one(int(i)) for i in indices]
        fields = {}
        for field in dataclasses.fields(Batch):
            values = [getattr(p, field.name) for p in parts]
            fields[field.name] = None if values[0] is None else torch.cat(values)
        return Batch(**fields)

    def window_info(self, index: int) -> dict[str, Any]:
        return {"episode": index, "task": "synthetic", "seed": index, "start_step": 0}


@dataclasses.dataclass
class SyntheticPrepared:
    train: SyntheticWindows
    val: SyntheticWindows
    stats: Any  # action tokens
    state_stats: Any
    codec: torch.nn.Module
    deployment: DeploymentMetadata
    codec_psnr_db: float = 0.0
    report: dict[str, Any] = dataclasses.field(default_factory=dict)


def synthetic_prepare(data_config: Any, model: Any, *, log: Any = print, device: Any = "cpu"):
    """``prepare_data`` for mechanics tests: 24 train and 8 validation synthetic windows."""
    config = model.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        codec = build_codec(config.codec)
    return SyntheticPrepared(
        train=SyntheticWindows(config, 24),
        val=SyntheticWindows(config, 8, offset=10_000),
        stats=identity_stats(config.action.token_dim),
        state_stats=identity_stats(config.action.state_dim),
        codec=codec,
        deployment=DeploymentMetadata(
            cameras=("front", "overhead", "wrist"),
            image_size=(32, 32),
            joint_names=tuple(f"joint{i}" for i in range(1, config.action.state_dim + 1)),
            arm_names=("arm",),
            ee_frames=("tool0",),
            base_frame="base_link",
            step_period_ns=step_period_ns(config.action.control_hz),
        ),
        report={"train_windows": 24, "val_windows": 8, "synthetic": True},
    )

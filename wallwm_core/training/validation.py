"""Validation that tells whether training works before any rollout.

Two measurements on fixed validation windows (the same windows and the same noise at every
evaluation, so curves are comparable):

- **losses**: the training objective's parts (fixed time/noise draws per batch);
- **open-loop action error**: a chunk sampled from the window's observation (the same sampler
  as deployment, :class:`~wallwm_core.inference.sampler.WindowSampler`) against the recorded
  actions, de-normalised with the action statistics: end-effector position error in mm,
  rotation error in degrees (geodesic angle), gripper error (0..1), averaged over real steps
  and arms. Beside it, the **hold-still baseline**: the window's first recorded action
  repeated for the whole chunk (the pose commanded at the observation, i.e. "do not move").
  A model that learned something beats the baseline; one that did not sits at or above it.

Every rank evaluates an equal share of the windows and the sums are reduced over ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from wallwm_core.action_tokens import POSITION_DIMS, ROTATION_DIMS, TOKEN_DIM_PER_ARM
from wallwm_core.action_tokens import rotation_6d_to_matrix_torch as to_matrix
from wallwm_core.inference.config import SamplerConfig
from wallwm_core.inference.sampler import WindowInputs, WindowSampler
from wallwm_core.model.text_encoder import TextEmbedding
from wallwm_core.model.wallwm import WallWM
from wallwm_core.normalization import NormalizationStats
from wallwm_core.training.batch import Batch
from wallwm_core.training.distributed import DistInfo, all_reduce
from wallwm_core.training.objective import compute_loss

Runner = Callable[..., Any]  # runner(fn, *args) == fn(model, *args), inside forward
LOSS_NAMES = ("total", "video", "action", "dct", "event_length")
ERROR_NAMES = ("action_mm", "action_deg", "gripper", "hold_mm", "hold_deg", "hold_gripper")
VAL_SEED = 7_919  # validation noise: fixed, independent of the run's seed


def pose_errors(
    predicted: torch.Tensor, recorded: torch.Tensor, mask: torch.Tensor, num_arms: int
) -> torch.Tensor:
    """Summed errors over real steps and arms: ``[position mm, rotation deg, gripper, count]``.

    ``predicted``, ``recorded``: de-normalised action tokens ``[B, T, A * 10]`` (metres, 6D
    rotation, gripper); ``mask``: bool ``[B, T]``.
    """
    shape = (*predicted.shape[:2], num_arms, TOKEN_DIM_PER_ARM)
    pred, rec = predicted.double().reshape(shape), recorded.double().reshape(shape)
    position = (pred[..., :POSITION_DIMS] - rec[..., :POSITION_DIMS]).norm(dim=-1) * 1000.0
    rotation_slice = slice(POSITION_DIMS, POSITION_DIMS + ROTATION_DIMS)
    relative = to_matrix(pred[..., rotation_slice]).transpose(-1, -2) @ to_matrix(
        rec[..., rotation_slice]
    )
    cosine = ((relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    degrees = torch.rad2deg(torch.arccos(cosine))
    gripper = (pred[..., -1].clamp(0.0, 1.0) - rec[..., -1]).abs()
    weight = mask[..., None].double()
    return torch.stack(
        [
            (position * weight).sum(),
            (degrees * weight).sum(),
            (gripper * weight).sum(),
            weight.sum() * num_arms,
        ]
    )


def batch_text(model: WallWM, batch: Batch) -> TextEmbedding:
    """The batch's instruction embedding (precomputed, or encoded by the model)."""
    if batch.text_embeddings is not None:
        return TextEmbedding(batch.text_embeddings * batch.text_mask[..., None], batch.text_mask)
    assert batch.text_ids is not None
    return model.encode_text(batch.text_ids, batch.text_mask)


def observation_inputs(model: WallWM, batch: Batch) -> WindowInputs:
    """The sampler's inputs for ``batch``'s windows: their observation (context) frames, text
    and state, as deployment would give them."""
    context = model.config.objective.context_latent_frames
    return WindowInputs(
        context_latents=batch.video_latents[:, :, :context],
        text=batch_text(model, batch),
        state=batch.state,
        context_mask=batch.video_mask[:, :, :context],
        cross_view_allowed=batch.cross_view_allowed,
    )


def sample_actions(
    model: WallWM, batch: Batch, sampler: SamplerConfig, generator: torch.Generator
) -> torch.Tensor:
    """Normalised action chunks ``[B, T, D]`` sampled from each window's observation, as
    long as the recorded chunk (T = the batch's action steps)."""
    inputs = observation_inputs(model, batch)
    steps = batch.action_mask.sum(dim=1).clamp_min(1)
    sample = WindowSampler(model, sampler).sample(inputs, steps, generator)
    actions = torch.zeros_like(batch.actions)
    actions[:, : sample.actions.shape[1]] = sample.actions.to(actions.dtype)
    return actions


@torch.no_grad()
def evaluate(
    runner: Runner,
    model: WallWM,
    dataset: Any,
    indices: Sequence[int],
    *,
    batch_size: int,
    open_loop_windows: int,
    sampler: SamplerConfig,
    action_stats: NormalizationStats,
    info: DistInfo,
    autocast: Callable[[], Any],
) -> dict[str, float]:
    """Validation metrics (see the module doc) over ``indices`` of ``dataset``; every rank
    calls this with the same ``indices`` and takes its share."""
    # Interleaved shares: the first k windows of every rank together are the first
    # k * world_size windows, so the open-loop set is the same for any number of processes.
    share = len(indices) // info.world_size
    mine = list(indices[info.rank :: info.world_size][:share])
    open_loop = open_loop_windows // info.world_size
    num_arms = model.config.action.num_arms
    loss_sums = torch.zeros(len(LOSS_NAMES) + 1, dtype=torch.float64)
    error_sums = torch.zeros(2, 4, dtype=torch.float64)  # model, hold-still
    was_training = model.training
    model.eval()
    for start in range(0, len(mine), batch_size):
        chunk = mine[start : start + batch_size]
        batch = dataset.batch(chunk).to(info.device)
        seed = VAL_SEED + info.rank * 100_003 + start
        with autocast():
            losses = runner(compute_loss, batch, torch.Generator().manual_seed(seed))
        values = losses.as_floats()
        loss_sums[:-1] += torch.tensor([values[n] for n in LOSS_NAMES]) * len(chunk)
        loss_sums[-1] += len(chunk)
        wanted = min(len(chunk), open_loop - start)
        if wanted <= 0:
            continue
        batch = dataset.batch(chunk[:wanted]).to(info.device)
        with autocast():
            normalised = runner(
                sample_actions, batch, sampler, torch.Generator().manual_seed(seed + 1)
            )
        predicted = action_stats.unnormalize(normalised.double().cpu())
        recorded = action_stats.unnormalize(batch.actions.double().cpu())
        hold = recorded[:, :1].expand_as(recorded)
        mask = batch.action_mask.cpu()
        error_sums[0] += pose_errors(predicted, recorded, mask, num_arms)
        error_sums[1] += pose_errors(hold, recorded, mask, num_arms)
    model.train(was_training)
    all_reduce(loss_sums)
    all_reduce(error_sums)
    result = {
        f"val/{name}": float(loss_sums[i] / loss_sums[-1].clamp_min(1))
        for i, name in enumerate(LOSS_NAMES)
    }
    if open_loop > 0:
        for row, prefix in ((0, "val/"), (1, "val/hold_")):
            count = error_sums[row, 3].clamp_min(1)
            result[f"{prefix}mm" if row else "val/action_mm"] = float(error_sums[row, 0] / count)
            result[f"{prefix}deg" if row else "val/action_deg"] = float(error_sums[row, 1] / count)
            result[f"{prefix}gripper"] = float(error_sums[row, 2] / count)
    return result

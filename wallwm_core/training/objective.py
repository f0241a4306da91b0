"""The WALL-WM training objective: flow matching for both towers, DCT auxiliary, Δt Huber.

Time convention of :mod:`wallwm_core.flow_matching` (t = 0 data, t = 1 noise, target
``noise - x0``). One training step (:func:`compute_loss`):

1. Text is encoded once.
2. Video: one draw ``t_v`` per sample (the configured distribution); the first
   ``objective.context_latent_frames`` latent frames (the observation) stay clean (t = 0) and
   are excluded from the loss. The **asymmetric mapping**: a second copy of the same latents is
   noised to the fixed, nearly clean level ``objective.action_video_noise_level`` (context
   frames clean); both copies run through the video tower in ONE batched forward. The first
   copy's velocity gives the video loss, the second copy's per-block features condition the
   action tower, exactly as at inference, where they are computed once per chunk. With
   ``objective.action_video_dropout = p > 0`` a fraction p of the samples (one draw each) get
   their future frames in the second copy at t = 1 instead (pure noise), so that the action
   tower also learns to act from the observation alone.
3. Actions: ``objective.num_action_noise_levels`` independent (t_a, noise) draws per sample
   reuse that single video pass (``B' = r * B``, sample-major).
4. DCT auxiliary: L1 on the orthonormal DCT-II over time of the predicted clean-action error
   ``x0_hat - x0`` (``x0_hat = x_t - t * v_hat``), padded steps zeroed. (An unweighted L2 on
   orthonormal DCT coefficients would equal the time-domain L2 by Parseval; L1 favours errors
   that are sparse in frequency, i.e. smooth trajectories.)
5. Δt: the event-length head on the clean context frames, Huber loss on
   ``event_length_s / objective.event_length_scale_s``.

Every loss is a mean over real elements only: padded latent frames, out-of-frame latents,
context frames and padded action steps contribute nothing.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F  # noqa: N812

from wallwm_core.flow_matching import interpolate, noise_video, sample_timesteps, velocity_target
from wallwm_core.model.config import ModelConfig, ObjectiveConfig
from wallwm_core.model.text_encoder import TextEmbedding
from wallwm_core.model.video_tower import VideoFeatures
from wallwm_core.model.wallwm import WallWM
from wallwm_core.training.batch import Batch


@dataclasses.dataclass(frozen=True)
class LossOutput:
    """``total`` (differentiable scalar) and its weighted-in parts (detached scalars)."""

    total: torch.Tensor
    video: torch.Tensor
    action: torch.Tensor
    dct: torch.Tensor
    event_length: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {
            field.name: float(getattr(self, field.name).detach())
            for field in dataclasses.fields(self)
        }


def dct_matrix(
    length: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``[length, length]``: ``coefficients = M @ signal`` over time.

    ``M[k, i] = s_k cos(pi (2 i + 1) k / (2 length))``, ``s_0 = sqrt(1/length)``,
    ``s_k = sqrt(2/length)``; ``M @ M.T = I`` (scipy.fft.dct(..., norm="ortho") equivalent).
    """
    if length < 1:
        raise ValueError(f"DCT length must be >= 1, got {length=}")
    k = torch.arange(length, dtype=torch.float64)[:, None]
    i = torch.arange(length, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * length)) * math.sqrt(2.0 / length)
    matrix[0] /= math.sqrt(2.0)
    return matrix.to(dtype=dtype, device=device)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over elements where ``mask`` (broadcast to ``prediction``) is True."""
    weights = mask.to(prediction.dtype).expand_as(prediction)
    squared = (prediction.float() - target.float()).pow(2) * weights
    return squared.sum() / weights.sum().clamp_min(1.0)


def _context_mask(batch: int, frames: int, context: int, device: torch.device) -> torch.Tensor:
    """bool ``[B, F]``, True on the clean context (observation) frames."""
    return (torch.arange(frames, device=device) < context).expand(batch, frames)


def _sample_times(
    count: int, objective: ObjectiveConfig, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    return sample_timesteps(
        count,
        generator,
        distribution=objective.timestep_distribution,
        logit_mean=objective.logit_mean,
        logit_std=objective.logit_std,
        device=device,
    )


def _cat_text(text: TextEmbedding, copies: int) -> TextEmbedding:
    return TextEmbedding(torch.cat([text.tokens] * copies), torch.cat([text.mask] * copies))


def compute_loss(
    model: WallWM,
    batch: Batch,
    generator: torch.Generator | None = None,
    config: ModelConfig | None = None,
) -> LossOutput:
    """The weighted WALL-WM loss of ``batch`` (validated first; see the module docstring).

    ``generator`` (on the batch's device) makes noise and times reproducible; ``config``
    defaults to ``model.config`` (pass a variant to change loss weights or noise levels).
    """
    config = config or model.config
    objective = config.objective
    batch.validate(config)
    device = batch.video_latents.device
    latents = batch.video_latents
    num_samples, _, frames = latents.shape[:3]
    context = _context_mask(num_samples, frames, objective.context_latent_frames, device)
    zero = torch.zeros((), device=device)

    if batch.text_embeddings is not None:
        text = TextEmbedding(batch.text_embeddings * batch.text_mask[..., None], batch.text_mask)
    else:
        assert batch.text_ids is not None  # validate() checked that one of the two is given
        text = model.encode_text(batch.text_ids, batch.text_mask)

    want_video = objective.video_loss_weight > 0.0
    want_action = objective.action_loss_weight > 0.0 or objective.dct_loss_weight > 0.0

    # -- one batched video pass: [random-t copy | anchor copy] ---------------------------------
    noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
    inputs, times = [], []
    if want_video:
        t_video = _sample_times(num_samples, objective, generator, device)
        frame_times = torch.where(context, 0.0, t_video[:, None])
        inputs.append(noise_video(latents, noise, frame_times))
        times.append(frame_times)
    if want_action:
        level = torch.full((num_samples,), objective.action_video_noise_level, device=device)
        if objective.action_video_dropout > 0.0:
            draw = torch.rand(num_samples, generator=generator, device=device)
            level = torch.where(draw < objective.action_video_dropout, 1.0, level)
        anchor_times = torch.where(context, 0.0, level[:, None])
        inputs.append(noise_video(latents, noise, anchor_times))
        times.append(anchor_times)

    video_loss = action_loss = dct_loss = zero
    if inputs:
        copies = len(inputs)
        cross_view = batch.cross_view_allowed
        # A frozen video path (action-tower stage) needs no activations kept for backward.
        video_grad = (
            want_video
            or text.tokens.requires_grad
            or any(p.requires_grad for p in model.video_tower.parameters())
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and video_grad):
            output = model.video_forward(
                torch.cat(inputs),
                torch.cat(times),
                _cat_text(text, copies),
                video_mask=torch.cat([batch.video_mask] * copies),
                cross_view_allowed=None if cross_view is None else torch.cat([cross_view] * copies),
                return_features=want_action,
            )
        if want_video:
            velocity = output.velocity[:num_samples]
            target = velocity_target(latents, noise)
            loss_mask = batch.video_mask & ~context[:, None, :, None, None]
            video_loss = masked_mse(velocity, target, loss_mask[:, :, :, None])
        if want_action:
            assert output.features is not None
            features = output.features.select(slice((copies - 1) * num_samples, None))
            action_loss, dct_loss = _action_losses(model, batch, features, generator, objective)

    event_loss = zero
    if objective.event_length_loss_weight > 0.0:
        count = objective.context_latent_frames
        predicted = model.event_length_normalized(
            latents[:, :, :count],
            text,
            batch.state,
            video_mask=batch.video_mask[:, :, :count],
            cross_view_allowed=batch.cross_view_allowed,
        )
        target = batch.event_length_s.to(predicted.dtype) / objective.event_length_scale_s
        event_loss = F.huber_loss(predicted, target, delta=objective.huber_delta)

    total = (
        objective.video_loss_weight * video_loss
        + objective.action_loss_weight * action_loss
        + objective.dct_loss_weight * dct_loss
        + objective.event_length_loss_weight * event_loss
    )
    return LossOutput(
        total=total,
        video=video_loss.detach(),
        action=action_loss.detach(),
        dct=dct_loss.detach(),
        event_length=event_loss.detach(),
    )


def _action_losses(
    model: WallWM,
    batch: Batch,
    features: VideoFeatures,
    generator: torch.Generator | None,
    objective: ObjectiveConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow-matching and DCT losses of the action tower over r noise draws per sample.

    ``features``: the anchor copy's per-block video features, batch B.
    """
    repeats = objective.num_action_noise_levels
    device = batch.actions.device
    actions = batch.actions.repeat_interleave(repeats, 0)
    mask = batch.action_mask.repeat_interleave(repeats, 0)
    noise = torch.randn(actions.shape, generator=generator, device=device, dtype=actions.dtype)
    t_action = _sample_times(actions.shape[0], objective, generator, device)
    noisy = interpolate(actions, noise, t_action)
    memory = model.video_memory(features)
    velocity = model.action_forward(noisy, t_action, batch.state, memory, action_mask=mask)
    loss = masked_mse(velocity, velocity_target(actions, noise), mask[..., None])

    if objective.dct_loss_weight <= 0.0:
        return loss, torch.zeros((), device=device)
    predicted_clean = noisy - t_action[:, None, None] * velocity
    error = (predicted_clean.float() - actions.float()) * mask[..., None]
    basis = dct_matrix(actions.shape[1], device=device)
    coefficients = torch.einsum("kt,btd->bkd", basis, error)
    dct = coefficients.abs().sum() / (mask.sum() * actions.shape[2]).clamp_min(1)
    return loss, dct

"""The training batch: one event per sample, padded to common sizes, with masks.

Masks are bool and True on real data (the convention of the ByteTokenizer). Padding of
variable-length events (latent frames, action steps) and out-of-frame latent regions is marked
False and never reaches the losses or the real tokens' outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.model.config import ModelConfig
from wallwm_core.model.sight_cone import cross_view_allowed_from_cameras
from wallwm_core.tokenizer import ByteTokenizer


@dataclasses.dataclass(frozen=True)
class Batch:
    """A batch of ``B`` events.

    Attributes:
        video_latents: clean codec latents ``[B, V, F, C, h, w]`` (latent frame 0 .. the
            observation context, then the event's future frames).
        video_mask: bool ``[B, V, F, h, w]``, False on padded frames / views / out-of-frame.
        text_mask: bool ``[B, L]``, True on real text tokens.
        state: normalised proprioceptive state ``[B, state_dim]`` at the observation.
        actions: normalised action tokens ``[B, T, token_dim]`` (:mod:`wallwm_core.action_tokens`
            then :class:`~wallwm_core.normalization.NormalizationStats`).
        action_mask: bool ``[B, T]``, False on padded steps.
        event_length_s: remaining event time from the observation, seconds ``[B]``.
        text_ids: byte-token ids ``[B, L]`` int64 for the model's own text encoder, or
        text_embeddings: precomputed text tokens ``[B, L, text_dim]`` (an external encoder such
            as umT5); exactly one of the two is given, ``text_mask`` is its mask.
        cross_view_allowed: bool ``[B, V*N, V*N]`` sight-cone mask of one latent frame on the
            patch grid (:func:`cross_view_allowed_from_cameras`); needed when the sight cone is
            enabled and V > 1.
    """

    video_latents: torch.Tensor
    video_mask: torch.Tensor
    text_mask: torch.Tensor
    state: torch.Tensor
    actions: torch.Tensor
    action_mask: torch.Tensor
    event_length_s: torch.Tensor
    text_ids: torch.Tensor | None = None
    text_embeddings: torch.Tensor | None = None
    cross_view_allowed: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.video_latents.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(
            self,
            **{
                field.name: value.to(device)
                for field in dataclasses.fields(self)
                if isinstance(value := getattr(self, field.name), torch.Tensor)
            },
        )

    def validate(self, config: ModelConfig) -> None:
        """Raise ValueError naming the first field whose shape, dtype or values are wrong."""
        latents = self.video_latents
        channels = config.video_tower.in_channels
        if latents.ndim != 6 or latents.shape[3] != channels or not latents.is_floating_point():
            raise ValueError(
                f"video_latents must be float [B, V, F, {channels}, h, w], got "
                f"{latents.dtype} {list(latents.shape)}"
            )
        batch, views, frames = latents.shape[:3]
        context = config.objective.context_latent_frames
        if frames <= context:
            raise ValueError(
                f"video_latents has {frames} latent frames; need more than "
                f"objective.context_latent_frames={context}"
            )
        if frames > config.limits.max_latent_frames:
            raise ValueError(
                f"video_latents has {frames} latent frames > "
                f"limits.max_latent_frames={config.limits.max_latent_frames}"
            )
        config.patch_grid(tuple(latents.shape[-2:]))
        expected_mask = (batch, views, frames, *latents.shape[-2:])
        _check_bool("video_mask", self.video_mask, expected_mask)
        _check_finite("video_latents", latents)

        if self.text_mask.ndim != 2 or self.text_mask.shape[0] != batch:
            raise ValueError(f"text_mask must be bool [B, L], got {list(self.text_mask.shape)}")
        _check_bool("text_mask", self.text_mask, tuple(self.text_mask.shape))
        if (self.text_ids is None) == (self.text_embeddings is None):
            raise ValueError("give exactly one of text_ids and text_embeddings")
        if self.text_ids is not None:
            if self.text_ids.shape != self.text_mask.shape or self.text_ids.dtype != torch.long:
                raise ValueError(
                    f"text_ids must be int64 {list(self.text_mask.shape)}, got "
                    f"{self.text_ids.dtype} {list(self.text_ids.shape)}"
                )
        else:
            expected = (*self.text_mask.shape, config.video_tower.text_dim)
            if tuple(self.text_embeddings.shape) != expected:
                raise ValueError(
                    f"text_embeddings must be {list(expected)}, got "
                    f"{list(self.text_embeddings.shape)}"
                )

        state_dim = config.action.state_dim
        if self.state.shape != (batch, state_dim) or not self.state.is_floating_point():
            raise ValueError(
                f"state must be float [{batch}, {state_dim}], got {list(self.state.shape)}"
            )
        _check_finite("state", self.state)
        token_dim = config.action.token_dim
        actions = self.actions
        if actions.ndim != 3 or actions.shape[0] != batch or actions.shape[2] != token_dim:
            raise ValueError(
                f"actions must be [{batch}, T, {token_dim}], got {list(actions.shape)}"
            )
        if actions.shape[1] > config.limits.max_action_steps:
            raise ValueError(
                f"actions has {actions.shape[1]} steps > "
                f"limits.max_action_steps={config.limits.max_action_steps}"
            )
        _check_finite("actions", actions)
        _check_bool("action_mask", self.action_mask, tuple(actions.shape[:2]))
        if self.event_length_s.shape != (batch,):
            raise ValueError(
                f"event_length_s must be [{batch}], got {list(self.event_length_s.shape)}"
            )
        _check_finite("event_length_s", self.event_length_s)
        if bool((self.event_length_s < 0).any()):
            raise ValueError("event_length_s must be >= 0")

        if config.video_tower.sight_cone.enabled and views > 1:
            if self.cross_view_allowed is None:
                raise ValueError(
                    "cross_view_allowed is required: video_tower.sight_cone.enabled with "
                    f"{views} views (build it with cross_view_allowed_from_cameras)"
                )
        if self.cross_view_allowed is not None:
            height, width = config.patch_grid(tuple(latents.shape[-2:]))
            n = views * height * width
            _check_bool("cross_view_allowed", self.cross_view_allowed, (batch, n, n))


def _check_bool(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tensor.dtype != torch.bool or tuple(tensor.shape) != tuple(shape):
        raise ValueError(
            f"{name} must be bool {list(shape)}, got {tensor.dtype} {list(tensor.shape)}"
        )


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def look_at_camera(
    eye: Sequence[float],
    target: Sequence[float],
    image_hw: tuple[int, int],
    focal_px: float,
) -> CameraGeometry:
    """A pinhole camera at ``eye`` looking at ``target`` (world z up), for fake data and tests."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    transform = np.eye(4)
    transform[:3, :3] = np.stack([right, down, forward], axis=1)
    transform[:3, 3] = eye
    height, width = image_hw
    intrinsics = np.array(
        [[focal_px, 0.0, (width - 1) / 2], [0.0, focal_px, (height - 1) / 2], [0.0, 0.0, 1.0]]
    )
    return CameraGeometry(K=intrinsics, image_size=image_hw, world_from_camera=transform)


FAKE_INSTRUCTIONS = ("open the drawer", "press the red button", "pick up the cube", "wipe")


def make_fake_batch(
    config: ModelConfig,
    batch_size: int = 2,
    num_views: int = 2,
    num_frames: int | None = None,
    latent_hw: tuple[int, int] = (8, 8),
    num_steps: int | None = None,
    generator: torch.Generator | None = None,
    padded: bool = True,
) -> Batch:
    """A random but well-formed batch for tests and smoke runs (CPU, float32).

    With ``padded`` every sample after the first has a shorter event (fewer latent frames and
    action steps) and sample 0's last view has an out-of-frame band; so the masks matter.
    Cameras: ``num_views`` cameras on a circle looking at the origin, one rig for all samples.
    """
    frames = num_frames or config.limits.max_latent_frames
    steps = num_steps or config.limits.max_action_steps
    context = config.objective.context_latent_frames
    state_dim, token_dim = config.action.state_dim, config.action.token_dim
    channels = config.video_tower.in_channels
    height, width = latent_hw

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    video_mask = torch.ones(batch_size, num_views, frames, height, width, dtype=torch.bool)
    action_mask = torch.ones(batch_size, steps, dtype=torch.bool)
    if padded:
        for sample in range(1, batch_size):
            real_frames = max(context + 1, frames - sample)
            video_mask[sample, :, real_frames:] = False
            real_steps = max(
                1,
                min(steps, (real_frames - context) * config.action.steps_per_latent_frame) - sample,
            )
            action_mask[sample, real_steps:] = False
        # An out-of-frame band: whole patches and (for width 8) a half-covered patch.
        video_mask[0, -1, :, :, width - width // 4 - width // 8 :] = False

    texts = [FAKE_INSTRUCTIONS[i % len(FAKE_INSTRUCTIONS)] for i in range(batch_size)]
    text_ids, text_mask = ByteTokenizer().encode(texts, config.text_encoder.max_length)
    grid_hw = config.patch_grid(latent_hw)
    rig = [
        look_at_camera(
            (np.cos(angle), np.sin(angle), 0.6),
            (0.0, 0.0, 0.0),
            (8 * height, 8 * width),
            8.0 * width,
        )
        for angle in np.linspace(0.0, np.pi / 2, num_views)
    ]
    cross_view_allowed = (
        cross_view_allowed_from_cameras([rig] * batch_size, grid_hw, config.video_tower.sight_cone)
        if num_views > 1
        else None
    )
    return Batch(
        video_latents=randn(batch_size, num_views, frames, channels, height, width),
        video_mask=video_mask,
        text_ids=text_ids,
        text_mask=text_mask,
        state=randn(batch_size, state_dim),
        actions=randn(batch_size, steps, token_dim),
        action_mask=action_mask,
        event_length_s=torch.rand(batch_size, generator=generator) * config.limits.max_event_s,
        cross_view_allowed=cross_view_allowed,
    )

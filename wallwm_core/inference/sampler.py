"""Euler flow sampling of one observation-centred window: future video, then actions.

Time convention of :mod:`wallwm_core.flow_matching`: ``t = 1`` is noise, ``t = 0`` data; the
integration itself is :func:`~wallwm_core.flow_matching.euler_integrate`. One window (batch B):

    latent frames  [ context (Fc: history + anchor, clean, t = 0) | future (Ff, denoised) ]
    action steps   [ 0 .. T-1 ], step k at temporal index anchor + k // K_p + 1

1. **Video**: the Ff future latent frames start as noise and are integrated in
   ``sampler.video_steps`` Euler steps; the context frames stay clean (per-frame time 0).
2. **Anchor features** (the asymmetric mapping of training): the predicted future is re-noised
   to the fixed level ``objective.action_video_noise_level`` (context clean) and the video tower
   runs **once**; the action tower's keys/values of its per-block features
   (:meth:`~wallwm_core.model.wallwm.WallWM.video_memory`) are reused by every action step.
   The ``"naive"`` path re-runs the video tower on the same input at every action step (for
   benchmarks; it gives the same actions).
3. **Actions**: ``sampler.action_steps`` Euler steps of the action tower from noise.

With ``sampler.future_video = "noise"`` step 1 is skipped: the anchor pass reads the future
frames as pure noise (t = 1), as a model trained with ``objective.action_video_dropout`` saw
them, and the returned future latents are zero (no video prediction).

Variable lengths (event mode) are padding + masks: sample ``b`` has ``action_steps[b]`` real
steps and ``ceil(action_steps[b] / K_p)`` real future frames; padded steps and frames are
masked (they never change real outputs) and zero in the result.

Noise is drawn on the CPU from a ``torch.Generator`` and moved to the model's device, so a seed
gives the same sample on every device (up to the device's arithmetic).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from wallwm_core.flow_matching import euler_integrate, noise_video
from wallwm_core.inference.config import SamplerConfig
from wallwm_core.model.action_tower import VideoMemory
from wallwm_core.model.text_encoder import TextEmbedding
from wallwm_core.model.wallwm import WallWM


@dataclasses.dataclass(frozen=True)
class WindowInputs:
    """Conditioning of a window, batch ``B``.

    Attributes:
        context_latents: clean latents ``[B, V, Fc, C, h, w]``: history frames, then the
            anchor (the current observation) last.
        text: text conditioning ``[B, L, text_dim]`` + mask (an instruction, or projected
            Staircase latents, :mod:`wallwm_core.inference.staircase`).
        state: normalised proprioceptive state ``[B, state_dim]`` at the anchor.
        context_mask: bool ``[B, V, Fc, h, w]``, False on missing history frames; None = all real.
        cross_view_allowed: bool ``[B, V*N, V*N]`` sight-cone mask, or None (no mask).
    """

    context_latents: torch.Tensor
    text: TextEmbedding
    state: torch.Tensor
    context_mask: torch.Tensor | None = None
    cross_view_allowed: torch.Tensor | None = None

    def __post_init__(self) -> None:
        latents = self.context_latents
        if latents.ndim != 6:
            raise ValueError(f"context_latents must be [B, V, Fc, C, h, w], got {latents.shape}")
        batch = latents.shape[0]
        if self.state.ndim != 2 or self.state.shape[0] != batch:
            raise ValueError(f"state must be [{batch}, state_dim], got {tuple(self.state.shape)}")
        if self.text.tokens.shape[0] != batch:
            raise ValueError(f"text batch {self.text.tokens.shape[0]} != context batch {batch}")
        expected = (*latents.shape[:3], *latents.shape[-2:])
        if self.context_mask is not None and (
            tuple(self.context_mask.shape) != expected or self.context_mask.dtype != torch.bool
        ):
            raise ValueError(
                f"context_mask must be bool {list(expected)}, got "
                f"{self.context_mask.dtype} {list(self.context_mask.shape)}"
            )

    @property
    def batch_size(self) -> int:
        return int(self.context_latents.shape[0])

    @property
    def num_context_frames(self) -> int:
        return int(self.context_latents.shape[2])

    def full_context_mask(self) -> torch.Tensor:
        """``[B, V, Fc, h, w]`` bool (all True when no mask was given)."""
        if self.context_mask is not None:
            return self.context_mask
        latents = self.context_latents
        shape = (*latents.shape[:3], *latents.shape[-2:])
        return torch.ones(shape, dtype=torch.bool, device=latents.device)


@dataclasses.dataclass(frozen=True)
class WindowNoise:
    """The noise of one window: future video ``[B, V, Ff, C, h, w]`` (start of the video
    integration), its re-noising to the anchor level (same shape) and actions ``[B, T, D]``."""

    video: torch.Tensor
    anchor: torch.Tensor
    actions: torch.Tensor

    @classmethod
    def draw(
        cls,
        video_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        generator: torch.Generator | None,
        device: torch.device | str,
    ) -> WindowNoise:
        """Standard normal noise drawn on the CPU (device-independent), moved to ``device``."""

        def randn(shape: tuple[int, ...]) -> torch.Tensor:
            return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)

        return cls(randn(video_shape), randn(video_shape), randn(action_shape))


@dataclasses.dataclass(frozen=True)
class WindowSample:
    """A sampled window.

    Attributes:
        actions: normalised action tokens ``[B, T, token_dim]`` float32, zero at padded steps.
        action_mask: bool ``[B, T]``, True on real steps.
        future_latents: predicted future latents ``[B, V, Ff, C, h, w]`` float32, zero at
            padded frames.
        future_mask: bool ``[B, V, Ff, h, w]`` (False at padded frames, or out-of-frame).
    """

    actions: torch.Tensor
    action_mask: torch.Tensor
    future_latents: torch.Tensor
    future_mask: torch.Tensor

    @property
    def num_steps(self) -> torch.Tensor:
        """Real action steps per sample ``[B]`` int64."""
        return self.action_mask.sum(dim=1)


def frames_for_steps(num_steps: int, steps_per_latent_frame: int) -> int:
    """Future latent frames that cover ``num_steps`` action steps: ``ceil(T / K_p)``."""
    return max(1, math.ceil(num_steps / steps_per_latent_frame))


def step_mask(action_steps: torch.Tensor, max_steps: int) -> torch.Tensor:
    """bool ``[B, max_steps]``: True on the first ``action_steps[b]`` steps of sample ``b``."""
    return torch.arange(max_steps, device=action_steps.device)[None] < action_steps[:, None]


class WindowSampler:
    """Samples windows with one model; stateless apart from the model (see module doc)."""

    def __init__(self, model: WallWM, config: SamplerConfig) -> None:
        self.model = model
        self.config = config
        self.steps_per_frame = model.config.action.steps_per_latent_frame

    # -- video ---------------------------------------------------------------------------------
    def _video_velocity(
        self, inputs: WindowInputs, video_mask: torch.Tensor, future: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """Velocity of the future frames ``[B, V, Ff, C, h, w]`` at per-sample time ``t`` ``[B]``."""
        context = inputs.context_latents
        frames = context.shape[2] + future.shape[2]
        times = torch.zeros(inputs.batch_size, frames, device=future.device)
        times[:, context.shape[2] :] = t[:, None]
        output = self.model.video_forward(
            torch.cat([context.to(future.dtype), future], dim=2),
            times,
            inputs.text,
            video_mask=video_mask,
            cross_view_allowed=inputs.cross_view_allowed,
            return_features=False,
        )
        return output.velocity[:, :, context.shape[2] :].float()

    def sample_video(
        self, inputs: WindowInputs, video_mask: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """Integrate the future frames from ``noise`` ``[B, V, Ff, C, h, w]`` to ``t = 0``."""
        future = euler_integrate(
            lambda x, t: self._video_velocity(inputs, video_mask, x, t),
            noise.float(),
            self.config.video_steps,
        )
        return future * video_mask[:, :, inputs.num_context_frames :, None]

    def anchor_video_input(
        self, inputs: WindowInputs, future: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole-window latents with the future at the anchor noise level (pure noise with
        ``future_video = "noise"``), and per-frame times."""
        context = inputs.context_latents.float()
        latents = torch.cat([context, future], dim=2)
        context_frames = torch.arange(latents.shape[2], device=latents.device) < context.shape[2]
        level = (
            1.0
            if self.config.future_video == "noise"
            else self.model.config.objective.action_video_noise_level
        )
        times = torch.where(context_frames, 0.0, level).expand(inputs.batch_size, -1)
        full_noise = torch.cat([torch.zeros_like(context), noise.float()], dim=2)
        return noise_video(latents, full_noise, times), times

    def video_memory(
        self,
        inputs: WindowInputs,
        video_mask: torch.Tensor,
        anchor_latents: torch.Tensor,
        anchor_times: torch.Tensor,
    ) -> VideoMemory:
        """One video pass at the anchor level -> the action tower's per-block keys/values."""
        output = self.model.video_forward(
            anchor_latents,
            anchor_times,
            inputs.text,
            video_mask=video_mask,
            cross_view_allowed=inputs.cross_view_allowed,
            return_features=True,
        )
        assert output.features is not None
        return self.model.video_memory(output.features)

    # -- actions -------------------------------------------------------------------------------
    def sample_actions(
        self,
        inputs: WindowInputs,
        video_mask: torch.Tensor,
        anchor_latents: torch.Tensor,
        anchor_times: torch.Tensor,
        action_mask: torch.Tensor,
        noise: torch.Tensor,
        video_features: str | None = None,
    ) -> torch.Tensor:
        """Integrate actions ``[B, T, D]`` from ``noise``; ``video_features`` overrides the
        configured path (``"cached"`` or ``"naive"``)."""
        path = video_features or self.config.video_features
        anchor_frame = inputs.num_context_frames - 1

        def memory() -> VideoMemory:
            return self.video_memory(inputs, video_mask, anchor_latents, anchor_times)

        cached = memory() if path == "cached" else None
        if path not in ("cached", "naive"):
            raise ValueError(f"video_features must be 'cached' or 'naive', got {path!r}")

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            video = cached if cached is not None else memory()
            v = self.model.action_forward(
                x, t, inputs.state, video, action_mask=action_mask, anchor_frame=anchor_frame
            )
            return v.float()

        actions = euler_integrate(velocity, noise.float(), self.config.action_steps)
        return actions * action_mask[..., None]

    # -- the window ----------------------------------------------------------------------------
    def window_masks(
        self,
        inputs: WindowInputs,
        action_steps: torch.Tensor,
        num_future_frames: int,
        all_frames_real: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(video mask ``[B, V, Fc + Ff, h, w]``, action mask ``[B, T]``) for per-sample
        ``action_steps`` ``[B]``; ``T = max(action_steps)``. Sample ``b``'s real future frames
        are the ``ceil(action_steps[b] / K_p)`` first ones, or all with ``all_frames_real``."""
        device = inputs.context_latents.device
        action_steps = action_steps.to(device)
        real_frames = (action_steps + self.steps_per_frame - 1) // self.steps_per_frame
        if all_frames_real:
            real_frames = torch.full_like(real_frames, num_future_frames)
        context_mask = inputs.full_context_mask()
        batch, views, _, height, width = context_mask.shape
        future_real = torch.arange(num_future_frames, device=device)[None] < real_frames[:, None]
        future_mask = future_real[:, None, :, None, None].expand(
            batch, views, num_future_frames, height, width
        )
        # Out-of-frame regions of the anchor stay out of frame in the future.
        future_mask = future_mask & context_mask[:, :, -1:]
        video_mask = torch.cat([context_mask, future_mask], dim=2)
        return video_mask, step_mask(action_steps, int(action_steps.max()))

    def sample(
        self,
        inputs: WindowInputs,
        action_steps: torch.Tensor | int,
        generator: torch.Generator | None = None,
        noise: WindowNoise | None = None,
        video_features: str | None = None,
        num_future_frames: int | None = None,
    ) -> WindowSample:
        """Sample ``action_steps`` (an int or per-sample ``[B]``) actions and their video.

        ``noise`` (optional) fixes every random draw (its shapes must match the window);
        otherwise it is drawn from ``generator``. ``num_future_frames`` (optional) predicts
        that many future frames, all real, instead of ``ceil(max(action_steps) / K_p)``.
        """
        batch = inputs.batch_size
        if isinstance(action_steps, int):
            action_steps = torch.full((batch,), action_steps, dtype=torch.long)
        action_steps = action_steps.long()
        if action_steps.shape != (batch,) or bool((action_steps < 1).any()):
            raise ValueError(f"action_steps must be [{batch}] positive, got {action_steps}")
        max_steps = self.model.config.limits.max_action_steps
        if int(action_steps.max()) > max_steps:
            raise ValueError(
                f"{int(action_steps.max())} action steps exceed limits.max_action_steps={max_steps}"
            )
        num_future = frames_for_steps(int(action_steps.max()), self.steps_per_frame)
        if num_future_frames is not None:
            if num_future_frames < num_future:
                raise ValueError(
                    f"{num_future_frames} future latent frames cannot cover "
                    f"{int(action_steps.max())} action steps ({num_future} needed)"
                )
            num_future = num_future_frames
        frames = inputs.num_context_frames + num_future
        if frames > self.model.config.limits.max_latent_frames:
            raise ValueError(
                f"a window of {frames} latent frames ({inputs.num_context_frames} context + "
                f"{num_future} future) exceeds limits.max_latent_frames="
                f"{self.model.config.limits.max_latent_frames}"
            )
        video_mask, action_mask = self.window_masks(
            inputs, action_steps, num_future, all_frames_real=num_future_frames is not None
        )
        context = inputs.context_latents
        video_shape = (*context.shape[:2], num_future, *context.shape[3:])
        action_shape = (batch, action_mask.shape[1], self.model.config.action.token_dim)
        if noise is None:
            noise = WindowNoise.draw(video_shape, action_shape, generator, context.device)
        elif tuple(noise.video.shape) != video_shape or tuple(noise.actions.shape) != action_shape:
            raise ValueError(
                f"noise shapes {tuple(noise.video.shape)} / {tuple(noise.actions.shape)} do not "
                f"match the window {video_shape} / {action_shape}"
            )

        if self.config.future_video == "noise":
            future = torch.zeros_like(noise.video, dtype=torch.float32)
        else:
            future = self.sample_video(inputs, video_mask, noise.video)
        anchor_latents, anchor_times = self.anchor_video_input(inputs, future, noise.anchor)
        actions = self.sample_actions(
            inputs,
            video_mask,
            anchor_latents,
            anchor_times,
            action_mask,
            noise.actions,
            video_features,
        )
        return WindowSample(
            actions=actions,
            action_mask=action_mask,
            future_latents=future,
            future_mask=video_mask[:, :, inputs.num_context_frames :],
        )

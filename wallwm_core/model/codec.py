"""Video latent codec: multi-view frames <-> the latents the video tower denoises.

Shapes: frames ``[B, V, T, 3, H, W]`` (uint8 in [0, 255], or float in [0, 1]) <->
latents ``[B, V, T', C, H/8, W/8]``; decoded frames are float in [0, 1].

Temporal rule (``CodecConfig.temporal_rule``):

- ``"per_frame"`` (the project's default for small models): every frame is encoded on its own,
  ``T' = T``.
- ``"wan_1_plus_4n"`` (the Wan VAE convention): ``T = 1 + 4N`` frames -> ``1 + N`` latent frames;
  the first latent frame holds frame 0 alone, each later one a group of 4 frames. Other ``T``
  raise ValueError. :func:`latent_frame_count` / :func:`video_frame_count` convert counts.

The small :class:`ConvAutoencoderCodec` is a trainable stand-in for the Wan VAE (same 8x
spatial downsampling); it is trained on its own with :meth:`ConvAutoencoderCodec.reconstruction_loss`
and its weights are separate from the denoiser's.
"""

from __future__ import annotations

import itertools
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from wallwm_core.model.config import (
    SPATIAL_DOWNSAMPLE,
    WAN_TEMPORAL_STRIDE,
    CodecConfig,
    TemporalRule,
)

NUM_DOWNSAMPLES = 3  # 2^3 = SPATIAL_DOWNSAMPLE


def latent_frame_count(num_frames: int, rule: TemporalRule) -> int:
    """Number of latent frames for ``num_frames`` video frames under ``rule``."""
    if num_frames < 1:
        raise ValueError(f"need at least one frame, got {num_frames=}")
    if rule == "per_frame":
        return num_frames
    if rule == "wan_1_plus_4n":
        if (num_frames - 1) % WAN_TEMPORAL_STRIDE != 0:
            raise ValueError(
                f"the Wan temporal rule needs T = 1 + 4N frames, got T={num_frames} "
                f"(nearest valid: {1 + WAN_TEMPORAL_STRIDE * ((num_frames - 1) // 4)} or "
                f"{1 + WAN_TEMPORAL_STRIDE * ((num_frames + 2) // 4)})"
            )
        return 1 + (num_frames - 1) // WAN_TEMPORAL_STRIDE
    raise ValueError(f"unknown temporal rule {rule!r}")


def video_frame_count(num_latent_frames: int, rule: TemporalRule) -> int:
    """Number of video frames that ``num_latent_frames`` latent frames decode to under ``rule``."""
    if num_latent_frames < 1:
        raise ValueError(f"need at least one latent frame, got {num_latent_frames=}")
    if rule == "per_frame":
        return num_latent_frames
    if rule == "wan_1_plus_4n":
        return 1 + WAN_TEMPORAL_STRIDE * (num_latent_frames - 1)
    raise ValueError(f"unknown temporal rule {rule!r}")


@runtime_checkable
class VideoCodec(Protocol):
    """Anything that maps multi-view frames to latents and back (the Wan VAE, the toy codec)."""

    latent_channels: int
    spatial_downsample: int
    temporal_rule: TemporalRule

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, V, T, 3, H, W]`` uint8 or float in [0, 1] -> ``[B, V, T', C, H/8, W/8]``."""
        ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, V, T', C, h, w]`` -> ``[B, V, T, 3, 8h, 8w]`` float in [0, 1]."""
        ...


def frames_to_unit_range(frames: torch.Tensor) -> torch.Tensor:
    """Validate ``[B, V, T, 3, H, W]`` frames and return them as float32 in [-1, 1]."""
    if frames.ndim != 6 or frames.shape[3] != 3:
        raise ValueError(f"frames must be [B, V, T, 3, H, W], got {tuple(frames.shape)}")
    height, width = frames.shape[-2:]
    if height % SPATIAL_DOWNSAMPLE or width % SPATIAL_DOWNSAMPLE:
        raise ValueError(
            f"frame size {height}x{width} must be divisible by {SPATIAL_DOWNSAMPLE} (the codec's "
            "spatial downsampling)"
        )
    if frames.dtype == torch.uint8:
        return frames.float() / 127.5 - 1.0
    if not frames.is_floating_point():
        raise ValueError(f"frames must be uint8 or floating point, got {frames.dtype}")
    if not bool(torch.isfinite(frames).all()):
        raise ValueError("frames contain NaN or infinite values")
    return frames.float() * 2.0 - 1.0


class ConvAutoencoderCodec(nn.Module):
    """A small convolutional autoencoder with 8x spatial downsampling (three stride-2 convs).

    Frames are processed independently per (sample, view, latent frame); under the Wan rule a
    latent frame's 4 frames are stacked along channels (frame 0 repeated 4 times).
    """

    spatial_downsample = SPATIAL_DOWNSAMPLE

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.latent_channels = config.latent_channels
        self.temporal_rule: TemporalRule = config.temporal_rule
        self.group = WAN_TEMPORAL_STRIDE if config.temporal_rule == "wan_1_plus_4n" else 1
        widths = [config.base_channels * 2**i for i in range(NUM_DOWNSAMPLES + 1)]
        encoder: list[nn.Module] = [nn.Conv2d(3 * self.group, widths[0], 3, padding=1)]
        for c_in, c_out in itertools.pairwise(widths):
            encoder += [nn.SiLU(), nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)]
        encoder += [nn.SiLU(), nn.Conv2d(widths[-1], config.latent_channels, 1)]
        self.encoder = nn.Sequential(*encoder)
        decoder: list[nn.Module] = [nn.Conv2d(config.latent_channels, widths[-1], 3, padding=1)]
        for c_in, c_out in itertools.pairwise(widths[::-1]):
            decoder += [
                nn.SiLU(),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c_in, c_out, 3, padding=1),
            ]
        decoder += [nn.SiLU(), nn.Conv2d(widths[0], 3 * self.group, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)

    def _group_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, V, T, 3, H, W]`` -> ``[B, V, T', 3 * group, H, W]``."""
        num_latent = latent_frame_count(frames.shape[2], self.temporal_rule)
        if self.group == 1:
            return frames
        first = frames[:, :, :1].expand(-1, -1, self.group, -1, -1, -1)
        grouped = torch.cat([first, frames[:, :, 1:]], dim=2)
        return grouped.reshape(*frames.shape[:2], num_latent, 3 * self.group, *frames.shape[-2:])

    def _encode_unit(self, unit_frames: torch.Tensor) -> torch.Tensor:
        grouped = self._group_frames(unit_frames)
        lead = grouped.shape[:3]
        latents = self.encoder(grouped.flatten(0, 2).to(self.encoder[0].weight.dtype))
        return latents.unflatten(0, lead)

    def _decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, V, T', C, h, w]`` -> frames in about [-1, 1], ``[B, V, T, 3, H, W]``."""
        if latents.ndim != 6 or latents.shape[3] != self.latent_channels:
            raise ValueError(
                f"latents must be [B, V, T', {self.latent_channels}, h, w], "
                f"got {tuple(latents.shape)}"
            )
        lead = latents.shape[:3]
        out = self.decoder(latents.flatten(0, 2)).unflatten(0, lead)
        if self.group == 1:
            return out
        out = out.unflatten(3, (self.group, 3))  # [B, V, T', group, 3, H, W]
        first = out[:, :, :1, -1]  # frame 0 was repeated: keep the last copy
        rest = out[:, :, 1:].flatten(2, 3)
        return torch.cat([first, rest], dim=2)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, V, T, 3, H, W]`` uint8 or float in [0, 1] -> ``[B, V, T', C, H/8, W/8]``."""
        return self._encode_unit(frames_to_unit_range(frames))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, V, T', C, h, w]`` -> ``[B, V, T, 3, 8h, 8w]`` float in [0, 1]."""
        return (self._decode_raw(latents).float() * 0.5 + 0.5).clamp(0.0, 1.0)

    def reconstruction_loss(self, frames: torch.Tensor) -> torch.Tensor:
        """Mean squared error of encode -> decode in [-1, 1] units (a scalar)."""
        target = frames_to_unit_range(frames)
        return F.mse_loss(self._decode_raw(self._encode_unit(target)).float(), target)


def build_codec(config: CodecConfig) -> ConvAutoencoderCodec:
    """The codec described by ``config``."""
    if config.kind == "conv_autoencoder":
        return ConvAutoencoderCodec(config)
    raise ValueError(f"unknown codec kind {config.kind!r}")

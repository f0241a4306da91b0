"""The codec stage: train the conv autoencoder on dataset frames and measure its PSNR.

Images enter the codec exactly as at deployment: uint8 -> float in [0, 1] by
:meth:`~wallwm_core.inference.observation.ObservationEncoder.frames` (resized to the model's
image size if the recording differs; the pipeline uses the recorded size, so nothing is
resized). Training draws batches from a pool of at most ``POOL_IMAGES`` train images decoded
once (spread evenly over the train frames, every camera); PSNR is measured on at most
``PSNR_IMAGES`` validation images (train images if there is no validation split).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import numpy as np
import torch

from wallwm_core.inference.observation import ObservationEncoder
from wallwm_core.model.codec import ConvAutoencoderCodec, build_codec
from wallwm_core.model.config import CodecConfig
from wallwm_core.training.data.episodes import EpisodeData

POOL_IMAGES = 2048
PSNR_IMAGES = 256
SEED = 0


def sample_frames(
    episodes: list[EpisodeData], encoder: ObservationEncoder, limit: int
) -> torch.Tensor:
    """Images of at most ``limit // V`` frames spread evenly over ``episodes`` (deterministic),
    every camera, as codec input ``[N, 1, 1, 3, H, W]`` float in [0, 1] (the deployment path)."""
    cameras = encoder.deployment.cameras
    pairs = [(e, f) for e in range(len(episodes)) for f in range(episodes[e].num_frames)]
    count = min(len(pairs), max(1, limit // len(cameras)))
    if not pairs:
        height, width = encoder.deployment.image_size
        return torch.zeros((0, 1, 1, 3, height, width))
    picks = np.unique(np.linspace(0, len(pairs) - 1, count).round().astype(np.int64))
    views = []
    for pick in picks:
        episode, frame = pairs[int(pick)]
        images = episodes[episode].images(np.array([frame]), cameras)
        views.append(encoder.frames({c: images[c][0] for c in cameras}))  # [V, 3, H, W]
    return torch.cat(views)[:, None, None]


def train_codec(
    config: CodecConfig,
    pool: torch.Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    device: torch.device,
    log: Callable[[str], None],
) -> ConvAutoencoderCodec:
    """A fresh codec (seeded) trained for ``steps`` Adam steps on batches of ``pool``
    ``[N, 1, 1, 3, H, W]``; returned in eval mode on the CPU."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        codec = build_codec(config).to(device)
    optimizer = torch.optim.Adam(codec.parameters(), lr=lr)
    rng = np.random.default_rng(SEED)
    report_every = max(1, steps // 5)
    codec.train()
    for step in range(1, steps + 1):
        picks = torch.from_numpy(rng.integers(0, len(pool), size=batch_size))
        loss = codec.reconstruction_loss(pool[picks].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % report_every == 0 or step == steps:
            # MSE in [-1, 1] units is 4x the MSE in [0, 1] units.
            psnr = psnr_from_mse(float(loss.detach()) / 4)
            log(f"codec step {step}/{steps}: train PSNR {psnr:.2f} dB")
    return codec.eval().cpu()


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error of images in [0, 1]."""
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def reconstruction_psnr(
    codec: ConvAutoencoderCodec, frames: torch.Tensor, device: torch.device, batch: int = 32
) -> float:
    """PSNR (dB) of encode -> decode over ``frames`` ``[N, 1, 1, 3, H, W]`` in [0, 1], from the
    mean squared error of all pixels together."""
    codec = codec.to(device)
    total, count = 0.0, 0
    for start in range(0, len(frames), batch):
        x = frames[start : start + batch].to(device)
        error = (codec.decode(codec.encode(x)).float() - x).pow(2)
        total += float(error.sum())
        count += error.numel()
    codec.cpu()
    return psnr_from_mse(total / max(count, 1))


def weights_digest(codec: torch.nn.Module) -> str:
    """SHA-256 of the codec's weights (names, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(codec.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()

"""The on-disk latent cache: every recorded frame encoded once by the frozen codec.

Layout of ``<cache_dir>/latents/``: ``latents.npy`` float16 ``[G, V, C, h, w]`` (G = all frames
of all episodes in dataset order, views in the deployment's camera order), read memory-mapped,
and ``info.json`` with the fingerprint, shape and the first global frame of each episode. The
fingerprint is a SHA-256 of the dataset fingerprint, the codec weights and the camera set; any
difference rebuilds the cache (into a temporary folder renamed into place when complete), an
equal one reuses it. float16 halves the disk and page-cache traffic; its rounding (3 significant
digits) is far below the codec's reconstruction error.

Concurrent preparations (torchrun ranks, two runs on one dataset) take turns under a file lock
held by :func:`~wallwm_core.training.data.prepare_data`: the first builds, the others reuse. A
run still reading a replaced cache keeps its (unlinked) memory map.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from wallwm_core.inference.observation import ObservationEncoder
from wallwm_core.training.data.episodes import EpisodeData

LATENT_DTYPE = np.float16
FORMAT = "wallwm latent cache v1"
ENCODE_BATCH = 16


@dataclasses.dataclass(frozen=True)
class LatentCache:
    """A complete cache: ``latents`` (memory-mapped, read-only) and per-episode offsets."""

    path: Path
    latents: np.ndarray
    offsets: tuple[int, ...]
    fingerprint: str
    rebuilt: bool


def cache_fingerprint(dataset_fp: str, codec_digest: str, cameras: tuple[str, ...]) -> str:
    text = json.dumps([FORMAT, dataset_fp, codec_digest, list(cameras)])
    return hashlib.sha256(text.encode()).hexdigest()


def open_or_build(
    folder: Path,
    fingerprint: str,
    episodes: list[EpisodeData],
    encoder: ObservationEncoder,
    log: Callable[[str], None],
) -> LatentCache:
    """The cache in ``folder`` if its fingerprint matches, else a fresh one built there."""
    info_path = folder / "info.json"
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
        except json.JSONDecodeError:
            info = {}
        if info.get("fingerprint") == fingerprint and (folder / "latents.npy").is_file():
            log(f"latent cache: reusing {folder} ({info['shape'][0]} frames)")
            return _open(folder, info, rebuilt=False)
        log(f"latent cache: {folder} is stale (dataset or codec changed); rebuilding")
    offsets = np.concatenate([[0], np.cumsum([e.num_frames for e in episodes])]).tolist()
    latent_hw = encoder.deployment.latent_hw
    shape = (
        offsets[-1],
        len(encoder.deployment.cameras),
        encoder.codec.latent_channels,
        *latent_hw,
    )
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    array = np.lib.format.open_memmap(tmp / "latents.npy", "w+", LATENT_DTYPE, shape)
    cameras = encoder.deployment.cameras
    with torch.no_grad():
        for episode, offset in zip(episodes, offsets[:-1], strict=False):
            for start in range(0, episode.num_frames, ENCODE_BATCH):
                frames = np.arange(start, min(start + ENCODE_BATCH, episode.num_frames))
                images = episode.images(frames, cameras)
                x = torch.stack(
                    [encoder.frames({c: images[c][i] for c in cameras}) for i in range(len(frames))]
                )  # [B, V, 3, H, W]
                latents = encoder.codec.encode(x[:, :, None])[:, :, 0]  # [B, V, C, h, w]
                array[offset + start : offset + start + len(frames)] = (
                    latents.float().cpu().numpy().astype(LATENT_DTYPE)
                )
    array.flush()
    del array
    info = {"format": FORMAT, "fingerprint": fingerprint, "shape": list(shape), "offsets": offsets}
    (tmp / "info.json").write_text(json.dumps(info))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    log(f"latent cache: encoded {shape[0]} frames x {shape[1]} views into {folder}")
    return _open(folder, info, rebuilt=True)


def _open(folder: Path, info: dict, rebuilt: bool) -> LatentCache:
    latents = np.load(folder / "latents.npy", mmap_mode="r")
    return LatentCache(
        path=folder,
        latents=latents,
        offsets=tuple(info["offsets"]),
        fingerprint=info["fingerprint"],
        rebuilt=rebuilt,
    )

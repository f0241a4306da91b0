"""WindowDataset: prepared windows -> :class:`~wallwm_core.training.batch.Batch` by indexing.

Everything a batch needs was computed once by :func:`~wallwm_core.training.data.prepare_data`:
normalised tokens and states, tokenised texts, packed sight-cone masks and, per window, the
global frame indices of its latent frames in the memory-mapped latent cache. ``batch()`` is
numpy fancy indexing plus tensor wrapping: no image decoding, no randomness.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from wallwm_core.training.batch import Batch


@dataclasses.dataclass
class WindowArrays:
    """The columns of ``N`` prepared windows (``F`` latent frames, ``T`` action steps).

    ``frames`` int64 ``[N, F]``: rows of ``latents`` (-1 = padded or missing frame);
    ``tokens`` float32 ``[N, T, D]`` normalised, zero on padding; ``num_steps`` int64 ``[N]``;
    ``state`` float32 ``[N, J]`` normalised; ``event_length_s`` float32 ``[N]``;
    ``text_index`` int64 ``[N]`` into ``text_ids``/``text_mask`` ``[U, L]``;
    ``mask_index`` int64 ``[N]`` into ``masks`` (uint8 ``[M, ceil(n*n/8)]`` bit-packed
    sight-cone masks of ``n = V * grid`` tokens) or ``masks`` None; ``info`` per-window facts.
    """

    frames: np.ndarray
    tokens: np.ndarray
    num_steps: np.ndarray
    state: np.ndarray
    event_length_s: np.ndarray
    text_index: np.ndarray
    text_ids: np.ndarray
    text_mask: np.ndarray
    mask_index: np.ndarray
    masks: np.ndarray | None
    mask_tokens: int
    info: list[dict[str, Any]]


class WindowDataset:
    """Windows of one split; ``weights`` (float64 ``[N]``, sum 1) are the sampling weights."""

    def __init__(self, latents: np.ndarray, arrays: WindowArrays, weights: np.ndarray) -> None:
        self.latents = latents  # [G, V, C, h, w], memory-mapped
        self.arrays = arrays
        self.weights = np.asarray(weights, dtype=np.float64)
        if len(self.weights) != len(arrays.info):
            raise ValueError(f"{len(self.weights)} weights for {len(arrays.info)} windows")

    def __len__(self) -> int:
        return len(self.arrays.info)

    @property
    def num_frames(self) -> int:
        return int(self.arrays.frames.shape[1])

    @property
    def num_steps(self) -> int:
        return int(self.arrays.tokens.shape[1])

    def batch(self, indices: Sequence[int]) -> Batch:
        """The windows ``indices`` as a Batch (CPU tensors, float32; same indices, same batch).

        Shapes: ``video_latents`` ``[B, V, F, C, h, w]`` with F = context + ceil(T / K_p),
        ``actions`` ``[B, T, D]``; padding is zero and masked.
        """
        a = self.arrays
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError(f"indices must be a non-empty 1-D sequence, got shape {idx.shape}")
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"window indices must be in [0, {len(self)}), got {idx.tolist()}")
        frames = a.frames[idx]  # [B, F]
        real = frames >= 0
        latents = self.latents[np.where(real, frames, 0)].astype(np.float32)  # [B, F, V, C, h, w]
        latents[~real] = 0.0
        video = torch.from_numpy(latents).permute(0, 2, 1, 3, 4, 5).contiguous()
        batch, views, num_frames, _, height, width = video.shape
        video_mask = torch.from_numpy(real)[:, None, :, None, None].expand(
            batch, views, num_frames, height, width
        )
        steps = a.num_steps[idx]
        action_mask = np.arange(a.tokens.shape[1])[None, :] < steps[:, None]
        cross_view = None
        if a.masks is not None:
            n = a.mask_tokens
            bits = np.unpackbits(a.masks[a.mask_index[idx]], axis=1, count=n * n)
            cross_view = torch.from_numpy(bits.astype(bool).reshape(len(idx), n, n))
        text = a.text_index[idx]
        return Batch(
            video_latents=video,
            video_mask=video_mask.contiguous(),
            text_ids=torch.from_numpy(a.text_ids[text]),
            text_mask=torch.from_numpy(a.text_mask[text]),
            state=torch.from_numpy(a.state[idx]),
            actions=torch.from_numpy(a.tokens[idx]),
            action_mask=torch.from_numpy(action_mask),
            event_length_s=torch.from_numpy(a.event_length_s[idx]),
            cross_view_allowed=cross_view,
        )

    def window_info(self, index: int) -> dict[str, Any]:
        """Episode, task, seed, event text, start step, length (action steps) of a window."""
        if not 0 <= index < len(self):
            raise IndexError(f"window index {index} outside [0, {len(self)})")
        return dict(self.arrays.info[index])

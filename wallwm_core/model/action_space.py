"""End-effector poses <-> the normalised action tokens the action tower denoises.

Composes :mod:`wallwm_core.action_tokens` (per arm xyz + 6D rotation + gripper) with
:class:`~wallwm_core.normalization.NormalizationStats` fitted on the token dimensions; the two
directions are exact inverses up to rotation orthonormalisation and gripper clipping.
"""

from __future__ import annotations

import numpy as np
import torch

from wallwm_core.action_tokens import poses_to_tokens, token_dim, tokens_to_poses
from wallwm_core.normalization import NormalizationStats


class ActionTokenizer:
    """Poses ``[T, A, ...]`` <-> normalised tokens ``[T, A * 10]`` (float32 tensors)."""

    def __init__(self, num_arms: int, stats: NormalizationStats) -> None:
        if stats.dim != token_dim(num_arms):
            raise ValueError(
                f"normalisation stats have {stats.dim} dims, {num_arms} arm(s) need "
                f"{token_dim(num_arms)}"
            )
        self.num_arms = num_arms
        self.stats = stats

    def encode(
        self, positions: np.ndarray, quaternions_wxyz: np.ndarray, gripper: np.ndarray
    ) -> torch.Tensor:
        """positions ``[T, A, 3]``, quaternions ``[T, A, 4]`` (w, x, y, z), gripper ``[T, A]``
        -> normalised tokens ``[T, A * 10]`` float32."""
        tokens = poses_to_tokens(positions, quaternions_wxyz, gripper)
        if tokens.shape[1] != token_dim(self.num_arms):
            raise ValueError(
                f"expected {self.num_arms} arm(s), got poses for {tokens.shape[1] // 10}"
            )
        return torch.from_numpy(self.stats.normalize(tokens)).float()

    def decode(self, tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised tokens ``[T, A * 10]`` -> (positions, quaternions_wxyz, gripper)."""
        raw = self.stats.unnormalize(tokens.detach().cpu().to(torch.float64).numpy())
        return tokens_to_poses(raw, self.num_arms)

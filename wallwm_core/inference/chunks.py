"""Sampled action tokens -> a typed :class:`~wallwm_core.action_chunk.ActionChunk`.

Normalised tokens ``[T, token_dim]`` are unnormalised with the checkpoint's action statistics
and turned into per-arm poses (:class:`~wallwm_core.model.action_space.ActionTokenizer`:
Gram-Schmidt rotations, (w, x, y, z) quaternions, gripper clipped to [0, 1]), then stamped with
the observation time; arm names, end-effector frames, base frame and step period come from the
checkpoint's deployment metadata.
"""

from __future__ import annotations

import numpy as np
import torch

from wallwm_core.action_chunk import ActionChunk
from wallwm_core.inference.deployment import DeploymentMetadata
from wallwm_core.model.action_space import ActionTokenizer
from wallwm_core.normalization import NormalizationStats


def tokens_to_chunk(
    tokens: torch.Tensor | np.ndarray,
    action_stats: NormalizationStats,
    deployment: DeploymentMetadata,
    stamp_ns: int,
    *,
    event_id: int = 0,
    instruction: str = "",
    chunk_index: int = 0,
    ends_event: bool = False,
) -> ActionChunk:
    """Normalised tokens ``[T, token_dim]`` (real steps only) -> ActionChunk."""
    if not isinstance(tokens, torch.Tensor):
        tokens = torch.from_numpy(np.asarray(tokens, dtype=np.float64))
    tokenizer = ActionTokenizer(len(deployment.arm_names), action_stats)
    positions, quaternions, gripper = tokenizer.decode(tokens)
    return ActionChunk(
        stamp_ns=int(stamp_ns),
        step_period_ns=deployment.step_period_ns,
        frame_id=deployment.base_frame,
        arm_names=deployment.arm_names,
        ee_frames=deployment.ee_frames,
        positions=positions,
        quaternions=quaternions,
        gripper=gripper,
        event_id=event_id,
        event_instruction=instruction,
        chunk_index=chunk_index,
        ends_event=ends_event,
    )

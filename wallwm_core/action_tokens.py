"""End-effector poses <-> the flat action tokens the model denoises.

Layout: per arm ``TOKEN_DIM_PER_ARM = 10`` values, arms concatenated in the chunk's arm order, so
one step is ``[A * 10]`` and a chunk is ``[T, A * 10]``. Per arm::

    [x, y, z,  r00, r10, r20,  r01, r11, r21,  gripper]
     position  column 0 of R   column 1 of R   0 open .. 1 closed

The rotation is the continuous 6D representation of Zhou et al. (2019, "On the Continuity of
Rotation Representations in Neural Networks"): the first two COLUMNS of the rotation matrix ``R``
(which maps end-effector coordinates to base coordinates), column 0 first. Going back,
Gram-Schmidt turns any 6D vector with two non-parallel halves into a proper rotation, so
non-orthonormal network outputs still decode to valid poses.

Quaternions are (w, x, y, z) as everywhere in wallwm_core and come back with ``w >= 0``.
"""

from __future__ import annotations

import numpy as np
import torch
from transforms3d.quaternions import mat2quat, quat2mat

from wallwm_core.action_chunk import QUATERNION_NORM_TOLERANCE

POSITION_DIMS = 3
ROTATION_DIMS = 6
TOKEN_DIM_PER_ARM = POSITION_DIMS + ROTATION_DIMS + 1
# Below this norm a 6D half (or its part orthogonal to the first column) has no direction.
DEGENERATE_NORM = 1e-8


def token_dim(num_arms: int) -> int:
    """Width of one step's token vector for ``num_arms`` arms."""
    return num_arms * TOKEN_DIM_PER_ARM


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values")


def matrix_to_rotation_6d(matrices: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` -> 6D ``[..., 6]`` (column 0, then column 1)."""
    matrices = np.asarray(matrices, dtype=np.float64)
    if matrices.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must be [..., 3, 3], got {matrices.shape}")
    return np.concatenate([matrices[..., :, 0], matrices[..., :, 1]], axis=-1)


def rotation_6d_to_matrix(rotation_6d: np.ndarray) -> np.ndarray:
    """6D ``[..., 6]`` -> rotation matrices ``[..., 3, 3]`` by Gram-Schmidt (det +1).

    Raises ValueError when a half is (nearly) zero or the two halves are (nearly) parallel: such
    vectors define no rotation.
    """
    rotation_6d = np.asarray(rotation_6d, dtype=np.float64)
    if rotation_6d.shape[-1:] != (ROTATION_DIMS,):
        raise ValueError(f"6D rotations must be [..., 6], got {rotation_6d.shape}")
    _check_finite("6D rotations", rotation_6d)
    a1, a2 = rotation_6d[..., :3], rotation_6d[..., 3:]
    norm1 = np.linalg.norm(a1, axis=-1, keepdims=True)
    if np.any(norm1 < DEGENERATE_NORM):
        raise ValueError("degenerate 6D rotation: the first column is (nearly) zero")
    b1 = a1 / norm1
    u2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    norm2 = np.linalg.norm(u2, axis=-1, keepdims=True)
    if np.any(norm2 < DEGENERATE_NORM):
        raise ValueError("degenerate 6D rotation: the two columns are (nearly) parallel or zero")
    b2 = u2 / norm2
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def rotation_6d_to_matrix_torch(rotation_6d: torch.Tensor) -> torch.Tensor:
    """Differentiable torch twin of :func:`rotation_6d_to_matrix`: ``[..., 6]`` -> ``[..., 3, 3]``.

    Does not raise on degenerate inputs (it runs inside training graphs); norms are clamped at
    ``DEGENERATE_NORM`` instead.
    """
    if rotation_6d.shape[-1] != ROTATION_DIMS:
        raise ValueError(f"6D rotations must be [..., 6], got {tuple(rotation_6d.shape)}")
    a1, a2 = rotation_6d[..., :3], rotation_6d[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(DEGENERATE_NORM)
    u2 = a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1
    b2 = u2 / u2.norm(dim=-1, keepdim=True).clamp_min(DEGENERATE_NORM)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def _quaternions_to_matrices(quaternions_wxyz: np.ndarray) -> np.ndarray:
    flat = quaternions_wxyz.reshape(-1, 4)
    return np.stack([quat2mat(q) for q in flat]).reshape(*quaternions_wxyz.shape[:-1], 3, 3)


def _matrices_to_quaternions(matrices: np.ndarray) -> np.ndarray:
    flat = np.stack([mat2quat(m) for m in matrices.reshape(-1, 3, 3)])
    flat = flat / np.linalg.norm(flat, axis=-1, keepdims=True)
    flat = np.where(flat[:, :1] < 0.0, -flat, flat)  # canonical sign: w >= 0
    return flat.reshape(*matrices.shape[:-2], 4)


def poses_to_tokens(
    positions: np.ndarray, quaternions_wxyz: np.ndarray, gripper: np.ndarray
) -> np.ndarray:
    """Poses -> tokens.

    positions ``[T, A, 3]`` metres, quaternions_wxyz ``[T, A, 4]`` unit (w, x, y, z), gripper
    ``[T, A]`` in [0, 1] -> tokens ``[T, A * 10]`` float64.
    """
    positions = np.asarray(positions, dtype=np.float64)
    quaternions_wxyz = np.asarray(quaternions_wxyz, dtype=np.float64)
    gripper = np.asarray(gripper, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be [T, A, 3], got {positions.shape}")
    num_steps, num_arms = positions.shape[:2]
    if num_steps == 0 or num_arms == 0:
        raise ValueError(f"need at least one step and one arm, got positions {positions.shape}")
    if quaternions_wxyz.shape != (num_steps, num_arms, 4):
        raise ValueError(
            f"quaternions must be [{num_steps}, {num_arms}, 4], got {quaternions_wxyz.shape}"
        )
    if gripper.shape != (num_steps, num_arms):
        raise ValueError(f"gripper must be [{num_steps}, {num_arms}], got {gripper.shape}")
    _check_finite("positions", positions)
    _check_finite("quaternions", quaternions_wxyz)
    _check_finite("gripper", gripper)
    norms = np.linalg.norm(quaternions_wxyz, axis=-1)
    if np.any(np.abs(norms - 1.0) > QUATERNION_NORM_TOLERANCE):
        worst = float(norms.flat[np.argmax(np.abs(norms - 1.0))])
        raise ValueError(f"quaternions must be unit length, found norm {worst:.6f}")
    if np.any(gripper < 0.0) or np.any(gripper > 1.0):
        raise ValueError("gripper commands must lie in [0, 1]")
    rotation_6d = matrix_to_rotation_6d(_quaternions_to_matrices(quaternions_wxyz))
    per_arm = np.concatenate([positions, rotation_6d, gripper[..., None]], axis=-1)
    return per_arm.reshape(num_steps, num_arms * TOKEN_DIM_PER_ARM)


def tokens_to_poses(tokens: np.ndarray, num_arms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens ``[T, A * 10]`` -> (positions ``[T, A, 3]``, quaternions_wxyz ``[T, A, 4]``,
    gripper ``[T, A]``).

    Rotations are orthonormalised (Gram-Schmidt), quaternions have ``w >= 0`` and the gripper is
    clipped to [0, 1]; positions pass through unchanged.
    """
    if num_arms < 1:
        raise ValueError(f"num_arms must be at least 1, got {num_arms=}")
    tokens = np.asarray(tokens, dtype=np.float64)
    width = token_dim(num_arms)
    if tokens.ndim != 2 or tokens.shape[1] != width or tokens.shape[0] == 0:
        raise ValueError(
            f"tokens must be [T >= 1, {width}] for {num_arms} arm(s), got {tokens.shape}"
        )
    _check_finite("tokens", tokens)
    per_arm = tokens.reshape(tokens.shape[0], num_arms, TOKEN_DIM_PER_ARM)
    positions = per_arm[..., :POSITION_DIMS].copy()
    matrices = rotation_6d_to_matrix(per_arm[..., POSITION_DIMS : POSITION_DIMS + ROTATION_DIMS])
    quaternions = _matrices_to_quaternions(matrices)
    gripper = np.clip(per_arm[..., -1], 0.0, 1.0)
    return positions, quaternions, gripper

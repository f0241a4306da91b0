"""Action tokens: pose <-> [T, A*10] round trips, Gram-Schmidt decoding, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transforms3d.quaternions import quat2mat

from wallwm_core.action_tokens import (
    TOKEN_DIM_PER_ARM,
    matrix_to_rotation_6d,
    poses_to_tokens,
    rotation_6d_to_matrix,
    rotation_6d_to_matrix_torch,
    tokens_to_poses,
)


def _random_poses(rng: np.random.Generator, num_steps: int, num_arms: int):
    positions = rng.normal(size=(num_steps, num_arms, 3))
    quaternions = rng.normal(size=(num_steps, num_arms, 4))
    quaternions /= np.linalg.norm(quaternions, axis=-1, keepdims=True)
    gripper = rng.uniform(size=(num_steps, num_arms))
    return positions, quaternions, gripper


def _matrices(quaternions: np.ndarray) -> np.ndarray:
    flat = [quat2mat(q) for q in quaternions.reshape(-1, 4)]
    return np.array(flat).reshape(*quaternions.shape[:-1], 3, 3)


@pytest.mark.parametrize("num_arms", [1, 2])
def test_round_trip_recovers_poses(num_arms: int) -> None:
    rng = np.random.default_rng(num_arms)
    positions, quaternions, gripper = _random_poses(rng, 50, num_arms)
    tokens = poses_to_tokens(positions, quaternions, gripper)
    assert tokens.shape == (50, num_arms * TOKEN_DIM_PER_ARM)

    positions2, quaternions2, gripper2 = tokens_to_poses(tokens, num_arms)
    np.testing.assert_array_equal(positions2, positions)
    np.testing.assert_array_equal(gripper2, gripper)
    np.testing.assert_allclose(_matrices(quaternions2), _matrices(quaternions), atol=1e-9)
    assert np.all(quaternions2[..., 0] >= 0.0)
    # Same rotation up to the quaternion's sign.
    sign = np.sign(np.sum(quaternions2 * quaternions, axis=-1, keepdims=True))
    np.testing.assert_allclose(quaternions2, sign * quaternions, atol=1e-9)


def test_token_layout_is_position_then_first_two_columns_then_gripper() -> None:
    # 90 degrees about z: column 0 = (0, 1, 0), column 1 = (-1, 0, 0).
    quaternion = np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])
    tokens = poses_to_tokens(
        np.array([[[1.0, 2.0, 3.0]]]), quaternion[None, None], np.array([[0.25]])
    )
    np.testing.assert_allclose(tokens[0], [1, 2, 3, 0, 1, 0, -1, 0, 0, 0.25], atol=1e-12)


def test_second_arm_occupies_the_second_block() -> None:
    rng = np.random.default_rng(7)
    positions, quaternions, gripper = _random_poses(rng, 3, 2)
    tokens = poses_to_tokens(positions, quaternions, gripper)
    alone = poses_to_tokens(positions[:, 1:], quaternions[:, 1:], gripper[:, 1:])
    np.testing.assert_array_equal(tokens[:, TOKEN_DIM_PER_ARM:], alone)


def test_gram_schmidt_turns_perturbed_6d_into_a_rotation() -> None:
    rng = np.random.default_rng(3)
    _, quaternions, _ = _random_poses(rng, 100, 1)
    clean = matrix_to_rotation_6d(_matrices(quaternions))
    noisy = clean * rng.uniform(0.5, 2.0, size=clean.shape) + 0.1 * rng.normal(size=clean.shape)
    matrices = rotation_6d_to_matrix(noisy)
    identity = np.broadcast_to(np.eye(3), matrices.shape)
    np.testing.assert_allclose(matrices.swapaxes(-1, -2) @ matrices, identity, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-12)
    # The first column keeps the direction of the first 6D half.
    first = noisy[..., :3] / np.linalg.norm(noisy[..., :3], axis=-1, keepdims=True)
    np.testing.assert_allclose(matrices[..., :, 0], first, atol=1e-12)
    # Decoding through tokens also yields unit quaternions.
    tokens = np.concatenate(
        [np.zeros((100, 3)), noisy.reshape(100, 6), np.full((100, 1), 0.5)], axis=-1
    )
    _, quaternions2, _ = tokens_to_poses(tokens, 1)
    np.testing.assert_allclose(np.linalg.norm(quaternions2, axis=-1), 1.0, atol=1e-12)


def test_torch_6d_decoding_matches_numpy() -> None:
    rng = np.random.default_rng(4)
    rotation_6d = rng.normal(size=(5, 7, 6))
    expected = rotation_6d_to_matrix(rotation_6d)
    actual = rotation_6d_to_matrix_torch(torch.from_numpy(rotation_6d))
    assert actual.shape == (5, 7, 3, 3)
    np.testing.assert_allclose(actual.numpy(), expected, atol=1e-12)


def test_gripper_is_clipped_on_decoding() -> None:
    tokens = poses_to_tokens(
        np.zeros((3, 1, 3)), np.tile([1.0, 0, 0, 0], (3, 1, 1)), np.zeros((3, 1))
    )
    tokens[:, -1] = [-0.3, 0.4, 1.7]
    _, _, gripper = tokens_to_poses(tokens, 1)
    np.testing.assert_array_equal(gripper[:, 0], [0.0, 0.4, 1.0])


def test_degenerate_6d_raises() -> None:
    with pytest.raises(ValueError, match="parallel"):
        rotation_6d_to_matrix(np.array([1.0, 0, 0, 2.0, 0, 0]))
    with pytest.raises(ValueError, match="zero"):
        rotation_6d_to_matrix(np.array([0.0, 0, 0, 0, 1, 0]))


@pytest.mark.parametrize(
    ("positions", "quaternions", "gripper", "match"),
    [
        (np.zeros((2, 1, 2)), np.ones((2, 1, 4)) / 2, np.zeros((2, 1)), "positions must be"),
        (np.zeros((2, 1, 3)), np.ones((2, 2, 4)) / 2, np.zeros((2, 1)), "quaternions must be"),
        (np.zeros((2, 1, 3)), np.ones((2, 1, 4)) / 2, np.zeros((2,)), "gripper must be"),
        (np.zeros((2, 1, 3)), np.ones((2, 1, 4)), np.zeros((2, 1)), "unit length"),
        (np.zeros((2, 1, 3)), np.ones((2, 1, 4)) / 2, np.full((2, 1), 1.5), r"\[0, 1\]"),
        (np.full((2, 1, 3), np.nan), np.ones((2, 1, 4)) / 2, np.zeros((2, 1)), "NaN"),
        (np.zeros((0, 1, 3)), np.ones((0, 1, 4)) / 2, np.zeros((0, 1)), "at least one step"),
    ],
)
def test_bad_poses_raise(positions, quaternions, gripper, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        poses_to_tokens(positions, quaternions, gripper)


def test_bad_tokens_raise() -> None:
    with pytest.raises(ValueError, match=r"\[T >= 1, 20\]"):
        tokens_to_poses(np.zeros((4, 10)), num_arms=2)
    with pytest.raises(ValueError, match="num_arms"):
        tokens_to_poses(np.zeros((4, 10)), num_arms=0)
    tokens = np.zeros((2, 10))
    tokens[:, 3] = tokens[:, 7] = 1.0
    tokens[1, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        tokens_to_poses(tokens, num_arms=1)

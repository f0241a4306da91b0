"""Sight-cone mask: geometry cases, structure (symmetry, same-view blocks), bias and validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.model.sight_cone import sight_cone_allowed, sight_cone_bias

IMAGE_HW = (48, 64)
GRID_HW = (6, 8)  # 8 x 8 pixel patches
TOKENS = GRID_HW[0] * GRID_HW[1]
K = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])


def look_at(eye: tuple[float, ...], target: tuple[float, ...]) -> CameraGeometry:
    """A camera at ``eye`` whose optical axis (z) points at ``target``; world z is up."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    transform = np.eye(4)
    transform[:3, :3] = np.stack([right, down, forward], axis=1)
    transform[:3, 3] = eye
    return CameraGeometry(K=K, image_size=IMAGE_HW, world_from_camera=transform)


def token_of(
    camera: CameraGeometry,
    view: int,
    point: tuple[float, ...],
    grid_hw: tuple[int, int] = GRID_HW,
) -> int:
    """Index of the token (view-major, row-major) whose patch contains ``point``'s projection."""
    local = camera.rotation.T @ (np.asarray(point, float) - camera.centre)
    assert local[2] > 0, "point must be in front of the camera"
    u, v, _ = camera.K @ (local / local[2])
    row = int((v + 0.5) // (IMAGE_HW[0] / grid_hw[0]))
    col = int((u + 0.5) // (IMAGE_HW[1] / grid_hw[1]))
    assert 0 <= row < grid_hw[0] and 0 <= col < grid_hw[1], "point must be in the image"
    return (view * grid_hw[0] + row) * grid_hw[1] + col


def converging_pair() -> list[CameraGeometry]:
    return [look_at((-1.0, -3.0, 1.0), (0.0, 0.0, 0.5)), look_at((1.5, -2.5, 1.2), (0.0, 0.0, 0.5))]


def back_to_back_pair() -> list[CameraGeometry]:
    return [look_at((0.0, 0.0, 1.0), (0.0, 5.0, 1.0)), look_at((0.2, 0.0, 1.0), (0.2, -5.0, 1.0))]


def three_views() -> list[CameraGeometry]:
    return [*converging_pair(), look_at((0.0, 3.0, 2.0), (0.0, 0.0, 0.5))]


@pytest.mark.parametrize("point", [(0.0, 0.0, 0.5), (0.3, 0.2, 0.7), (-0.4, -0.3, 0.3)])
def test_cameras_seeing_the_same_point_may_attend(point: tuple[float, ...]) -> None:
    cameras = converging_pair()
    allowed = sight_cone_allowed(cameras, GRID_HW, d_min=0.1, d_max=10.0)
    assert allowed.shape == (2 * TOKENS, 2 * TOKENS)
    assert allowed.dtype == torch.bool
    i, j = token_of(cameras[0], 0, point), token_of(cameras[1], 1, point)
    assert allowed[i, j] and allowed[j, i]
    cross = allowed[:TOKENS, TOKENS:]
    # Non-trivial: the geometry admits some cross-view pairs and rules out others.
    assert 0 < int(cross.sum()) < cross.numel()
    # The patch sees a band of view 1 around its epipolar line, not all of it.
    assert 0 < int(cross[i].sum()) < TOKENS


def test_cameras_looking_away_from_each_other_are_fully_masked() -> None:
    allowed = sight_cone_allowed(back_to_back_pair(), GRID_HW, d_min=0.1, d_max=10.0)
    assert not allowed[:TOKENS, TOKENS:].any()
    assert not allowed[TOKENS:, :TOKENS].any()


def test_intersection_beyond_d_max_is_masked() -> None:
    # Optical axes meet 10 m ahead; with d_max = 2 m the clamped points are ~1.6 m apart.
    cameras = [
        look_at((-1.0, 0.0, 0.0), (0.0, 10.0, 0.0)),
        look_at((1.0, 0.0, 0.0), (0.0, 10.0, 0.0)),
    ]
    far_point = (0.0, 10.0, 0.0)
    i, j = token_of(cameras[0], 0, far_point), token_of(cameras[1], 1, far_point)
    assert sight_cone_allowed(cameras, GRID_HW, d_min=0.1, d_max=20.0)[i, j]
    assert not sight_cone_allowed(cameras, GRID_HW, d_min=0.1, d_max=2.0)[i, j]


def test_radius_scale_grows_the_allowed_set() -> None:
    cameras = converging_pair()
    narrow = sight_cone_allowed(cameras, GRID_HW, 0.1, 10.0, radius_scale=0.5)
    wide = sight_cone_allowed(cameras, GRID_HW, 0.1, 10.0, radius_scale=2.0)
    assert bool((wide | ~narrow).all())  # monotone: everything narrow allows, wide allows
    assert int(wide.sum()) > int(narrow.sum())
    # Zero-radius cones: only exact axis intersections survive (none in this generic setup).
    thin = sight_cone_allowed(cameras, GRID_HW, 0.1, 10.0, radius_scale=0.0)
    assert not thin[:TOKENS, TOKENS:].any()


@pytest.mark.parametrize(
    "cameras",
    [
        # Stereo rig: identical orientation, so matching patches have exactly parallel axes.
        [look_at((0.0, 0.0, 1.0), (0.0, 5.0, 1.0)), look_at((0.1, 0.0, 1.0), (0.1, 5.0, 1.0))],
        # Facing each other on one line: the central axes coincide with opposite directions.
        [look_at((0.0, 0.0, 1.0), (0.0, 4.0, 1.0)), look_at((0.0, 4.0, 1.0), (0.0, 0.0, 1.0))],
    ],
    ids=["stereo", "facing"],
)
def test_parallel_axes_are_handled(cameras: list[CameraGeometry]) -> None:
    # An odd grid puts the centre patch's axis exactly on the optical axis (cx, cy), so the two
    # centre axes are exactly parallel and the closest-point formula alone would give 0 / 0.
    grid_hw = (5, 7)
    tokens = grid_hw[0] * grid_hw[1]
    allowed = sight_cone_allowed(cameras, grid_hw, d_min=0.1, d_max=10.0)
    centre = 2 * grid_hw[1] + 3
    assert allowed[centre, tokens + centre] and allowed[tokens + centre, centre]
    point = (0.05, 3.0, 1.0)  # seen by both cameras in both setups
    i, j = token_of(cameras[0], 0, point, grid_hw), token_of(cameras[1], 1, point, grid_hw)
    assert allowed[i, j]
    assert not allowed[:tokens, tokens:].all()


@pytest.mark.parametrize("make_cameras", [converging_pair, back_to_back_pair, three_views])
def test_same_view_blocks_allowed_and_mask_symmetric(make_cameras) -> None:
    cameras = make_cameras()
    allowed = sight_cone_allowed(cameras, GRID_HW, d_min=0.2, d_max=6.0)
    for view in range(len(cameras)):
        block = slice(view * TOKENS, (view + 1) * TOKENS)
        assert allowed[block, block].all()
    assert torch.equal(allowed, allowed.T)


def test_views_are_ordered_view_major() -> None:
    cameras = three_views()
    full = sight_cone_allowed(cameras, GRID_HW, 0.1, 10.0)
    pair = sight_cone_allowed([cameras[0], cameras[2]], GRID_HW, 0.1, 10.0)
    assert torch.equal(full[:TOKENS, 2 * TOKENS :], pair[:TOKENS, TOKENS:])


def test_bias_values_and_frame_rule() -> None:
    allowed = sight_cone_allowed(converging_pair(), GRID_HW, 0.1, 10.0)
    n = allowed.shape[0]
    bias = sight_cone_bias(allowed, num_frames=3)
    assert bias.shape == (3 * n, 3 * n)
    assert bias.dtype == torch.float32
    finite = torch.isfinite(bias)
    assert bool((bias[finite] == 0).all())
    assert bool((bias[~finite] == float("-inf")).all())
    for frame in range(3):
        block = slice(frame * n, (frame + 1) * n)
        assert torch.equal(finite[block, block], allowed)
    # Different latent frames are not restricted by the sight cone.
    assert bool((bias[:n, n:] == 0).all()) and bool((bias[n:, :n] == 0).all())
    # Every query keeps at least its own view, so softmax rows never become all -inf.
    assert bool(finite.any(dim=-1).all())


def test_bias_disabled_is_all_zero() -> None:
    allowed = sight_cone_allowed(back_to_back_pair(), GRID_HW, 0.1, 10.0)
    bias = sight_cone_bias(allowed, num_frames=2, enabled=False, dtype=torch.bfloat16)
    assert bias.dtype == torch.bfloat16
    assert bias.shape == (2 * allowed.shape[0],) * 2
    assert not bias.any()


def test_bias_works_in_attention() -> None:
    allowed = sight_cone_allowed(back_to_back_pair(), GRID_HW, 0.1, 10.0)
    bias = sight_cone_bias(allowed, num_frames=1)
    q = torch.randn(1, 2, 2 * TOKENS, 8, generator=torch.Generator().manual_seed(0))
    v = torch.zeros_like(q)
    v[..., TOKENS:, :] = 1.0  # only view-1 values are non-zero
    out = torch.nn.functional.scaled_dot_product_attention(q, q, v, attn_mask=bias)
    assert torch.isfinite(out).all()
    # Views cannot see each other here, so view 0's outputs carry nothing from view 1.
    assert torch.equal(out[..., :TOKENS, :], torch.zeros_like(out[..., :TOKENS, :]))


def _camera(**changes) -> CameraGeometry:
    return dataclasses.replace(look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)), **changes)


def test_camera_validation() -> None:
    good = _camera()
    skewed = good.world_from_camera.copy()
    skewed[:3, :3] *= 1.1
    with pytest.raises(ValueError, match="not orthonormal"):
        _camera(world_from_camera=skewed)
    mirrored = good.world_from_camera.copy()
    mirrored[:3, 0] *= -1.0
    with pytest.raises(ValueError, match="reflection"):
        _camera(world_from_camera=mirrored)
    with pytest.raises(ValueError, match=r"K must be \[3, 3\]"):
        _camera(K=np.eye(4))
    singular = K.copy()
    singular[1] = K[0]
    with pytest.raises(ValueError, match="focal lengths must be positive"):
        _camera(K=singular)
    with pytest.raises(ValueError, match="NaN"):
        _camera(K=np.where(np.eye(3) > 0, np.nan, K))
    with pytest.raises(ValueError, match="world_from_camera must be"):
        _camera(world_from_camera=np.eye(3))
    with pytest.raises(ValueError, match="image_size"):
        _camera(image_size=(48, 0))
    assert not good.K.flags.writeable


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"d_min": 2.0, "d_max": 2.0}, "d_min < d_max"),
        ({"d_min": 3.0, "d_max": 1.0}, "d_min < d_max"),
        ({"d_min": 0.0, "d_max": 1.0}, "d_min"),
        ({"radius_scale": -1.0}, "radius_scale"),
        ({"grid_hw": (0, 4)}, "grid_hw"),
        ({"cameras": []}, "at least one camera"),
    ],
)
def test_sight_cone_argument_validation(kwargs: dict, match: str) -> None:
    arguments = {"cameras": converging_pair(), "grid_hw": GRID_HW, "d_min": 0.1, "d_max": 10.0}
    with pytest.raises(ValueError, match=match):
        sight_cone_allowed(**(arguments | kwargs))


def test_bias_argument_validation() -> None:
    with pytest.raises(ValueError, match="num_frames"):
        sight_cone_bias(torch.ones(4, 4, dtype=torch.bool), num_frames=0)
    with pytest.raises(ValueError, match="square bool"):
        sight_cone_bias(torch.ones(4, 4), num_frames=1)


def _reference_allowed(
    cam_a: CameraGeometry,
    cam_b: CameraGeometry,
    grid_hw: tuple[int, int],
    d_min: float,
    d_max: float,
) -> np.ndarray:
    """Per-pair numpy restatement of the rule for non-parallel axes (least-squares closest points)."""

    def axes(camera: CameraGeometry) -> tuple[list[np.ndarray], float]:
        (image_h, image_w), (grid_h, grid_w) = camera.image_size, grid_hw
        patch_h, patch_w = image_h / grid_h, image_w / grid_w
        k_inv = np.linalg.inv(camera.K)
        dirs = [
            camera.rotation @ k_inv @ ((w + 0.5) * patch_w - 0.5, (h + 0.5) * patch_h - 0.5, 1.0)
            for h in range(grid_h)
            for w in range(grid_w)
        ]
        return dirs, 0.5 * np.hypot(patch_w / camera.K[0, 0], patch_h / camera.K[1, 1])

    dirs_a, rho_a = axes(cam_a)
    dirs_b, rho_b = axes(cam_b)
    result = np.zeros((len(dirs_a), len(dirs_b)), dtype=bool)
    for i, u in enumerate(dirs_a):
        for j, v in enumerate(dirs_b):
            (s, t), *_ = np.linalg.lstsq(np.stack([u, -v], 1), cam_b.centre - cam_a.centre)
            s, t = np.clip(s, d_min, d_max), np.clip(t, d_min, d_max)
            gap = np.linalg.norm(cam_a.centre + s * u - cam_b.centre - t * v)
            result[i, j] = gap <= rho_a * s + rho_b * t
    return result


def test_matches_per_pair_reference() -> None:
    cameras = three_views()
    grid_hw = (3, 4)
    tokens = grid_hw[0] * grid_hw[1]
    allowed = sight_cone_allowed(cameras, grid_hw, d_min=0.3, d_max=4.0).numpy()
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        expected = _reference_allowed(cameras[a], cameras[b], grid_hw, 0.3, 4.0)
        got = allowed[a * tokens : (a + 1) * tokens, b * tokens : (b + 1) * tokens]
        np.testing.assert_array_equal(got, expected)
    assert 0 < int(allowed[:tokens, tokens : 2 * tokens].sum()) < tokens * tokens

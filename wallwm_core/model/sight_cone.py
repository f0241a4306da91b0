"""The sight-cone mask: which tokens of different camera views may attend to each other.

Every latent patch of every view is a cone whose axis is the ray from the camera centre through
the patch centre. Two tokens of different views in the same latent frame may attend to each other
only if their cones come close enough in front of both cameras; same-view pairs are always
allowed. This is the geometric prior behind WALL-WM's multi-view consistency.

Conventions (used throughout this module):

- Camera frame: OpenCV, x right, y down, z forward (optical axis). ``world_from_camera`` maps
  camera-frame points to world points; its translation is the camera centre in the world.
- Pixels: ``K`` is in pixels for ``image_size = (height, width)``; integer pixel coordinates are
  pixel *centres* (OpenCV), so the image spans ``[-0.5, width - 0.5] x [-0.5, height - 0.5]``.
- Patches: the image is divided into an ``H x W`` grid of equal patches (the latent grid); patch
  ``(h, w)`` covers rows ``[h, h + 1) * height / H`` and columns ``[w, w + 1) * width / W`` of that
  continuous image, so its centre is at ``u = (w + 0.5) * width / W - 0.5`` (rows likewise).
- Depth: a point on a patch's axis is parametrised by its depth ``d`` = z in its own camera frame
  (the axis direction is ``R @ K^-1 @ [u, v, 1]``, whose camera-frame z is 1).
- Cone radius: ``radius(d) = d * radius_scale * rho``, where ``rho`` is the patch's
  half-diagonal in normalised image coordinates (``K^-1`` applied to the patch's corner offsets;
  ``0.5 * hypot(patch_w / fx, patch_h / fy)`` without skew). With ``radius_scale = 1`` the cone
  circumscribes the patch's pyramid of sight.
- Token order within one latent frame: view-major, then row-major over the grid:
  ``index = (v * H + h) * W + w``. :func:`sight_cone_bias` extends this frame-major over several
  latent frames: ``index = ((f * V + v) * H + h) * W + w``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.model.config import SightConeConfig

# Axes whose squared sine of the angle between them is below this are treated as parallel.
PARALLEL_SIN2_TOLERANCE = 1e-10


def _patch_axes(
    camera: CameraGeometry, grid_hw: tuple[int, int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Cone axes of one view's patches, float64 on ``device``.

    Returns the camera centre ``[3]``, the axis directions ``[H*W, 3]`` in the world, scaled so
    that the ray parameter is the camera-frame depth (row-major over the grid), and ``rho``, the
    cone radius per unit depth for ``radius_scale = 1`` (see the module docstring).
    """
    grid_h, grid_w = grid_hw
    image_h, image_w = camera.image_size
    patch_h, patch_w = image_h / grid_h, image_w / grid_w
    k_inv = torch.linalg.inv(torch.tensor(camera.K, dtype=torch.float64, device=device))
    rows = (torch.arange(grid_h, dtype=torch.float64, device=device) + 0.5) * patch_h - 0.5
    cols = (torch.arange(grid_w, dtype=torch.float64, device=device) + 0.5) * patch_w - 0.5
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    pixels = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(-1, 3)
    # K's last row is (0, 0, 1), so K^-1 keeps z = 1: directions are per unit depth.
    directions_camera = pixels @ k_inv.T
    rotation = torch.tensor(camera.rotation, dtype=torch.float64, device=device)
    directions = directions_camera @ rotation.T
    centre = torch.tensor(camera.centre, dtype=torch.float64, device=device)
    # K^-1 is affine on the image plane, so every patch has the same normalised half-diagonal.
    corners = torch.tensor(
        [[sx * patch_w / 2, sy * patch_h / 2, 0.0] for sx in (-1, 1) for sy in (-1, 1)],
        dtype=torch.float64,
        device=device,
    )
    rho = float((corners @ k_inv.T)[:, :2].norm(dim=-1).max())
    return centre, directions, rho


def _cross_view_allowed(
    centre_a: torch.Tensor,
    dirs_a: torch.Tensor,
    radius_a: float,
    centre_b: torch.Tensor,
    dirs_b: torch.Tensor,
    radius_b: float,
    d_min: float,
    d_max: float,
) -> torch.Tensor:
    """Sight-cone test for every patch of view a against every patch of view b: ``[Na, Nb]``.

    Axes are ``centre_a + s * dirs_a[i]`` and ``centre_b + t * dirs_b[j]`` (s, t depths);
    ``radius_*`` are cone radii per unit depth.
    """
    w0 = centre_a - centre_b
    a = (dirs_a * dirs_a).sum(-1)[:, None]  # [Na, 1]
    c = (dirs_b * dirs_b).sum(-1)[None, :]  # [1, Nb]
    b = dirs_a @ dirs_b.T  # [Na, Nb]
    d = (dirs_a @ w0)[:, None]  # [Na, 1]
    e = (dirs_b @ w0)[None, :]  # [1, Nb]
    w0_sq = float(w0 @ w0)

    def fits(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # Clamping each depth to [d_min, d_max] keeps both points in front of their cameras.
        s = s.clamp(d_min, d_max)
        t = t.clamp(d_min, d_max)
        # |w0 + s*u - t*v|^2 expanded, to avoid materialising [Na, Nb, 3] point pairs.
        dist_sq = w0_sq + s * s * a + t * t * c + 2 * s * d - 2 * t * e - 2 * s * t * b
        return dist_sq.clamp_min(0.0).sqrt() <= radius_a * s + radius_b * t

    # Directions have camera-frame z = 1, so a, c >= 1 and the divisions below are safe.
    denom = a * c - b * b  # |u|^2 |v|^2 sin^2(angle), >= 0
    parallel = denom <= PARALLEL_SIN2_TOLERANCE * a * c
    safe_denom = torch.where(parallel, torch.ones_like(denom), denom)
    # Closest points of the two (infinite) axis lines.
    allowed = fits((b * e - c * d) / safe_denom, (a * e - b * d) / safe_denom)
    if bool(parallel.any()):
        # Parallel axes have no unique closest pair: try each end of the depth range on either
        # axis, paired with the closest point on the other axis, and allow if any pair fits.
        fallback = torch.zeros_like(allowed)
        for depth in (d_min, d_max):
            s = torch.full_like(b, depth)
            fallback |= fits(s, (e + b * s) / c)
            t = torch.full_like(b, depth)
            fallback |= fits((b * t - d) / a, t)
        allowed = torch.where(parallel, fallback, allowed)
    return allowed


def sight_cone_allowed(
    cameras: Sequence[CameraGeometry],
    grid_hw: tuple[int, int],
    d_min: float,
    d_max: float,
    radius_scale: float = 1.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Which token pairs of ONE latent frame may attend to each other: bool ``[V*H*W, V*H*W]``.

    Tokens are ordered view-major then row-major (``(v * H + h) * W + w``). Same-view pairs are
    always True. A cross-view pair is True iff the closest points of the two patch axes, each
    depth clamped to ``[d_min, d_max]``, are at most ``radius_a(depth_a) + radius_b(depth_b)``
    apart (radius rule in the module docstring). The result is symmetric. Geometry is computed
    in float64 on ``device`` (default CPU).
    """
    if len(cameras) == 0:
        raise ValueError("sight_cone_allowed needs at least one camera")
    if len(grid_hw) != 2 or not all(isinstance(n, int) and n > 0 for n in grid_hw):
        raise ValueError(f"grid_hw must be two positive integers (H, W), got {grid_hw=}")
    if not (np.isfinite(d_min) and np.isfinite(d_max) and 0.0 < d_min < d_max):
        raise ValueError(f"need 0 < d_min < d_max (finite), got {d_min=} {d_max=}")
    if not (np.isfinite(radius_scale) and radius_scale >= 0.0):
        raise ValueError(f"radius_scale must be finite and >= 0, got {radius_scale=}")
    device = torch.device("cpu") if device is None else torch.device(device)

    axes = [_patch_axes(camera, grid_hw, device) for camera in cameras]
    tokens_per_view = grid_hw[0] * grid_hw[1]
    num_views = len(cameras)
    allowed = torch.zeros(
        num_views * tokens_per_view, num_views * tokens_per_view, dtype=torch.bool, device=device
    )

    def block(view: int) -> slice:
        return slice(view * tokens_per_view, (view + 1) * tokens_per_view)

    for view_a in range(num_views):
        allowed[block(view_a), block(view_a)] = True
        centre_a, dirs_a, rho_a = axes[view_a]
        for view_b in range(view_a + 1, num_views):
            centre_b, dirs_b, rho_b = axes[view_b]
            pair = _cross_view_allowed(
                centre_a,
                dirs_a,
                radius_scale * rho_a,
                centre_b,
                dirs_b,
                radius_scale * rho_b,
                d_min,
                d_max,
            )
            # Computed once per unordered view pair, so the mask is exactly symmetric.
            allowed[block(view_a), block(view_b)] = pair
            allowed[block(view_b), block(view_a)] = pair.T
    return allowed


def sight_cone_bias(
    allowed: torch.Tensor,
    num_frames: int,
    enabled: bool = True,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Additive attention bias ``[F*N, F*N]`` for ``num_frames`` latent frames of ``N`` tokens.

    ``allowed`` is :func:`sight_cone_allowed`'s ``[N, N]`` mask for one frame. Tokens are ordered
    frame-major (``f * N + n``). The sight cone only restricts pairs in the same latent frame
    (as the method states it); pairs from different frames are left to the other masks (e.g. a
    causal or block-diagonal event mask), so they get 0 here. The bias is 0 where attention is
    allowed and -inf elsewhere; with ``enabled=False`` it is all zeros (the mask is switchable).
    The result is on ``allowed``'s device and broadcasts against ``[B, heads, L, L]`` scores.
    It is dense (``(F*N)^2`` entries): meant for toy sizes and tests; at full resolution apply
    the per-frame ``[N, N]`` mask in frame-local cross-view attention instead.
    """
    if allowed.ndim != 2 or allowed.shape[0] != allowed.shape[1] or allowed.dtype != torch.bool:
        raise ValueError(
            f"allowed must be a square bool [N, N] tensor, got {allowed.shape=} {allowed.dtype=}"
        )
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames=}")
    if not dtype.is_floating_point:
        raise ValueError(f"bias dtype must be floating point, got {dtype=}")
    tokens_per_frame = allowed.shape[0]
    total = num_frames * tokens_per_frame
    bias = torch.zeros(total, total, dtype=dtype, device=allowed.device)
    if not enabled:
        return bias
    frame = torch.arange(total, device=allowed.device) // tokens_per_frame
    same_frame = frame[:, None] == frame[None, :]
    blocked = same_frame & ~allowed.repeat(num_frames, num_frames)
    return bias.masked_fill(blocked, float("-inf"))


def cross_view_allowed_from_cameras(
    cameras: Sequence[Sequence[CameraGeometry]],
    grid_hw: tuple[int, int],
    sight_cone: SightConeConfig,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sight-cone masks ``[B, V*N, V*N]`` for ``B`` samples' camera rigs on the patch grid.

    ``cameras[b]`` holds sample ``b``'s V cameras in view order; ``grid_hw`` is the token grid
    of one latent frame (latent size / patch size, e.g. ``config.patch_grid((h, w))``).
    """
    masks = [
        sight_cone_allowed(
            rig,
            grid_hw,
            sight_cone.d_min,
            sight_cone.d_max,
            sight_cone.radius_scale,
            device=device,
        )
        for rig in cameras
    ]
    return torch.stack(masks)

"""Flow-matching utilities shared by the video and action towers: ONE time convention.

Time convention (the WALL-WM paper's; note that some flow-matching papers use the reverse):
``t = 0`` is data and ``t = 1`` is pure noise,

    x_t = (1 - t) * x_0 + t * eps,        velocity v = dx_t/dt = eps - x_0.

The network is trained to predict ``v``; sampling integrates ``dx/dt = v(x, t)`` from ``t = 1``
(noise) down to ``t = 0`` (data), so every Euler step has a negative ``dt``.

Shapes: batches are ``[B, ...]`` (any trailing shape, e.g. video latents ``[B, C, F, H, W]`` or
actions ``[B, T, D]``); times are ``[B]`` (one per sample) and are broadcast over the trailing
dimensions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Literal

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``velocity_fn(x, t) -> v``: ``x`` ``[B, ...]``, ``t`` ``[B]`` -> ``v`` shaped like ``x``."""


def _per_sample_time(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """``t`` (a float, a 0-d tensor or ``[B]``) as ``[B, 1, ..., 1]`` on ``like``'s device/dtype."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        t = t.expand(like.shape[0])
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must be a scalar or [B] with B={like.shape[0]}, got {tuple(t.shape)=}")
    return t.reshape(-1, *([1] * (like.ndim - 1)))


def _check_pair(x0: torch.Tensor, noise: torch.Tensor) -> None:
    if x0.shape != noise.shape:
        raise ValueError(f"x0 and noise must have the same shape, got {x0.shape=} {noise.shape=}")
    if x0.ndim < 1:
        raise ValueError("x0 needs a leading batch dimension [B, ...]")


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """The noisy sample ``x_t = (1 - t) * x0 + t * noise``.

    ``x0``, ``noise``: ``[B, ...]``; ``t``: ``[B]`` (or a scalar for the whole batch), broadcast
    over the trailing dimensions. ``t = 0`` returns ``x0``, ``t = 1`` returns ``noise``.
    """
    _check_pair(x0, noise)
    t = _per_sample_time(t, x0)
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The regression target ``v = noise - x0`` (``d x_t / dt``), shaped like ``x0`` ``[B, ...]``."""
    _check_pair(x0, noise)
    return noise - x0


def sample_timesteps(
    batch_size: int,
    generator: torch.Generator | None = None,
    *,
    distribution: Literal["uniform", "logit_normal"] = "uniform",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Training times ``t`` ``[batch_size]`` in ``[0, 1]`` (0 = data, 1 = noise).

    - ``"uniform"``: ``t ~ U[0, 1)``.
    - ``"logit_normal"``: ``t = sigmoid(n)``, ``n ~ N(logit_mean, logit_std^2)`` (as in SD3);
      concentrates training on the middle of the path, in ``(0, 1)``.

    ``generator`` (optional) makes the draw reproducible; it must live on ``device``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size=}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be floating point, got {dtype=}")
    if distribution == "uniform":
        return torch.rand(batch_size, generator=generator, device=device, dtype=dtype)
    if distribution == "logit_normal":
        if not logit_std > 0.0:
            raise ValueError(f"logit_std must be positive, got {logit_std=}")
        normal = torch.randn(batch_size, generator=generator, device=device, dtype=dtype)
        return torch.sigmoid(logit_mean + logit_std * normal)
    raise ValueError(
        f"unknown timestep distribution {distribution=}; use 'uniform' or 'logit_normal'"
    )


def euler_integrate(
    velocity_fn: VelocityFn,
    x_init: torch.Tensor,
    num_steps: int,
    t_start: float = 1.0,
    t_end: float = 0.0,
) -> torch.Tensor:
    """Integrate ``dx/dt = velocity_fn(x, t)`` from ``t_start`` to ``t_end`` in equal Euler steps.

    Stateless: all model state lives in ``velocity_fn``. ``x_init``: ``[B, ...]`` (pure noise for
    the default ``t_start = 1``); ``velocity_fn`` receives ``t`` as ``[B]`` on ``x``'s device and
    dtype. Returns ``x`` at ``t_end`` (data for the default ``t_end = 0``), shaped like ``x_init``.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps=}")
    if x_init.ndim < 1:
        raise ValueError("x_init needs a leading batch dimension [B, ...]")
    # The time grid is built in float64 so long schedules land exactly on t_end.
    times = torch.linspace(t_start, t_end, num_steps + 1, dtype=torch.float64).tolist()
    x = x_init
    batch = x_init.shape[0]
    for t_now, t_next in itertools.pairwise(times):
        t = torch.full((batch,), t_now, dtype=x_init.dtype, device=x_init.device)
        velocity = velocity_fn(x, t)
        if velocity.shape != x.shape:
            raise ValueError(f"velocity_fn returned {velocity.shape=}, expected {x.shape}")
        x = x + (t_next - t_now) * velocity
    return x


def _frames_first(x: torch.Tensor) -> torch.Tensor:
    """``[B, V, F, ...]`` -> ``[B*F, V, ...]`` so that per-frame times are per-sample times."""
    return x.transpose(1, 2).flatten(0, 1)


def noise_video(
    latents: torch.Tensor, noise: torch.Tensor, frame_times: torch.Tensor
) -> torch.Tensor:
    """``x_t`` of latents ``[B, V, F, ...]`` at per-frame times ``[B, F]``."""
    batch, _, frames = latents.shape[:3]
    noisy = interpolate(_frames_first(latents), _frames_first(noise), frame_times.flatten())
    return noisy.unflatten(0, (batch, frames)).transpose(1, 2)

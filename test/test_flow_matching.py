"""Flow matching: the time convention, the interpolation, timestep sampling and the Euler sampler."""

from __future__ import annotations

import pytest
import torch

from wallwm_core.flow_matching import (
    euler_integrate,
    interpolate,
    sample_timesteps,
    velocity_target,
)


def _pair(shape: tuple[int, ...] = (3, 4, 5), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


def test_interpolate_endpoints() -> None:
    x0, noise = _pair()
    assert torch.equal(interpolate(x0, noise, 0.0), x0)
    assert torch.equal(interpolate(x0, noise, torch.ones(3)), noise)


def test_interpolate_broadcasts_per_sample_time() -> None:
    x0, noise = _pair((3, 2, 4))
    t = torch.tensor([0.0, 0.25, 1.0])
    x_t = interpolate(x0, noise, t)
    assert x_t.shape == x0.shape
    for i in range(3):
        expected = (1 - t[i]) * x0[i] + t[i] * noise[i]
        torch.testing.assert_close(x_t[i], expected)


def test_interpolate_follows_input_dtype() -> None:
    x0, noise = _pair((2, 3))
    x_t = interpolate(x0.double(), noise.double(), torch.tensor([0.5, 0.5]))
    assert x_t.dtype == torch.float64


def test_interpolate_rejects_bad_shapes() -> None:
    x0, noise = _pair((3, 4))
    with pytest.raises(ValueError, match="same shape"):
        interpolate(x0, noise[:, :2], 0.5)
    with pytest.raises(ValueError, match="B=3"):
        interpolate(x0, noise, torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="B=3"):
        interpolate(x0, noise, torch.full((3, 4), 0.5))


def test_velocity_target_is_time_derivative_of_path() -> None:
    x0, noise = _pair()
    target = velocity_target(x0, noise)
    torch.testing.assert_close(target, noise - x0)
    t, dt = torch.full((3,), 0.3), 0.1
    finite_difference = (interpolate(x0, noise, t + dt) - interpolate(x0, noise, t)) / dt
    torch.testing.assert_close(finite_difference, target, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("distribution", ["uniform", "logit_normal"])
def test_sample_timesteps_range_and_reproducibility(distribution: str) -> None:
    t = sample_timesteps(4096, torch.Generator().manual_seed(1), distribution=distribution)
    assert t.shape == (4096,)
    assert t.dtype == torch.float32
    assert bool(((t >= 0) & (t <= 1)).all())
    again = sample_timesteps(4096, torch.Generator().manual_seed(1), distribution=distribution)
    assert torch.equal(t, again)
    assert 0.45 < float(t.mean()) < 0.55


def test_logit_normal_concentrates_in_the_middle() -> None:
    generator = torch.Generator().manual_seed(2)
    uniform = sample_timesteps(8192, generator, distribution="uniform")
    logit = sample_timesteps(8192, generator, distribution="logit_normal")
    assert float(logit.std()) < float(uniform.std())
    shifted = sample_timesteps(8192, generator, distribution="logit_normal", logit_mean=1.0)
    assert float(shifted.mean()) > 0.6  # a positive mean favours noisier times


def test_sample_timesteps_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        sample_timesteps(0)
    with pytest.raises(ValueError, match="distribution"):
        sample_timesteps(2, distribution="beta")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="logit_std"):
        sample_timesteps(2, distribution="logit_normal", logit_std=0.0)


@pytest.mark.parametrize("num_steps", [1, 2, 7, 50])
def test_constant_velocity_integrates_exactly(num_steps: int) -> None:
    x_init, constant = _pair((2, 3, 4))
    x = euler_integrate(lambda x, t: constant.expand_as(x), x_init, num_steps)
    torch.testing.assert_close(x, x_init - constant)  # from t=1 to t=0: dt = -1
    x = euler_integrate(lambda x, t: constant, x_init, num_steps, t_start=0.2, t_end=0.7)
    torch.testing.assert_close(x, x_init + 0.5 * constant)


def test_one_step_on_the_linear_flow_recovers_data() -> None:
    x0, noise = _pair()
    x = euler_integrate(lambda x, t: velocity_target(x0, noise), noise, num_steps=1)
    torch.testing.assert_close(x, x0)


@pytest.mark.parametrize("num_steps", [1, 3, 10])
def test_state_dependent_exact_flow_recovers_data(num_steps: int) -> None:
    # For a single data point the ideal velocity at (x, t) is (x - x0) / t: its straight paths
    # make Euler exact for any step count, but only if t is passed with the right convention.
    x0, noise = _pair()
    x = euler_integrate(lambda x, t: (x - x0) / t[:, None, None], noise, num_steps)
    torch.testing.assert_close(x, x0, rtol=1e-5, atol=1e-5)


def test_velocity_fn_receives_per_sample_times_from_one_down() -> None:
    seen: list[torch.Tensor] = []

    def velocity_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(t.clone())
        return torch.zeros_like(x)

    x_init = torch.randn(3, 2, dtype=torch.float64)
    euler_integrate(velocity_fn, x_init, num_steps=4)
    assert [tuple(t.shape) for t in seen] == [(3,)] * 4
    assert all(t.dtype == torch.float64 for t in seen)
    assert [float(t[0]) for t in seen] == pytest.approx([1.0, 0.75, 0.5, 0.25])


@pytest.mark.parametrize("num_steps", [0, -1, 2.5, True])
def test_euler_rejects_bad_step_counts(num_steps) -> None:
    with pytest.raises(ValueError, match="num_steps"):
        euler_integrate(lambda x, t: x, torch.zeros(2, 3), num_steps)


def test_euler_rejects_wrongly_shaped_velocity() -> None:
    with pytest.raises(ValueError, match="velocity_fn returned"):
        euler_integrate(lambda x, t: x[:, :1], torch.zeros(2, 3), 2)

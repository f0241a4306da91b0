"""Event and unified inference modes: shapes, masks, the event-length rule, cached vs naive."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from wallwm_core.config_loading import ConfigError
from wallwm_core.inference import (
    InferenceConfig,
    SamplerConfig,
    StaircaseCondition,
    StaircaseProjection,
    UnifiedConfig,
    WindowInputs,
    WindowNoise,
    WindowSampler,
    event_action_steps,
    sample_event,
    sample_unified,
    steps_for_duration,
)
from wallwm_core.model.config import load_model_config
from wallwm_core.model.wallwm import WallWM, build_model
from wallwm_core.training.batch import make_fake_batch

TINY = load_model_config("tiny")
TOKEN_DIM = TINY.action.token_dim
FAST = SamplerConfig(video_steps=2, action_steps=3)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def model() -> WallWM:
    """Tiny model whose zero-initialised outputs and gates are made random (non-trivial)."""
    torch.manual_seed(0)
    model = build_model(TINY)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if (
                "cross_view_gate" in name
                or "view_embedding" in name
                or name.endswith(("head.head.weight", "action_out.weight"))
            ):
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def make_inputs(model: WallWM, batch: int = 2, views: int = 2, context: int = 1) -> WindowInputs:
    fake = make_fake_batch(
        TINY,
        batch_size=batch,
        num_views=views,
        num_frames=context + 1,
        latent_hw=(4, 4),
        generator=torch.Generator().manual_seed(3),
        padded=False,
    )
    with torch.no_grad():
        text = model.encode_text(fake.text_ids, fake.text_mask)
    return WindowInputs(
        context_latents=fake.video_latents[:, :, :context],
        text=text,
        state=fake.state,
        cross_view_allowed=fake.cross_view_allowed,
    )


def test_event_length_rule() -> None:
    assert steps_for_duration(0.0, 20.0) == 1  # at least one step
    assert steps_for_duration(0.4, 20.0) == 8
    assert steps_for_duration(0.4049, 20.0) == 8  # nearest step
    assert steps_for_duration(0.4251, 20.0) == 9
    with pytest.raises(ValueError, match="finite"):
        steps_for_duration(float("nan"), 20.0)
    steps, covers = event_action_steps(torch.tensor([0.1, 0.6, 2.0]), 20.0, max_steps=12)
    assert steps.tolist() == [2, 12, 12]
    assert covers.tolist() == [True, True, False]


@torch.no_grad()
def test_event_mode_shapes_dtypes_and_masks(model: WallWM) -> None:
    inputs = make_inputs(model)
    sample = sample_event(model, inputs, FAST, torch.Generator().manual_seed(0))
    window = sample.window
    steps = window.num_steps
    assert sample.event_length_s.shape == (2,) and sample.event_length_s.dtype == torch.float32
    assert bool((sample.event_length_s >= 0).all())
    assert sample.covers_event.dtype == torch.bool
    limit = TINY.limits.max_action_steps
    expected_steps, _ = event_action_steps(sample.event_length_s, TINY.action.control_hz, limit)
    assert steps.tolist() == expected_steps.tolist()
    assert window.actions.shape == (2, int(steps.max()), TOKEN_DIM)
    assert window.actions.dtype == torch.float32 and window.action_mask.dtype == torch.bool
    assert bool(torch.isfinite(window.actions).all())
    assert bool((window.actions[~window.action_mask] == 0).all())  # padded steps are zero
    frames = -(-int(steps.max()) // TINY.action.steps_per_latent_frame)
    assert window.future_latents.shape == (2, 2, frames, TINY.codec.latent_channels, 4, 4)
    assert window.future_mask.shape == (2, 2, frames, 4, 4)
    masked = ~window.future_mask[:, :, :, None].expand_as(window.future_latents)
    assert bool((window.future_latents[masked] == 0).all())


@torch.no_grad()
def test_event_mode_respects_a_tighter_step_budget(model: WallWM) -> None:
    inputs = make_inputs(model)
    sample = sample_event(model, inputs, FAST, torch.Generator().manual_seed(0), max_steps=3)
    assert int(sample.window.num_steps.max()) <= 3
    with pytest.raises(ValueError, match="max_steps"):
        sample_event(model, inputs, FAST, max_steps=0)


@torch.no_grad()
def test_padding_never_changes_real_outputs(model: WallWM) -> None:
    """A 5-step event sampled alone equals the same event padded next to an 8-step one."""
    inputs = make_inputs(model, views=1)
    sampler = WindowSampler(model, FAST)
    video_shape = (2, 1, 2, TINY.codec.latent_channels, 4, 4)  # ceil(8 / 4) = ceil(5 / 4) = 2
    noise = WindowNoise.draw(
        video_shape, (2, 8, TOKEN_DIM), torch.Generator().manual_seed(1), "cpu"
    )
    both = sampler.sample(inputs, torch.tensor([8, 5]), noise=noise)

    single_inputs = WindowInputs(
        inputs.context_latents[1:],
        dataclasses.replace(inputs.text, tokens=inputs.text.tokens[1:], mask=inputs.text.mask[1:]),
        inputs.state[1:],
    )
    single_noise = WindowNoise(noise.video[1:], noise.anchor[1:], noise.actions[1:, :5])
    alone = sampler.sample(single_inputs, 5, noise=single_noise)
    assert both.action_mask[1].tolist() == [True] * 5 + [False] * 3
    torch.testing.assert_close(both.actions[1, :5], alone.actions[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        both.future_latents[1], alone.future_latents[0], atol=1e-5, rtol=1e-5
    )


@torch.no_grad()
def test_cached_and_naive_video_features_give_the_same_actions(model: WallWM) -> None:
    inputs = make_inputs(model)
    sampler = WindowSampler(model, FAST)
    noise = WindowNoise.draw(
        (2, 2, 3, TINY.codec.latent_channels, 4, 4),
        (2, 12, TOKEN_DIM),
        torch.Generator().manual_seed(2),
        "cpu",
    )
    steps = torch.tensor([12, 7])
    cached = sampler.sample(inputs, steps, noise=noise, video_features="cached")
    naive = sampler.sample(inputs, steps, noise=noise, video_features="naive")
    assert torch.equal(cached.future_latents, naive.future_latents)
    assert torch.equal(cached.actions, naive.actions)  # same ops on the same input: bit-exact
    assert float(cached.actions.abs().max()) > 0.0
    with pytest.raises(ValueError, match="video_features"):
        sampler.sample(inputs, steps, noise=noise, video_features="sometimes")


@torch.no_grad()
def test_future_video_noise_skips_the_video_and_reads_pure_noise(model: WallWM) -> None:
    inputs = make_inputs(model)
    shapes = ((2, 2, 3, TINY.codec.latent_channels, 4, 4), (2, 12, TOKEN_DIM))
    noise = WindowNoise.draw(*shapes, torch.Generator().manual_seed(2), "cpu")
    other_video = dataclasses.replace(noise, video=noise.video + 1.0)
    steps = torch.tensor([12, 7])
    noise_mode = WindowSampler(model, dataclasses.replace(FAST, future_video="noise"))
    first = noise_mode.sample(inputs, steps, noise=noise)
    # No video is denoised: the video noise does not matter and the future comes back zero.
    assert torch.equal(first.actions, noise_mode.sample(inputs, steps, noise=other_video).actions)
    assert not first.future_latents.any() and float(first.actions.abs().max()) > 0.0
    # The anchor noise is what the action tower reads as the future (t = 1): it matters.
    other_anchor = dataclasses.replace(noise, anchor=noise.anchor + 1.0)
    assert not torch.equal(
        first.actions, noise_mode.sample(inputs, steps, noise=other_anchor).actions
    )
    # The predicted path (the default) depends on the video noise.
    predicted = WindowSampler(model, FAST)
    assert not torch.equal(
        predicted.sample(inputs, steps, noise=noise).actions,
        predicted.sample(inputs, steps, noise=other_video).actions,
    )


def test_future_video_noise_needs_a_model_trained_for_it() -> None:
    config = InferenceConfig(sampler=SamplerConfig(future_video="noise"))
    with pytest.raises(ConfigError, match="action_video_dropout"):
        config.validate_for(TINY)
    trained = dataclasses.replace(
        TINY, objective=dataclasses.replace(TINY.objective, action_video_dropout=0.5)
    )
    config.validate_for(trained)
    with pytest.raises(ConfigError, match="future_video"):
        SamplerConfig(future_video="imagined")


@torch.no_grad()
def test_sampling_is_deterministic_given_a_seed(model: WallWM) -> None:
    inputs = make_inputs(model)
    first = sample_event(model, inputs, FAST, torch.Generator().manual_seed(7)).window
    again = sample_event(model, inputs, FAST, torch.Generator().manual_seed(7)).window
    other = sample_event(model, inputs, FAST, torch.Generator().manual_seed(8)).window
    assert torch.equal(first.actions, again.actions)
    assert not torch.equal(first.actions, other.actions)


@torch.no_grad()
def test_unified_mode_with_history_and_instruction(model: WallWM) -> None:
    window = UnifiedConfig(history_frames=1, future_frames=2, chunk_steps=6)
    inputs = make_inputs(model, context=2)
    missing_history = torch.ones(2, 2, 2, 4, 4, dtype=torch.bool)
    missing_history[1, :, 0] = False  # sample 1 has no history frame yet
    inputs = dataclasses.replace(inputs, context_mask=missing_history)
    sample = sample_unified(model, inputs, window, FAST, torch.Generator().manual_seed(0))
    assert sample.actions.shape == (2, 6, TOKEN_DIM)
    assert bool(sample.action_mask.all())
    assert sample.future_latents.shape == (2, 2, 2, TINY.codec.latent_channels, 4, 4)
    assert bool(sample.future_mask.all())

    with pytest.raises(ValueError, match="context latent frames"):
        sample_unified(model, make_inputs(model, context=1), window, FAST)
    with pytest.raises(ConfigError, match="future_frames"):
        sample_unified(model, inputs, UnifiedConfig(1, 1, 6), FAST)


@torch.no_grad()
def test_unified_mode_with_staircase_latents(model: WallWM) -> None:
    inputs = make_inputs(model)
    vlm_width, num_latents = 128, 4
    projection = StaircaseProjection(vlm_width, TINY.video_tower.text_dim)
    latents = torch.randn(2, num_latents, vlm_width, generator=torch.Generator().manual_seed(4))
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    text = projection(StaircaseCondition(latents, mask))
    assert text.tokens.shape == (2, num_latents, TINY.video_tower.text_dim)
    assert bool((text.tokens[1, 3] == 0).all())
    conditioned = dataclasses.replace(inputs, text=text)
    window = UnifiedConfig(history_frames=0, future_frames=3, chunk_steps=12)
    generator = torch.Generator().manual_seed(0)
    staircase = sample_unified(model, conditioned, window, FAST, generator)
    instruction = sample_unified(model, inputs, window, FAST, torch.Generator().manual_seed(0))
    assert staircase.actions.shape == instruction.actions.shape == (2, 12, TOKEN_DIM)
    assert not torch.equal(staircase.actions, instruction.actions)  # the conditioning matters

    with pytest.raises(ValueError, match="width"):
        projection(StaircaseCondition(torch.zeros(1, 4, 64), torch.ones(1, 4, dtype=torch.bool)))
    with pytest.raises(ValueError, match="NaN"):
        StaircaseCondition(torch.full((1, 2, 8), float("nan")), torch.ones(1, 2, dtype=torch.bool))


def test_window_inputs_are_validated(model: WallWM) -> None:
    inputs = make_inputs(model)
    with pytest.raises(ValueError, match="state"):
        dataclasses.replace(inputs, state=torch.zeros(3, TINY.action.state_dim))
    with pytest.raises(ValueError, match="context_mask"):
        dataclasses.replace(inputs, context_mask=torch.ones(2, 2, 1, 4, 5, dtype=torch.bool))
    sampler = WindowSampler(model, FAST)
    with pytest.raises(ValueError, match="max_action_steps"):
        sampler.sample(inputs, TINY.limits.max_action_steps + 1)

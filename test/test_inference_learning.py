"""Learning works end to end: overfit a fixed batch, then the event-mode sampler reproduces it.

Training uses the model's own objective and training step (fresh noise and times every step,
Muon + AdamW, cosine learning-rate decay). After training, event mode starts from the clean
observation frame alone: the Δt head sizes the chunk, the video tower generates the future
frames, and the action tower samples the actions from noise.

Config variant (documented): Δt is regressed in units of ``event_length_scale_s = 1 s`` with
weight 1 (the shipped tiny config uses 10 s and 0.1, which leaves the Huber loss on these
0.25-0.4 s events too weak to learn in a few hundred steps), and ``num_action_noise_levels =
6`` (the paper's digest value) to cut the action-loss variance.

Figures measured when written (2 loaded CPU cores, single thread, 300 steps, ~15-20 s): loss
3.01 -> 0.153 (19.6x); sampled action tokens max |error| 0.088, mean 0.030 (normalised units,
trajectories of amplitude 1; 0.11-0.14 max with other sampling seeds); event lengths exact in
steps (8 and 5), Δt 0.3997 s / 0.2499 s for 0.40 s / 0.25 s. Tolerances: max |error| <= 0.25,
mean <= 0.08, Δt within 0.02 s, step counts exact.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from wallwm_core.inference import SamplerConfig, WindowInputs, sample_event
from wallwm_core.model.config import load_model_config
from wallwm_core.model.wallwm import build_model
from wallwm_core.training.batch import Batch, make_fake_batch
from wallwm_core.training.objective import compute_loss
from wallwm_core.training.optim import build_optimizer, training_step

TRAIN_STEPS = 300
LEARNING_RATE = 1e-2
EVENT_STEPS = (8, 5)  # real action steps of the two events (20 Hz: 0.40 s and 0.25 s)
ACTION_TOLERANCE = 0.25  # max |error| of sampled vs true normalised action tokens
MEAN_ACTION_TOLERANCE = 0.08  # mean |error|
EVENT_LENGTH_TOLERANCE_S = 0.02


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def config_variant():
    config = load_model_config("tiny")
    return dataclasses.replace(
        config,
        optimizer=dataclasses.replace(config.optimizer, lr=LEARNING_RATE),
        objective=dataclasses.replace(
            config.objective,
            event_length_scale_s=1.0,
            event_length_loss_weight=1.0,
            num_action_noise_levels=6,
        ),
    )


def fixed_batch(config) -> Batch:
    """Two single-view events of 8 and 5 steps with smooth action trajectories."""
    generator = torch.Generator().manual_seed(0)
    batch = make_fake_batch(
        config,
        batch_size=2,
        num_views=1,
        num_frames=3,
        latent_hw=(2, 2),
        num_steps=max(EVENT_STEPS),
        generator=generator,
        padded=False,
    )
    steps = torch.arange(max(EVENT_STEPS), dtype=torch.float32)[None, :, None]
    phase = torch.rand(2, 1, config.action.token_dim, generator=generator) * 2 * math.pi
    frequency = 0.2 + 0.3 * torch.rand(2, 1, config.action.token_dim, generator=generator)
    mask = torch.arange(max(EVENT_STEPS))[None] < torch.tensor(EVENT_STEPS)[:, None]
    return dataclasses.replace(
        batch,
        actions=torch.sin(frequency * steps + phase) * mask[..., None],
        action_mask=mask,
        event_length_s=torch.tensor(EVENT_STEPS, dtype=torch.float32) / config.action.control_hz,
    )


def evaluation_loss(model, batch: Batch) -> float:
    with torch.no_grad():
        losses = [
            float(compute_loss(model, batch, torch.Generator().manual_seed(s)).total)
            for s in range(4)
        ]
    return sum(losses) / len(losses)


def test_overfit_then_event_mode_reproduces_the_batch() -> None:
    config = config_variant()
    torch.manual_seed(0)
    model = build_model(config)
    batch = fixed_batch(config)
    optimizer = build_optimizer(model, config)
    generator = torch.Generator().manual_seed(1)

    initial = evaluation_loss(model, batch)
    for step in range(TRAIN_STEPS):
        optimizer.set_lr(LEARNING_RATE * 0.5 * (1.0 + math.cos(math.pi * step / TRAIN_STEPS)))
        training_step(model, batch, optimizer, generator, config)
    model.eval()
    final = evaluation_loss(model, batch)
    assert initial / final >= 10.0, f"loss fell only {initial / final:.1f}x ({initial} -> {final})"

    with torch.no_grad():
        text = model.encode_text(batch.text_ids, batch.text_mask)
        inputs = WindowInputs(batch.video_latents[:, :, :1], text, batch.state)
        sample = sample_event(
            model,
            inputs,
            SamplerConfig(video_steps=8, action_steps=10),
            torch.Generator().manual_seed(5),
        )
    window = sample.window
    length_error = (sample.event_length_s - batch.event_length_s).abs()
    assert float(length_error.max()) <= EVENT_LENGTH_TOLERANCE_S, sample.event_length_s
    assert window.num_steps.tolist() == list(EVENT_STEPS)
    assert sample.covers_event.tolist() == [True, True]
    error = (window.actions - batch.actions)[batch.action_mask].abs()
    assert float(error.max()) <= ACTION_TOLERANCE, f"max action error {float(error.max()):.3f}"
    assert float(error.mean()) <= MEAN_ACTION_TOLERANCE, f"mean error {float(error.mean()):.3f}"

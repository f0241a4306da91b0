"""Video and action towers: shapes, masks, one-way coupling, zero-init gates, sight cone."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from wallwm_core.model.action_tower import VideoMemory, action_temporal_positions
from wallwm_core.model.config import load_model_config
from wallwm_core.model.sight_cone import sight_cone_bias
from wallwm_core.model.text_encoder import TextEmbedding
from wallwm_core.model.wallwm import WallWM, build_model
from wallwm_core.training.batch import Batch, make_fake_batch

TINY = load_model_config("tiny")
LATENT_HW = (8, 8)
GRID_TOKENS = 16  # (8/2) * (8/2)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def model() -> WallWM:
    torch.manual_seed(0)
    return build_model(TINY).eval()


@pytest.fixture(scope="module")
def batch() -> Batch:
    return make_fake_batch(
        TINY, num_frames=3, latent_hw=LATENT_HW, generator=torch.Generator().manual_seed(1)
    )


@pytest.fixture(scope="module")
def trained_like(model: WallWM) -> WallWM:
    """A copy of ``model`` whose zero-initialised heads, gates and view embeddings are random
    (as after training), so that every path affects the outputs."""
    copy = build_model(TINY)
    copy.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in copy.named_parameters():
            if (
                "cross_view_gate" in name
                or "view_embedding" in name
                or name.endswith(("head.head.weight", "action_out.weight"))
            ):
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return copy.eval()


def video_inputs(batch: Batch, model: WallWM, t: float = 0.5):
    text = model.encode_text(batch.text_ids, batch.text_mask)
    timesteps = torch.full((batch.batch_size,), t)
    return batch.video_latents, timesteps, text


def test_video_forward_shapes(trained_like: WallWM, batch: Batch) -> None:
    latents, timesteps, text = video_inputs(batch, trained_like)
    with torch.no_grad():
        output = trained_like.video_forward(
            latents, timesteps, text, batch.video_mask, batch.cross_view_allowed
        )
    assert output.velocity.shape == latents.shape
    assert output.velocity.dtype == torch.float32
    features = output.features
    assert features is not None
    assert len(features.hidden_states) == TINY.video_tower.num_layers
    for hidden in features.hidden_states:
        assert hidden.shape == (2, 2, 3, GRID_TOKENS, TINY.video_tower.dim)
    assert features.token_mask.shape == (2, 2, 3, GRID_TOKENS)
    assert bool(torch.isfinite(output.velocity).all())
    # Zero where the latents are padding / out of frame.
    assert bool(
        (
            output.velocity.transpose(2, 3)[
                ~batch.video_mask[:, :, :, None].expand(-1, -1, -1, 4, -1, -1).transpose(2, 3)
            ]
            == 0
        ).all()
    )
    # Per-frame timesteps: a [B] time equals the same time repeated per frame.
    with torch.no_grad():
        per_frame = trained_like.video_forward(
            latents,
            timesteps[:, None].expand(2, 3),
            text,
            batch.video_mask,
            batch.cross_view_allowed,
        )
    torch.testing.assert_close(per_frame.velocity, output.velocity)


def test_video_forward_rejects_bad_inputs(model: WallWM, batch: Batch) -> None:
    latents, timesteps, text = video_inputs(batch, model)
    with pytest.raises(ValueError, match=r"timesteps must be \[B\] or \[B, F\]"):
        model.video_forward(latents, torch.zeros(2, 2), text)
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        model.video_forward(latents[..., :7], timesteps, text)
    with pytest.raises(ValueError, match=r"exceed video_tower\.max_views"):
        model.video_forward(latents.repeat(1, 3, 1, 1, 1, 1), timesteps, text)
    with pytest.raises(ValueError, match="video_mask must be bool"):
        model.video_forward(latents, timesteps, text, batch.video_mask.float())
    with pytest.raises(ValueError, match="cross_view_allowed must be bool"):
        model.video_forward(
            latents, timesteps, text, cross_view_allowed=torch.ones(2, 5, 5, dtype=torch.bool)
        )


def test_cross_view_gate_starts_at_zero_single_view_backbone(model: WallWM, batch: Batch) -> None:
    """At init the multi-view tower equals the single-view backbone run on each view alone."""
    latents, timesteps, text = video_inputs(batch, model)
    with torch.no_grad():
        both = model.video_forward(latents, timesteps, text, cross_view_allowed=None).velocity
        for view in range(2):
            alone = model.video_forward(latents[:, view : view + 1], timesteps, text).velocity
            torch.testing.assert_close(both[:, view : view + 1], alone, rtol=0, atol=1e-6)
    # The gate still learns: it receives a gradient.
    model.zero_grad()
    output = model.video_forward(latents, timesteps, text)
    output.features.hidden_states[-1].pow(2).sum().backward()
    gate_grad = model.video_tower.blocks[0].cross_view_gate.grad
    assert gate_grad is not None and float(gate_grad.abs().sum()) > 0
    model.zero_grad()


def test_sight_cone_switch(model: WallWM, trained_like: WallWM, batch: Batch) -> None:
    latents, timesteps, text = video_inputs(batch, trained_like)
    allowed = batch.cross_view_allowed
    assert allowed is not None
    assert not bool(allowed.all()), "the fake rig must block some cross-view pairs"
    # The mask agrees with sight_cone_bias: blocked exactly where the bias is -inf.
    bias = sight_cone_bias(allowed[0], num_frames=1)
    assert torch.equal(~allowed[0], torch.isinf(bias))

    def velocity(m: WallWM, mask: torch.Tensor | None, use: bool | None) -> torch.Tensor:
        with torch.no_grad():
            return m.video_forward(latents, timesteps, text, batch.video_mask, mask, use).velocity

    enabled = velocity(trained_like, allowed, True)
    disabled = velocity(trained_like, allowed, False)
    assert not torch.allclose(enabled, disabled, atol=1e-4)
    assert torch.equal(disabled, velocity(trained_like, None, True))  # no mask given
    assert torch.equal(enabled, velocity(trained_like, allowed, None))  # config default: on
    # With every pair allowed the switch changes nothing.
    everything = torch.ones_like(allowed)
    torch.testing.assert_close(velocity(trained_like, everything, True), disabled)
    # With the zero-initialised gate the mask cannot matter.
    torch.testing.assert_close(velocity(model, allowed, True), velocity(model, allowed, False))


def test_padded_video_never_changes_real_outputs(trained_like: WallWM, batch: Batch) -> None:
    latents, timesteps, text = video_inputs(batch, trained_like)
    changed = latents.clone()
    invalid = ~batch.video_mask[:, :, :, None].expand_as(latents)
    changed[invalid] = 1e3 * torch.randn(
        int(invalid.sum()), generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        a = trained_like.video_forward(
            latents, timesteps, text, batch.video_mask, batch.cross_view_allowed
        )
        b = trained_like.video_forward(
            changed, timesteps, text, batch.video_mask, batch.cross_view_allowed
        )
    assert torch.equal(a.velocity, b.velocity)
    token_mask = a.features.token_mask
    for ha, hb in zip(a.features.hidden_states, b.features.hidden_states, strict=True):
        assert torch.equal(ha[token_mask], hb[token_mask])
    # And the action tower reading those features is unchanged too.
    actions = batch.actions
    t = torch.full((2,), 0.3)
    with torch.no_grad():
        out_a = trained_like.action_forward(actions, t, batch.state, a.features, batch.action_mask)
        out_b = trained_like.action_forward(actions, t, batch.state, b.features, batch.action_mask)
    assert torch.equal(out_a, out_b)


def test_action_forward_shapes_masks_and_memory(trained_like: WallWM, batch: Batch) -> None:
    latents, timesteps, text = video_inputs(batch, trained_like)
    with torch.no_grad():
        features = trained_like.video_forward(latents, timesteps, text, batch.video_mask).features
        memory = trained_like.video_memory(features)
    assert isinstance(memory, VideoMemory)
    assert len(memory.keys) == TINY.action_tower.num_layers
    actions, mask, t = batch.actions, batch.action_mask, torch.tensor([0.2, 0.7])
    with torch.no_grad():
        velocity = trained_like.action_forward(actions, t, batch.state, memory, mask)
        from_features = trained_like.action_forward(actions, t, batch.state, features, mask)
    assert velocity.shape == actions.shape
    assert torch.equal(velocity, from_features)
    assert bool((velocity[~mask] == 0).all())
    # Padded action steps never change real steps' outputs.
    changed = actions.clone()
    changed[~mask] = 50.0
    with torch.no_grad():
        again = trained_like.action_forward(changed, t, batch.state, memory, mask)
    assert torch.equal(velocity[mask], again[mask])
    # Several noise levels per sample (B' = r * B, sample-major) equal separate calls.
    repeats = 3
    t_many = torch.tensor([0.1, 0.5, 0.9, 0.2, 0.4, 0.8])
    noisy = actions.repeat_interleave(repeats, 0) + 0.1 * torch.randn(6, *actions.shape[1:])
    mask_many = mask.repeat_interleave(repeats, 0)
    with torch.no_grad():
        together = trained_like.action_forward(noisy, t_many, batch.state, memory, mask_many)
        for sample in range(2):
            for copy in range(repeats):
                row = sample * repeats + copy
                single = trained_like.action_forward(
                    noisy[row : row + 1],
                    t_many[row : row + 1],
                    batch.state[sample : sample + 1],
                    features.select(slice(sample, sample + 1)),
                    mask_many[row : row + 1],
                )
                torch.testing.assert_close(together[row : row + 1], single, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="not a multiple of video batch"):
        trained_like.action_forward(actions[:1], t[:1], batch.state, memory)
    with pytest.raises(ValueError, match=r"exceed limits\.max_action_steps"):
        trained_like.action_forward(torch.zeros(2, 13, 10), t, batch.state, memory)


def test_action_tower_reads_video(trained_like: WallWM, batch: Batch) -> None:
    latents, timesteps, text = video_inputs(batch, trained_like)
    t = torch.full((2,), 0.5)
    with torch.no_grad():
        f1 = trained_like.video_forward(latents, timesteps, text).features
        f2 = trained_like.video_forward(latents + 1.0, timesteps, text).features
        a1 = trained_like.action_forward(batch.actions, t, batch.state, f1)
        a2 = trained_like.action_forward(batch.actions, t, batch.state, f2)
    assert not torch.allclose(a1, a2)


def test_one_way_coupling_video_ignores_actions(trained_like: WallWM, batch: Batch) -> None:
    """Perturbing actions leaves the video outputs bit-identical; no gradient reaches them."""
    from wallwm_core.training.objective import compute_loss

    captured: list[torch.Tensor] = []
    handle = trained_like.video_tower.register_forward_hook(
        lambda module, args, output: captured.append(output.velocity.detach().clone())
    )
    try:
        perturbed = dataclasses.replace(batch, actions=batch.actions + 3.0)
        with torch.no_grad():
            first = compute_loss(trained_like, batch, torch.Generator().manual_seed(9))
            second = compute_loss(trained_like, perturbed, torch.Generator().manual_seed(9))
    finally:
        handle.remove()
    assert len(captured) == 4  # per loss call: the batched video pass + the Δt context pass
    assert torch.equal(captured[0], captured[2]) and torch.equal(captured[1], captured[3])
    assert torch.equal(first.video, second.video)
    assert not torch.equal(first.action, second.action)
    # Gradient check: the video velocity has no path to the actions.
    latents, timesteps, text = video_inputs(batch, trained_like)
    actions = batch.actions.clone().requires_grad_(True)
    output = trained_like.video_forward(latents, timesteps, text)
    action_velocity = trained_like.action_forward(actions, timesteps, batch.state, output.features)
    grads = torch.autograd.grad(
        output.velocity.sum(), [actions], allow_unused=True, retain_graph=True
    )
    assert grads[0] is None
    (grad,) = torch.autograd.grad(action_velocity.sum(), [actions])
    assert float(grad.abs().sum()) > 0


def test_action_temporal_positions() -> None:
    positions = action_temporal_positions(9, 4)
    assert positions.tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert action_temporal_positions(3, 1, anchor_frame=2).tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="steps_per_latent_frame"):
        action_temporal_positions(3, 0)


def test_event_length_head(trained_like: WallWM, batch: Batch) -> None:
    text = trained_like.encode_text(batch.text_ids, batch.text_mask)
    context = batch.video_latents[:, :, :1]
    with torch.no_grad():
        seconds = trained_like.event_length(
            context, text, batch.state, batch.video_mask[:, :, :1], batch.cross_view_allowed
        )
    assert seconds.shape == (2,)
    assert bool((seconds >= 0).all())
    with torch.no_grad():
        other_state = trained_like.event_length(context, text, batch.state + 1.0)
    assert not torch.allclose(seconds, other_state)


def test_text_embedding_width_is_checked(model: WallWM, batch: Batch) -> None:
    latents, timesteps, _ = video_inputs(batch, model)
    wrong = TextEmbedding(torch.zeros(2, 4, 7), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"video_tower\.text_dim"):
        model.video_forward(latents, timesteps, wrong)


def test_state_dict_round_trip(trained_like: WallWM, batch: Batch) -> None:
    state = trained_like.state_dict()
    prefixes = {key.split(".", 1)[0] for key in state}
    assert prefixes == {"text_encoder", "video_tower", "action_tower", "event_length_head"}
    copy = build_model(TINY)
    copy.load_state_dict(state)
    copy.eval()
    with torch.no_grad():
        latents, timesteps, text = video_inputs(batch, trained_like)
        expected = trained_like.video_forward(latents, timesteps, text).velocity
        _, _, text_copy = video_inputs(batch, copy)
        assert torch.equal(copy.video_forward(latents, timesteps, text_copy).velocity, expected)

"""Training objective: loss parts, masks, noise levels, asymmetric mapping, DCT, optimiser,
and that a tiny model learns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.fft
import torch
from transforms3d.euler import euler2quat

from wallwm_core.action_tokens import poses_to_tokens
from wallwm_core.model.action_space import ActionTokenizer
from wallwm_core.model.config import load_model_config
from wallwm_core.model.wallwm import WallWM, build_model
from wallwm_core.normalization import fit
from wallwm_core.training.batch import Batch, make_fake_batch
from wallwm_core.training.objective import compute_loss, dct_matrix, masked_mse
from wallwm_core.training.optim import build_optimizer, is_muon_parameter, training_step

TINY = load_model_config("tiny")


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def fresh_model(seed: int = 0) -> WallWM:
    torch.manual_seed(seed)
    return build_model(TINY)


@pytest.fixture(scope="module")
def batch() -> Batch:
    return make_fake_batch(
        TINY, num_frames=3, latent_hw=(8, 8), generator=torch.Generator().manual_seed(1)
    )


def loss_of(model: WallWM, batch: Batch, seed: int = 4, config=None):
    with torch.no_grad():
        return compute_loss(model, batch, torch.Generator().manual_seed(seed), config)


def test_loss_parts_are_finite_and_reach_every_parameter(batch: Batch) -> None:
    model = fresh_model()
    # Random output layers so that gradients reach every parameter at once.
    with torch.no_grad():
        model.video_tower.head.head.weight.normal_(std=0.1)
        model.action_tower.action_out.weight.normal_(std=0.1)
        for block in model.video_tower.blocks:
            block.cross_view_gate.fill_(0.1)
    losses = compute_loss(model, batch, torch.Generator().manual_seed(0))
    parts = losses.as_floats()
    assert all(np.isfinite(v) and v > 0 for v in parts.values()), parts
    losses.total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == [], missing


def test_padding_never_changes_the_losses(batch: Batch) -> None:
    model = fresh_model()
    reference = loss_of(model, batch)
    latents = batch.video_latents.clone()
    latents[~batch.video_mask[:, :, :, None].expand_as(latents)] = 123.0
    actions = batch.actions.clone()
    actions[~batch.action_mask] = -55.0
    changed = dataclasses.replace(batch, video_latents=latents, actions=actions)
    again = loss_of(model, changed)
    assert reference.as_floats() == again.as_floats()
    # A real value does change them (the check above is not vacuous).
    latents[batch.video_mask[:, :, :, None].expand_as(latents)] += 1.0
    assert (
        loss_of(model, dataclasses.replace(batch, video_latents=latents)).video != reference.video
    )


def test_action_noise_levels_and_asymmetric_mapping(batch: Batch) -> None:
    model = fresh_model()
    config = dataclasses.replace(
        TINY,
        objective=dataclasses.replace(
            TINY.objective, num_action_noise_levels=3, action_video_noise_level=0.07
        ),
    )
    video_calls: list[torch.Tensor] = []
    action_batches: list[int] = []
    hooks = [
        model.video_tower.register_forward_hook(
            lambda module, args, output: video_calls.append(args[1].clone())
        ),
        model.action_tower.register_forward_hook(
            lambda module, args, output: action_batches.append(args[0].shape[0])
        ),
    ]
    try:
        loss_of(model, batch, config=config)
    finally:
        for hook in hooks:
            hook.remove()
    # One batched video pass (random-t copy + anchor copy) and one Δt pass on the context.
    assert len(video_calls) == 2
    times = video_calls[0]
    assert times.shape == (4, 3)
    assert bool((times[:, 0] == 0).all())  # the context frame is clean
    random_copy, anchor_copy = times[:2, 1:], times[2:, 1:]
    assert bool((anchor_copy == 0.07).all())
    assert bool((random_copy[:, 0] == random_copy[:, 1]).all())  # one draw per sample
    assert bool((video_calls[1] == 0).all()) and video_calls[1].shape == (2, 1)
    assert action_batches == [2 * 3]


def test_action_video_dropout_reads_the_future_as_noise(batch: Batch) -> None:
    model = fresh_model()
    with torch.no_grad():
        model.action_tower.action_out.weight.normal_(std=0.1)  # actions depend on the video

    def with_dropout(p: float):
        objective = dataclasses.replace(TINY.objective, action_video_dropout=p)
        return dataclasses.replace(TINY, objective=objective)

    calls: list[torch.Tensor] = []
    hook = model.video_tower.register_forward_hook(
        lambda module, args, output: calls.append(args[1].clone())
    )
    try:
        loss_of(model, batch, config=with_dropout(1.0))
    finally:
        hook.remove()
    anchor_copy = calls[0][2:]  # [random-t copy | anchor copy], batch 2
    assert bool((anchor_copy[:, 0] == 0).all()) and bool((anchor_copy[:, 1:] == 1.0).all())

    # With every sample dropped, the action loss does not see the future frames at all; with
    # none dropped (the paper's objective) it does.
    future = batch.video_latents.clone()
    future[:, :, 1:] += 3.0
    changed = dataclasses.replace(batch, video_latents=future)
    for p, sees_future in ((1.0, False), (0.0, True)):
        config = with_dropout(p)
        a, b = loss_of(model, batch, config=config), loss_of(model, changed, config=config)
        assert bool(a.action != b.action) is sees_future, p
    with pytest.raises(ValueError, match="action_video_dropout"):
        with_dropout(1.5)


def test_precomputed_text_embeddings(batch: Batch) -> None:
    """An external encoder's embeddings stand in for the model's own text encoder."""
    model = fresh_model()
    with torch.no_grad():
        text = model.encode_text(batch.text_ids, batch.text_mask)
    external = dataclasses.replace(batch, text_ids=None, text_embeddings=text.tokens)
    assert loss_of(model, external).as_floats() == loss_of(model, batch).as_floats()


def test_loss_weights_switch_parts_off(batch: Batch) -> None:
    model = fresh_model()
    objective = dataclasses.replace(
        TINY.objective, video_loss_weight=0.0, dct_loss_weight=0.0, event_length_loss_weight=0.0
    )
    losses = loss_of(model, batch, config=dataclasses.replace(TINY, objective=objective))
    assert float(losses.video) == 0 and float(losses.dct) == 0 and float(losses.event_length) == 0
    assert float(losses.total) == pytest.approx(float(losses.action))


def test_dct_matrix_is_orthonormal_dct_ii() -> None:
    matrix = dct_matrix(7, dtype=torch.float64)
    torch.testing.assert_close(matrix @ matrix.T, torch.eye(7, dtype=torch.float64))
    signal = np.random.default_rng(0).normal(size=(7, 3))
    expected = scipy.fft.dct(signal, type=2, norm="ortho", axis=0)
    np.testing.assert_allclose((matrix @ torch.from_numpy(signal)).numpy(), expected, atol=1e-12)


def test_masked_mse_ignores_masked_elements() -> None:
    prediction = torch.tensor([[1.0, 2.0], [3.0, 100.0]])
    target = torch.zeros(2, 2)
    mask = torch.tensor([[True, True], [True, False]])
    assert float(masked_mse(prediction, target, mask)) == pytest.approx((1 + 4 + 9) / 3)


def test_batch_validation_names_the_field(batch: Batch) -> None:
    cases = [
        (dict(state=torch.zeros(2, 3)), "state must be"),
        (dict(actions=torch.zeros(2, 13, 10)), "max_action_steps"),
        (dict(action_mask=batch.action_mask.float()), "action_mask must be bool"),
        (dict(video_mask=batch.video_mask[:, :1]), "video_mask must be bool"),
        (dict(event_length_s=torch.tensor([1.0, -1.0])), "event_length_s must be >= 0"),
        (dict(event_length_s=torch.tensor([1.0, float("nan")])), "event_length_s contains NaN"),
        (dict(cross_view_allowed=None), "cross_view_allowed is required"),
        (dict(video_latents=batch.video_latents[:, :, :1]), "need more than"),
        (dict(text_embeddings=torch.zeros(2, 24, 32)), "exactly one of text_ids"),
        (dict(text_ids=None, text_embeddings=torch.zeros(2, 24, 7)), "text_embeddings must be"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(batch, **change).validate(TINY)
    with_nan = batch.video_latents.clone()
    with_nan[0, 0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="video_latents contains NaN"):
        compute_loss(fresh_model(), dataclasses.replace(batch, video_latents=with_nan))


def test_optimizer_split() -> None:
    model = fresh_model()
    model.event_length_head.requires_grad_(False)
    optimizer = build_optimizer(model)
    muon = {id(p) for group in optimizer.muon.param_groups for p in group["params"]}
    adamw = {id(p) for group in optimizer.adamw.param_groups for p in group["params"]}
    assert not muon & adamw
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            assert id(parameter) not in muon | adamw, name
        elif is_muon_parameter(name, parameter):
            assert id(parameter) in muon and parameter.ndim == 2, name
        else:
            assert id(parameter) in adamw, name
    assert id(model.video_tower.blocks[0].self_attn.q.weight) in muon
    assert id(model.video_tower.patch_embedding.weight) in adamw
    assert id(model.action_tower.action_out.weight) in adamw  # output layers stay on AdamW
    state = optimizer.state_dict()
    build_optimizer(model).load_state_dict(state)


def test_tiny_model_learns_a_fixed_batch() -> None:
    """Total loss on one fixed batch and one fixed noise/time draw falls >= 10x in 30 steps.

    (With fresh draws every step the same setup needs a few hundred steps; see
    ``python -m wallwm_core.training.overfit``.)
    """
    model = fresh_model()
    batch = make_fake_batch(
        TINY, num_frames=2, latent_hw=(4, 4), generator=torch.Generator().manual_seed(0)
    )
    optimizer = build_optimizer(model)
    history = [
        training_step(model, batch, optimizer, torch.Generator().manual_seed(1)) for _ in range(30)
    ]
    first, last = history[0], history[-1]
    print(
        f"\ntiny overfit: total {first['total']:.4f} -> {last['total']:.4f} "
        f"({first['total'] / last['total']:.0f}x) in {len(history)} steps"
    )
    assert first["total"] / last["total"] >= 10.0
    for part in ("video", "action", "dct", "event_length"):
        assert last[part] < first[part], part


def test_action_tokenizer_round_trip() -> None:
    rng = np.random.default_rng(0)
    steps = 6
    positions = rng.normal(size=(steps, 1, 3))
    quaternions = np.array([[euler2quat(*rng.uniform(-1, 1, 3))] for _ in range(steps)])
    gripper = rng.uniform(0, 1, size=(steps, 1))
    stats = fit(poses_to_tokens(positions, quaternions, gripper))
    tokenizer = ActionTokenizer(TINY.action.num_arms, stats)
    tokens = tokenizer.encode(positions, quaternions, gripper)
    assert tokens.shape == (steps, TINY.action.token_dim) and tokens.dtype == torch.float32
    assert abs(float(tokens.mean())) < 0.5  # normalised
    back_positions, back_quaternions, back_gripper = tokenizer.decode(tokens)
    np.testing.assert_allclose(back_positions, positions, atol=1e-5)
    np.testing.assert_allclose(np.abs((back_quaternions * quaternions).sum(-1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(back_gripper, gripper, atol=1e-5)
    with pytest.raises(ValueError, match="need 20"):
        ActionTokenizer(2, stats)

"""Staircase Decoding: exact layer-cost counts, equivalences with the naive loop, gradients."""

from __future__ import annotations

import pytest
import torch

from wallwm_core.vlm import (
    CountingLM,
    NextEventExample,
    TinyCausalLM,
    WallVLM,
    collate,
    compute_losses,
    load_vlm_config,
    naive_cost,
    staircase_cost,
)
from wallwm_core.vlm.staircase import latent_layer_passes

TINY = load_vlm_config("vlm_tiny")


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _counting_vlm(num_latents: int, relay_layer: int) -> WallVLM:
    config = TINY.replace_staircase(num_latents=num_latents, relay_layer=relay_layer)
    torch.manual_seed(0)
    return WallVLM(CountingLM(TinyCausalLM(config.lm, config.vision)), config).eval()


@pytest.mark.parametrize("relay_layer", [1, 3])
@pytest.mark.parametrize("num_latents", [1, 2, 5])
def test_layer_cost_matches_the_formulas_exactly(num_latents, relay_layer):
    vlm = _counting_vlm(num_latents, relay_layer)
    lm: CountingLM = vlm.lm
    images = torch.rand(1, 2, 3, 32, 32)
    prompt = vlm.encode_prompts(["make tea"], [["fill the kettle"]], images)
    context_tokens = prompt.ids.shape[1] + 2 * TINY.vision.patches_per_view
    layers = TINY.lm.num_layers

    with torch.no_grad():
        vlm.staircase_latents(prompt)
    expected = staircase_cost(layers, relay_layer, num_latents, context_tokens)
    assert lm.layer_calls == expected.layer_calls == layers  # depth L for any K
    assert lm.token_layer_passes == expected.token_layer_passes
    latent_passes = lm.token_layer_passes - context_tokens * layers
    assert latent_passes == layers + (num_latents - 1) * (layers - relay_layer)
    if relay_layer == layers - 1:  # one upper layer: the paper's L + (K - 1)
        assert latent_passes == layers + num_latents - 1

    lm.reset()
    with torch.no_grad():
        vlm.naive_latents(prompt)
    expected = naive_cost(layers, num_latents, context_tokens)
    assert lm.layer_calls == expected.layer_calls == num_latents * layers
    assert lm.token_layer_passes == expected.token_layer_passes


def test_cost_with_a_caption_suffix_and_formula_values():
    vlm = _counting_vlm(4, 3)
    prompt = vlm.encode_prompts(["make tea"], [[]])
    inputs, _, valid, _ = vlm.encode_captions(["boil the water"])
    with torch.no_grad():
        vlm(prompt, inputs, valid)
    expected = staircase_cost(4, 3, 4, prompt.ids.shape[1], suffix_tokens=inputs.shape[1])
    assert vlm.lm.token_layer_passes == expected.token_layer_passes
    assert vlm.lm.layer_calls == 4
    assert latent_layer_passes(40, 39, 8) == 47  # L + (K - 1) for L = 40, K = 8
    assert naive_cost(40, 8, 0).token_layer_passes == 40 * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8)


def test_first_latent_equals_the_naive_loop_and_k1_is_a_plain_forward():
    for num_latents in (1, 4):
        vlm = _counting_vlm(num_latents, 2)
        prompt = vlm.encode_prompts(["make tea", "open it"], [["fill the kettle"], []])
        with torch.no_grad():
            staircase, _ = vlm.staircase_latents(prompt)
            naive = vlm.naive_latents(prompt)
        torch.testing.assert_close(staircase[:, 0], naive[:, 0], atol=1e-5, rtol=1e-5)
        if num_latents > 1:  # later latents differ: fewer layers
            assert not torch.allclose(staircase[:, 1:], naive[:, 1:], atol=1e-3)


def test_staircase_mask_latent_k_reads_only_earlier_latents():
    vlm = _counting_vlm(4, 2)
    prompt = vlm.encode_prompts(["make tea"], [[]])
    with torch.no_grad():
        before, _ = vlm.staircase_latents(prompt)
        vlm.branch.step[2].add_(1.0)  # changes the seed of latent 4 only
        after, _ = vlm.staircase_latents(prompt)
    torch.testing.assert_close(after[:, :3], before[:, :3])
    assert not torch.allclose(after[:, 3], before[:, 3])


def _loss(vlm: WallVLM, images: torch.Tensor | None = None) -> torch.Tensor:
    examples = [
        NextEventExample("make tea", (), "fill the kettle", 3.0, torch.randn(64)),
        NextEventExample("make tea", ("fill the kettle",), "boil the water", 5.0, torch.randn(64)),
    ]
    return compute_losses(vlm, collate(vlm, examples, images)).total


def test_gradients_reach_the_branch_and_heads_but_not_a_frozen_lm():
    torch.manual_seed(0)
    vlm = WallVLM.from_config(TINY)
    vlm.freeze_language_model()
    images = torch.rand(2, 1, 3, 32, 32, requires_grad=True)
    _loss(vlm, images).backward()
    assert all(p.grad is None for p in vlm.lm.parameters())
    trainable = {name: p for name, p in vlm.named_parameters() if not name.startswith("lm.")}
    assert trainable and all(p.requires_grad for p in trainable.values())
    for name, parameter in trainable.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    # End to end: the loss reaches the input pixels through the frozen layers.
    assert images.grad is not None and images.grad.abs().sum() > 0

    vlm.zero_grad(set_to_none=True)
    vlm.freeze_language_model(False)
    _loss(vlm).backward()
    assert vlm.lm.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert vlm.lm.tokens.weight.grad.abs().sum() > 0

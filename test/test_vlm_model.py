"""The VLM: configs, shapes, padding invariance, image prefix, bad inputs, HF adapter errors."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
import yaml

from wallwm_core.config_loading import ConfigError
from wallwm_core.tokenizer import ByteTokenizer
from wallwm_core.vlm import (
    CausalLM,
    CountingLM,
    PromptBatch,
    WallVLM,
    available_configs,
    load_vlm_config,
)
from wallwm_core.vlm.config import CONFIG_DIR, VLMConfig
from wallwm_core.vlm.hf_adapter import HFCausalLM, load_hf_causal_lm, load_hf_tokenizer
from wallwm_core.vlm.prompt import fit_prompt

TINY = load_vlm_config("vlm_tiny")


pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def vlm() -> WallVLM:
    return WallVLM.from_config(TINY, seed=0).eval()


def _yaml_with(tmp_path, section: str, **changes):
    data = yaml.safe_load((CONFIG_DIR / "vlm_tiny.yaml").read_text())
    data[section].update(changes)
    path = tmp_path / "vlm_bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_configs_load_and_tiny_is_small():
    assert {"vlm_tiny", "vlm_small"} <= set(available_configs())
    small = load_vlm_config("vlm_small")
    tiny_params = sum(p.numel() for p in WallVLM.from_config(TINY).parameters())
    assert tiny_params < 5_000_000
    assert small.lm.width > TINY.lm.width and small.lm.num_layers > TINY.lm.num_layers
    assert isinstance(TINY, VLMConfig) and TINY.vision is not None
    tiny_lm = WallVLM.from_config(TINY).lm
    assert isinstance(tiny_lm, CausalLM) and isinstance(CountingLM(tiny_lm), CausalLM)


@pytest.mark.parametrize(
    ("section", "changes", "message"),
    [
        ("lm", {"num_heads": 3}, r"lm\.width=128 must be divisible by lm\.num_heads=3"),
        ("lm", {"width": 120, "num_heads": 8}, r"must be even"),
        ("staircase", {"relay_layer": 4}, r"staircase\.relay_layer=4 must be at most"),
        ("staircase", {"num_latents": 0}, r"staircase\.num_latents=0"),
        ("vision", {"patch_size": 5}, r"vision\.image_size=32 must be a multiple"),
        ("prompt", {"end_marker": "  "}, r"prompt\.end_marker"),
        ("loss", {"huber_delta_s": 0.0}, r"loss\.huber_delta_s"),
        ("lm", {"depth": 3}, r"depth"),  # unknown key (dacite strict)
        ("lm", {"width": "wide"}, r"lm\.width"),  # wrong type
    ],
)
def test_config_errors_name_the_field(tmp_path, section, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_vlm_config(_yaml_with(tmp_path, section, **changes))


def test_unknown_config_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'vlm_tiny'"):
        load_vlm_config("vlm_tiy")


def test_shapes_with_and_without_images(vlm):
    cfg = TINY
    images = torch.rand(2, 2, 3, 32, 32)
    prompt = vlm.encode_prompts(["make tea", "clear the table"], [["fill the kettle"], []], images)
    inputs, _, inputs_valid, _ = vlm.encode_captions(["boil the water", "pick up the plate"])
    out = vlm(prompt, inputs, inputs_valid)
    k, width = cfg.staircase.num_latents, cfg.lm.width
    assert out.latents.shape == (2, k, width) and out.latent_mask.shape == (2, k)
    assert out.latent_mask.dtype == torch.bool and out.latent_mask.all()
    assert out.remaining_s.shape == (2,) and out.aligned.shape == (2, cfg.heads.align_dim)
    assert out.caption_logits.shape == (2, inputs.shape[1], vlm.lm.vocab_size)
    text_only = vlm(dataclasses.replace(prompt, images=None))
    assert text_only.caption_logits is None
    # The image prefix conditions the latents.
    assert not torch.allclose(text_only.latents, out.latents)
    latents, mask = vlm.staircase_latents(prompt)
    assert mask.all()
    torch.testing.assert_close(latents, out.latents)
    assert vlm.predict_remaining_ns(prompt).dtype == torch.int64


def _padded_prompt(vlm: WallVLM, texts: list[str], length: int, images=None) -> PromptBatch:
    ids, valid = ByteTokenizer().encode(texts, max_length=length)
    return PromptBatch(ids, valid, images)


def test_padding_never_changes_real_outputs(vlm):
    """Prompt and caption padding, and a longer neighbour in the batch, change nothing real."""
    text = fit_prompt(vlm.tokenizer, "make tea", ["fill the kettle"], 96)
    other = fit_prompt(vlm.tokenizer, "clear the whole table", ["pick up the plate", "wipe"], 96)
    images = torch.rand(1, 1, 3, 32, 32)
    caption = "boil the water"
    inputs, _, valid, _ = vlm.encode_captions([caption])
    alone = vlm(_padded_prompt(vlm, [text], len(text) + 2, images), inputs, valid)

    padded_prompt = _padded_prompt(vlm, [text, other], 90, images.repeat(2, 1, 1, 1, 1))
    inputs2, _, valid2, _ = vlm.encode_captions([caption, "pick up the plate and the cup"])
    batched = vlm(padded_prompt, inputs2, valid2)
    assert not valid2[0].all() and not padded_prompt.valid[0].all()  # both padded
    n = int(valid.sum())
    torch.testing.assert_close(batched.latents[:1], alone.latents, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched.remaining_s[:1], alone.remaining_s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        batched.caption_logits[0, :n], alone.caption_logits[0, :n], atol=1e-4, rtol=1e-4
    )


def test_latents_ignore_the_caption_suffix(vlm):
    prompt = vlm.encode_prompts(["make tea"], [[]])
    inputs, _, valid, _ = vlm.encode_captions(["fill the kettle"])
    with_caption = vlm(prompt, inputs, valid).latents
    torch.testing.assert_close(with_caption, vlm(prompt).latents, atol=1e-5, rtol=1e-5)


def test_bad_inputs_give_clear_errors(vlm):
    with pytest.raises(ValueError, match="NaN"):
        vlm(vlm.encode_prompts(["t"], [[]], torch.full((1, 1, 3, 32, 32), float("nan"))))
    with pytest.raises(ValueError, match=r"vision\.image_size=32"):
        vlm(vlm.encode_prompts(["t"], [[]], torch.rand(1, 1, 3, 16, 16)))
    with pytest.raises(ValueError, match=r"vision\.max_views=3"):
        vlm(vlm.encode_prompts(["t"], [[]], torch.rand(1, 4, 3, 32, 32)))
    with pytest.raises(ValueError, match="non-empty string"):
        vlm.encode_prompts([" "], [[]])
    with pytest.raises(ValueError, match="max_prompt_tokens=96"):
        vlm.encode_prompts(["x" * 200], [[]])
    with pytest.raises(ValueError, match="max_caption_tokens=48"):
        vlm.encode_captions(["y" * 60])
    with pytest.raises(TypeError, match="sequence of strings"):
        vlm.encode_prompts(["t"], ["open the drawer"])
    text_only = WallVLM.from_config(dataclasses.replace(TINY, vision=None))
    with pytest.raises(ValueError, match="no vision section"):
        text_only(text_only.encode_prompts(["t"], [[]], torch.rand(1, 1, 3, 32, 32)))


def test_long_history_keeps_the_most_recent_events(vlm):
    events = [f"event number {i}" for i in range(20)]
    prompt = fit_prompt(vlm.tokenizer, "a long task", events, 96)
    assert len(prompt.encode()) + 2 <= 96
    assert "done: ...; " in prompt and "event number 19\nnext:" in prompt
    assert "event number 0;" not in prompt


def test_hf_adapter_error_paths(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no local Hugging Face model"):
        load_hf_causal_lm(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_hf_causal_lm(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(ImportError, match="`transformers` package"):
        load_hf_causal_lm(tmp_path)
    with pytest.raises(ImportError, match="`transformers` package"):
        load_hf_tokenizer(tmp_path)
    with pytest.raises(TypeError, match="unsupported architecture"):
        HFCausalLM(torch.nn.Linear(2, 2))

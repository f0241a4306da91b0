"""Video codec (shapes, temporal rules, training) and text encoders (byte encoder, HF errors)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from wallwm_core.model.codec import (
    ConvAutoencoderCodec,
    VideoCodec,
    build_codec,
    latent_frame_count,
    video_frame_count,
)
from wallwm_core.model.config import load_model_config
from wallwm_core.model.text_encoder import (
    ByteTextEncoder,
    HFT5TextEncoder,
    TextEncoder,
    TextEncoderUnavailableError,
    load_hf_text_encoder,
)
from wallwm_core.model.wallwm import build_model

TINY = load_model_config("tiny")


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_temporal_rules() -> None:
    assert latent_frame_count(7, "per_frame") == 7
    assert video_frame_count(7, "per_frame") == 7
    for frames, latents in ((1, 1), (5, 2), (81, 21)):
        assert latent_frame_count(frames, "wan_1_plus_4n") == latents
        assert video_frame_count(latents, "wan_1_plus_4n") == frames
    with pytest.raises(ValueError, match=r"T = 1 \+ 4N frames, got T=6 \(nearest valid: 5 or 9\)"):
        latent_frame_count(6, "wan_1_plus_4n")
    with pytest.raises(ValueError, match="at least one frame"):
        latent_frame_count(0, "per_frame")


@pytest.mark.parametrize("rule", ["per_frame", "wan_1_plus_4n"])
def test_codec_shapes(rule: str) -> None:
    codec = build_codec(dataclasses.replace(TINY.codec, temporal_rule=rule))
    assert isinstance(codec, VideoCodec)
    frames = torch.randint(0, 256, (2, 3, 5, 3, 16, 24), dtype=torch.uint8)
    with torch.no_grad():
        latents = codec.encode(frames)
    expected_t = 5 if rule == "per_frame" else 2
    assert latents.shape == (2, 3, expected_t, TINY.codec.latent_channels, 2, 3)
    with torch.no_grad():
        decoded = codec.decode(latents)
    assert decoded.shape == (2, 3, 5, 3, 16, 24)
    assert decoded.dtype == torch.float32
    assert float(decoded.min()) >= 0.0 and float(decoded.max()) <= 1.0
    # uint8 and the equivalent float frames encode identically.
    with torch.no_grad():
        torch.testing.assert_close(codec.encode(frames.float() / 255.0), latents)


def test_codec_rejects_bad_frames() -> None:
    codec = ConvAutoencoderCodec(TINY.codec)
    with pytest.raises(ValueError, match="divisible by 8"):
        codec.encode(torch.zeros(1, 1, 1, 3, 12, 16))
    with pytest.raises(ValueError, match=r"\[B, V, T, 3, H, W\]"):
        codec.encode(torch.zeros(1, 1, 3, 16, 16))
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(torch.full((1, 1, 1, 3, 8, 8), float("nan")))
    wan = ConvAutoencoderCodec(dataclasses.replace(TINY.codec, temporal_rule="wan_1_plus_4n"))
    with pytest.raises(ValueError, match="1 \\+ 4N"):
        wan.encode(torch.zeros(1, 1, 4, 3, 8, 8))


def test_codec_trains() -> None:
    torch.manual_seed(0)
    codec = ConvAutoencoderCodec(TINY.codec)
    # Smooth images (a colour gradient per sample) are easy to compress.
    ramp = torch.linspace(0, 1, 16)
    frames = (ramp[None, :] * ramp[:, None]).expand(2, 1, 2, 3, 16, 16).clone()
    frames[1] = 1.0 - frames[1]
    optimizer = torch.optim.Adam(codec.parameters(), lr=3e-3)
    first = float(codec.reconstruction_loss(frames).detach())
    for _ in range(30):
        optimizer.zero_grad()
        loss = codec.reconstruction_loss(frames)
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.5 * first


def test_byte_text_encoder_shapes_and_padding() -> None:
    torch.manual_seed(0)
    encoder = ByteTextEncoder(TINY.text_encoder)
    assert isinstance(encoder, TextEncoder)
    text = encoder.encode_texts(["open the drawer", "wipe"])
    assert text.tokens.shape == (2, TINY.text_encoder.max_length, TINY.text_encoder.dim)
    assert text.mask.dtype == torch.bool
    assert text.mask[1].sum() == len("wipe") + 2  # BOS + EOS
    assert bool((text.tokens[~text.mask] == 0).all())
    # Changing padded ids leaves the real tokens' outputs unchanged.
    ids, mask = encoder.tokenizer.encode(["wipe"], TINY.text_encoder.max_length)
    other = ids.clone()
    other[~mask] = 77
    torch.testing.assert_close(encoder(ids, mask).tokens, encoder(other, mask).tokens)
    with pytest.raises(ValueError, match="exceeds max_length"):
        encoder(torch.ones(1, 99, dtype=torch.long), torch.ones(1, 99, dtype=torch.bool))


def test_hf_encoder_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TextEncoderUnavailableError, match="does not exist"):
        HFT5TextEncoder(tmp_path / "umt5-xxl", max_length=512)
    config = load_model_config("wan2.1-1.3b").text_encoder
    with pytest.raises(TextEncoderUnavailableError, match="hf_path is not set"):
        load_hf_text_encoder(config)


@pytest.mark.skipif(
    importlib.util.find_spec("transformers") is not None, reason="transformers is installed"
)
def test_hf_encoder_without_transformers_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        TextEncoderUnavailableError, match="'transformers' package is not installed"
    ):
        HFT5TextEncoder(tmp_path, max_length=512)


def test_external_text_encoder_model_asks_for_embeddings() -> None:
    model = build_model(load_model_config("wan2.1-1.3b"), device="meta")
    assert model.text_encoder is None
    with pytest.raises(RuntimeError, match="external text encoder"):
        model.encode_texts(["open the drawer"])

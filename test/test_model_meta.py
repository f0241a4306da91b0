"""Big configs are built on the meta device (no memory); parameter counts per config."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from wallwm_core.model.config import VideoTowerConfig, load_model_config
from wallwm_core.model.summary import format_count
from wallwm_core.model.text_encoder import TextEmbedding
from wallwm_core.model.wallwm import build_model, parameter_counts


def wan21_parameter_count(video: VideoTowerConfig) -> int:
    """Wan2.1 T2V DiT parameters from its sizes (attention with biases and QK RMSNorm, affine
    cross-attention norm, GELU FFN, AdaLN tables, text/time embeddings, head)."""
    d, f = video.dim, video.ffn_dim
    attention = 4 * (d * d + d) + 2 * d
    block = 2 * attention + 2 * d + (2 * d * f + f + d) + 6 * d
    patch = video.in_channels * d * 4 + d  # patch (1, 2, 2)
    text = video.text_dim * d + d + d * d + d
    time = video.freq_dim * d + d + d * d + d + d * 6 * d + 6 * d
    head = d * video.out_channels * 4 + video.out_channels * 4 + 2 * d
    return video.num_layers * block + patch + text + time + head


@pytest.mark.parametrize(("name", "published"), [("wan2.1-1.3b", 1.3e9), ("wan2.1-14b", 14e9)])
def test_wan_configs_build_on_meta_with_wan_sized_video_tower(name: str, published: float) -> None:
    config = load_model_config(name)
    model = build_model(config, device="meta")
    assert all(p.is_meta for p in model.parameters())
    counts = parameter_counts(model)
    print(f"\n{name}: " + ", ".join(f"{k} {format_count(v)}" for k, v in counts.items()))
    # The video backbone is exactly Wan2.1's DiT; the multi-view parts come on top.
    assert counts["video_backbone"] == wan21_parameter_count(config.video_tower)
    assert published <= counts["video_backbone"] <= 1.1 * published
    assert 0 < counts["video_cross_view"] < 0.35 * counts["video_backbone"]
    assert counts["action_tower"] < counts["video_backbone"]
    assert counts["text_encoder"] == 0  # umT5 is external and frozen


def test_small_and_tiny_sizes() -> None:
    small = parameter_counts(build_model(load_model_config("small"), device="meta"))
    print(f"\nsmall: total {format_count(small['total'])}")
    assert 50e6 <= small["total"] <= 150e6
    tiny = build_model(load_model_config("tiny"))
    counts = parameter_counts(tiny)
    print(f"tiny: total {format_count(counts['total'])}")
    assert counts["total"] < 10e6
    assert all(p.device.type == "cpu" for p in tiny.parameters())


def test_meta_forward_shapes() -> None:
    """Wan2.1-1.3B widths run a forward on meta tensors (shapes only, no memory).

    Two layers per tower instead of 30: meta kernels are slow Python decompositions.
    """
    config = load_model_config("wan2.1-1.3b")
    config = dataclasses.replace(
        config,
        video_tower=dataclasses.replace(config.video_tower, num_layers=2),
        action_tower=dataclasses.replace(config.action_tower, num_layers=2),
    )
    model = build_model(config, device="meta")

    with torch.device("meta"):
        latents = torch.randn(1, 2, 3, 16, 8, 8)
        text = TextEmbedding(torch.randn(1, 512, 4096), torch.ones(1, 512, dtype=torch.bool))
        output = model.video_forward(latents, torch.rand(1), text)
        actions = model.action_forward(
            torch.randn(2, 10, config.action.token_dim),
            torch.rand(2),
            torch.randn(1, config.action.state_dim),
            output.features,
        )
    assert output.velocity.shape == latents.shape
    assert actions.shape == (2, 10, 20)

"""Model configs: shipped YAMLs load, errors name the field, round trips through dict/YAML."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from wallwm_core.config_loading import ConfigError
from wallwm_core.model.config import (
    CONFIG_DIR,
    ModelConfig,
    config_to_dict,
    load_model_config,
    model_config_from_dict,
    save_model_config,
    shipped_config_names,
)

SHIPPED = ("tiny", "small", "wan2.1-1.3b", "wan2.1-14b")


def tiny_data() -> dict[str, Any]:
    return yaml.safe_load((CONFIG_DIR / "model_tiny.yaml").read_text())


def with_change(section: str, key: str, value: Any) -> dict[str, Any]:
    data = tiny_data()
    target = data
    for part in section.split(".") if section else []:
        target = target[part]
    target[key] = value
    return data


def test_shipped_configs_load() -> None:
    assert set(SHIPPED) <= set(shipped_config_names())
    for name in SHIPPED:
        config = load_model_config(name)
        assert isinstance(config, ModelConfig)
        assert config.name == name


def test_wan_configs_have_wan21_sizes() -> None:
    for name, dim, ffn, heads, layers in (
        ("wan2.1-1.3b", 1536, 8960, 12, 30),
        ("wan2.1-14b", 5120, 13824, 40, 40),
    ):
        video = load_model_config(name).video_tower
        assert (video.dim, video.ffn_dim, video.num_heads, video.num_layers) == (
            dim,
            ffn,
            heads,
            layers,
        )
        assert (video.freq_dim, video.text_dim, video.text_len) == (256, 4096, 512)
        assert (video.in_channels, video.out_channels, video.patch_size) == (16, 16, (1, 2, 2))
        assert load_model_config(name).codec.temporal_rule == "wan_1_plus_4n"


def test_unknown_config_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'tiny'"):
        load_model_config("tiyn")


def test_load_from_path_and_round_trip(tmp_path: Path) -> None:
    config = load_model_config("small")
    assert model_config_from_dict(config_to_dict(config)) == config
    path = tmp_path / "copy.yaml"
    save_model_config(config, path)
    assert load_model_config(path) == config
    # Floats written as YAML ints are accepted and stored as floats.
    data = with_change("optimizer", "lr", 1)
    assert load_model_config_from(data, tmp_path).optimizer.lr == 1.0


def load_model_config_from(data: dict[str, Any], tmp_path: Path) -> ModelConfig:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_model_config(path)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    data = with_change("video_tower", "num_experts", 8)
    with pytest.raises(ConfigError, match="num_experts"):
        load_model_config_from(data, tmp_path)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    data = with_change("video_tower", "dim", "wide")
    with pytest.raises(ConfigError, match=r'field "video_tower\.dim" - should be "int"'):
        load_model_config_from(data, tmp_path)
    data = with_change("video_tower", "patch_size", [1, 2])
    with pytest.raises(ConfigError, match="patch_size"):
        load_model_config_from(data, tmp_path)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        (
            "video_tower",
            "num_heads",
            5,
            r"video_tower.dim=64 must be divisible by video_tower.num_heads=5",
        ),
        ("video_tower", "rope_axes_dim", [4, 4, 4, 2], r"video_tower.rope_axes_dim=\(4, 4, 4, 2\)"),
        ("video_tower", "rope_axes_dim", [3, 5, 4, 4], r"must be even"),
        ("video_tower", "patch_size", [2, 2, 2], r"patch_size\[0\]"),
        (
            "video_tower",
            "in_channels",
            8,
            r"video_tower.in_channels=8 must equal codec.latent_channels=4",
        ),
        ("video_tower", "text_dim", 48, r"text_encoder.dim=32 must equal video_tower.text_dim=48"),
        (
            "action_tower",
            "num_layers",
            3,
            r"action_tower.num_layers=3 must equal video_tower.num_layers=2",
        ),
        ("action_tower", "num_heads", 5, r"action_tower.dim=48 must be divisible"),
        ("limits", "max_action_steps", 13, r"limits.max_action_steps=13 exceeds"),
        ("objective", "action_video_noise_level", 1.5, r"objective.action_video_noise_level"),
        ("objective", "context_latent_frames", 4, r"objective.context_latent_frames=4 must be <"),
        ("video_tower.sight_cone", "d_min", 5.0, r"sight_cone.d_min < sight_cone.d_max"),
        ("text_encoder", "num_heads", 3, r"text_encoder.dim=32 must be divisible"),
        ("optimizer", "lr", -1.0, r"optimizer.lr must be > 0"),
        ("action", "state_dim", 0, r"action.state_dim must be a positive integer"),
        ("video_tower", "dim", True, r"video_tower.dim must be a positive integer"),
    ],
)
def test_inconsistent_sizes_are_named(
    section: str, key: str, value: Any, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_model_config_from(with_change(section, key, value), tmp_path)


def test_patch_grid_checks_divisibility() -> None:
    config = load_model_config("tiny")
    assert config.patch_grid((8, 6)) == (4, 3)
    with pytest.raises(ConfigError, match="not divisible"):
        config.patch_grid((7, 8))


def test_replace_revalidates() -> None:
    config = load_model_config("tiny")
    with pytest.raises(ConfigError, match=r"action_tower\.num_layers"):
        dataclasses.replace(
            config, action_tower=dataclasses.replace(config.action_tower, num_layers=5)
        )

"""Checkpoints: bit-exact round trip, strict validation with clear errors, the init CLI."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import yaml

from wallwm_core.checkpoint import (
    Checkpoint,
    CheckpointError,
    build_modules,
    init_checkpoint,
    load_checkpoint,
    load_metadata,
    main,
    save_checkpoint,
)
from wallwm_core.inference import InferenceConfig, SamplerConfig
from wallwm_core.model.config import load_model_config
from wallwm_core.policy import Observation
from wallwm_core.training.batch import look_at_camera
from wallwm_core.vlm import load_vlm_config
from wallwm_core.wallwm_policy import WallWMPolicy

TINY = load_model_config("tiny")
CAMERAS = ("front", "wrist")
JOINTS = tuple(f"joint_{i}" for i in range(1, 9))
IMAGE_HW = (24, 32)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def make_checkpoint(vlm: bool = True) -> Checkpoint:
    return randomise_zero_inits(
        init_checkpoint(
            TINY,
            cameras=CAMERAS,
            joint_names=JOINTS,
            arm_names=("arm",),
            ee_frames=("tool0",),
            base_frame="base_link",
            image_size=(32, 32),
            seed=3,
            vlm_config=load_vlm_config("vlm_tiny") if vlm else None,
            inference=InferenceConfig(sampler=SamplerConfig(video_steps=2, action_steps=2)),
        )
    )


def randomise_zero_inits(checkpoint: Checkpoint) -> Checkpoint:
    """Random values for the zero-initialised output heads, gates and view embeddings, so that
    outputs depend on the inputs (a fresh model's action and video heads output zeros)."""
    generator = torch.Generator().manual_seed(5)
    state = dict(checkpoint.model_state)
    for name, tensor in state.items():
        if (
            "cross_view_gate" in name
            or "view_embedding" in name
            or name.endswith(("head.head.weight", "action_out.weight"))
        ):
            state[name] = 0.5 * torch.randn(tensor.shape, generator=generator)
    return dataclasses.replace(checkpoint, model_state=state)


def observation(stamp_ns: int = 1_000_000_000) -> Observation:
    rng = np.random.default_rng(0)
    cameras = {
        name: look_at_camera((np.cos(a), np.sin(a), 0.6), (0.0, 0.0, 0.0), IMAGE_HW, 30.0)
        for name, a in zip(CAMERAS, (0.0, 0.8), strict=True)
    }
    return Observation(
        stamp_ns=stamp_ns,
        images={n: rng.integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8) for n in CAMERAS},
        joint_positions=rng.normal(size=len(JOINTS)),
        joint_names=JOINTS,
        cameras=cameras,
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("checkpoint") / "tiny"
    save_checkpoint(make_checkpoint(), directory)
    return directory


@pytest.fixture
def copy(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / "broken"
    shutil.copytree(saved, target)
    return target


def assert_same_state(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_round_trip_is_bit_exact(saved: Path, tmp_path: Path) -> None:
    original = make_checkpoint()
    loaded = load_checkpoint(saved)
    assert loaded.model_config == original.model_config
    assert loaded.metadata.deployment == original.metadata.deployment
    assert loaded.metadata.status == "untrained"
    for name in ("model_state", "codec_state", "vlm_state", "projection_state"):
        assert_same_state(dict(getattr(original, name)), dict(getattr(loaded, name)))
    for name in ("action_stats", "state_stats"):
        for stat in ("mean", "std", "q01", "q99"):
            np.testing.assert_array_equal(
                getattr(getattr(original, name), stat), getattr(getattr(loaded, name), stat)
            )

    # policy level: save_pretrained -> from_pretrained gives identical weights and outputs
    policy = WallWMPolicy.from_pretrained(saved, device="cpu")
    policy.save_pretrained(tmp_path / "again")
    reloaded = WallWMPolicy.from_pretrained(tmp_path / "again", device="cpu")
    for module in ("model", "codec", "vlm", "staircase_projection"):
        assert_same_state(
            getattr(policy, module).state_dict(), getattr(reloaded, module).state_dict()
        )
    first = policy.infer_event(observation(), "open the drawer", seed=11, decode_video=True)
    second = reloaded.infer_event(observation(), "open the drawer", seed=11, decode_video=True)
    np.testing.assert_array_equal(first.tokens, second.tokens)
    assert torch.equal(first.future_latents, second.future_latents)
    np.testing.assert_array_equal(first.frames, second.frames)
    np.testing.assert_array_equal(first.chunk.positions, second.chunk.positions)


def test_built_modules_have_no_uninitialised_parts(saved: Path) -> None:
    model, codec, vlm, projection = build_modules(load_checkpoint(saved))
    for module in (model, codec, vlm, projection):
        assert not any(p.is_meta for p in module.parameters())
    assert vlm.lm.head.weight is vlm.lm.tokens.weight  # tied weights stay tied


def rewrite(path: Path, change: Callable[[dict], None]) -> None:
    tensors = safetensors.torch.load_file(str(path))
    change(tensors)
    safetensors.torch.save_file(tensors, str(path))


def edit_yaml(path: Path, change: Callable[[dict], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def set_nested(keys: tuple[str, ...], value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return change


BREAKAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing weights": (
        lambda d: (d / "model.safetensors").unlink(),
        "model.safetensors: missing file",
    ),
    "missing metadata": (lambda d: (d / "metadata.yaml").unlink(), "metadata.yaml: missing file"),
    "missing vlm weights": (lambda d: (d / "vlm.safetensors").unlink(), "vlm.safetensors: missing"),
    "truncated weights": (
        lambda d: truncate(d / "model.safetensors"),
        "not a readable safetensors file",
    ),
    "corrupted bytes": (lambda d: flip_last_byte(d / "codec.safetensors"), "SHA-256"),
    "missing key": (
        lambda d: rewrite(d / "model.safetensors", lambda t: t.pop("video_tower.head.head.weight")),
        "missing key(s): 'video_tower.head.head.weight'",
    ),
    "unexpected key": (
        lambda d: rewrite(d / "model.safetensors", lambda t: t.update(extra=torch.zeros(2))),
        "unexpected key(s): 'extra'",
    ),
    "shape mismatch": (
        lambda d: rewrite(
            d / "model.safetensors",
            lambda t: t.update({"action_tower.action_out.bias": torch.zeros(7)}),
        ),
        "shape mismatch for 'action_tower.action_out.bias': checkpoint has [7], the config "
        "needs [10]",
    ),
    "dtype mismatch": (
        lambda d: rewrite(
            d / "codec.safetensors",
            lambda t: t.update({k: v.double() for k, v in list(t.items())[:1]}),
        ),
        "dtype mismatch",
    ),
    "unknown config key": (
        lambda d: edit_yaml(d / "model.yaml", set_nested(("video_tower", "depth"), 3)),
        "depth",
    ),
    "inconsistent config": (
        lambda d: edit_yaml(d / "model.yaml", set_nested(("video_tower", "num_layers"), 3)),
        "action_tower.num_layers=2 must equal video_tower.num_layers=3",
    ),
    "config of another size": (
        lambda d: edit_yaml(d / "model.yaml", set_nested(("action_tower", "ffn_dim"), 64)),
        "shape mismatch for 'action_tower.blocks.0.ffn.w1.weight'",
    ),
    "normalisation of the wrong dimension": (
        lambda d: rewrite(
            d / "normalization.safetensors",
            lambda t: t.update(
                {f"action.{n}": t[f"action.{n}"][:7] for n in ("mean", "std", "q01", "q99")}
            ),
        ),
        "'action.' statistics have dimension 7, the model's action tokens have 10",
    ),
    "joint count": (
        lambda d: edit_yaml(d / "metadata.yaml", set_nested(("deployment", "joint_names"), ["a"])),
        "deployment.joint_names has 1 joints, the model config action.state_dim=8",
    ),
    "step period": (
        lambda d: edit_yaml(d / "metadata.yaml", set_nested(("deployment", "step_period_ns"), 10)),
        "disagrees with the model config action.control_hz",
    ),
    "format version": (
        lambda d: edit_yaml(d / "metadata.yaml", set_nested(("format_version",), 99)),
        "format_version 99 is not supported",
    ),
    "unknown status": (
        lambda d: edit_yaml(d / "metadata.yaml", set_nested(("status",), "great")),
        "status",
    ),
    "missing projection": (
        lambda d: (d / "staircase_projection.safetensors").unlink(),
        "staircase_projection.safetensors: missing file",
    ),
    "projection of the wrong width": (
        lambda d: edit_yaml(
            d / "metadata.yaml", set_nested(("staircase_projection", "output_dim"), 16)
        ),
        "staircase_projection.output_dim=16 must equal video_tower.text_dim=32",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_broken_checkpoints_fail_with_a_clear_message(copy: Path, breakage: str) -> None:
    apply, message = BREAKAGES[breakage]
    apply(copy)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(copy)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        WallWMPolicy.from_pretrained(tmp_path / "nothing")


def test_saving_an_inconsistent_checkpoint_is_refused(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(vlm=False)
    state = dict(checkpoint.model_state)
    state.pop("event_length_head.mlp.0.weight")
    with pytest.raises(CheckpointError, match=re.escape("event_length_head.mlp.0.weight")):
        save_checkpoint(dataclasses.replace(checkpoint, model_state=state), tmp_path / "x")


def test_cli_init_writes_an_untrained_checkpoint(tmp_path: Path, capsys) -> None:
    out = tmp_path / "untrained"
    joints = ",".join(f"j{i}" for i in range(8))
    code = main(
        [
            "init",
            "--config",
            "tiny",
            "--out",
            str(out),
            "--cameras",
            "front,overhead,wrist",
            "--joints",
            joints,
            "--image-size",
            "32x32",
        ]
    )
    assert code == 0
    metadata = load_metadata(out)
    assert metadata.status == "untrained"
    assert metadata.deployment.cameras == ("front", "overhead", "wrist")
    assert metadata.deployment.joint_names == tuple(f"j{i}" for i in range(8))
    assert metadata.deployment.step_period_ns == 50_000_000
    assert not metadata.vlm
    checkpoint = load_checkpoint(out)
    np.testing.assert_array_equal(checkpoint.state_stats.std, np.ones(8))  # identity stats
    assert main(["check", str(out)]) == 0
    assert "untrained" in capsys.readouterr().out


def test_cli_init_fits_statistics_from_demonstrations(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    actions = rng.normal(2.0, 3.0, size=(50, TINY.action.token_dim))
    states = rng.normal(-1.0, 0.5, size=(50, TINY.action.state_dim))
    np.savez(tmp_path / "demos.npz", actions=actions, states=states)
    out = tmp_path / "fitted"
    assert (
        main(
            [
                "init",
                "--out",
                str(out),
                "--demos",
                str(tmp_path / "demos.npz"),
                "--vlm",
                "vlm_tiny",
                "--image-size",
                "32x32",
            ]
        )
        == 0
    )
    checkpoint = load_checkpoint(out)
    np.testing.assert_allclose(checkpoint.action_stats.mean, actions.mean(axis=0))
    np.testing.assert_allclose(checkpoint.state_stats.std, states.std(axis=0))
    assert checkpoint.metadata.vlm and checkpoint.metadata.staircase_projection is not None


def test_cli_init_rejects_bad_arguments(tmp_path: Path, capsys) -> None:
    assert main(["init", "--out", str(tmp_path / "a"), "--joints", "a,b,c"]) == 2
    assert "deployment.joint_names has 3 joints" in capsys.readouterr().err
    assert main(["init", "--out", str(tmp_path / "b"), "--image-size", "30x30"]) == 2
    assert "image_size" in capsys.readouterr().err
    assert main(["init", "--config", "tinyy", "--out", str(tmp_path / "c")]) == 2
    assert "did you mean 'tiny'" in capsys.readouterr().err

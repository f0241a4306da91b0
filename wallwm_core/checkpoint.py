"""WALL-WM checkpoints: one directory, strictly validated, bit-exact round trip.

Layout::

    <dir>/
      metadata.yaml                   format + version, status ("trained" | "untrained"),
                                      deployment (cameras, image_size, joint_names, arm_names,
                                      ee_frames, base_frame, step_period_ns), inference defaults,
                                      optional parts, SHA-256 of every weight file
      model.yaml                      the ModelConfig (wallwm_core.model.config)
      model.safetensors               WallWM state dict (text_encoder.*, video_tower.*, ...)
      codec.safetensors               the video latent codec's state dict
      normalization.safetensors       action.{mean,std,q01,q99,mode} [token_dim],
                                      state.{...} [state_dim] (wallwm_core.normalization)
      vlm.yaml, vlm.safetensors       optional: the VLM (tiny causal LM + Staircase branch + heads)
      staircase_projection.safetensors
                                      optional: VLM latents -> video text width
                                      (wallwm_core.inference.staircase)

Loading (:func:`load_checkpoint`) fails with a :class:`CheckpointError` naming the file and the
problem: a missing file, unreadable or truncated safetensors, an invalid or inconsistent config,
missing/unexpected weight keys (a few named), a shape or dtype mismatch (tensor and both
shapes), normalisation statistics of the wrong dimension, or a checksum mismatch.

CLI: ``python -m wallwm_core.checkpoint init --config tiny --out DIR`` writes a randomly
initialised ("untrained") checkpoint so the system runs end to end before training; see
``--help``. ``python -m wallwm_core.checkpoint check DIR`` validates one.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import safetensors
import safetensors.torch
import torch
import yaml
from torch import nn

from wallwm_core.config_loading import ConfigError, config_from_dict
from wallwm_core.inference.config import InferenceConfig, default_inference_config
from wallwm_core.inference.deployment import DeploymentMetadata, step_period_ns
from wallwm_core.inference.staircase import StaircaseProjection
from wallwm_core.model.codec import ConvAutoencoderCodec, build_codec
from wallwm_core.model.config import (
    ModelConfig,
    config_to_dict,
    load_model_config,
    model_config_from_dict,
)
from wallwm_core.model.wallwm import WallWM, build_model
from wallwm_core.normalization import STAT_NAMES, NormalizationStats, fit
from wallwm_core.vlm import VLMConfig, WallVLM, load_vlm_config

FORMAT = "wallwm-checkpoint"
FORMAT_VERSION = 1
METADATA_FILE = "metadata.yaml"
MODEL_CONFIG_FILE = "model.yaml"
MODEL_WEIGHTS_FILE = "model.safetensors"
CODEC_WEIGHTS_FILE = "codec.safetensors"
NORMALIZATION_FILE = "normalization.safetensors"
VLM_CONFIG_FILE = "vlm.yaml"
VLM_WEIGHTS_FILE = "vlm.safetensors"
PROJECTION_WEIGHTS_FILE = "staircase_projection.safetensors"
ACTION_PREFIX = "action."
STATE_PREFIX = "state."
NAMES_SHOWN = 5  # how many missing/unexpected keys an error names

Status = Literal["trained", "untrained"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class StaircaseProjectionSpec:
    """Sizes of the Staircase projection: VLM width -> video_tower.text_dim."""

    input_dim: int
    output_dim: int


@dataclasses.dataclass(frozen=True)
class CheckpointMetadata:
    """The contents of ``metadata.yaml``."""

    format: str
    format_version: int
    status: Status
    deployment: DeploymentMetadata
    inference: InferenceConfig
    vlm: bool = False
    staircase_projection: StaircaseProjectionSpec | None = None
    description: str = ""
    checksums: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format != FORMAT:
            raise ConfigError(f"format is {self.format!r}, expected {FORMAT!r}")
        if self.format_version != FORMAT_VERSION:
            raise ConfigError(
                f"format_version {self.format_version} is not supported (this code reads "
                f"version {FORMAT_VERSION})"
            )
        if self.status not in ("trained", "untrained"):
            raise ConfigError(f"status must be 'trained' or 'untrained', got {self.status!r}")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """Everything a checkpoint holds, in memory (CPU tensors)."""

    model_config: ModelConfig
    model_state: Mapping[str, torch.Tensor]
    codec_state: Mapping[str, torch.Tensor]
    action_stats: NormalizationStats
    state_stats: NormalizationStats
    metadata: CheckpointMetadata
    vlm_config: VLMConfig | None = None
    vlm_state: Mapping[str, torch.Tensor] | None = None
    projection_state: Mapping[str, torch.Tensor] | None = None


# ----------------------------------------------------------------------------------------------
# state dicts
# ----------------------------------------------------------------------------------------------
def unique_state_dict(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``module``'s state dict without tied duplicates (safetensors stores no shared tensors),
    and the dropped aliases ``{alias: kept_key}``."""
    state, aliases, seen = {}, {}, {}
    for key, tensor in module.state_dict().items():
        identity = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape)
        if tensor.device.type != "meta" and identity in seen:
            aliases[key] = seen[identity]
            continue
        seen[identity] = key
        state[key] = tensor
    return state, aliases


def _names(keys: Sequence[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:NAMES_SHOWN])
    return shown + (f" and {len(keys) - NAMES_SHOWN} more" if len(keys) > NAMES_SHOWN else "")


def check_state_dict(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str
) -> None:
    """Raise CheckpointError unless ``state`` has exactly ``expected``'s keys, shapes, dtypes."""
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_names(list(missing))}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_names(list(unexpected))}")
        raise CheckpointError(f"{source}: weights do not match the config: " + "; ".join(parts))
    for key, reference in expected.items():
        tensor = state[key]
        if tuple(tensor.shape) != tuple(reference.shape):
            raise CheckpointError(
                f"{source}: shape mismatch for {key!r}: checkpoint has {list(tensor.shape)}, "
                f"the config needs {list(reference.shape)}"
            )
        if tensor.dtype != reference.dtype:
            raise CheckpointError(
                f"{source}: dtype mismatch for {key!r}: checkpoint has {tensor.dtype}, "
                f"the model uses {reference.dtype}"
            )


def load_module_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Check ``state`` against ``module`` and copy it in (tied weights stay tied)."""
    expected, aliases = unique_state_dict(module)
    check_state_dict(state, expected, source)
    full = dict(state)
    full.update({alias: state[kept] for alias, kept in aliases.items()})
    module.load_state_dict(full, strict=True)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing file")
    try:
        return safetensors.torch.load_file(str(path))
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupted?): {error}"
        ) from error


def _write_safetensors(state: Mapping[str, torch.Tensor], path: Path) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    safetensors.torch.save_file(tensors, str(path), metadata={"format": FORMAT})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# module construction
# ----------------------------------------------------------------------------------------------
def empty_model(config: ModelConfig) -> WallWM:
    """An uninitialised WallWM on the CPU (built on the meta device, then allocated)."""
    return build_model(config, device="meta").to_empty(device="cpu")


def fresh_vlm(config: VLMConfig, seed: int | None = None) -> WallVLM:
    """A tiny-LM VLM for ``config``; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return WallVLM.from_config(config, seed=None)


def build_modules(
    checkpoint: Checkpoint,
) -> tuple[WallWM, ConvAutoencoderCodec, WallVLM | None, StaircaseProjection | None]:
    """The checkpoint's modules on the CPU in eval mode, weights loaded strictly."""
    model = empty_model(checkpoint.model_config)
    load_module_state(model, checkpoint.model_state, MODEL_WEIGHTS_FILE)
    codec = build_codec(checkpoint.model_config.codec)
    load_module_state(codec, checkpoint.codec_state, CODEC_WEIGHTS_FILE)
    vlm = None
    if checkpoint.vlm_config is not None and checkpoint.vlm_state is not None:
        vlm = fresh_vlm(checkpoint.vlm_config)
        load_module_state(vlm, checkpoint.vlm_state, VLM_WEIGHTS_FILE)
        vlm.eval()
    projection = None
    spec = checkpoint.metadata.staircase_projection
    if spec is not None and checkpoint.projection_state is not None:
        projection = StaircaseProjection(spec.input_dim, spec.output_dim)
        load_module_state(projection, checkpoint.projection_state, PROJECTION_WEIGHTS_FILE)
        projection.eval()
    return model.eval(), codec.eval(), vlm, projection


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _stats_from(
    tensors: Mapping[str, torch.Tensor], prefix: str, dim: int, what: str, source: str
) -> NormalizationStats:
    try:
        stats = NormalizationStats.from_tensors(tensors, prefix=prefix, source=source)
    except ValueError as error:
        raise CheckpointError(str(error)) from error
    if stats.dim != dim:
        raise CheckpointError(f"{source}: {prefix!r} statistics have dimension {stats.dim}, {what}")
    return stats


def validate_checkpoint(checkpoint: Checkpoint) -> None:
    """Raise CheckpointError where the parts disagree with each other (see module doc)."""
    config, meta = checkpoint.model_config, checkpoint.metadata
    try:
        meta.deployment.validate_for(config)
        meta.inference.validate_for(config)
    except ConfigError as error:
        raise CheckpointError(f"{METADATA_FILE}: {error}") from error
    check_state_dict(
        checkpoint.model_state,
        unique_state_dict(build_model(config, "meta"))[0],
        MODEL_WEIGHTS_FILE,
    )
    with torch.device("meta"):
        codec = build_codec(config.codec)
    check_state_dict(checkpoint.codec_state, unique_state_dict(codec)[0], CODEC_WEIGHTS_FILE)
    token_dim, state_dim = config.action.token_dim, config.action.state_dim
    if checkpoint.action_stats.dim != token_dim:
        raise CheckpointError(
            f"{NORMALIZATION_FILE}: action statistics have dimension "
            f"{checkpoint.action_stats.dim}, the model's action tokens have {token_dim}"
        )
    if checkpoint.state_stats.dim != state_dim:
        raise CheckpointError(
            f"{NORMALIZATION_FILE}: state statistics have dimension "
            f"{checkpoint.state_stats.dim}, the model's state has {state_dim} (action.state_dim)"
        )
    has_vlm = checkpoint.vlm_config is not None and checkpoint.vlm_state is not None
    if meta.vlm != has_vlm:
        raise CheckpointError(
            f"{METADATA_FILE}: vlm is {meta.vlm} but the checkpoint "
            f"{'has' if has_vlm else 'has no'} VLM config and weights"
        )
    if has_vlm:
        assert checkpoint.vlm_config is not None and checkpoint.vlm_state is not None
        expected = unique_state_dict(fresh_vlm(checkpoint.vlm_config))[0]
        check_state_dict(checkpoint.vlm_state, expected, VLM_WEIGHTS_FILE)
    spec = meta.staircase_projection
    if (spec is None) != (checkpoint.projection_state is None):
        raise CheckpointError(
            f"{METADATA_FILE}: staircase_projection is {spec} but the projection weights are "
            f"{'absent' if checkpoint.projection_state is None else 'present'}"
        )
    if spec is not None:
        assert checkpoint.projection_state is not None
        if spec.output_dim != config.video_tower.text_dim:
            raise CheckpointError(
                f"{METADATA_FILE}: staircase_projection.output_dim={spec.output_dim} must equal "
                f"video_tower.text_dim={config.video_tower.text_dim}"
            )
        if checkpoint.vlm_config is not None and spec.input_dim != checkpoint.vlm_config.lm.width:
            raise CheckpointError(
                f"{METADATA_FILE}: staircase_projection.input_dim={spec.input_dim} must equal "
                f"the VLM width lm.width={checkpoint.vlm_config.lm.width}"
            )
        with torch.device("meta"):
            projection = StaircaseProjection(spec.input_dim, spec.output_dim)
        check_state_dict(
            checkpoint.projection_state, unique_state_dict(projection)[0], PROJECTION_WEIGHTS_FILE
        )


# ----------------------------------------------------------------------------------------------
# save / load
# ----------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Validate ``checkpoint`` and write it to the directory ``path`` (created if needed).

    Optional files of a previous checkpoint in the same directory are removed when
    ``checkpoint`` has no such part. Returns the directory.
    """
    validate_checkpoint(checkpoint)
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_CONFIG_FILE).write_text(
        yaml.safe_dump(config_to_dict(checkpoint.model_config), sort_keys=False)
    )
    weights = {
        MODEL_WEIGHTS_FILE: checkpoint.model_state,
        CODEC_WEIGHTS_FILE: checkpoint.codec_state,
        NORMALIZATION_FILE: {
            **checkpoint.action_stats.to_tensors(ACTION_PREFIX),
            **checkpoint.state_stats.to_tensors(STATE_PREFIX),
        },
    }
    if checkpoint.vlm_state is not None and checkpoint.vlm_config is not None:
        (directory / VLM_CONFIG_FILE).write_text(
            yaml.safe_dump(_plain(checkpoint.vlm_config), sort_keys=False)
        )
        weights[VLM_WEIGHTS_FILE] = checkpoint.vlm_state
    else:
        (directory / VLM_CONFIG_FILE).unlink(missing_ok=True)
        (directory / VLM_WEIGHTS_FILE).unlink(missing_ok=True)
    if checkpoint.projection_state is not None:
        weights[PROJECTION_WEIGHTS_FILE] = checkpoint.projection_state
    else:
        (directory / PROJECTION_WEIGHTS_FILE).unlink(missing_ok=True)
    checksums = {}
    for name, state in weights.items():
        _write_safetensors(state, directory / name)
        checksums[name] = _sha256(directory / name)
    metadata = dataclasses.replace(checkpoint.metadata, checksums=checksums)
    (directory / METADATA_FILE).write_text(yaml.safe_dump(_plain(metadata), sort_keys=False))
    return directory


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing file")
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not readable YAML: {error}") from error


def load_metadata(path: str | Path) -> CheckpointMetadata:
    """Only ``metadata.yaml`` of the checkpoint directory ``path`` (validated on its own)."""
    file = Path(path) / METADATA_FILE
    data = _read_yaml(file)
    try:
        return config_from_dict(CheckpointMetadata, data or {}, source=str(file))
    except ConfigError as error:
        raise CheckpointError(str(error)) from error


def load_checkpoint(path: str | Path, verify_checksums: bool = True) -> Checkpoint:
    """Read and validate the checkpoint directory ``path``; raises CheckpointError."""
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    metadata = load_metadata(directory)
    config_file = directory / MODEL_CONFIG_FILE
    try:
        config = model_config_from_dict(_read_yaml(config_file) or {}, source=str(config_file))
    except ConfigError as error:
        raise CheckpointError(str(error)) from error

    normalization = _read_safetensors(directory / NORMALIZATION_FILE)
    source = str(directory / NORMALIZATION_FILE)
    known = {p + n for p in (ACTION_PREFIX, STATE_PREFIX) for n in (*STAT_NAMES, "mode")}
    unexpected = set(normalization) - known
    if unexpected:
        raise CheckpointError(f"{source}: unexpected key(s) {_names(list(unexpected))}")
    action_stats = _stats_from(
        normalization,
        ACTION_PREFIX,
        config.action.token_dim,
        f"the model's action tokens have {config.action.token_dim}",
        source,
    )
    state_stats = _stats_from(
        normalization,
        STATE_PREFIX,
        config.action.state_dim,
        f"the model's state has {config.action.state_dim} (action.state_dim)",
        source,
    )

    vlm_config = vlm_state = None
    if metadata.vlm:
        vlm_file = directory / VLM_CONFIG_FILE
        try:
            vlm_config = config_from_dict(VLMConfig, _read_yaml(vlm_file) or {}, str(vlm_file))
        except ConfigError as error:
            raise CheckpointError(str(error)) from error
        vlm_state = _read_safetensors(directory / VLM_WEIGHTS_FILE)
    projection_state = None
    if metadata.staircase_projection is not None:
        projection_state = _read_safetensors(directory / PROJECTION_WEIGHTS_FILE)

    checkpoint = Checkpoint(
        model_config=config,
        model_state=_read_safetensors(directory / MODEL_WEIGHTS_FILE),
        codec_state=_read_safetensors(directory / CODEC_WEIGHTS_FILE),
        action_stats=action_stats,
        state_stats=state_stats,
        metadata=metadata,
        vlm_config=vlm_config,
        vlm_state=vlm_state,
        projection_state=projection_state,
    )
    try:
        validate_checkpoint(checkpoint)
    except CheckpointError as error:  # messages start with the file name: make it a path
        raise CheckpointError(f"{directory}/{error}") from error
    if verify_checksums:
        for name, expected in metadata.checksums.items():
            actual = _sha256(directory / name) if (directory / name).is_file() else "missing"
            if actual != expected:
                raise CheckpointError(
                    f"{directory / name}: SHA-256 {actual[:12]}... does not match "
                    f"{METADATA_FILE} ({expected[:12]}...): the file was modified or corrupted"
                )
    return checkpoint


# ----------------------------------------------------------------------------------------------
# randomly initialised checkpoints
# ----------------------------------------------------------------------------------------------
def identity_stats(dim: int) -> NormalizationStats:
    """Statistics that leave values unchanged (mean 0, std 1; quantiles -1, +1)."""
    zeros, ones = np.zeros(dim), np.ones(dim)
    return NormalizationStats("mean_std", zeros, ones, -ones, ones)


def load_demo_arrays(paths: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """Action tokens ``[N, token_dim]`` and joint states ``[N, J]`` from demonstration files.

    Each file is ``.npz`` or ``.safetensors`` holding either ``actions`` (tokens, see
    :mod:`wallwm_core.action_tokens`) and ``states``, or a single-arm episode's ``lowdim``
    arrays (``joint_positions``, ``action_tool_position``, ``action_tool_quaternion``,
    ``action_gripper``, as written by the simulator's recorder).
    """
    from wallwm_core.action_tokens import poses_to_tokens

    actions, states = [], []
    for path in map(Path, paths):
        try:
            if path.suffix == ".npz":
                with np.load(path) as data:
                    arrays = {k: data[k] for k in data.files}
            else:
                arrays = {k: v.numpy() for k, v in safetensors.torch.load_file(str(path)).items()}
        except (OSError, ValueError, safetensors.SafetensorError) as error:
            raise CheckpointError(f"{path}: cannot read demonstration arrays: {error}") from error
        if "actions" in arrays and "states" in arrays:
            actions.append(np.asarray(arrays["actions"], np.float64))
            states.append(np.asarray(arrays["states"], np.float64))
        elif {"joint_positions", "action_tool_position"} <= set(arrays):
            gripper = np.asarray(arrays["action_gripper"], np.float64)
            actions.append(
                poses_to_tokens(
                    arrays["action_tool_position"][:, None],
                    arrays["action_tool_quaternion"][:, None],
                    np.clip(gripper, 0.0, 1.0)[:, None],
                )
            )
            states.append(np.asarray(arrays["joint_positions"], np.float64))
        else:
            raise CheckpointError(
                f"{path}: expected arrays 'actions' and 'states', or an episode's lowdim arrays; "
                f"found {sorted(arrays)}"
            )
    return np.concatenate(actions), np.concatenate(states)


def init_checkpoint(
    config: ModelConfig,
    cameras: Sequence[str],
    joint_names: Sequence[str],
    arm_names: Sequence[str],
    ee_frames: Sequence[str],
    base_frame: str,
    image_size: tuple[int, int],
    seed: int = 0,
    demo_actions: np.ndarray | None = None,
    demo_states: np.ndarray | None = None,
    vlm_config: VLMConfig | None = None,
    inference: InferenceConfig | None = None,
    description: str = "randomly initialised: outputs are meaningless until trained",
) -> Checkpoint:
    """A randomly initialised, "untrained" checkpoint (identity statistics unless demo arrays
    ``[N, token_dim]`` / ``[N, state_dim]`` are given, then fitted mean/std)."""
    deployment = DeploymentMetadata(
        cameras=tuple(cameras),
        image_size=tuple(image_size),
        joint_names=tuple(joint_names),
        arm_names=tuple(arm_names),
        ee_frames=tuple(ee_frames),
        base_frame=base_frame,
        step_period_ns=step_period_ns(config.action.control_hz),
    )
    token_dim, state_dim = config.action.token_dim, config.action.state_dim
    try:
        action_stats = identity_stats(token_dim) if demo_actions is None else fit(demo_actions)
        state_stats = identity_stats(state_dim) if demo_states is None else fit(demo_states)
    except ValueError as error:
        raise CheckpointError(f"demonstration arrays: {error}") from error
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config)
        codec = build_codec(config.codec)
        vlm = fresh_vlm(vlm_config, seed + 1) if vlm_config is not None else None
        projection = (
            StaircaseProjection(vlm_config.lm.width, config.video_tower.text_dim)
            if vlm_config is not None
            else None
        )
    metadata = CheckpointMetadata(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        status="untrained",
        deployment=deployment,
        inference=inference or default_inference_config(config),
        vlm=vlm is not None,
        staircase_projection=(
            StaircaseProjectionSpec(projection.input_dim, projection.output_dim)
            if projection is not None
            else None
        ),
        description=description,
    )
    return Checkpoint(
        model_config=config,
        model_state=unique_state_dict(model)[0],
        codec_state=unique_state_dict(codec)[0],
        action_stats=action_stats,
        state_stats=state_stats,
        metadata=metadata,
        vlm_config=vlm_config,
        vlm_state=unique_state_dict(vlm)[0] if vlm is not None else None,
        projection_state=unique_state_dict(projection)[0] if projection is not None else None,
    )


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------
def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _image_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"image size must be HxW, got {text!r}") from error
    return height, width


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wallwm_core.checkpoint", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write a randomly initialised ('untrained') checkpoint")
    init.add_argument("--config", default="tiny", help="model config name or YAML path")
    init.add_argument("--out", required=True, help="checkpoint directory to write")
    init.add_argument("--cameras", type=_csv, default=["front", "overhead", "wrist"])
    init.add_argument("--image-size", type=_image_size, default=(64, 64), help="HxW model input")
    init.add_argument(
        "--joints", type=_csv, default=None, help="joint names (default joint_1..joint_<state_dim>)"
    )
    init.add_argument("--arms", type=_csv, default=None, help="arm names (default arm, arm_2, ...)")
    init.add_argument("--ee-frames", type=_csv, default=None, help="default tool0 per arm")
    init.add_argument("--base-frame", default="base_link")
    init.add_argument(
        "--demos", nargs="*", default=(), help="npz/safetensors files to fit normalisation on"
    )
    init.add_argument("--vlm", default=None, help="also add a VLM of this config (e.g. vlm_tiny)")
    init.add_argument("--seed", type=int, default=0)
    check = commands.add_parser("check", help="validate a checkpoint directory")
    check.add_argument("path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            checkpoint = load_checkpoint(args.path)
            meta = checkpoint.metadata
            print(
                f"{args.path}: ok ({meta.status}, model {checkpoint.model_config.name!r}, "
                f"cameras {list(meta.deployment.cameras)}, vlm {meta.vlm})"
            )
            return 0
        config = load_model_config(args.config)
        arms = args.arms or ["arm"] + [f"arm_{i}" for i in range(2, config.action.num_arms + 1)]
        demo_actions = demo_states = None
        if args.demos:
            demo_actions, demo_states = load_demo_arrays(args.demos)
        checkpoint = init_checkpoint(
            config,
            cameras=args.cameras,
            joint_names=args.joints
            or [f"joint_{i}" for i in range(1, config.action.state_dim + 1)],
            arm_names=arms,
            ee_frames=args.ee_frames or ["tool0"] * len(arms),
            base_frame=args.base_frame,
            image_size=args.image_size,
            seed=args.seed,
            demo_actions=demo_actions,
            demo_states=demo_states,
            vlm_config=load_vlm_config(args.vlm) if args.vlm else None,
        )
        save_checkpoint(checkpoint, args.out)
    except (CheckpointError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote untrained checkpoint {args.out} (model {config.name!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The training config: a YAML file validated into a frozen, typed :class:`TrainConfig`.

Sections (every key is checked; an unknown key is an error naming it and the closest valid
key)::

    model: tiny                 # a shipped model config name or a YAML path
    run_dir: runs/tiny_smoke    # where checkpoints, metrics and logs go (must not exist yet)
    seed: 0
    data: {...}                 # DataConfig (wallwm_core.training.data.config)
    train: {...}                # steps, batch, accumulation, intervals (TrainLoopConfig)
    optim: {...}                # optimiser, warmup + cosine schedule, clipping, EMA (OptimConfig)
    runtime: {...}              # threads, device, precision, compile, DDP/FSDP2 (RuntimeConfig)
    eval: {...}                 # validation windows and sampler steps (EvalConfig)
    init_from: null             # or a checkpoint folder: start from its (EMA) weights; the
                                # optimiser, step count and EMA start fresh (a fine-tune)

Overrides on the command line use dotted keys (``optim.lr=3e-4 data.balance_alpha=0``); the
value is parsed as YAML (numbers, booleans, lists).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from wallwm_core.config_loading import ConfigError, config_from_dict, did_you_mean, require
from wallwm_core.inference.config import SamplerConfig
from wallwm_core.training.data.config import DataConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
# Shipped as CONFIG_DIR / f"{name}.yaml".
CONFIG_NAMES = ("train_smoke", "train_cpu", "train_ablation")

OptimizerName = Literal["muon_adamw", "adamw"]
DeviceName = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "bf16"]
Parallel = Literal["ddp", "fsdp2"]


def _int_at_least(section: str, obj: Any, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(
            isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
            f"{section}.{name} must be an integer >= {minimum}, got {value!r}",
        )


def _as_floats(section: str, obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(
            not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value),
            f"{section}.{name} must be a finite number, got {value!r}",
        )
        object.__setattr__(obj, name, float(value))


@dataclasses.dataclass(frozen=True)
class TrainLoopConfig:
    """Steps and batches. ``batch_size`` is the GLOBAL batch per optimiser step: it is split
    into ``world_size * grad_accum_steps`` equal micro-batches, so the same config trains the
    same samples on 1 process or N (the learning rate is not rescaled)."""

    steps: int = 1000
    batch_size: int = 8
    grad_accum_steps: int = 1
    log_interval: int = 10
    eval_interval: int = 200
    checkpoint_interval: int = 200
    keep_last: int = 3

    def __post_init__(self) -> None:
        _int_at_least(
            "train",
            self,
            1,
            "steps",
            "batch_size",
            "grad_accum_steps",
            "log_interval",
            "eval_interval",
            "checkpoint_interval",
            "keep_last",
        )
        require(
            self.batch_size % self.grad_accum_steps == 0,
            f"train.batch_size={self.batch_size} must be divisible by "
            f"train.grad_accum_steps={self.grad_accum_steps}",
        )


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Muon (block matrices) + AdamW (the rest), or AdamW only; warmup then cosine decay to
    ``lr * min_lr_ratio``; ``grad_clip_norm`` <= 0 disables clipping; EMA of the weights with
    ``ema_decay`` (the inference checkpoints hold the EMA weights)."""

    optimizer: OptimizerName = "muon_adamw"
    lr: float = 1.0e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = 1.0e-8
    muon_momentum: float = 0.95
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip_norm: float = 1.0
    ema_decay: float = 0.999

    def __post_init__(self) -> None:
        _as_floats(
            "optim",
            self,
            "lr",
            "weight_decay",
            "adam_eps",
            "muon_momentum",
            "min_lr_ratio",
            "grad_clip_norm",
            "ema_decay",
        )
        require(
            self.optimizer in typing.get_args(OptimizerName),
            f"optim.optimizer must be one of {typing.get_args(OptimizerName)}, "
            f"got {self.optimizer!r}",
        )
        require(self.lr > 0.0, f"optim.lr must be > 0, got {self.lr}")
        require(self.weight_decay >= 0.0, f"optim.weight_decay must be >= 0: {self.weight_decay}")
        _int_at_least("optim", self, 0, "warmup_steps")
        require(
            0.0 <= self.min_lr_ratio <= 1.0,
            f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}",
        )
        require(0.0 <= self.ema_decay < 1.0, f"optim.ema_decay must be in [0, 1): {self.ema_decay}")
        require(
            0.0 <= self.muon_momentum < 1.0,
            f"optim.muon_momentum must be in [0, 1): {self.muon_momentum}",
        )
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        require(
            len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
            f"optim.betas must be two numbers in [0, 1): {self.betas}",
        )

    def learning_rate(self, step: int, total_steps: int) -> float:
        """The rate of (0-based) optimiser step ``step``: linear warmup, then cosine decay."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the step runs.

    ``threads``: torch intra-op threads per process (0 = leave torch's default); on a shared
    CPU, oversubscription costs more than a lost core (docs/training.md, Speed). ``device``:
    ``auto`` = CUDA when available. ``precision``: ``bf16`` = bfloat16 autocast on CUDA (weights
    and optimiser stay float32; ignored on the CPU). ``compile``: ``torch.compile`` the towers.
    ``parallel``: under torchrun, ``ddp`` or ``fsdp2`` (``fully_shard`` per transformer block).
    """

    threads: int = 0
    device: DeviceName = "auto"
    precision: Precision = "bf16"
    compile: bool = False
    parallel: Parallel = "ddp"
    tensorboard: bool = True
    progress_bar: bool = True

    def __post_init__(self) -> None:
        _int_at_least("runtime", self, 0, "threads")
        for name, kind in (
            ("device", DeviceName),
            ("precision", Precision),
            ("parallel", Parallel),
        ):
            value = getattr(self, name)
            require(
                value in typing.get_args(kind),
                f"runtime.{name} must be one of {typing.get_args(kind)}, got {value!r}",
            )


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Validation at every ``train.eval_interval``: losses on ``windows`` fixed validation
    windows (fixed noise) and the open-loop action error of chunks sampled with ``sampler``
    on the first ``open_loop_windows`` of them."""

    windows: int = 64
    batch_size: int = 16
    open_loop_windows: int = 32
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)

    def __post_init__(self) -> None:
        _int_at_least("eval", self, 1, "windows", "batch_size")
        _int_at_least("eval", self, 0, "open_loop_windows")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A whole training run (see the module doc)."""

    model: str
    run_dir: str
    data: DataConfig
    seed: int = 0
    train: TrainLoopConfig = dataclasses.field(default_factory=TrainLoopConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    init_from: str | None = None

    def __post_init__(self) -> None:
        require(isinstance(self.model, str) and self.model, "model must be a config name or path")
        require(isinstance(self.run_dir, str) and self.run_dir, "run_dir must be a folder path")
        require(
            self.init_from is None or (isinstance(self.init_from, str) and self.init_from),
            f"init_from must be a checkpoint folder or null, got {self.init_from!r}",
        )
        _int_at_least("", self, 0, "seed")
        require(
            not (self.runtime.parallel == "fsdp2" and self.optim.optimizer == "muon_adamw"),
            "runtime.parallel=fsdp2 shards weight matrices, and Muon orthogonalises whole "
            "matrices: use optim.optimizer=adamw with FSDP2",
        )


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------
def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass inside a field annotation (``X``, ``X | None``), else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def closest_name(key: str, names: Sequence[str]) -> str | None:
    """The valid name ``key`` most likely meant: a close spelling (difflib), else the name
    made of its words' initials (``learning_rate`` -> ``lr``), else one containing it."""
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    if close:
        return close[0]
    initials = "".join(word[:1] for word in key.split("_"))
    for name in names:
        if name == initials or (len(key) >= 3 and (key in name or name in key)):
            return name
    return None


def check_keys(cls: type, data: Mapping[str, Any], prefix: str = "") -> None:
    """Raise ConfigError for the first key of ``data`` that ``cls`` (recursively) lacks,
    naming it and the closest valid key."""
    hints = typing.get_type_hints(cls)
    names = [field.name for field in dataclasses.fields(cls)]
    for key, value in data.items():
        if key not in names:
            close = closest_name(str(key), names)
            hint = f"; did you mean '{prefix}{close}'?" if close else ""
            raise ConfigError(f"unknown config key '{prefix}{key}'{hint} (valid here: {names})")
        inner = _dataclass_of(hints[key])
        if inner is not None and isinstance(value, Mapping):
            check_keys(inner, value, f"{prefix}{key}.")


def _number_or(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` (no dot) as a string; on the command line it means a number."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``dotted.key=value`` set (value parsed as YAML)."""
    result = yaml.safe_load(yaml.safe_dump(data, sort_keys=False))  # a deep copy, same order
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = _number_or(yaml.safe_load(text))
        except yaml.YAMLError as error:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {error}") from error
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def train_config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> TrainConfig:
    """Validate plain data into a :class:`TrainConfig` (ConfigError on any problem)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a training config must be a mapping")
    check_keys(TrainConfig, data)
    data = dict(data)
    try:
        data_config = DataConfig.from_dict(data.pop("data", None) or {})
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from error
    config = config_from_dict(TrainConfig, {**data, "data": {"paths": ["-"]}}, source=source)
    return dataclasses.replace(config, data=data_config)


def shipped_train_config(name: str) -> Path:
    """The path of a shipped training config (a name of :data:`CONFIG_NAMES`)."""
    if name not in CONFIG_NAMES:
        hint = did_you_mean(name, CONFIG_NAMES)
        raise ConfigError(f"unknown training config {name!r}{hint} (shipped: {CONFIG_NAMES})")
    return CONFIG_DIR / f"{name}.yaml"


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a training config (a YAML path or a shipped name) and apply ``key=value``
    overrides."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        path = shipped_train_config(str(path))
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read training config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training config must be a mapping")
    return train_config_from_dict(apply_overrides(data, overrides), source=str(path))


def train_config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain YAML-able data; ``train_config_from_dict`` of it gives ``config`` back."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))

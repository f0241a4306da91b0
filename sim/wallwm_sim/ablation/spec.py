"""The ablation spec: a YAML file validated into a frozen, typed :class:`AblationSpec`, and the
plan it resolves to (one training config per arm and training seed).

Every key is checked; an unknown key is an error naming it and the closest valid key (the rules
of the training config, :func:`wallwm_core.training.config.check_keys`). Each arm's training
config is resolved and validated when the spec loads, so a typo in an arm's override fails
before anything trains. See docs/ablation.md for the format and
``wallwm_core/configs/ablation_cpu.yaml`` for the shipped spec.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from wallwm_core.config_loading import ConfigError, config_from_dict, did_you_mean, require
from wallwm_core.model.config import config_to_dict, load_model_config
from wallwm_core.training.config import (
    CONFIG_DIR,
    CONFIG_NAMES,
    TrainConfig,
    apply_overrides,
    check_keys,
    load_train_config,
    shipped_train_config,
)

# Evaluation seeds: reserved for evaluation, never in a training set (docs/results.md).
EVAL_SEED_RANGE = range(0, 100)
SPEC_NAMES = ("ablation_cpu",)  # shipped as CONFIG_DIR / f"{name}.yaml"
ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Override keys the driver sets itself: (where to set them instead).
DRIVER_KEYS = {
    "run_dir": "the driver puts each run in OUTPUT/runs/ARM/seedN",
    "seed": "training.seeds",
    "train.steps": "training.steps (the same for every arm)",
    "train.batch_size": "training.batch_size (the same for every arm)",
    "data.paths": "data.paths",
    "data.cache_dir": "data.cache_dir",
}
ARM_ONLY_DRIVER_KEYS = {
    "model": "training.overrides (every arm trains the same architecture)",
}
CheckpointChoice = Literal["last", "best"]
# Protocol of issue 13, item 6 (check_protocol: true).
MIN_TRAINING_SEEDS = 2
MIN_EPISODES_PER_CELL = 30  # per (task, variant) and arm


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The demonstrations every arm trains on, and the shared codec / latent cache folder
    (``""``: beside the first dataset, as the training config's default)."""

    paths: tuple[str, ...]
    cache_dir: str = ""

    def __post_init__(self) -> None:
        require(
            len(self.paths) > 0 and all(isinstance(p, str) and p.strip() for p in self.paths),
            f"data.paths must be a non-empty list of folders, got {list(self.paths)!r}",
        )


@dataclasses.dataclass(frozen=True)
class TrainingSpec:
    """What every arm shares: the base training config (a shipped name or a YAML path), the
    overrides applied to every arm, the training seeds, steps and global batch (so every arm
    trains on ``steps * batch_size`` samples) and how many runs train at once."""

    base_config: str
    seeds: tuple[int, ...]
    steps: int
    batch_size: int
    overrides: tuple[str, ...] = ()
    jobs: int = 1

    def __post_init__(self) -> None:
        require(
            isinstance(self.base_config, str) and bool(self.base_config.strip()),
            "training.base_config must name a training config",
        )
        require(
            len(self.seeds) > 0 and all(_is_int(s) and s >= 0 for s in self.seeds),
            f"training.seeds must be non-negative integers, got {list(self.seeds)!r}",
        )
        require(
            len(set(self.seeds)) == len(self.seeds),
            f"training.seeds repeat a seed: {list(self.seeds)}",
        )
        for name in ("steps", "batch_size", "jobs"):
            value = getattr(self, name)
            require(
                _is_int(value) and value >= 1,
                f"training.{name} must be an integer >= 1, got {value!r}",
            )
        _check_overrides("training.overrides", self.overrides, DRIVER_KEYS)

    @property
    def samples(self) -> int:
        return self.steps * self.batch_size


@dataclasses.dataclass(frozen=True)
class ArmSpec:
    """One arm: a name (a folder name) and its training-config overrides."""

    name: str
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require(
            isinstance(self.name, str) and bool(ARM_NAME.match(self.name)),
            f"arm name {self.name!r} must be letters, digits, '_', '.' or '-'",
        )
        _check_overrides(
            f"arms[{self.name}].overrides", self.overrides, {**DRIVER_KEYS, **ARM_ONLY_DRIVER_KEYS}
        )


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """The closed-loop evaluation of each run's final EMA checkpoint.

    ``seeds``: ``"0-29"`` / ``"1,5,9"`` syntax, inside 0-99 (the evaluation seeds). ``latency``:
    ``none``, ``measured`` or milliseconds (``wallwm_sim.evaluate --latency``). ``image_size``:
    the square camera images rendered for the policy (64: the demonstrations' size).
    ``max_duration_s``: simulated seconds per episode (null: the task's time limit).
    ``checkpoint``: ``last`` (the final EMA weights) or ``best`` (best validation loss).
    ``threads``: torch threads per evaluation process; ``jobs``: processes at once;
    ``shard_episodes``: episodes per shard (a shard is written whole or not at all, so an
    interrupted evaluation repeats at most one shard per process).
    """

    tasks: tuple[str, ...] = ("press_buttons", "build_and_signal")
    variants: tuple[str, ...] = ("train", "novel_order", "novel_layout")
    seeds: str = "0-29"
    latency: str | int | float = "none"
    image_size: int = 64
    max_duration_s: float | int | None = None
    checkpoint: CheckpointChoice = "last"
    device: str = "cpu"
    threads: int = 1
    jobs: int = 1
    shard_episodes: int = 10

    def __post_init__(self) -> None:
        from wallwm_sim.cli_args import parse_seeds
        from wallwm_sim.evaluate import parse_latency
        from wallwm_sim.tasks import VARIANTS, get_task

        require(len(self.tasks) > 0, "eval.tasks must name at least one task")
        for task in self.tasks:
            try:
                get_task(task)
            except ValueError as error:
                raise ConfigError(f"eval.tasks: {error}") from None
        unknown = [v for v in self.variants if v not in VARIANTS]
        require(not unknown, f"eval.variants: unknown {unknown}; variants are {VARIANTS}")
        for variant in self.variants:
            require(
                any(variant in get_task(t).variants for t in self.tasks),
                f"eval.variants: no task of {list(self.tasks)} has variant {variant!r}",
            )
        require(
            isinstance(self.seeds, str), f"eval.seeds must be text like '0-29', got {self.seeds!r}"
        )
        try:
            seeds = parse_seeds(self.seeds)
            parse_latency(str(self.latency))
            object.__setattr__(self, "latency", str(self.latency))
        except (ValueError, argparse.ArgumentTypeError) as error:
            raise ConfigError(f"eval: {error}") from None
        outside = sorted(s for s in seeds if s not in EVAL_SEED_RANGE)
        require(
            not outside,
            f"eval.seeds {outside} lie outside the evaluation seeds "
            f"{EVAL_SEED_RANGE.start}-{EVAL_SEED_RANGE.stop - 1}",
        )
        require(len(set(seeds)) == len(seeds), f"eval.seeds repeat a seed: {self.seeds!r}")
        for name in ("image_size", "threads", "jobs", "shard_episodes"):
            value = getattr(self, name)
            require(
                _is_int(value) and value >= 1, f"eval.{name} must be an integer >= 1: {value!r}"
            )
        if self.max_duration_s is not None:
            require(
                not isinstance(self.max_duration_s, bool)
                and math.isfinite(self.max_duration_s)
                and self.max_duration_s > 0,
                f"eval.max_duration_s must be positive or null, got {self.max_duration_s!r}",
            )
            object.__setattr__(self, "max_duration_s", float(self.max_duration_s))
        require(
            self.checkpoint in ("last", "best"),
            f"eval.checkpoint must be 'last' or 'best', got {self.checkpoint!r}",
        )
        require(self.device in ("cpu", "cuda"), f"eval.device must be cpu or cuda: {self.device!r}")

    @property
    def seed_list(self) -> list[int]:
        from wallwm_sim.cli_args import parse_seeds

        return parse_seeds(self.seeds)

    def cells(self) -> list[tuple[str, str]]:
        """(task, variant) pairs evaluated: variants a task lacks are skipped (as in
        ``wallwm_sim.evaluate``)."""
        from wallwm_sim.tasks import get_task

        return [(t, v) for t in self.tasks for v in self.variants if v in get_task(t).variants]


@dataclasses.dataclass(frozen=True)
class ReportSpec:
    """How the report aggregates: ``groups`` name sets of variants pooled over the evaluated
    tasks (the paper's "reasoning" = the train variant of the ordered tasks, "generalization" =
    the novel variants); ``reference_arm``: the arm the others are compared with (default: the
    first); bootstrap resamples and the confidence level."""

    groups: dict[str, tuple[str, ...]] = dataclasses.field(
        default_factory=lambda: {
            "reasoning": ("train",),
            "generalization": ("novel_order", "novel_layout"),
        }
    )
    reference_arm: str = ""
    bootstrap_resamples: int = 10000
    confidence: float = 0.95

    def __post_init__(self) -> None:
        require(
            _is_int(self.bootstrap_resamples) and self.bootstrap_resamples >= 100,
            f"report.bootstrap_resamples must be an integer >= 100: {self.bootstrap_resamples!r}",
        )
        require(
            isinstance(self.confidence, float) and 0.5 < self.confidence < 1.0,
            f"report.confidence must lie in (0.5, 1), got {self.confidence!r}",
        )
        for name, variants in self.groups.items():
            require(len(variants) > 0, f"report.groups.{name} names no variant")


@dataclasses.dataclass(frozen=True)
class AblationSpec:
    """A whole ablation (see the module doc)."""

    output: str
    data: DataSpec
    training: TrainingSpec
    arms: tuple[ArmSpec, ...]
    eval: EvalSpec = dataclasses.field(default_factory=EvalSpec)
    report: ReportSpec = dataclasses.field(default_factory=ReportSpec)
    check_protocol: bool = True

    def __post_init__(self) -> None:
        require(
            isinstance(self.output, str) and bool(self.output.strip()), "output must be a folder"
        )
        require(len(self.arms) > 0, "arms must list at least one arm")
        names = [arm.name for arm in self.arms]
        require(len(set(names)) == len(names), f"arm names repeat: {names}")
        if self.report.reference_arm:
            require(
                self.report.reference_arm in names,
                f"report.reference_arm {self.report.reference_arm!r} is not an arm ({names})",
            )
        for name, variants in self.report.groups.items():
            missing = [v for v in variants if v not in self.eval.variants]
            require(not missing, f"report.groups.{name}: {missing} are not in eval.variants")
        if self.check_protocol:
            require(
                len(self.training.seeds) >= MIN_TRAINING_SEEDS,
                f"training.seeds: the protocol needs >= {MIN_TRAINING_SEEDS} training seeds per "
                f"arm, got {list(self.training.seeds)} (check_protocol: false for a smoke run)",
            )
            # Issue 13: >= 30 episodes per task per arm; every (task, variant) cell of an arm
            # pools its training seeds' runs.
            count = len(self.eval.seed_list) * len(self.training.seeds)
            require(
                count >= MIN_EPISODES_PER_CELL,
                f"eval.seeds: the protocol needs >= {MIN_EPISODES_PER_CELL} episodes per task, "
                f"variant and arm (evaluation seeds x training seeds), got {count} "
                "(check_protocol: false for a smoke run)",
            )
            require(len(self.arms) >= 2, "the protocol compares >= 2 arms")

    @property
    def reference(self) -> str:
        return self.report.reference_arm or self.arms[0].name


# ----------------------------------------------------------------------------------------------
# the plan: one training config per arm and seed
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ArmEval:
    """How an arm's checkpoints run in closed loop, derived from its training windows: event
    windows -> event mode with the task's event instructions; fixed windows -> unified mode with
    chunks of ``fixed_window_steps``, and the task instruction as one event when the windows
    carried the task text (``fixed_instruction: task``, the paper's fixed-chunk base)."""

    mode: Literal["event", "unified"]
    chunk_steps: int  # unified mode; the model's limits.max_action_steps in event mode
    instruction: Literal["events", "task"]

    def describe(self) -> str:
        if self.mode == "event":
            return f"event mode (chunks up to {self.chunk_steps} steps), event instructions"
        text = "the task instruction" if self.instruction == "task" else "event instructions"
        return f"unified mode, {self.chunk_steps}-step chunks, {text}"


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of the plan."""

    arm: str
    seed: int
    config: TrainConfig
    config_path: Path  # the base training config file
    overrides: tuple[str, ...]  # everything on the train command line after the config path
    run_dir: Path
    log: Path

    @property
    def key(self) -> str:
        return f"{self.arm}/seed{self.seed}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """The spec resolved: its runs (arm-major), each arm's evaluation, the output folders."""

    spec: AblationSpec
    spec_path: Path
    output: Path
    runs: tuple[Run, ...]
    arm_eval: dict[str, ArmEval]

    def runs_of(self, arm: str) -> list[Run]:
        return [r for r in self.runs if r.arm == arm]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_overrides(where: str, overrides: Sequence[str], reserved: Mapping[str, str]) -> None:
    for item in overrides:
        require(
            isinstance(item, str) and "=" in item and not item.startswith("="),
            f"{where}: {item!r} must look like section.key=value",
        )
        key = item.partition("=")[0].strip()
        require(
            key not in reserved, f"{where}: {key} is set by the driver; use {reserved.get(key)}"
        )


def shipped_spec(name: str) -> Path:
    """The path of a shipped ablation spec (``ablation_cpu``)."""
    if name not in SPEC_NAMES:
        hint = did_you_mean(name, SPEC_NAMES)
        raise ConfigError(f"unknown ablation spec {name!r}{hint} (shipped: {SPEC_NAMES})")
    return CONFIG_DIR / f"{name}.yaml"


def spec_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> AblationSpec:
    """Validate plain data into an :class:`AblationSpec` (ConfigError naming the problem)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: an ablation spec must be a mapping")
    try:
        check_keys(AblationSpec, data)
        for index, arm in enumerate(data.get("arms") or []):
            if isinstance(arm, Mapping):
                check_keys(ArmSpec, arm, f"arms[{index}].")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return config_from_dict(AblationSpec, data, source=source)


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> tuple[AblationSpec, Path]:
    """(spec, its file) from a YAML path or a shipped spec name, with ``key=value`` overrides
    (dotted keys, YAML values, as for training configs: ``output=runs/x``)."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        path = shipped_spec(str(path))
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read ablation spec {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    data = apply_overrides(data if data is not None else {}, overrides)
    return spec_from_dict(data, source=str(path)), path


def base_config_path(name: str) -> Path:
    """A training config name (``train_ablation``) or YAML path -> its file."""
    if name in CONFIG_NAMES:
        return shipped_train_config(name)
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        return shipped_train_config(name)  # ConfigError naming the closest shipped name
    return path.resolve()


def driver_overrides(spec: AblationSpec, arm: ArmSpec, seed: int, run_dir: Path) -> list[str]:
    """Every override of one run's train command: the spec's, the arm's, then the driver's."""
    paths = [str(Path(p).resolve()) for p in spec.data.paths]
    cache = str(Path(spec.data.cache_dir).resolve()) if spec.data.cache_dir else ""
    return [
        "runtime.progress_bar=false",  # the log file gets lines, not a progress bar
        *spec.training.overrides,
        *arm.overrides,
        f"data.paths={json.dumps(paths)}",
        f"data.cache_dir={json.dumps(cache)}",
        f"train.steps={spec.training.steps}",
        f"train.batch_size={spec.training.batch_size}",
        f"seed={seed}",
        f"run_dir={json.dumps(str(run_dir))}",
    ]


def arm_eval_of(config: TrainConfig) -> ArmEval:
    """How checkpoints trained with ``config`` are evaluated (see :class:`ArmEval`)."""
    limits = load_model_config(config.model).limits
    if config.data.window_mode == "event":
        return ArmEval("event", limits.max_action_steps, "events")
    instruction = "task" if config.data.fixed_instruction == "task" else "events"
    return ArmEval("unified", config.data.fixed_window_steps, instruction)


def resolve(spec: AblationSpec, spec_path: Path) -> Plan:
    """The runs of ``spec``, each arm's training config validated; ConfigError when an arm's
    config is invalid, when arms differ in model or samples, or a fixed window exceeds the
    model's chunk limit."""
    output = Path(spec.output).resolve()
    config_path = base_config_path(spec.training.base_config)
    runs, arm_eval, models = [], {}, {}
    for arm in spec.arms:
        for seed in spec.training.seeds:
            run_dir = output / "runs" / arm.name / f"seed{seed}"
            overrides = driver_overrides(spec, arm, seed, run_dir)
            try:
                config = load_train_config(config_path, overrides)
                model = load_model_config(config.model)
            except ConfigError as error:
                raise ConfigError(f"arm {arm.name!r}: {error}") from None
            runs.append(
                Run(
                    arm.name,
                    seed,
                    config,
                    config_path,
                    tuple(overrides),
                    run_dir,
                    output / "logs" / f"{arm.name}_seed{seed}.log",
                )
            )
            models[arm.name] = config_to_dict(model)
            samples = config.train.steps * config.train.batch_size
            require(
                samples == spec.training.samples,
                f"arm {arm.name!r} would train on {samples} samples, not {spec.training.samples}",
            )
            if config.data.window_mode == "fixed":
                require(
                    config.data.fixed_window_steps <= model.limits.max_action_steps,
                    f"arm {arm.name!r}: data.fixed_window_steps={config.data.fixed_window_steps} "
                    f"exceeds the model's limits.max_action_steps={model.limits.max_action_steps}",
                )
        arm_eval[arm.name] = arm_eval_of(runs[-1].config)
    first = spec.arms[0].name
    for name, model in models.items():
        require(
            model == models[first],
            f"arms {first!r} and {name!r} train different architectures "
            f"({models[first]['name']!r} vs {model['name']!r}): an ablation compares one model",
        )
    if spec.check_protocol:
        modes = {e.mode for e in arm_eval.values()}
        require(
            modes == {"event", "unified"},
            "the protocol compares event windows with fixed windows: the arms need both "
            "data.window_mode=event and data.window_mode=fixed",
        )
    return Plan(spec, spec_path.resolve(), output, tuple(runs), arm_eval)

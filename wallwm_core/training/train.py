"""Train WALL-WM from recorded episodes.

    python -m wallwm_core.training.train CONFIG.yaml [--resume RUN_DIR] [key=value ...]
    torchrun --nproc-per-node N -m wallwm_core.training.train CONFIG.yaml [...]

Stages: (1) data: read episodes, cut windows, train the codec and fill the latent cache
(:func:`wallwm_core.training.data.prepare_data`); (2) the codec is frozen; (3) the denoiser
(video + action towers, text encoder, heads) trains on cached latents. See docs/training.md.

Each optimiser step draws ``train.batch_size`` window indices with the loop's numpy generator
(weighted by the data's balancing weights), splits them into ``world_size * grad_accum_steps``
micro-batches and gives micro-batch ``k`` the noise generator seeded by ``(seed, step, k)``: so
the step's samples and noise depend only on the step, which makes resume exact and a run on N
processes match one process that accumulates N micro-batches.

Exit codes: 0 done, 2 bad input (config, dataset, resume mismatch; nothing is overwritten),
130 / 143 stopped by SIGINT / SIGTERM after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from tqdm.contrib.logging import logging_redirect_tqdm

from wallwm_core.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    MODEL_CONFIG_FILE,
    Checkpoint,
    CheckpointError,
    CheckpointMetadata,
    load_checkpoint,
    load_module_state,
    save_checkpoint,
    unique_state_dict,
)
from wallwm_core.config_loading import ConfigError
from wallwm_core.inference.config import default_inference_config
from wallwm_core.inference.deployment import DeploymentMetadata
from wallwm_core.model.config import (
    ModelConfig,
    config_to_dict,
    load_model_config,
    model_config_from_dict,
)
from wallwm_core.model.wallwm import WallWM, build_model
from wallwm_core.normalization import NormalizationStats
from wallwm_core.training import checkpoints as ckpt
from wallwm_core.training.config import (
    TrainConfig,
    load_train_config,
    train_config_from_dict,
    train_config_to_dict,
)
from wallwm_core.training.distributed import (
    DistInfo,
    ModelRunner,
    all_reduce,
    barrier,
    full_tensor,
    init_distributed,
    like_shard,
    shutdown_distributed,
    wrap,
)
from wallwm_core.training.ema import EMA
from wallwm_core.training.metrics import MetricsLog
from wallwm_core.training.objective import compute_loss
from wallwm_core.training.optim import MuonAdamW
from wallwm_core.training.validation import evaluate

logger = logging.getLogger("wallwm_core.training")

CONFIG_FILE = "config.yaml"
DATA_REPORT_FILE = "data_report.json"
NOISE_SEED_STRIDE = 1_000_003
EXIT_BAD_INPUT = 2
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
LOSS_KEYS = ("total", "video", "action", "dct", "event_length")

PrepareFn = Callable[..., Any]  # prepare_data(config.data, model, log=..., device=...)


class BadInputError(ValueError):
    """Input the run refuses (exit code 2; nothing written)."""


# ----------------------------------------------------------------------------------------------
# state
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrainState:
    """Everything a step changes, plus what it needs to run."""

    model: WallWM  # the raw module (its parameters may be FSDP2 shards)
    runner: nn.Module  # ModelRunner, possibly DDP/FSDP2-wrapped
    optimizer: MuonAdamW
    ema: EMA
    index_rng: np.random.Generator
    step: int = 0
    samples_seen: int = 0
    best_value: float = math.inf
    fsdp: bool = False


def micro_batch_indices(
    index_rng: np.random.Generator, weights: np.ndarray, config: TrainConfig, info: DistInfo
) -> list[np.ndarray]:
    """This rank's micro-batches of one step (all ranks draw the same global batch)."""
    global_batch = config.train.batch_size
    slots = info.world_size * config.train.grad_accum_steps
    if global_batch % slots:
        raise BadInputError(
            f"train.batch_size={global_batch} must be divisible by world_size * "
            f"grad_accum_steps = {info.world_size} * {config.train.grad_accum_steps}"
        )
    drawn = index_rng.choice(len(weights), size=global_batch, replace=True, p=weights)
    size = global_batch // slots
    first = info.rank * config.train.grad_accum_steps
    return [
        drawn[(first + k) * size : (first + k + 1) * size]
        for k in range(config.train.grad_accum_steps)
    ]


def noise_generator(seed: int, step: int, slot: int) -> torch.Generator:
    """Noise of micro-batch ``slot`` (global numbering) of optimiser step ``step``."""
    return torch.Generator().manual_seed((seed * NOISE_SEED_STRIDE + step) * 4096 + slot)


def autocast_for(config: TrainConfig, device: torch.device) -> Callable[[], Any]:
    """A context factory: bfloat16 autocast on CUDA when configured, else nothing."""
    if device.type == "cuda" and config.runtime.precision == "bf16":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def train_step(
    state: TrainState, dataset: Any, config: TrainConfig, info: DistInfo
) -> dict[str, float]:
    """One optimiser step over the global batch; returns losses, grad norm, lr and timings
    (seconds of data, forward, backward, optimiser on this rank)."""
    timings = dict.fromkeys(("data", "forward", "backward", "optimizer"), 0.0)
    clock = time.perf_counter
    sync = torch.cuda.synchronize if info.device.type == "cuda" else (lambda: None)
    lr = config.optim.learning_rate(state.step, config.train.steps)
    state.optimizer.set_lr(lr)
    state.optimizer.zero_grad()
    state.model.train()
    autocast = autocast_for(config, info.device)
    accum = config.train.grad_accum_steps
    sums = torch.zeros(len(LOSS_KEYS), dtype=torch.float64)
    start = clock()
    micro_batches = micro_batch_indices(state.index_rng, dataset.weights, config, info)
    timings["data"] += clock() - start
    for k, indices in enumerate(micro_batches):
        start = clock()
        batch = dataset.batch(indices.tolist()).to(info.device)
        timings["data"] += clock() - start
        slot = info.rank * accum + k
        generator = noise_generator(config.seed, state.step, slot)
        last = k == accum - 1
        sync_context = (
            state.runner.no_sync()
            if isinstance(state.runner, nn.parallel.DistributedDataParallel) and not last
            else contextlib.nullcontext()
        )
        with sync_context:
            start = clock()
            with autocast():
                losses = state.runner(compute_loss, batch, generator)
            sync()
            timings["forward"] += clock() - start
            start = clock()
            (losses.total / accum).backward()
            sync()
            timings["backward"] += clock() - start
        sums += torch.tensor([float(getattr(losses, n).detach()) for n in LOSS_KEYS])
    start = clock()
    clip = config.optim.grad_clip_norm
    parameters = [p for p in state.model.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, clip if clip > 0 else math.inf)
    state.optimizer.step()
    state.ema.update(state.model, state.step)
    sync()
    timings["optimizer"] += clock() - start
    state.step += 1
    state.samples_seen += config.train.batch_size
    return {
        **{n: float(v) / accum for n, v in zip(LOSS_KEYS, sums, strict=True)},
        "grad_norm": float(full_tensor(grad_norm)),
        "lr": lr,
        **{f"time_{n}": v for n, v in timings.items()},
    }


def build_optimizer(model: WallWM, config: TrainConfig, device: torch.device) -> MuonAdamW:
    """Muon + AdamW or AdamW only; AdamW uses its fused kernel (CPU and CUDA: on the CPU it is
    ~5-35x faster than the per-parameter loop, bench/bench_training.py), except for FSDP2
    shards on the CPU."""
    optim = config.optim
    fsdp_cpu = config.runtime.parallel == "fsdp2" and device.type == "cpu"
    settings = dataclasses.replace(
        model.config.optimizer,
        lr=optim.lr,
        weight_decay=optim.weight_decay,
        betas=optim.betas,
        adam_eps=optim.adam_eps,
        muon_momentum=optim.muon_momentum,
        grad_clip_norm=optim.grad_clip_norm,
    )
    return MuonAdamW(
        model,
        settings,
        use_muon=optim.optimizer == "muon_adamw",
        fused=None if fsdp_cpu else True,
    )


def init_state(
    model: WallWM, config: TrainConfig, info: DistInfo, compile_model: bool = False
) -> TrainState:
    """Wrap ``model`` for this job and build its optimiser, EMA and index generator."""
    model.to(info.device)
    if compile_model:
        for name in ("video_tower", "action_tower"):
            model.get_submodule(name).compile()
    runner = wrap(ModelRunner(model), info, config.runtime.parallel)
    fsdp = info.distributed and config.runtime.parallel == "fsdp2"
    return TrainState(
        model=model,
        runner=runner,
        optimizer=build_optimizer(model, config, info.device),
        ema=EMA(model, config.optim.ema_decay),
        index_rng=np.random.default_rng(config.seed),
        fsdp=fsdp,
    )


@contextlib.contextmanager
def ema_weights(state: TrainState) -> Iterator[None]:
    """The model's trainable weights temporarily replaced by their EMA."""
    params = dict(state.model.named_parameters())
    backup = {n: params[n].detach().clone() for n in state.ema.names}
    with torch.no_grad():
        for name in state.ema.names:
            params[name].copy_(state.ema.shadow[name])
    try:
        yield
    finally:
        with torch.no_grad():
            for name in state.ema.names:
                params[name].copy_(backup[name])


# ----------------------------------------------------------------------------------------------
# saving and restoring
# ----------------------------------------------------------------------------------------------
def _state_tensors(state: TrainState) -> dict[str, torch.Tensor]:
    """The model's state dict without tied aliases (FSDP2 shards keep their names)."""
    if not state.fsdp:
        return unique_state_dict(state.model)[0]
    keys = unique_state_dict(build_model(state.model.config, "meta"))[0]
    return {k: v for k, v in state.model.state_dict().items() if k in keys}


def full_model_state(state: TrainState) -> dict[str, torch.Tensor]:
    """The raw weights as full CPU tensors (collective under FSDP2: call on every rank)."""
    return {k: full_tensor(v).detach().cpu() for k, v in _state_tensors(state).items()}


def full_optimizer_state(state: TrainState) -> dict[str, Any]:
    if not state.fsdp:
        return state.optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return {
        "muon": None,
        "adamw": get_optimizer_state_dict(state.model, state.optimizer.adamw, options=options),
    }


def inference_checkpoint(
    model_state: dict[str, torch.Tensor],
    ema_state: dict[str, torch.Tensor],
    context: RunContext,
    step: int,
) -> Checkpoint:
    """A "trained" WALL-WM checkpoint holding the EMA weights."""
    config = context.model_config
    expected = unique_state_dict(build_model(config, "meta"))[0]
    weights = {k: (ema_state[k] if k in ema_state else model_state[k]) for k in expected}
    metadata = CheckpointMetadata(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        status="trained",
        deployment=context.deployment,
        inference=dataclasses.replace(
            default_inference_config(config), sampler=context.config.eval.sampler
        ),
        description=f"trained {step} steps by wallwm_core.training.train (EMA weights)",
    )
    return Checkpoint(
        model_config=config,
        model_state={k: v.float() if v.is_floating_point() else v for k, v in weights.items()},
        codec_state={k: v.detach().cpu() for k, v in unique_state_dict(context.codec)[0].items()},
        action_stats=context.action_stats,
        state_stats=context.state_stats,
        metadata=metadata,
    )


def save_step(state: TrainState, context: RunContext, *, best: bool = False) -> Path | None:
    """Write ``step_NNNNNN/`` (and ``best/`` when ``best``), point ``last`` at it, prune.

    Collective: every rank calls it; rank 0 writes.
    """
    model_state = full_model_state(state)
    ema_state = {k: full_tensor(v).detach().cpu() for k, v in state.ema.state_dict().items()}
    optimizer_state = full_optimizer_state(state)
    run_dir = context.run_dir
    final = None
    if context.info.is_main:
        checkpoint = inference_checkpoint(model_state, ema_state, context, state.step)
        name = ckpt.step_dir_name(state.step)
        tmp = ckpt.temporary_dir(run_dir, name)
        save_checkpoint(checkpoint, tmp)
        ckpt.write_training_state(
            tmp,
            model_state=model_state,
            ema_state=ema_state,
            optimizer_state=optimizer_state,
            index_rng=state.index_rng,
            counters={
                "step": state.step,
                "samples_seen": state.samples_seen,
                "best_value": state.best_value if math.isfinite(state.best_value) else None,
            },
        )
        final = run_dir / name
        ckpt.publish(tmp, final)
        ckpt.point_last(run_dir, final)
        ckpt.prune(run_dir, context.config.train.keep_last)
        if best:
            save_best(checkpoint, run_dir)
    barrier()
    return final


def save_best(checkpoint: Checkpoint, run_dir: Path) -> None:
    tmp = ckpt.temporary_dir(run_dir, ckpt.BEST)
    save_checkpoint(checkpoint, tmp)
    ckpt.publish(tmp, run_dir / ckpt.BEST)


def restore(state: TrainState, step_dir: Path) -> None:
    """Load model, EMA, optimiser, RNGs and counters of ``step_dir`` into ``state``."""
    saved = ckpt.read_training_state(step_dir)
    params = dict(state.model.named_parameters())
    buffers = dict(state.model.named_buffers())
    with torch.no_grad():
        for name, tensor in _state_tensors(state).items():
            if name not in saved["model"]:
                raise CheckpointError(f"{step_dir}: training state misses weight {name!r}")
            target = params.get(name, buffers.get(name))
            value = saved["model"][name].to(tensor.dtype)
            target.copy_(like_shard(value, target).to(target.device))
    state.ema.load_state_dict(
        {
            n: like_shard(saved["ema"][n], state.ema.shadow[n]).to(state.ema.shadow[n].device)
            for n in state.ema.names
        }
    )
    if state.fsdp:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        set_optimizer_state_dict(
            state.model,
            state.optimizer.adamw,
            saved["optimizer"]["adamw"],
            options=StateDictOptions(full_state_dict=True),
        )
    else:
        state.optimizer.load_state_dict(saved["optimizer"])
    counters = saved["state"]
    state.step = int(counters["step"])
    state.samples_seen = int(counters["samples_seen"])
    best = counters.get("best_value")
    state.best_value = math.inf if best is None else float(best)
    state.index_rng = ckpt.restore_index_rng(counters)


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunContext:
    """The fixed parts of a run."""

    config: TrainConfig
    model_config: ModelConfig
    run_dir: Path
    info: DistInfo
    codec: nn.Module
    action_stats: NormalizationStats
    state_stats: NormalizationStats
    deployment: DeploymentMetadata  # the recorded rig (cameras, image size, joints, ...)


class StopRequest:
    """SIGINT / SIGTERM set a flag; the loop saves a checkpoint and exits after the step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        for sig in EXIT_SIGNAL:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum
        logger.warning("signal %d: saving a checkpoint after this step, then exiting", signum)

    def __exit__(self, *_exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def resolve_codec(prepared: Any) -> nn.Module:
    """The frozen codec prepare_data trained."""
    codec = getattr(prepared, "codec", None)
    if not isinstance(codec, nn.Module):
        raise BadInputError("prepare_data returned no codec for the checkpoint")
    return codec


def init_weights(model: WallWM, codec: nn.Module, path: str | Path) -> None:
    """Copy a checkpoint's weights into ``model`` (``train.init_from``); the checkpoint must have
    the same architecture and the codec this run encodes with (its latents are the inputs)."""
    try:
        checkpoint = load_checkpoint(path)
        load_module_state(model, checkpoint.model_state, str(path))
    except (OSError, ValueError) as error:
        raise BadInputError(f"init_from {path}: {error}") from error
    codec_state = codec.state_dict()
    same_codec = checkpoint.codec_state.keys() == codec_state.keys() and all(
        torch.equal(checkpoint.codec_state[k].cpu(), v.cpu()) for k, v in codec_state.items()
    )
    if not same_codec:
        raise BadInputError(
            f"init_from {path}: its codec differs from the one this run trained or loaded from "
            "the cache (the model's latents would not match; use the same data.* codec settings)"
        )


def resolve_stats(
    prepared: Any, model_config: ModelConfig
) -> tuple[NormalizationStats, NormalizationStats]:
    """(action, state) statistics of the prepared data (``stats`` is the action tokens')."""
    action = getattr(prepared, "stats", None)
    state = getattr(prepared, "state_stats", None)
    if not isinstance(action, NormalizationStats) or not isinstance(state, NormalizationStats):
        raise BadInputError("prepare_data returned no action and state normalisation statistics")
    token_dim, state_dim = model_config.action.token_dim, model_config.action.state_dim
    if action.dim != token_dim or state.dim != state_dim:
        raise BadInputError(
            f"normalisation statistics have dimensions {action.dim} (actions) / {state.dim} "
            f"(state); the model needs {token_dim} / {state_dim}"
        )
    return action, state


def default_prepare() -> PrepareFn:
    from wallwm_core.training.data import prepare_data

    return prepare_data


def _model_config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            diffs += _model_config_diff(left, right, f"{prefix}{key}.")
        elif left != right:
            diffs.append(f"{prefix}{key}: run has {left!r}, config has {right!r}")
    return diffs


def resolve_run(args: argparse.Namespace) -> tuple[TrainConfig, ModelConfig, Path, Path | None]:
    """(config, model config, run dir, step dir to resume) from the command line; raises
    ConfigError / BadInputError before anything is written."""
    if args.resume is None:
        if args.config is None:
            raise BadInputError("give a training config (or --resume RUN_DIR)")
        config = load_train_config(args.config, args.overrides)
        run_dir = Path(config.run_dir)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise BadInputError(
                f"run_dir {run_dir} already exists and is not empty: resume it with "
                f"--resume {run_dir}, or choose another run_dir=... (nothing was overwritten)"
            )
        return config, load_model_config(config.model), run_dir, None

    run_dir = Path(args.resume)
    saved_file = run_dir / CONFIG_FILE
    if not saved_file.is_file():
        raise BadInputError(f"--resume {run_dir}: not a training run (no {CONFIG_FILE})")
    step_dir = ckpt.last_checkpoint(run_dir)
    try:
        saved_data = yaml.safe_load((step_dir / MODEL_CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise BadInputError(f"--resume {run_dir}: cannot read {step_dir.name}: {error}") from error
    saved_model = model_config_from_dict(saved_data, source=str(step_dir / MODEL_CONFIG_FILE))
    if args.config is not None:
        config = load_train_config(args.config, args.overrides)
    else:
        from wallwm_core.training.config import apply_overrides

        data = yaml.safe_load(saved_file.read_text())
        config = train_config_from_dict(apply_overrides(data, args.overrides), str(saved_file))
    config = dataclasses.replace(config, run_dir=str(run_dir))
    model_config = load_model_config(config.model)
    diffs = _model_config_diff(config_to_dict(saved_model), config_to_dict(model_config))
    if diffs:
        shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        raise BadInputError(
            f"--resume {run_dir}: the run was made with a different model config "
            f"({saved_model.name!r} vs {model_config.name!r}): {shown} (nothing was overwritten)"
        )
    return config, model_config, run_dir, step_dir


def _log_to_stderr() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def run(
    config: TrainConfig,
    model_config: ModelConfig,
    run_dir: Path,
    resume_from: Path | None,
    prepare: PrepareFn,
) -> int:
    """Train (after the command line is resolved); returns the exit code."""
    if config.runtime.threads > 0:
        torch.set_num_threads(config.runtime.threads)
    info = init_distributed(config.runtime.device)
    try:
        return _run(config, model_config, run_dir, resume_from, prepare, info)
    finally:
        shutdown_distributed()


def _run(
    config: TrainConfig,
    model_config: ModelConfig,
    run_dir: Path,
    resume_from: Path | None,
    prepare: PrepareFn,
    info: DistInfo,
) -> int:
    log = logger.info if info.is_main else logger.debug
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    log(f"stage 1/3: data and codec ({len(config.data.paths)} dataset folder(s))")
    if not info.is_main:
        barrier()  # rank 0 trains the codec and fills the latent cache first; the others reuse it
    prepared = prepare(config.data, model, log=log, device=info.device)
    if info.is_main:
        barrier()
    codec = resolve_codec(prepared).to(info.device)
    action_stats, state_stats = resolve_stats(prepared, model_config)
    log("stage 2/3: codec frozen")
    codec.requires_grad_(False).eval()
    if len(prepared.train) == 0 or len(prepared.val) == 0:
        raise BadInputError(
            f"no training or validation windows (train {len(prepared.train)}, val "
            f"{len(prepared.val)}): more episodes or a different data.val_fraction are needed"
        )
    deployment = getattr(prepared, "deployment", None)
    if not isinstance(deployment, DeploymentMetadata):
        raise BadInputError("prepare_data returned no deployment metadata for the checkpoint")
    deployment.validate_for(model_config)
    if config.init_from is not None and resume_from is None:
        init_weights(model, codec, config.init_from)
        log(f"weights from {config.init_from} (init_from)")
    context = RunContext(
        config, model_config, run_dir, info, codec, action_stats, state_stats, deployment
    )
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(
            yaml.safe_dump(train_config_to_dict(config), sort_keys=False)
        )
        report = {**getattr(prepared, "report", {}), "codec_psnr_db": prepared.codec_psnr_db}
        (run_dir / DATA_REPORT_FILE).write_text(json.dumps(report, indent=1, default=str))
        log(
            f"data: {len(prepared.train)} train / {len(prepared.val)} validation windows, codec "
            f"PSNR {prepared.codec_psnr_db:.1f} dB (report: {run_dir / DATA_REPORT_FILE})"
        )
    state = init_state(model, config, info, compile_model=config.runtime.compile)
    if resume_from is not None:
        restore(state, resume_from)
        log(f"resumed from {resume_from} at step {state.step}")
    metrics = (
        MetricsLog(run_dir, state.step if resume_from else None, config.runtime.tensorboard)
        if info.is_main
        else None
    )
    val_count = min(config.eval.windows, len(prepared.val))
    val_indices = np.random.default_rng(config.seed + 1).permutation(len(prepared.val))[:val_count]
    autocast = autocast_for(config, info.device)
    log(
        f"stage 3/3: denoiser, steps {state.step} -> {config.train.steps}, global batch "
        f"{config.train.batch_size}, {info.world_size} process(es), {torch.get_num_threads()} "
        f"thread(s) each, device {info.device}"
    )

    def validate_and_save(save: bool) -> None:
        with ema_weights(state):
            values = evaluate(
                state.runner,
                state.model,
                prepared.val,
                val_indices.tolist(),
                batch_size=config.eval.batch_size,
                open_loop_windows=min(config.eval.open_loop_windows, val_count),
                sampler=config.eval.sampler,
                action_stats=action_stats,
                info=info,
                autocast=autocast,
            )
        key = "val/action_mm" if "val/action_mm" in values else "val/total"
        best = values[key] < state.best_value
        if best:
            state.best_value = values[key]
        if metrics is not None:
            metrics.log(state.step, state.samples_seen, values)
            summary = ", ".join(f"{k[4:]} {v:.4g}" for k, v in values.items())
            log(f"step {state.step} validation (EMA): {summary}")
        if save:
            save_step(state, context, best=best)
        elif best:
            model_state = full_model_state(state)  # collective under FSDP2
            ema_state = {k: full_tensor(v).cpu() for k, v in state.ema.state_dict().items()}
            if info.is_main:
                checkpoint = inference_checkpoint(model_state, ema_state, context, state.step)
                save_best(checkpoint, run_dir)
            barrier()
        if metrics is not None:
            metrics.plot()

    progress = None
    if info.is_main and config.runtime.progress_bar:
        from tqdm import tqdm

        progress = tqdm(
            total=config.train.steps, initial=state.step, unit="step", dynamic_ncols=True
        )
    window: list[dict[str, float]] = []
    window_start = time.perf_counter()
    exit_code = 0
    with StopRequest() as stop, logging_redirect_tqdm():
        while state.step < config.train.steps:
            values = train_step(state, prepared.train, config, info)
            flags = all_reduce(torch.tensor([float(stop.signal or 0)]), op="max")
            window.append(values)
            step = state.step
            if progress is not None:
                progress.update(1)
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                rate = len(window) * config.train.batch_size / elapsed
                progress.set_postfix(loss=f"{values['total']:.4f}", samples_s=f"{rate:.1f}")
            if step % config.train.log_interval == 0 or step == config.train.steps:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                mean = {k: sum(v[k] for v in window) / len(window) for k in window[0]}
                if metrics is not None:
                    row = {f"train/{k}": mean[k] for k in (*LOSS_KEYS, "grad_norm", "lr")}
                    row["train/samples_per_s"] = len(window) * config.train.batch_size / elapsed
                    metrics.log(step, state.samples_seen, row)
                window, window_start = [], time.perf_counter()
            done = step == config.train.steps
            evaluate_now = step % config.train.eval_interval == 0 or done
            save_now = step % config.train.checkpoint_interval == 0 or done or flags.item() > 0
            pause = time.perf_counter()
            if evaluate_now:
                validate_and_save(save_now)
            elif save_now:
                save_step(state, context)
            window_start += time.perf_counter() - pause  # samples/s counts training time only
            if flags.item() > 0:
                exit_code = EXIT_SIGNAL.get(signal.Signals(int(flags.item())), 130)
                log(f"stopped by signal at step {step}; resume with --resume {run_dir}")
                break
    if progress is not None:
        progress.close()
    if metrics is not None:
        metrics.plot()
        metrics.close()
    if exit_code == 0:
        log(f"done: {state.step} steps, {state.samples_seen} samples; checkpoints in {run_dir}")
    return exit_code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wallwm_core.training.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Overrides: dotted keys, e.g. optim.lr=3e-4 data.balance_alpha=0 train.steps=20",
    )
    parser.add_argument(
        "config", nargs="?", help="training config: a YAML path or a shipped name (train_cpu, ...)"
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue this run from 'last'")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = _parser().parse_args(argv)
    # `train --resume RUN k=v`: the first override lands in `config`.
    if args.config is not None and "=" in args.config and not args.config.endswith(".yaml"):
        args.overrides = [args.config, *args.overrides]
        args.config = None
    return args


def main(argv: Sequence[str] | None = None, prepare: PrepareFn | None = None) -> int:
    """The command line; ``prepare`` replaces prepare_data (tests pass synthetic data)."""
    _log_to_stderr()
    args = parse_args(argv)
    try:
        config, model_config, run_dir, resume_from = resolve_run(args)
        return run(config, model_config, run_dir, resume_from, prepare or default_prepare())
    except (ConfigError, CheckpointError, BadInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as error:  # the data side's DatasetError (a ValueError subclass)
        if "DatasetError" not in {cls.__name__ for cls in type(error).__mro__}:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

"""The run directory's checkpoints: inference checkpoint + full training state per step.

Layout::

    <run_dir>/step_000200/            a WALL-WM checkpoint (wallwm_core.checkpoint): status
                                      "trained", the EMA weights, the codec, the normalisation
                                      statistics; WallWMPolicy.from_pretrained loads it
    <run_dir>/step_000200/training_state/
        model.safetensors             the raw (non-EMA) weights
        ema.safetensors               the EMA of the trainable weights
        optimizer.pt                  Muon + AdamW state dicts (torch.save, tensors + numbers)
        rng.pt                        torch CPU (and CUDA) generator states
        state.json                    step, samples seen, best validation value, the numpy
                                      index generator (the sampler position), numpy/python RNGs
    <run_dir>/last                    symlink to the newest step directory
    <run_dir>/best/                   the inference checkpoint of the best validation result

A step directory is written under a temporary name and renamed when complete, so an
interrupted save never leaves a half checkpoint behind ``last``. The newest ``keep_last`` step
directories are kept.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from wallwm_core.checkpoint import CheckpointError

STEP_PREFIX = "step_"
TRAINING_STATE = "training_state"
LAST = "last"
BEST = "best"


def step_dir_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:06d}"


def step_dirs(run_dir: Path) -> list[Path]:
    """Complete step directories, oldest first."""
    found = [
        p
        for p in run_dir.glob(f"{STEP_PREFIX}*")
        if p.is_dir() and p.name[len(STEP_PREFIX) :].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX) :]))


def last_checkpoint(run_dir: Path) -> Path:
    """The step directory ``last`` points to; CheckpointError if there is none."""
    link = run_dir / LAST
    if link.is_symlink() or link.exists():
        target = link.resolve()
        if target.is_dir():
            return target
    raise CheckpointError(f"{run_dir}: no '{LAST}' checkpoint to resume from")


def _save_tensors(state: Mapping[str, torch.Tensor], path: Path) -> None:
    safetensors.torch.save_file(
        {k: v.detach().to("cpu").contiguous() for k, v in state.items()}, str(path)
    )


def write_training_state(
    directory: Path,
    *,
    model_state: Mapping[str, torch.Tensor],
    ema_state: Mapping[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    index_rng: np.random.Generator,
    counters: dict[str, Any],
) -> None:
    """Write ``directory/training_state/`` (see the module doc)."""
    folder = directory / TRAINING_STATE
    folder.mkdir(parents=True, exist_ok=True)
    _save_tensors(model_state, folder / "model.safetensors")
    _save_tensors(ema_state, folder / "ema.safetensors")
    torch.save(optimizer_state, folder / "optimizer.pt")
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["torch_cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, folder / "rng.pt")
    state = {
        **counters,
        "index_rng": index_rng.bit_generator.state,
        "numpy_global": _numpy_global_state(),
        "python_random": _python_random_state(),
    }
    (folder / "state.json").write_text(json.dumps(state, indent=1))


def read_training_state(directory: Path) -> dict[str, Any]:
    """The files of ``directory/training_state/`` (tensors on the CPU), and restores the global
    numpy / python / torch RNGs."""
    folder = directory / TRAINING_STATE
    try:
        state = json.loads((folder / "state.json").read_text())
        result = {
            "model": safetensors.torch.load_file(str(folder / "model.safetensors")),
            "ema": safetensors.torch.load_file(str(folder / "ema.safetensors")),
            "optimizer": torch.load(folder / "optimizer.pt", weights_only=True),
            "state": state,
        }
        rng = torch.load(folder / "rng.pt", weights_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{folder}: cannot read the training state: {error}") from error
    torch.set_rng_state(rng["torch_cpu"])
    if "torch_cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["torch_cuda"])
    np.random.set_state(_numpy_tuple(state["numpy_global"]))
    random.setstate(_python_tuple(state["python_random"]))
    return result


def restore_index_rng(state: dict[str, Any]) -> np.random.Generator:
    """The loop's numpy index generator exactly where it was saved."""
    generator = np.random.default_rng()
    generator.bit_generator.state = state["index_rng"]
    return generator


def _numpy_global_state() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _numpy_tuple(state: list[Any]) -> tuple[Any, ...]:
    name, keys, pos, has_gauss, cached = state
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)


def _python_random_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _python_tuple(state: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def temporary_dir(run_dir: Path, name: str) -> Path:
    """An empty ``.<name>.tmp`` folder inside ``run_dir`` to build a checkpoint in."""
    tmp = run_dir / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, final: Path) -> None:
    """Move a completed checkpoint folder into place (replacing an older one of that name)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)


def point_last(run_dir: Path, step_dir: Path) -> None:
    """Atomically make ``run_dir/last`` a relative symlink to ``step_dir``."""
    tmp = run_dir / f".{LAST}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(step_dir.name, tmp)
    os.replace(tmp, run_dir / LAST)


def prune(run_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step directories (``last`` is always kept)."""
    keep = {run_dir / LAST}
    last = (run_dir / LAST).resolve() if (run_dir / LAST).is_symlink() else None
    for directory in step_dirs(run_dir)[:-keep_last]:
        if directory.resolve() != last and directory not in keep:
            shutil.rmtree(directory)

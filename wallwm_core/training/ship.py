"""Copy one checkpoint of a training run into a directory that can be shipped in the repository.

    python -m wallwm_core.training.ship RUN_DIR --out DIR [--checkpoint best|last|step_NNNNNN]
        [--max-mb 25]

The shipped directory is the run's inference checkpoint (EMA weights, codec, normalisation
statistics; no optimiser or raw weights) plus what made it, under ``training/``: the run's
``config.yaml``, ``metrics.csv``, ``loss_curves.png`` and ``data_report.json``, and
``shipped.yaml`` (which step, from which run, when). The checkpoint is loaded with its checksums
verified before anything is written, and the copy is refused when it would exceed ``--max-mb``.
An existing ``--out`` is replaced only after the new copy is complete.

A fine-tuned run (``init_from`` in its config) also ships the run it started from: the same
training files of the run that holds the ``init_from`` checkpoint, under ``training/init_from/``
(``shipped.yaml`` names that checkpoint), so the whole history of the weights travels with them.

Exit codes: 0 written, 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from wallwm_core.checkpoint import (
    CODEC_WEIGHTS_FILE,
    METADATA_FILE,
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    NORMALIZATION_FILE,
    CheckpointError,
    load_checkpoint,
)
from wallwm_core.training import checkpoints as ckpt

CHECKPOINT_FILES = (
    METADATA_FILE,
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    CODEC_WEIGHTS_FILE,
    NORMALIZATION_FILE,
)
RUN_FILES = ("config.yaml", "metrics.csv", "loss_curves.png", "data_report.json")
TRAINING_DIR = "training"
SHIPPED_FILE = "shipped.yaml"
DEFAULT_MAX_MB = 25.0


class ShipError(ValueError):
    """The run or the chosen checkpoint cannot be shipped (the message says why)."""


def resolve_checkpoint(run_dir: Path, which: str) -> Path:
    """The checkpoint directory ``which`` (best, last or a step directory name) of ``run_dir``."""
    if not (run_dir / "config.yaml").is_file():
        raise ShipError(f"{run_dir}: not a training run (no config.yaml)")
    if which == ckpt.LAST:
        try:
            return ckpt.last_checkpoint(run_dir)
        except CheckpointError as error:
            raise ShipError(str(error)) from error
    if which != ckpt.BEST and not which.startswith(ckpt.STEP_PREFIX):
        raise ShipError(f"--checkpoint must be best, last or step_NNNNNN, got {which!r}")
    path = run_dir / which
    if not (path / METADATA_FILE).is_file():
        have = [p.name for p in ckpt.step_dirs(run_dir)]
        if (run_dir / ckpt.BEST).is_dir():
            have.append(ckpt.BEST)
        raise ShipError(f"{run_dir} has no checkpoint {which!r} (it has: {', '.join(have)})")
    return path


INIT_FROM_DIR = "init_from"


def base_run_files(run_dir: Path) -> tuple[str | None, list[Path]]:
    """(the run's ``init_from`` checkpoint, the training files of the run holding it)."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    init_from = config.get("init_from") if isinstance(config, dict) else None
    if not init_from:
        return None, []
    base = Path(init_from).parent
    if not (base / "config.yaml").is_file():
        return str(init_from), []
    return str(init_from), [base / name for name in RUN_FILES if (base / name).is_file()]


def ship(run_dir: Path, out: Path, which: str = ckpt.BEST, max_mb: float = DEFAULT_MAX_MB) -> Path:
    """Write the shippable copy of ``run_dir``'s checkpoint ``which`` to ``out``; return ``out``."""
    source = resolve_checkpoint(run_dir, which)
    try:
        checkpoint = load_checkpoint(source)
    except CheckpointError as error:
        raise ShipError(f"{source}: {error}") from error
    if checkpoint.metadata.status != "trained":
        raise ShipError(f"{source}: status is {checkpoint.metadata.status!r}, not 'trained'")
    files = [source / name for name in CHECKPOINT_FILES]
    extras = [run_dir / name for name in RUN_FILES if (run_dir / name).is_file()]
    init_from, base_files = base_run_files(run_dir)
    size_mb = sum(p.stat().st_size for p in files + extras + base_files) / 1e6
    if size_mb > max_mb:
        raise ShipError(f"{source}: {size_mb:.1f} MB with its training files, over {max_mb} MB")

    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / TRAINING_DIR).mkdir(parents=True)
    for path in files:
        shutil.copyfile(path, tmp / path.name)
    for path in extras:
        shutil.copyfile(path, tmp / TRAINING_DIR / path.name)
    if base_files:
        (tmp / TRAINING_DIR / INIT_FROM_DIR).mkdir()
    for path in base_files:
        shutil.copyfile(path, tmp / TRAINING_DIR / INIT_FROM_DIR / path.name)
    record = {
        "run_dir": str(run_dir),
        "checkpoint": source.resolve().name if which != ckpt.BEST else ckpt.BEST,
        "description": checkpoint.metadata.description,
        "shipped_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "size_mb": round(size_mb, 2),
    }
    if init_from is not None:
        record["init_from"] = init_from
    (tmp / TRAINING_DIR / SHIPPED_FILE).write_text(yaml.safe_dump(record, sort_keys=False))
    load_checkpoint(tmp)  # the copy verifies too
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wallwm_core.training.ship", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="a training run directory")
    parser.add_argument("--out", type=Path, required=True, help="the directory to write")
    parser.add_argument("--checkpoint", default=ckpt.BEST, help="best (default), last, step_N")
    parser.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB)
    args = parser.parse_args(argv)
    try:
        out = ship(args.run_dir, args.out, args.checkpoint, args.max_mb)
    except ShipError as error:
        print(f"ship: {error} (nothing was written)", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    print(f"shipped {args.run_dir}/{args.checkpoint} -> {out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

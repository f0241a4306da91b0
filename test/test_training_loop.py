"""The training loop's mechanics on synthetic windows: run directory, resume, signals, DDP, CLI.

The data side is replaced by test/synthetic_windows.py (fixed random windows); the real-data
smoke run lives in the data side's tests.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml
from synthetic_windows import synthetic_prepare

from wallwm_core.model.config import load_model_config
from wallwm_core.model.wallwm import build_model
from wallwm_core.training import train
from wallwm_core.training.config import CONFIG_NAMES, shipped_train_config
from wallwm_core.wallwm_policy import WallWMPolicy

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(shipped_train_config("train_smoke"))
FAST = ["eval.windows=4", "eval.open_loop_windows=2", "runtime.tensorboard=false"]


def _env() -> dict[str, str]:
    paths = [str(REPO), str(REPO / "sim"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _weights(step_dir: Path, name: str = "model") -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(step_dir / "training_state" / f"{name}.safetensors"))


def _run(run_dir: Path, *overrides: str, prepare=synthetic_prepare) -> int:
    return train.main([SMOKE, f"run_dir={run_dir}", *FAST, *overrides], prepare=prepare)


class _SignalAt:
    """prepare_data whose training windows send SIGTERM to this process during the Nth batch."""

    def __init__(self, call: int) -> None:
        self.call = call

    def __call__(self, *args, **kwargs):
        prepared = synthetic_prepare(*args, **kwargs)
        original, calls = prepared.train.batch, [0]

        def batch(indices):
            calls[0] += 1
            if calls[0] == self.call:
                os.kill(os.getpid(), signal.SIGTERM)
            return original(indices)

        prepared.train.batch = batch
        return prepared


def test_shipped_train_configs_load() -> None:
    for name in CONFIG_NAMES:
        assert shipped_train_config(name).is_file()
        train.load_train_config(shipped_train_config(name))


def test_run_directory_and_trained_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = ["train.steps=6", "train.checkpoint_interval=2", "train.keep_last=2"]
    assert _run(run_dir, *overrides, "train.eval_interval=3", "runtime.tensorboard=true") == 0
    steps = sorted(p.name for p in run_dir.glob("step_*"))
    assert steps == ["step_000004", "step_000006"]  # keep_last=2 pruned step 2
    assert (run_dir / "last").resolve().name == "step_000006"
    assert (run_dir / "loss_curves.png").stat().st_size > 0
    if importlib.util.find_spec("tensorboard") is not None:  # pinned; absent in an old venv
        assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["train"]["steps"] == 6 and resolved["run_dir"] == str(run_dir)
    with (run_dir / "metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["step"]) for r in rows if r["val/total"]] == [3, 6]
    assert all(float(r["val/hold_mm"]) > 0 for r in rows if r["val/total"])

    for directory in (run_dir / "last", run_dir / "best"):
        policy = WallWMPolicy.from_pretrained(directory, device="cpu")
        assert policy.status == "trained"
    # The inference checkpoint holds the EMA weights, not the raw ones.
    last = run_dir / "last"
    raw, ema = _weights(last), _weights(last, "ema")
    inference = safetensors.torch.load_file(str(last / "model.safetensors"))
    name = next(n for n in ema if not torch.equal(ema[n], raw[n]))
    assert torch.equal(inference[name], ema[name])


def test_sigterm_saves_and_resume_is_exact(tmp_path: Path) -> None:
    overrides = ["train.steps=6", "train.checkpoint_interval=6", "train.eval_interval=3"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _run(straight, *overrides) == 0
    # SIGTERM during step 3: the loop finishes the step, saves it and exits 143.
    assert _run(split, *overrides, prepare=_SignalAt(3)) == 143
    assert (split / "last").resolve().name == "step_000003"
    assert train.main(["--resume", str(split)], prepare=synthetic_prepare) == 0

    for name in ("model", "ema"):
        a, b = _weights(straight / "last", name), _weights(split / "last", name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name} {key} differs after resume"
    state_a = torch.load(straight / "last" / "training_state" / "optimizer.pt")
    state_b = torch.load(split / "last" / "training_state" / "optimizer.pt")
    moments_a = [t for s in state_a["adamw"]["state"].values() for t in s.values()]
    moments_b = [t for s in state_b["adamw"]["state"].values() for t in s.values()]
    assert all(torch.equal(x, y) for x, y in zip(moments_a, moments_b, strict=True))
    # metrics.csv continues where the checkpoint was: each training step logged once.
    with (split / "metrics.csv").open() as stream:
        train_rows = [int(r["step"]) for r in csv.DictReader(stream) if r["train/total"]]
    assert train_rows == sorted(set(train_rows)) and train_rows[-1] == 6


@pytest.mark.parametrize("parallel", ["ddp", "fsdp2"])
def test_two_processes_match_one_process(tmp_path: Path, parallel: str) -> None:
    """2 gloo ranks x 2 windows == 1 process accumulating 2 micro-batches of 2 windows, with
    DDP and with FSDP2 (fully_shard).

    Tolerance: 1e-5 absolute on every weight after 3 AdamW steps (only the reduction order of
    the gradient sum differs: all-reduce / reduce-scatter vs accumulation).
    """
    overrides = [
        *FAST,
        "train.steps=3",
        "train.batch_size=4",
        "train.checkpoint_interval=3",
        "train.eval_interval=3",
        "optim.optimizer=adamw",
    ]
    single = tmp_path / "single"
    assert _run(single, *overrides, "train.grad_accum_steps=2") == 0
    ddp = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(Path(__file__).parent / "synthetic_train_worker.py"),
        SMOKE,
        f"run_dir={ddp}",
        f"runtime.parallel={parallel}",
        *overrides,
    ]
    env = {**_env(), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = _weights(single / "last"), _weights(ddp / "last")
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= 1e-5, f"largest weight difference {worst}"
    torch.manual_seed(0)  # the run's seed: the initial weights
    initial = build_model(load_model_config("tiny")).state_dict()
    moved = max(float((a[k] - initial[k]).abs().max()) for k in a)
    assert moved > 100 * max(worst, 1e-7)  # the weights moved: the comparison is not vacuous
    # Validation covers the same windows: the hold-still baseline is identical.
    rows = [
        [r for r in csv.DictReader((d / "metrics.csv").open()) if r["val/total"]][-1]
        for d in (single, ddp)
    ]
    hold = [float(row["val/hold_mm"]) for row in rows]
    assert math.isclose(hold[0], hold[1], rel_tol=1e-9)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "wallwm_core.training.train", *args]
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.rglob("*")
        if p.is_file()
    }


def test_cli_unknown_key_names_closest(tmp_path: Path) -> None:
    result = _cli(SMOKE, f"run_dir={tmp_path / 'run'}", "optim.learning_rate=1e-3")
    assert result.returncode == 2
    assert "optim.learning_rate" in result.stderr and "did you mean 'optim.lr'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_cli_refuses_existing_run_and_other_model_on_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert _run(run_dir, "train.steps=2", "train.checkpoint_interval=2") == 0
    before = _snapshot(run_dir)
    # A fresh run into the same folder.
    result = _cli(SMOKE, f"run_dir={run_dir}")
    assert result.returncode == 2 and "--resume" in result.stderr
    # Resume with another model config.
    result = _cli(SMOKE, "model=small", "--resume", str(run_dir))
    assert result.returncode == 2
    assert "different model config ('tiny' vs 'small')" in result.stderr
    assert "action_tower.num_layers: run has 2, config has 12" in result.stderr
    assert _snapshot(run_dir) == before


@pytest.mark.parametrize("bad", ["train.batch_size=3", "train.grad_accum_steps=0"])
def test_invalid_values_exit_2(tmp_path: Path, bad: str) -> None:
    code = train.main([SMOKE, f"run_dir={tmp_path / 'r'}", "train.grad_accum_steps=2", bad])
    assert code == 2 and not (tmp_path / "r").exists()


class DatasetError(ValueError):
    """Stands in for the data side's DatasetError (matched by name)."""


def test_dataset_error_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    def prepare(*_args, **_kwargs):
        raise DatasetError("demos: no episodes.jsonl in this folder")

    code = train.main([SMOKE, f"run_dir={tmp_path / 'r'}"], prepare=prepare)
    assert code == 2 and not (tmp_path / "r").exists()


def test_init_from_starts_from_a_checkpoints_weights(tmp_path: Path) -> None:
    source, tuned = tmp_path / "source", tmp_path / "tuned"
    assert _run(source, "train.steps=2", "train.checkpoint_interval=2") == 0
    # Zero steps of training cannot happen (steps >= 1), so compare the saved step-1 EMA,
    # which starts from the loaded weights and moves by (1 - decay) towards the raw ones.
    assert _run(tuned, "train.steps=1", f"init_from={source / 'last'}") == 0
    loaded = safetensors.torch.load_file(str(source / "last" / "model.safetensors"))
    fresh = tmp_path / "fresh"
    assert _run(fresh, "train.steps=1") == 0
    tuned_ema, fresh_ema = _weights(tuned / "last", "ema"), _weights(fresh / "last", "ema")
    name = next(n for n in tuned_ema if n in loaded and not torch.equal(loaded[n], fresh_ema[n]))
    # The fine-tune's EMA is near the loaded weights, the fresh run's is not.
    assert (tuned_ema[name] - loaded[name]).abs().max() < (
        fresh_ema[name] - loaded[name]
    ).abs().max()
    resolved = yaml.safe_load((tuned / "config.yaml").read_text())
    assert resolved["init_from"] == str(source / "last")


def test_init_from_bad_checkpoint_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    missing = train.main([SMOKE, f"run_dir={tmp_path / 'a'}", f"init_from={tmp_path / 'none'}"])
    assert missing == 2 and not (tmp_path / "a").exists()
    source = tmp_path / "source"
    assert _run(source, "train.steps=2", "train.checkpoint_interval=2") == 0

    def other_codec(*args, **kwargs):
        prepared = synthetic_prepare(*args, **kwargs)
        with torch.no_grad():
            next(prepared.codec.parameters()).add_(1.0)
        return prepared

    code = _run(tmp_path / "b", f"init_from={source / 'last'}", prepare=other_codec)
    assert code == 2 and not (tmp_path / "b").exists()
    other_model = _run(tmp_path / "c", "model=small", f"init_from={source / 'last'}")
    assert other_model == 2 and not (tmp_path / "c").exists()

"""Shipping a run's checkpoint: python -m wallwm_core.training.ship."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from synthetic_windows import synthetic_prepare

from wallwm_core.training import ship, train
from wallwm_core.training.config import shipped_train_config
from wallwm_core.wallwm_policy import WallWMPolicy

FAST = ["eval.windows=4", "eval.open_loop_windows=2", "runtime.tensorboard=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("ship") / "run"
    argv = [str(shipped_train_config("train_smoke")), f"run_dir={run}", *FAST]
    argv += ["train.steps=4", "train.checkpoint_interval=2", "train.eval_interval=2"]
    assert train.main(argv, prepare=synthetic_prepare) == 0
    return run


def test_ship_copies_the_inference_checkpoint_and_its_training_record(run_dir, tmp_path):
    out = tmp_path / "shipped"
    assert ship.main([str(run_dir), "--out", str(out), "--checkpoint", "step_000004"]) == 0
    assert not (out / "training_state").exists()  # no optimiser, no raw weights
    for name in ("config.yaml", "metrics.csv", "loss_curves.png", "shipped.yaml"):
        assert (out / "training" / name).is_file(), name
    record = yaml.safe_load((out / "training" / "shipped.yaml").read_text())
    assert record["checkpoint"] == "step_000004"
    policy = WallWMPolicy.from_pretrained(out, device="cpu")
    assert policy.status == "trained"
    # Shipping again replaces the copy (best this time).
    assert ship.main([str(run_dir), "--out", str(out)]) == 0
    assert yaml.safe_load((out / "training" / "shipped.yaml").read_text())["checkpoint"] == "best"


def test_a_fine_tuned_run_ships_the_run_it_started_from(run_dir, tmp_path):
    tuned = tmp_path / "tuned"
    argv = [str(shipped_train_config("train_smoke")), f"run_dir={tuned}", *FAST]
    argv += ["train.steps=2", "train.eval_interval=2", f"init_from={run_dir / 'step_000004'}"]
    assert train.main(argv, prepare=synthetic_prepare) == 0
    out = tmp_path / "shipped"
    assert ship.main([str(tuned), "--out", str(out)]) == 0
    base = out / "training" / "init_from"
    assert (base / "metrics.csv").read_bytes() == (run_dir / "metrics.csv").read_bytes()
    assert (base / "config.yaml").read_bytes() == (run_dir / "config.yaml").read_bytes()
    assert (out / "training" / "metrics.csv").read_bytes() == (tuned / "metrics.csv").read_bytes()
    record = yaml.safe_load((out / "training" / "shipped.yaml").read_text())
    assert record["init_from"] == str(run_dir / "step_000004")
    # A run that was not fine-tuned ships no such folder.
    plain = tmp_path / "plain"
    assert ship.main([str(run_dir), "--out", str(plain)]) == 0
    assert not (plain / "training" / "init_from").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--checkpoint", "step_000099"], "has no checkpoint 'step_000099'"),
        (["--checkpoint", "newest"], "must be best, last or step_NNNNNN"),
        (["--max-mb", "0.5"], "over 0.5 MB"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(run_dir, tmp_path, capsys, args, says):
    out = tmp_path / "shipped"
    assert ship.main([str(run_dir), "--out", str(out), *args]) == 2
    assert says in capsys.readouterr().err
    assert not out.exists()


def test_a_corrupt_checkpoint_is_not_shipped(run_dir, tmp_path, capsys):
    broken = tmp_path / "run"
    broken.mkdir()
    (broken / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    step = broken / "step_000002"
    step.mkdir()
    for path in (run_dir / "step_000004").iterdir():
        if path.is_file():
            (step / path.name).write_bytes(path.read_bytes())
    weights = step / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    out = tmp_path / "shipped"
    assert ship.main([str(broken), "--out", str(out), "--checkpoint", "step_000002"]) == 2
    assert "modified or corrupted" in capsys.readouterr().err
    assert not out.exists()


def test_not_a_run_directory(tmp_path, capsys):
    assert ship.main([str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a training run" in capsys.readouterr().err

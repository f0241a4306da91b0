"""The future-video diagnostic: which future frames a checkpoint's actions depend on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from synthetic_windows import synthetic_prepare

from wallwm_core.training import future_video, train
from wallwm_core.training.config import shipped_train_config

SMOKE = str(shipped_train_config("train_smoke"))

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("fv") / "run"
    overrides = ["train.steps=4", "train.eval_interval=4", "eval.windows=4"]
    code = train.main(
        [SMOKE, f"run_dir={run}", *overrides, "eval.open_loop_windows=4", "eval.batch_size=2"],
        prepare=synthetic_prepare,
    )
    assert code == 0
    return run


def test_predicted_reproduces_validation_and_sources_differ(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fv.json"
    args = [str(run_dir), "--checkpoint", str(run_dir / "last"), "--windows", "4"]
    assert future_video.main([*args, "--output", str(out)], prepare=synthetic_prepare) == 0
    errors = json.loads(out.read_text())["errors"]
    with (run_dir / "metrics.csv").open() as stream:
        row = [r for r in csv.DictReader(stream) if r["val/action_mm"]][-1]
    # Same windows, batches and noise as the run's validation: the same number.
    assert errors["predicted"]["position_mm"] == pytest.approx(float(row["val/action_mm"]))
    assert errors["hold"]["position_mm"] == pytest.approx(float(row["val/hold_mm"]))
    # The three futures are different inputs to the action tower.
    positions = {errors[s]["position_mm"] for s in future_video.SOURCES}
    assert len(positions) == 3


def test_bad_input_exits_2(run_dir: Path, tmp_path: Path) -> None:
    bad_source = [str(run_dir), "--sources", "predicted,dreamt"]
    assert future_video.main(bad_source, prepare=synthetic_prepare) == 2
    assert future_video.main([str(tmp_path)], prepare=synthetic_prepare) == 2  # not a run
    missing = [str(run_dir), "--checkpoint", str(tmp_path / "none")]
    assert future_video.main(missing, prepare=synthetic_prepare) == 2

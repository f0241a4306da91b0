"""The training command end to end on real data: four generated demos, 20 steps of `tiny`, a
checkpoint the policy node loads as trained."""

from __future__ import annotations

import csv
import math

from wallwm_core.training import train
from wallwm_core.training.config import shipped_train_config
from wallwm_ros.policy_node import PolicyNodeConfig, make_policy


def test_smoke_run_on_generated_demos(tmp_path) -> None:
    from wallwm_sim.generate_demos import generate

    demos = tmp_path / "demos"
    written, _ = generate(
        demos,
        ["pick_place", "push_to_target"],
        [0, 1],
        image_size=(64, 64),
        image_format="raw",
        show_progress=False,
    )
    assert written == 4
    run_dir = tmp_path / "run"
    code = train.main(
        [
            str(shipped_train_config("train_smoke")),
            f"run_dir={run_dir}",
            f"data.paths=[{demos}]",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.codec_steps=20",
            "data.val_fraction=0.5",
            "data.num_clusters=2",
            "runtime.tensorboard=false",
        ]
    )
    assert code == 0
    assert (run_dir / "last").resolve().name == "step_000020"

    policy = make_policy(PolicyNodeConfig(checkpoint=str(run_dir / "last"), device="cpu"))
    assert policy.capabilities.untrained is False
    assert policy.capabilities.sensors.cameras == ("front", "overhead", "wrist")
    assert make_policy(PolicyNodeConfig(checkpoint=str(run_dir / "best"))).status == "trained"

    with (run_dir / "metrics.csv").open() as stream:
        evaluations = [r for r in csv.DictReader(stream) if r["val/total"]]
    assert [int(r["step"]) for r in evaluations] == [10, 20]
    for name in ("val/action_mm", "val/action_deg", "val/hold_mm", "val/hold_deg"):
        assert all(math.isfinite(float(r[name])) for r in evaluations)
    # Hold-still on real demos: the arm moves within a window, so the baseline errs.
    assert float(evaluations[-1]["val/hold_mm"]) > 1.0

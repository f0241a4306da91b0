"""The README's main job as a user runs it: the simulated closed loop with the tiny WALL-WM model."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT, child_env


def test_main_job_runs_the_closed_loop_with_the_wallwm_model(tmp_path):
    out = tmp_path / "run"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "wallwm_ros.closed_loop.run_sim",
            "--timeout",
            "6",
            "--out",
            str(out),
        ],
        env=child_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    # no trained checkpoint exists: the output must say so plainly
    assert "no trained WALL-WM checkpoint exists" in run.stdout
    assert "nodes up: sim_node, policy_node, controller_node" in run.stdout
    assert "per-event outcomes:" in run.stdout and "Task Progress:" in run.stdout
    assert (out / "contact_sheet.png").stat().st_size > 0

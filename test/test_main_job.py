"""The README's main job as a user runs it: the simulated closed loop with the tiny WALL-WM model."""

from __future__ import annotations

import re
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
            "--lockstep",  # tests run the simulation in lockstep with the controller
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
    assert (
        "per-event outcomes (planner | rubric):" in run.stdout
        and "Task Progress (rubric):" in run.stdout
    )
    assert (out / "contact_sheet.png").stat().st_size > 0
    # the model's chunks reached the controller over DDS, and the simulated arm moved
    control = re.search(
        r"controller: (\d+) chunks accepted, (\d+) rejected; arm motion: up to ([\d.]+) rad",
        run.stdout,
    )
    assert control, run.stdout[-2000:]
    assert int(control[1]) > 0, control[0]
    assert float(control[3]) > 0.01, control[0]

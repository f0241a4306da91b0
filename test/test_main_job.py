"""The README's main job as a user runs it: the simulated closed loop with the shipped WALL-WM model."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO_ROOT, child_env

from wallwm_core.outcome import Outcome
from wallwm_ros.closed_loop.run_sim import print_episode_report
from wallwm_ros.closed_loop.sim_episode import RosEpisode
from wallwm_ros.send_goal import TaskResult
from wallwm_sim.tasks import TASK_NAMES, VARIANTS


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
    # the default policy is the trained checkpoint wallwm_core ships
    assert "policy: WALL-WM checkpoint " in run.stdout, run.stdout[-2000:]
    assert "checkpoints/wallwm-sim-cpu" in run.stdout
    assert "no trained WALL-WM checkpoint exists" not in run.stdout
    # the policy node runs in a process of its own and warmed its model up before serving
    assert re.search(
        r"nodes up: sim_node, controller_node, policy_node \(process \d+\)", run.stdout
    )
    assert "warm-up inference" in run.stdout + run.stderr
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
    # the policy node's inference time per chunk, from its feedback
    latency = re.search(
        r"inference per chunk \(policy node\): (\d+) chunks, first \d+ ms", run.stdout
    )
    assert latency and int(latency[1]) > 0, run.stdout[-2000:]


def _run_sim(*args: str, cwd=REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wallwm_ros.closed_loop.run_sim", *args],
        env=child_env(), cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_main_job_help_lists_tasks_variants_and_seeds():
    run = _run_sim("--help")
    assert run.returncode == 0
    text = " ".join(run.stdout.split())
    for name in (*TASK_NAMES, *VARIANTS):
        assert name in text, name
    assert "seeds: any integer >= 0" in text


def test_a_misspelled_task_is_named_before_anything_is_built(tmp_path):
    """It was reported only after the checkpoint was built, without a "did you mean"."""
    run = _run_sim("--task", "pick_plce", "--out", str(tmp_path / "run"))
    assert run.returncode == 2
    assert "did you mean 'pick_place'" in run.stderr, run.stderr
    assert "policy:" not in run.stdout and not (tmp_path / "run").exists()


def test_a_retried_event_keeps_its_number_and_a_disagreement_is_said(capsys):
    """A retry was listed as the next event; SUCCEEDED at Task Progress 0 was said silently."""
    events = (
        ("pick up the yellow cube", Outcome.TIMED_OUT, "event timed out"),
        ("pick up the yellow cube", Outcome.SUCCEEDED, "done"),
        ("place the yellow cube on the blue zone", Outcome.SUCCEEDED, "done"),
    )
    episode = RosEpisode(
        task="pick_place", seed=0, variant="train", task_description="put it there",
        events=tuple(e[0] for e in events),
        result=TaskResult(True, Outcome.SUCCEEDED, "task finished", 9.0, events),
        progress=0.0, points=0, max_points=10, criteria_met=(),
    )  # fmt: skip
    assert not print_episode_report(episode)
    out = capsys.readouterr().out
    assert "event 1 (attempt 2) 'pick up the yellow cube': SUCCEEDED" in out
    assert "event 2 'place the yellow cube on the blue zone'" in out
    assert "-- but the rubric disagrees: the task is NOT solved" in out
    assert "Task Progress (rubric): 0/100" in out

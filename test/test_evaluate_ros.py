"""The ROS evaluation harness as a user runs it: policy, controller and sim nodes over tasks x seeds.

Each run is its own process (its own ROS domain): a simulation bringup publishes the global
/clock, which must not meet another test's simulation.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT, child_env

from wallwm_core.replay_policy import ReplayPolicy
from wallwm_sim.closed_loop_policy import ClosedLoopPolicy
from wallwm_sim.sim import TabletopSim
from wallwm_sim.tasks import get_task
from wallwm_sim.tasks.base import TOTAL_POINTS


def _evaluate(*args: str, timeout_s: float = 400.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wallwm_ros.closed_loop.evaluate_ros", *args],
        env=child_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_expert_through_the_ros_nodes_over_two_tasks(tmp_path):
    out = tmp_path / "eval"
    run = _evaluate(
        "--policy", "expert", "--tasks", "pick_place,press_buttons", "--seeds", "0",
        "--videos", "1", "--output", str(out),
    )  # fmt: skip
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    report = json.loads((out / "report.json").read_text())

    assert report["policy"] == "expert (ROS nodes)"
    episodes = {e["task"]: e for e in report["episodes"]}
    assert sorted(episodes) == ["pick_place", "press_buttons"]
    for episode in episodes.values():
        assert episode["outcome"] == "SUCCEEDED", episode
        assert episode["score"] >= 80.0, episode
        assert episode["rejected_commands"] == 0
        assert episode["steps"] > 0 and episode["duration_s"] > 1.0
    # each episode's own script reached the policy node: press_buttons got three button events
    press = [e[0] for e in episodes["press_buttons"]["event_outcomes"]]
    assert len(press) == 3 and all("button" in instruction for instruction in press)
    assert all(outcome == "SUCCEEDED" for _, outcome, _ in episodes["pick_place"]["event_outcomes"])
    assert report["table"]["suite"]["num_episodes"] == 2
    assert report["table"]["suite"]["mean"] >= 80.0
    # the policy node was restarted with the second episode's replay file
    assert log.count("ready: policy=replay") == 2
    assert (out / "task_progress.png").stat().st_size > 0
    for task in ("pick_place", "press_buttons"):
        assert (out / "videos" / f"{task}_train_seed0.gif").stat().st_size > 0
    # every event attempt is judged by the planner and by its rubric milestone at episode end
    for episode in episodes.values():
        assert len(episode["events"]) == len(episode["event_outcomes"])
        assert all(e["checked_at"] == "episode_end" and e["milestone"] for e in episode["events"])
    flagged = [row for row in report["disagreements"] if row["what"] == "event"]
    assert len(flagged) == sum(not e["agrees"] for ep in episodes.values() for e in ep["events"])

    # Parity: the same replay through the simulator harness's driver (the nodes' core objects on
    # simulated time, no DDS) reaches the same Task Progress and milestones.
    for task, episode in episodes.items():
        replay = out / "work" / f"expert_{task}_train_seed0" / "expert_replay.yaml"
        events = [e["instruction"] for e in yaml.safe_load(replay.read_text())["events"]]
        policy = ClosedLoopPolicy(ReplayPolicy.from_yaml(replay), cameras=())
        with TabletopSim(policy.sim_config()) as sim:
            result = policy.run_episode(sim, task, 0, events=events).result
        assert result.score == episode["score"], (task, result.score, episode["score"])
        assert result.milestones == episode["milestones"]
        assert result.outcome == episode["outcome"]


def test_wallwm_checkpoint_through_the_ros_nodes_over_two_seeds(tmp_path):
    """The shipped checkpoint (the default) through the policy node, one node for every episode."""
    out = tmp_path / "eval"
    run = _evaluate(
        "--policy", "wallwm", "--tasks", "push_to_target", "--seeds", "0,1", "--timeout", "2",
        "--output", str(out),
    )  # fmt: skip
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert "no trained WALL-WM checkpoint exists" not in log
    assert log.count("ready: policy=wallwm") == 1  # one policy node serves every episode
    report = json.loads((out / "report.json").read_text())
    assert [e["seed"] for e in report["episodes"]] == [0, 1]
    # the policy node's inference time of every chunk, from the goal's feedback
    latency = report["table"]["push_to_target"]["inference_latency_ms"]
    assert latency["count"] == sum(len(e["chunk_latencies_ms"]) for e in report["episodes"]) > 0
    assert latency["p50"] > 0
    task = get_task("push_to_target")
    for episode in report["episodes"]:
        assert episode["outcome"] == "TIMED_OUT"
        # the score is the sim node's Task Progress: the points of the milestones it reports
        # (the check was 0 <= score <= 100, which any number passes)
        milestones = task.rubric(task.sample(episode["seed"], "train")).milestones
        assert sorted(episode["milestones"]) == sorted(m.name for m in milestones)
        points = sum(m.points for m in milestones if episode["milestones"][m.name])
        assert episode["score"] == pytest.approx(100.0 * points / TOTAL_POINTS)
        # the event running when the 2 s ran out timed out; those before it ended first
        outcomes = [outcome for _, outcome, _ in episode["event_outcomes"]]
        assert outcomes[-1] == "TIMED_OUT" and set(outcomes[:-1]) <= {"SUCCEEDED"}, outcomes
        assert [e["planner_outcome"] for e in episode["events"]] == outcomes
        assert 1.9 <= episode["duration_s"] <= 6.0  # 2 s goal limit, on simulation time


def test_bad_arguments_are_named_before_anything_starts(tmp_path):
    for args, message in (
        (("--tasks", "pick_plac"), "did you mean 'pick_place'"),
        (("--variants", "novel_gravity"), "unknown variants"),
        (("--policy", "oracle"), "invalid choice"),
        (("--timeout", "-1"), "timeout_s must be positive"),
    ):
        run = _evaluate(*args, "--output", str(tmp_path / "eval"), timeout_s=60.0)
        assert run.returncode == 2, run.stderr
        assert message in run.stderr, run.stderr
    assert not (tmp_path / "eval").exists()

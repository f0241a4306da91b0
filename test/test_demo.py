"""The main-job demo end to end: policy node process + goal over real DDS."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import child_env

from wallwm_ros.bringup_paths import bringup_config


def test_demo_executes_one_event_end_to_end() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wallwm_ros.demo"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: SUCCEEDED" in result.stdout
    assert "demo: OK" in result.stdout
    assert "no trained WALL-WM checkpoint" in result.stdout  # says plainly what policy ran
    # policy_status is latched: a late subscriber may miss the first IDLE, never the rest
    assert re.search(r"^policy states seen: (IDLE -> )?RUNNING -> IDLE$", result.stdout, re.M)


def test_policy_node_process_rejects_bad_parameter() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wallwm_ros.policy_node",
            "--ros-args",
            "-p",
            f"replay_file:={bringup_config('demo_replay.yaml')}",
            "-p",
            "policy_type:=replay",
            "-p",
            "goal_conflict:=maybe",
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "goal_conflict" in result.stderr and "maybe" in result.stderr

"""The send_goal CLI's exit codes, the shipped params file under a namespace, and shutting the
policy node down in the middle of a goal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import rclpy
import yaml
from conftest import child_env
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from wallwm_core.replay_policy import ReplayPolicy
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup_paths import bringup_config
from wallwm_ros.policy_node import PolicyNode
from wallwm_ros.send_goal import NoServerError, execute_event


def _send_goal_cli(namespace: str, *args: str) -> subprocess.CompletedProcess:
    # Same domain as this test process: the CLI talks to the node spun here.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "wallwm_ros.send_goal",
            *args,
            "--ros-args",
            "-r",
            f"__ns:={namespace}",
        ],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _replay_policy_node(context, namespace: str, replay_file) -> PolicyNode:
    return PolicyNode(
        namespace=namespace,
        context=context,
        parameter_overrides=[
            Parameter("policy_type", value="replay"),
            Parameter("replay_file", value=str(replay_file)),
        ],
    )


def test_send_goal_exit_codes(ros_context, spinner, namespace, replay_file):
    spinner.add(_replay_policy_node(ros_context, namespace, replay_file))
    for _ in range(3):  # an exit-time race once aborted the CLI intermittently
        ok = _send_goal_cli(namespace, "reach")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "result: SUCCEEDED" in ok.stdout and "progress" in ok.stdout

    # --task with --ros-args: the namespace remap must not be taken for an instruction
    task = _send_goal_cli(namespace, "--task", "tidy up", "--event", "reach")
    assert task.returncode == 0, task.stdout + task.stderr
    assert "event 1 'reach': SUCCEEDED" in task.stdout

    bogus = _send_goal_cli(namespace, "reach", "--speed", "11")
    assert bogus.returncode == 2 and "unrecognized arguments: --speed 11" in bogus.stderr

    unknown = _send_goal_cli(namespace, "juggle")
    assert unknown.returncode == 1 and "ABORTED" in unknown.stdout

    canceled = _send_goal_cli(namespace, "long wipe", "--cancel-after", "0.5")
    assert canceled.returncode == 1 and "CANCELED" in canceled.stdout

    missing = _send_goal_cli(namespace + "_nobody", "reach", "--server-wait", "1")
    assert missing.returncode == 3 and "no ExecuteEvent server" in missing.stderr


def test_shipped_params_file_applies_under_a_namespace(ros_context, tmp_path, replay_file):
    shipped = yaml.safe_load(bringup_config("policy_node.yaml").read_text())
    (key,) = shipped  # keep the shipped node key: it must match any namespace
    shipped[key]["ros__parameters"].update(
        goal_conflict="preempt",
        default_timeout=61.5,
        policy_type="replay",
        replay_file=str(replay_file),
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(shipped))

    node = PolicyNode(
        namespace="/arm1/left",
        context=ros_context,
        cli_args=["--ros-args", "--params-file", str(params)],
    )
    try:
        assert node.config.goal_conflict == "preempt"
        assert node.config.default_timeout == 61.5
    finally:
        node.destroy_node()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_node_stopped_mid_goal_exits_cleanly(
    ros_context, spinner, namespace, replay_file, stop_signal
):
    env = child_env()
    node = subprocess.Popen(
        [sys.executable, "-m", "wallwm_ros.policy_node", "--ros-args",
         "-r", f"__ns:={namespace}", "-p", "policy_type:=replay", "-p", f"replay_file:={replay_file}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = subprocess.Popen(
        [sys.executable, "-m", "wallwm_ros.send_goal", "long wipe",
         "--ros-args", "-r", f"__ns:={namespace}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # wait until the goal is running (the client prints feedback per chunk)
        first_line = client.stdout.readline()
        assert "progress" in first_line, first_line + client.stderr.read()
        node.send_signal(stop_signal)
        _, node_err = node.communicate(timeout=30)
        client_out, client_err = client.communicate(timeout=30)
    finally:
        for process in (node, client):
            if process.poll() is None:
                process.kill()
    assert node.returncode == 0
    assert "Traceback" not in node_err and "Error raised" not in node_err, node_err
    # the running goal ends before the node goes: the client is told, it never hangs
    assert client.returncode == 1, client_out + client_err
    assert "result: ABORTED" in client_out and "node is shutting down" in client_out


def test_waiting_client_whose_node_is_destroyed_gets_a_clear_error(
    ros_context, spinner, namespace, replay_file
):
    """Tearing a client node down under a waiting goal must end the wait, not raise from rclpy."""
    spinner.add(_replay_policy_node(ros_context, namespace, replay_file))
    client_spinner = BackgroundSpinner(SingleThreadedExecutor(context=ros_context))
    client = client_spinner.add(
        rclpy.create_node("client", namespace=namespace, context=ros_context)
    )
    started, outcome = threading.Event(), {}

    def wait_for_goal() -> None:
        try:
            outcome["result"] = execute_event(
                client, "long wipe", on_feedback=lambda _: started.set()
            )
        except NoServerError as error:
            outcome["error"] = str(error)
        except Exception as error:  # what must not happen: rclpy's InvalidHandle escaping
            outcome["unexpected"] = repr(error)

    waiter = threading.Thread(target=wait_for_goal, daemon=True)
    waiter.start()
    assert started.wait(20.0)
    client_spinner.close()  # destroys the client node while the goal runs
    waiter.join(10.0)
    assert not waiter.is_alive()
    assert outcome == {"error": "the client node was destroyed before the result"}


NODE_COMMANDS = {
    "policy_node": ["-p", "policy_type:=replay", "-p", "replay_file:={replay_file}"],
    "controller_node": ["-p", "urdf_file:=python://wallwm_sim/description/wallwm_arm.urdf"],
    "sim_node": ["-p", "cameras:=[]", "-p", "real_time:=true"],
}


@pytest.mark.parametrize("node_name", sorted(NODE_COMMANDS))
def test_repeated_signals_stop_a_node_cleanly(namespace, replay_file, node_name):
    """ros2 launch re-sends SIGINT, then SIGTERM, to a stopping node. spin_node restored the old
    handlers before the teardown, so the repeated signal raised KeyboardInterrupt tracebacks
    (4 of 5 runs). Here the signals keep coming, SIGINT and SIGTERM alternating, every 20 ms
    until the node has exited."""
    params = [arg.format(replay_file=replay_file) for arg in NODE_COMMANDS[node_name]]
    process = subprocess.Popen(
        [sys.executable, "-m", f"wallwm_ros.{node_name}", "--ros-args",
         "-r", f"__ns:={namespace}", *params],
        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = []
    try:
        for line in process.stdout:  # rclpy logs "ready: ..." once the node runs
            lines.append(line)
            if "ready:" in line:
                break
        assert lines and "ready:" in lines[-1], "".join(lines)
        started = time.monotonic()
        count = 0
        while process.poll() is None and count < 500:
            process.send_signal(signal.SIGINT if count % 2 == 0 else signal.SIGTERM)
            count += 1
            time.sleep(0.02)
        stopped_s = time.monotonic() - started
        output = "".join(lines) + process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    print(f"{node_name} stopped {stopped_s:.2f} s after the first of {count} signals")


def test_send_goal_prints_why_a_goal_was_rejected(ros_context, spinner, namespace, replay_file):
    """send_goal printed only "goal rejected"; the reason was in the node's log."""
    spinner.add(_replay_policy_node(ros_context, namespace, replay_file))
    empty = _send_goal_cli(namespace, "   ")
    assert empty.returncode == 1, empty.stdout + empty.stderr
    assert "goal rejected: " in empty.stdout and "empty instruction" in empty.stdout, empty.stdout


def test_expert_replay_command_writes_a_replay_file_for_policy_replay(tmp_path):
    """No documented way existed to write an expert replay file for ``policy:=replay``."""
    run = subprocess.run(
        [sys.executable, "-m", "wallwm_ros.closed_loop.expert_replay", "--task", "press_buttons",
         "--seed", "1", "--out", str(tmp_path)],
        env=child_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    path = tmp_path / "expert_replay.yaml"
    policy = ReplayPolicy.from_yaml(path)  # what the policy node loads for policy_type replay
    assert f"replay_file:={path.resolve()}" in run.stdout
    for instruction in policy.instructions:
        assert f"--event '{instruction}'" in run.stdout
    assert len(policy.instructions) == 3


def test_policy_node_without_a_checkpoint_says_how_to_serve_a_replay_file(namespace):
    """The README's hand-run policy_node failed without -p policy_type:=replay, and the message
    did not say so."""
    run = subprocess.run(
        [sys.executable, "-m", "wallwm_ros.policy_node", "--ros-args", "-r", f"__ns:={namespace}"],
        env=child_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "parameter 'checkpoint'" in run.stderr
    assert "-p policy_type:=replay -p replay_file:=FILE" in run.stderr

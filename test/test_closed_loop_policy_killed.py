"""The policy node dies mid-event (SIGKILL): the controller holds the arm within its watchdog bound.

Its own module: a simulation publishes the global /clock, so this bringup must not overlap the
one of test_closed_loop.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid

import rclpy
import yaml
from conftest import wait_for
from rclpy.executors import SingleThreadedExecutor
from test_closed_loop import CONFIG, SEED, TASK, Client

from wallwm_core.outcome import Outcome
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup import PolicyChoice, resolved_parameters, sim_bringup
from wallwm_ros.closed_loop.expert_replay import write_expert_replay
from wallwm_ros.closed_loop.inprocess_bringup import InProcessBringup
from wallwm_ros.send_goal import NoServerError, execute_task


def test_policy_node_killed_mid_event_controller_holds(tmp_path):
    """The policy node runs as its own process here, so it can really die (SIGKILL)."""
    replay_file, events = write_expert_replay(TASK, SEED, "train", tmp_path / "expert")
    context = rclpy.Context()
    rclpy.init(context=context)
    namespace = f"/kill{uuid.uuid4().hex[:8]}"
    sim_spec, policy_spec, controller_spec = sim_bringup(
        CONFIG,
        PolicyChoice("replay", replay_file=str(replay_file)),
        task=TASK,
        seed=SEED,
        lockstep=True,
    )
    params_file = tmp_path / "policy.yaml"
    params_file.write_text(
        yaml.safe_dump({"/**/policy_node": {"ros__parameters": resolved_parameters(policy_spec)}})
    )
    ros_args = ["--ros-args", "-r", f"__ns:={namespace}", "--params-file", str(params_file)]
    policy_process = subprocess.Popen(
        [sys.executable, "-m", "wallwm_ros.policy_node", *ros_args],
        env=dict(os.environ),  # the same ROS domain as this process
    )
    bringup = InProcessBringup([sim_spec, controller_spec], namespace=namespace, context=context)
    spinner = BackgroundSpinner(SingleThreadedExecutor(context=context))
    try:
        client = Client(
            spinner.add(rclpy.create_node("client", namespace=namespace, context=context))
        )
        reset = client.reset()
        done = {}

        def run_task() -> None:
            # A SIGKILLed server is noticed when its DDS lease expires (about 20 s), maybe after
            # this test ends and shuts ROS down: both end the goal with NoServerError.
            try:
                done["result"] = execute_task(
                    client.node, reset.task_description, events, server_wait_s=30.0
                )
            except NoServerError as error:
                done["error"] = error

        runner = threading.Thread(target=run_task, daemon=True)
        runner.start()
        # wait until the arm moves under the policy's chunks, then kill the policy node
        assert wait_for(lambda: len(client.joints) > 100, timeout_s=30.0)
        start_ns = client.latest_stamp_ns()
        assert wait_for(
            lambda: client.motion_between(start_ns, client.latest_stamp_ns(), False) > 0.01,
            timeout_s=40.0,
        )
        policy_process.send_signal(signal.SIGKILL)
        policy_process.wait(timeout=10)
        killed_ns = client.latest_stamp_ns()
        settle_ns = killed_ns + 1_500_000_000  # last chunk + end hold + braking
        client.wait_sim_time(settle_ns + 1_000_000_000)
        assert client.motion_between(settle_ns, settle_ns + 1_000_000_000) < 1e-3
        runner.join(timeout=15)  # the client notices the lost server
        assert "result" not in done or done["result"].outcome != Outcome.SUCCEEDED
    finally:
        if policy_process.poll() is None:
            policy_process.kill()
        spinner.close()
        bringup.close()
        rclpy.try_shutdown(context=context)

"""The main-job demo until the simulation lands: nodes over real DDS, one ExecuteEvent goal.

It starts the policy node as its own process (parameters from wallwm_bringup/config), then, from
this process, watches ``action_chunk`` and ``policy_status``, sends one next-event instruction
through the ExecuteEvent action, prints the feedback, checks every received chunk, and prints the
outcome. The policy is the scripted *replay* reference policy: the WALL-WM model is not in the
tree yet, and the output says so.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import rclpy
from rclpy.executors import MultiThreadedExecutor

from wallwm_core.action_chunk import InvalidChunkError
from wallwm_core.outcome import Outcome, PolicyState
from wallwm_msgs.msg import ActionChunk, PolicyStatus
from wallwm_ros import qos
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup_paths import bringup_config
from wallwm_ros.conversions import chunk_from_msg
from wallwm_ros.send_goal import NoServerError, execute_event, format_feedback


class ChunkMonitor:
    """Counts received chunks, validates each, and records policy states."""

    def __init__(self, node: rclpy.node.Node) -> None:
        self.valid_chunks = 0
        self.invalid: list[str] = []
        self.states: list[str] = []
        self.subscription = node.create_subscription(
            ActionChunk, "action_chunk", self._on_chunk, qos.COMMANDS
        )
        node.create_subscription(PolicyStatus, "policy_status", self._on_status, qos.LATCHED)

    def _on_chunk(self, msg: ActionChunk) -> None:
        try:
            chunk = chunk_from_msg(msg)
        except InvalidChunkError as error:
            self.invalid.append(str(error))
            return
        self.valid_chunks += 1
        print(
            f"  chunk {chunk.chunk_index}: {chunk.num_steps} steps x {chunk.step_period_ns / 1e6:.0f} ms, "
            f"first target {chunk.positions[0, 0].round(3).tolist()}, gripper {chunk.gripper[0, 0]:.2f}"
            + (" (ends event)" if chunk.ends_event else ""),
            flush=True,
        )

    def _on_status(self, msg: PolicyStatus) -> None:
        state = PolicyState(msg.state).name
        if not self.states or self.states[-1] != state:  # changes only: the status is re-sent
            self.states.append(state)


def start_policy_node(extra_ros_args: list[str]) -> subprocess.Popen:
    params = bringup_config("policy_node.yaml")
    replay = bringup_config("demo_replay.yaml")
    command = [
        sys.executable, "-m", "wallwm_ros.policy_node", "--ros-args",
        "--params-file", str(params), "-p", "policy_type:=replay",
        "-p", f"replay_file:={replay}", *extra_ros_args,
    ]  # fmt: skip
    return subprocess.Popen(command, env=os.environ.copy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the policy node and execute one event.")
    parser.add_argument("--instruction", default="press the red button")
    parser.add_argument("--timeout", type=float, default=30.0, help="goal time limit in seconds")
    args = parser.parse_args(argv)

    print("wallwm demo: policy node + ExecuteEvent goal over ROS 2 (DDS)")
    print(
        "NOTE: no trained WALL-WM checkpoint exists yet; the policy is the scripted replay "
        "reference policy (wallwm_bringup/config/demo_replay.yaml)."
    )
    node_process = start_policy_node([])
    rclpy.init()
    spinner = BackgroundSpinner(MultiThreadedExecutor())
    node = spinner.add(rclpy.create_node("wallwm_demo"))
    monitor = ChunkMonitor(node)
    try:
        # The goal must not start before the chunk topic is matched, or the first chunks are lost.
        deadline = time.monotonic() + 30.0
        while monitor.subscription.get_publisher_count() == 0 and time.monotonic() < deadline:
            if node_process.poll() is not None:
                print(f"demo failed: policy node exited with code {node_process.returncode}")
                return 3
            time.sleep(0.05)
        print(f"goal: {args.instruction!r}")
        result = execute_event(
            node,
            args.instruction,
            timeout_s=args.timeout,
            server_wait_s=30.0,
            on_feedback=lambda f: print("  feedback: " + format_feedback(f), flush=True),
        )
    except NoServerError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 3
    finally:
        spinner.close()
        rclpy.try_shutdown()
        node_process.send_signal(signal.SIGINT)
        try:
            node_process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node_process.kill()

    if not result.accepted:
        print("result: goal rejected")
        return 1
    print(
        f"result: {result.outcome.name} in {result.duration_s:.2f} s, {result.chunks_executed} chunks "
        f"({result.message}); chunks received and valid: {monitor.valid_chunks}, invalid: {len(monitor.invalid)}"
    )
    print("policy states seen: " + " -> ".join(monitor.states))
    ok = result.outcome == Outcome.SUCCEEDED and not monitor.invalid
    ok = ok and monitor.valid_chunks == result.chunks_executed
    print("demo: OK" if ok else "demo: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

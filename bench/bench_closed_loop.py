"""End-to-end latency of the simulated closed loop: observation stamp -> first joint command.

    python bench/bench_closed_loop.py [--policy expert|wallwm] [--checkpoint DIR] [--task pick_place]

Runs the in-process bringup (sim + policy + controller over DDS, real-time simulation) on one
task and instruments the controller: for every accepted chunk, the time from its observation
stamp (the camera frame set it was inferred from) to its arrival at the controller, and to the
first control tick that executes it. Times are on the simulation clock, which the real-time
simulation keeps in step with the wall clock (the sim node warns when it falls behind). The
controller's own rate, period error and CPU use are in bench_controller.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor

from wallwm_core.control import controller as controller_module
from wallwm_msgs.srv import GetTaskProgress, ResetSimulation
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup import PolicyChoice, sim_bringup
from wallwm_ros.bringup_paths import bringup_config
from wallwm_ros.closed_loop.inprocess_bringup import InProcessBringup
from wallwm_ros.send_goal import execute_task


class ChunkTiming:
    """Wraps JointController.submit_chunk / update to time chunks from stamp to first use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[int] = []
        self.arrival_ms: list[float] = []
        self.first_command_ms: list[float] = []
        cls = controller_module.JointController
        submit, update = cls.submit_chunk, cls.update
        timing = self

        def timed_submit(self, chunk, now_ns):
            result = submit(self, chunk, now_ns)
            if result.accepted:
                with timing.lock:
                    timing.arrival_ms.append((now_ns - chunk.stamp_ns) / 1e6)
                    timing.pending.append(chunk.stamp_ns)
            return result

        def timed_update(self, now_ns, *args, **kwargs):
            command = update(self, now_ns, *args, **kwargs)
            with timing.lock:
                for stamp_ns in timing.pending:
                    timing.first_command_ms.append((now_ns - stamp_ns) / 1e6)
                timing.pending.clear()
            return command

        cls.submit_chunk, cls.update = timed_submit, timed_update


def _call(node, service_type, name, request):
    client = node.create_client(service_type, name)
    client.wait_for_service(timeout_sec=30.0)
    future = client.call_async(request)
    while not future.done():
        threading.Event().wait(0.01)
    return future.result()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", choices=("expert", "wallwm"), default="expert")
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--task", default="pick_place")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="wallwm_bench_"))
    if args.policy == "expert":
        from wallwm_ros.closed_loop.expert_replay import write_expert_replay

        replay_file, events = write_expert_replay(args.task, args.seed, "train", workdir)
        choice = PolicyChoice("replay", replay_file=str(replay_file))
    else:
        checkpoint = args.checkpoint
        if not checkpoint:
            from wallwm_ros.closed_loop.sim_checkpoint import write_untrained_checkpoint

            checkpoint = str(write_untrained_checkpoint(workdir / "checkpoint"))
        choice, events = PolicyChoice("wallwm", checkpoint=checkpoint), None

    timing = ChunkTiming()
    specs = sim_bringup(
        bringup_config("sim_node.yaml").parent, choice, task=args.task, seed=args.seed
    )
    rclpy.init()
    bringup = InProcessBringup(specs)
    spinner = BackgroundSpinner(MultiThreadedExecutor(num_threads=4))
    try:
        node = spinner.add(rclpy.create_node("bench_client"))
        reset = _call(
            node,
            ResetSimulation,
            "reset_simulation",
            ResetSimulation.Request(task=args.task, seed=args.seed),
        )
        result = execute_task(
            node, reset.task_description, events or list(reset.event_instructions), timeout_s=60.0
        )
        progress = _call(node, GetTaskProgress, "get_task_progress", GetTaskProgress.Request())
    finally:
        spinner.close()
        bringup.close()
        rclpy.try_shutdown()

    print(
        f"policy {args.policy}, task {args.task} seed {args.seed}: {result.outcome.name}, "
        f"Task Progress {progress.progress:.0f}"
    )
    for name, values in (
        ("observation -> chunk at controller", timing.arrival_ms),
        ("observation -> first joint command", timing.first_command_ms),
    ):
        values = np.asarray(values)
        print(
            f"{name:<36} [ms] n={len(values)}  median {np.median(values):7.1f}  "
            f"p99 {np.percentile(values, 99):7.1f}  max {values.max():7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

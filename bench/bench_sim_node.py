"""Benchmark: the simulation node's achieved publish rates vs the configured ones.

Runs the sim node in this process (real rclpy and DDS) and a subscriber node in a child process
(as the policy node would be; ``--in-process-subscriber`` puts it in this process instead), for
``--seconds`` after a warm-up, once with ``real_time`` true and once false, and prints per stream
the configured rate (per simulated second), the rate the node published and the rate the
subscriber received (per wall second), plus the real-time factor (simulated / wall seconds).

    python bench/bench_sim_node.py [--seconds 5] [--control-rate 500] [--camera-rate 10] [--size 224]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection

# ROS isolation before rclpy is imported: a domain of our own, localhost discovery only.
os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOG_DIR", "/tmp/wallwm_bench_ros_log")

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState

from wallwm_ros import qos
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.sim_node import CLOCK_QOS, SimNode
from wallwm_sim.sim_loop import LoopRates


class Counting:
    """Counts messages per topic (thread-safe)."""

    def __init__(self, node: Node, cameras: list[str]) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        node.create_subscription(Clock, "/clock", self._counter("/clock"), CLOCK_QOS)
        node.create_subscription(
            JointState, "joint_states", self._counter("joint_states"), qos.SENSORS
        )
        for camera in cameras:
            topic = f"{camera}/image_raw"
            node.create_subscription(Image, topic, self._counter(topic), qos.SENSORS)
            info = f"{camera}/camera_info"
            node.create_subscription(CameraInfo, info, self._counter(info), qos.SENSORS)

    def _counter(self, topic: str):
        def count(_msg) -> None:
            with self._lock:
                self.counts[topic] += 1

        return count

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)


def subscriber_process(cameras: list[str], connection: Connection) -> None:
    """Child process: count messages; answer each request on ``connection`` with the counts."""
    context = rclpy.Context()
    rclpy.init(context=context)
    spinner = BackgroundSpinner(MultiThreadedExecutor(num_threads=2, context=context))
    counting = Counting(spinner.add(Node("bench_counter", context=context)), cameras)
    connection.send("ready")
    while connection.recv() == "snapshot":
        connection.send(counting.snapshot())
    spinner.close()
    rclpy.try_shutdown(context=context)


class ChildCounting:
    """A :class:`Counting` in a child process, so the subscriber does not share our GIL."""

    def __init__(self, cameras: list[str]) -> None:
        self._connection, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=subscriber_process, args=(cameras, child), daemon=True
        )
        self._process.start()
        if self._connection.recv() != "ready":
            raise RuntimeError("subscriber process failed to start")

    def snapshot(self) -> Counter[str]:
        self._connection.send("snapshot")
        return self._connection.recv()

    def close(self) -> None:
        self._connection.send("stop")
        self._process.join(10.0)


def run_case(args: argparse.Namespace, real_time: bool) -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    spinner = BackgroundSpinner(MultiThreadedExecutor(num_threads=4, context=context))
    child = None
    try:
        overrides = [
            Parameter("real_time", value=real_time),
            Parameter("control_rate_hz", value=args.control_rate),
            Parameter("camera_rate_hz", value=args.camera_rate),
            Parameter("cameras", value=args.cameras),
            Parameter("image_height", value=args.size),
            Parameter("image_width", value=args.size),
            Parameter("task", value=args.task),
        ]
        sim = spinner.add(SimNode(context=context, parameter_overrides=overrides))
        if args.in_process_subscriber:
            counting = Counting(spinner.add(Node("bench_counter", context=context)), args.cameras)
        else:
            counting = child = ChildCounting(args.cameras)
        deadline = time.monotonic() + 30.0
        while not sim.loop.warmed_up and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(args.warm_up)
        received_before, counters_before = counting.snapshot(), sim.loop.counters()
        time.sleep(args.seconds)
        received_after, counters_after = counting.snapshot(), sim.loop.counters()
    finally:
        if child is not None:
            child.close()
        spinner.close()
        rclpy.try_shutdown(context=context)

    rates = LoopRates.between(counters_before, counters_after)
    wall = rates.wall_s
    print(
        f"\nreal_time={real_time}: {wall:.1f} s wall, {rates.sim_s:.2f} s simulated, "
        f"real-time factor {rates.real_time_factor:.2f}; {rates.mean_step_ms:.2f} ms per control "
        f"step, {rates.mean_render_ms:.1f} ms per camera frame, {rates.overruns} overruns"
    )
    print(
        f"{'stream':<22} {'configured /sim s':>17} {'published /wall s':>18} "
        f"{'received /wall s':>17} {'published /sim s':>17}"
    )
    streams = [("/clock", args.control_rate, rates.control_hz)]
    streams.append(("joint_states", args.control_rate, rates.joint_states_hz))
    for camera in args.cameras:
        streams.append((f"{camera}/image_raw", args.camera_rate, rates.frames_hz[camera]))
        streams.append((f"{camera}/camera_info", args.camera_rate, rates.frames_hz[camera]))
    for topic, configured, published in streams:
        received = (received_after[topic] - received_before[topic]) / wall
        per_sim = published * wall / rates.sim_s if rates.sim_s > 0 else 0.0
        print(
            f"{topic:<22} {configured:>17.1f} {published:>18.1f} {received:>17.1f} {per_sim:>17.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured wall seconds per case")
    parser.add_argument("--warm-up", type=float, default=1.0, help="wall seconds before measuring")
    parser.add_argument("--control-rate", type=float, default=500.0)
    parser.add_argument("--camera-rate", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=224, help="square image size in pixels")
    parser.add_argument("--cameras", nargs="+", default=["front", "overhead", "wrist"])
    parser.add_argument("--task", default="pick_place")
    parser.add_argument(
        "--in-process-subscriber",
        action="store_true",
        help="count messages in this process (shares the GIL with the simulation loop)",
    )
    parser.add_argument("--only", choices=("real_time", "fast"), help="run one case only")
    args = parser.parse_args()
    print(
        f"sim node: control {args.control_rate:g} Hz, {len(args.cameras)} cameras "
        f"{args.size}x{args.size} at {args.camera_rate:g} Hz, task {args.task}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; subscriber "
        f"{'in this process' if args.in_process_subscriber else 'in a child process'}"
    )
    for real_time in (True, False):
        if args.only is None or args.only == ("real_time" if real_time else "fast"):
            run_case(args, real_time)


if __name__ == "__main__":
    main()

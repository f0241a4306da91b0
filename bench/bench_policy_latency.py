"""Why a chunk takes longer inside the main job than in bench_inference: WALL-WM inference
timed alone and beside the main job's other work, one scenario after another in one run.

    python bench/bench_policy_latency.py --checkpoint DIR [--chunks 6] [--threads 1 2]
                                         [--scenarios first alone busy_thread ...]

Each scenario calls ``WallWMPolicy.next_chunk`` (what the policy node's worker calls) on a
synthetic observation with the checkpoint's cameras and joints; the Δt head is pinned so every
chunk has the same length. Per scenario: median wall time per chunk, and median CPU time of the
calling thread (``time.thread_time``; with one torch thread it is all the work the chunk does,
so wall minus CPU is time spent waiting: for a core, or for the interpreter lock).

Scenarios:

- ``first``: the first chunk of a freshly loaded policy (lazy allocations, first kernels),
  against the following ones;
- ``alone``: nothing else runs in this process;
- ``busy_thread``: a pure-Python thread spins beside inference (it holds the interpreter
  lock whenever it can, like the simulation and controller loops do between their C calls);
- ``busy_process``: the same spin in a child process (a core's worth of load, no shared lock);
- ``bringup``: the main job's simulation, controller and (idle) policy nodes run in this
  process, as the in-process bringup starts them (real time); inference in the main thread;
- ``bringup_process``: the same nodes in a child process; inference here.

Torch's intra-op thread count is set per pass (``--threads``); the first chunk is measured
once, at the first thread count.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.policy import Observation
from wallwm_core.wallwm_policy import WallWMPolicy

SCENARIOS = ("first", "alone", "busy_thread", "busy_process", "bringup", "bringup_process")
CAMERA_HW = (224, 224)  # the simulated cameras' resolution; resized to the model's input
INSTRUCTION = "pick up the yellow cube"
EVENT_STEPS = 12


def observation(policy: WallWMPolicy, stamp_ns: int) -> Observation:
    deployment = policy.deployment
    rng = np.random.default_rng(0)
    cameras = {}
    for index, name in enumerate(deployment.cameras):
        angle = 0.6 * index
        cameras[name] = _look_at((math.cos(angle), math.sin(angle), 0.8))
    return Observation(
        stamp_ns=stamp_ns,
        images={
            name: rng.integers(0, 256, (*CAMERA_HW, 3), dtype=np.uint8)
            for name in deployment.cameras
        },
        joint_positions=np.zeros(len(deployment.joint_names)),
        joint_names=tuple(deployment.joint_names),
        cameras=cameras,
    )


def _look_at(eye: tuple[float, float, float]) -> CameraGeometry:
    from wallwm_core.training.batch import look_at_camera

    return look_at_camera(eye, (0.0, 0.0, 0.0), CAMERA_HW, 200.0)


def pin_event_length(policy: WallWMPolicy, steps: int) -> None:
    """Every chunk gets ``steps`` steps (the untrained Δt head would vary them)."""
    config = policy.model.config
    seconds = steps / config.action.control_hz
    last = policy.model.event_length_head.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(math.log(math.expm1(seconds / config.objective.event_length_scale_s)))


class Timer:
    """Calls ``next_chunk`` on fresh observations; (wall s, thread CPU s) per chunk."""

    def __init__(self, policy: WallWMPolicy) -> None:
        self.policy = policy
        self.stamp_ns = 1_000_000_000
        self.event_id = 0

    def chunks(self, count: int) -> list[tuple[float, float]]:
        self.event_id += 1
        self.policy.start_event(INSTRUCTION, self.event_id, 30_000_000_000)
        samples = []
        for _ in range(count):
            self.stamp_ns += 50_000_000
            obs = observation(self.policy, self.stamp_ns)
            wall, cpu = time.perf_counter(), time.thread_time()
            step = self.policy.next_chunk(obs)
            samples.append((time.perf_counter() - wall, time.thread_time() - cpu))
            assert step.chunk.num_steps == EVENT_STEPS, step.chunk.num_steps
        return samples


def _spin(stop: threading.Event | None = None, seconds: float = 1e9) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end and not (stop is not None and stop.is_set()):
        for _ in range(1000):
            x += 1


@contextlib.contextmanager
def busy_thread() -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=_spin, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def busy_process() -> Iterator[None]:
    process = multiprocessing.get_context("spawn").Process(target=_spin, args=(None, 3600.0))
    process.start()
    try:
        yield
    finally:
        process.terminate()
        process.join()


def _bringup_specs(checkpoint: str):
    from wallwm_ros.bringup import PolicyChoice, sim_bringup
    from wallwm_ros.bringup_paths import bringup_config

    return sim_bringup(
        bringup_config("sim_node.yaml").parent,
        PolicyChoice("wallwm", checkpoint=checkpoint),
        real_time=True,
    )


def _run_bringup(checkpoint: str, domain_id: int, ready, stop) -> None:
    import rclpy

    from wallwm_ros.closed_loop.inprocess_bringup import InProcessBringup

    rclpy.init(domain_id=domain_id)
    try:
        with InProcessBringup(_bringup_specs(checkpoint)):
            time.sleep(3.0)  # the nodes' start-up work is over, the loops run steadily
            if ready is not None:
                ready.set()
            stop.wait()
    finally:
        rclpy.try_shutdown()


@contextlib.contextmanager
def bringup(checkpoint: str, domain_id: int) -> Iterator[None]:
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=_run_bringup, args=(checkpoint, domain_id, ready, stop), daemon=True
    )
    thread.start()
    if not ready.wait(120.0):
        raise RuntimeError("the in-process bringup did not start")
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def bringup_process(checkpoint: str, domain_id: int) -> Iterator[None]:
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    process = context.Process(target=_run_bringup, args=(checkpoint, domain_id, ready, stop))
    process.start()
    if not ready.wait(120.0):
        process.terminate()
        raise RuntimeError("the bringup process did not start")
    try:
        yield
    finally:
        stop.set()
        process.join(30.0)
        if process.is_alive():
            process.terminate()


def report(name: str, samples: list[tuple[float, float]]) -> None:
    wall = statistics.median(s[0] for s in samples) * 1e3
    cpu = statistics.median(s[1] for s in samples) * 1e3
    worst = max(s[0] for s in samples) * 1e3
    print(
        f"  {name:16s} wall {wall:8.1f} ms (max {worst:8.1f})  thread CPU {cpu:8.1f} ms  "
        f"waiting {max(wall - cpu, 0.0):8.1f} ms  [{len(samples)} chunks]",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--chunks", type=int, default=6)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument(
        "--domain-id",
        type=int,
        default=None,
        help="ROS domain of the bringups (default: a free one)",
    )
    args = parser.parse_args()
    from wallwm_ros.closed_loop.isolation import claim_domain

    domain = claim_domain(args.domain_id)  # held until the process exits
    args.domain_id = domain.value
    load = os.getloadavg()
    print(
        f"# WALL-WM chunk latency, {args.checkpoint}, torch {torch.__version__}, "
        f"{os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    torch.set_num_threads(args.threads[0])
    policy = WallWMPolicy.from_pretrained(args.checkpoint, device="cpu")
    pin_event_length(policy, EVENT_STEPS)
    timer = Timer(policy)
    scenarios: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
        "alone": contextlib.nullcontext,
        "busy_thread": busy_thread,
        "busy_process": busy_process,
        "bringup": lambda: bringup(str(args.checkpoint), args.domain_id),
        "bringup_process": lambda: bringup_process(str(args.checkpoint), args.domain_id),
    }
    if "first" in args.scenarios:
        print(f"\nthreads {args.threads[0]}, first chunk of a fresh policy vs the next ones:")
        samples = timer.chunks(1 + args.chunks)
        report("first chunk", samples[:1])
        report("next chunks", samples[1:])
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\ntorch threads {threads}:")
        for name in args.scenarios:
            if name == "first":
                continue
            with scenarios[name]():
                timer.chunks(1)  # settle after the scenario starts
                report(name, timer.chunks(args.chunks))


if __name__ == "__main__":
    main()

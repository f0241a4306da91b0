"""Controller figures: IK solve time, per-tick update cost, control-loop rate and period error.

    python bench/bench_controller.py [--seconds 5] [--rate 500]

Uses the simulated arm (wallwm_sim's URDF) and wallwm_core/configs/controller_sim_arm.yaml.
The loop section runs the same work (one controller update against an ideal arm) first with
:class:`wallwm_core.control.ControlLoop` (absolute deadlines), then with a naive
``time.sleep(period)`` loop, then on an rclpy timer, in the same process, one after the other.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pinocchio as pin

import wallwm_core
from wallwm_core.action_chunk import ActionChunk
from wallwm_core.control import ControlLoop, JointController, Pose, load_controller_config
from wallwm_sim.description import urdf_string

CONFIG_PATH = Path(wallwm_core.__file__).parent / "configs" / "controller_sim_arm.yaml"
DOWN = pin.Quaternion(0.0, 0.0, 1.0, 0.0)  # (w, x, y, z): tool pointing down
HOME = np.array([0.45, 0.0, 0.25])
HOME_SEED = np.array([0.0, 0.18, 1.74, 0.0, 1.22, 0.0])
STEP_NS = 50_000_000


def percentiles(values: list[float] | np.ndarray) -> str:
    values = np.asarray(values)
    return (
        f"median {np.median(values):8.1f}  p99 {np.percentile(values, 99):8.1f}  "
        f"max {values.max():8.1f}"
    )


def bench_ik(controller: JointController, rng: np.random.Generator) -> None:
    kin = controller.kinematics[0]
    lower, upper = kin.limits.lower, kin.limits.upper
    span = upper - lower
    cold, cold_ok = [], 0
    for _ in range(300):
        q = rng.uniform(lower + 0.1 * span, upper - 0.1 * span)
        target = kin.forward(q)
        seed = np.clip(q + rng.normal(0.0, 0.3, q.shape), lower, upper)
        start = time.perf_counter()
        result = kin.solve(target, seed)
        cold.append((time.perf_counter() - start) * 1e6)
        cold_ok += result.success
    # Warm: a 1 mm-per-tick path (0.5 m/s at 500 Hz), seeded from the previous solution.
    home = kin.solve(Pose(HOME, DOWN.toRotationMatrix()), HOME_SEED).q
    warm, warm_ok, q = [], 0, home
    for i in range(1000):
        angle = 2 * np.pi * i / 1000
        position = HOME + 0.08 * np.array([np.cos(angle) - 1.0, np.sin(angle), 0.0])
        start = time.perf_counter()
        result = kin.solve(Pose(position, DOWN.toRotationMatrix()), q)
        warm.append((time.perf_counter() - start) * 1e6)
        warm_ok += result.success
        q = result.q
    print(f"IK cold (seed 0.3 rad off)   [us] {percentiles(cold)}  converged {cold_ok}/300")
    print(f"IK warm (1 mm/tick tracking) [us] {percentiles(warm)}  converged {warm_ok}/1000")


class Workload:
    """One controller update per tick against an ideal arm, a new chunk every 0.4 s."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.controller = JointController.from_urdf(
            urdf_string(), load_controller_config(CONFIG_PATH)
        )
        kin = self.controller.kinematics[0]
        self.q = kin.solve(Pose(HOME, DOWN.toRotationMatrix()), HOME_SEED).q
        self.clock = clock
        self.next_chunk_ns = 0
        self.costs_us: list[float] = []

    def _chunk(self, now_ns: int) -> ActionChunk:
        # Circles of 8 cm radius, 2 s per turn; the chunk is stamped 60 ms in the past (latency).
        stamp = now_ns - 60_000_000
        seconds = stamp / 1e9 + np.arange(20) * STEP_NS / 1e9
        angle = np.pi * seconds
        positions = HOME + 0.08 * np.stack(
            [np.cos(angle) - 1.0, np.sin(angle), np.zeros_like(angle)], axis=-1
        )
        quaternion = [DOWN.w, DOWN.x, DOWN.y, DOWN.z]
        return ActionChunk(
            stamp_ns=stamp,
            step_period_ns=STEP_NS,
            frame_id="base_link",
            arm_names=("arm",),
            ee_frames=("tool0",),
            positions=positions[:, None, :],
            quaternions=np.tile(quaternion, (20, 1, 1)),
            gripper=np.zeros((20, 1)),
        )

    def tick(self, now_ns: int | None = None) -> None:
        now_ns = self.clock() if now_ns is None else now_ns
        start = time.perf_counter()
        if now_ns >= self.next_chunk_ns:
            self.controller.submit_chunk(self._chunk(now_ns), now_ns)
            self.next_chunk_ns = now_ns + 400_000_000
        command = self.controller.update(now_ns, self.q)
        if command.positions is not None:
            self.q = command.positions
        self.costs_us.append((time.perf_counter() - start) * 1e6)


def bench_update_cost() -> None:
    fake_now = [10**12]
    work = Workload(lambda: fake_now[0])
    for _ in range(3000):
        fake_now[0] += 2_000_000
        work.tick()
    status = work.controller.status()
    print(
        f"update() per tick, simulated 6 s [us] {percentiles(work.costs_us[100:])}  "
        f"(state {status.state.value}, IK failures {status.ik_failures}, "
        f"chunks {status.chunks_accepted})"
    )


def loop_figures(
    name: str, starts: np.ndarray, period_ns: int, cpu_s: float, wall_s: float
) -> None:
    periods = np.diff(starts)
    error_us = np.abs(periods - period_ns) / 1e3
    rate = (len(starts) - 1) / ((starts[-1] - starts[0]) / 1e9)
    print(
        f"{name:<28} rate {rate:7.1f} Hz  |period error| [us] median {np.median(error_us):7.1f}  "
        f"p99 {np.percentile(error_us, 99):7.1f}  max {error_us.max():8.1f}  "
        f"CPU {100 * cpu_s / wall_s:5.1f} %"
    )


def bench_loops(seconds: float, rate_hz: float) -> None:
    period_ns = round(1e9 / rate_hz)
    ticks = int(seconds * rate_hz)

    work = Workload(time.monotonic_ns)
    starts: list[int] = []

    def callback(tick) -> None:
        starts.append(tick.start_ns)
        work.tick(tick.start_ns)

    loop = ControlLoop(period_ns, callback, max_ticks=ticks)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    loop.start()
    loop.join()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stats = loop.stats()
    loop_figures("ControlLoop (deadlines)", np.array(starts), period_ns, cpu, wall)
    print(
        f"{'':<28} overruns {stats.overruns}, missed deadlines {stats.missed_deadlines}, "
        f"lateness p50 {stats.lateness_p50_ns / 1e3:.1f} us p99 {stats.lateness_p99_ns / 1e3:.1f} us, "
        f"update cost {percentiles(work.costs_us)} us"
    )

    work = Workload(time.monotonic_ns)
    naive_starts: list[int] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(ticks):
        naive_starts.append(time.monotonic_ns())
        work.tick(naive_starts[-1])
        time.sleep(period_ns / 1e9)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    loop_figures("naive time.sleep(period)", np.array(naive_starts), period_ns, cpu, wall)

    bench_rclpy_timer(seconds, rate_hz)


def bench_rclpy_timer(seconds: float, rate_hz: float) -> None:
    """The same work on an rclpy timer spun by a SingleThreadedExecutor (what a node would do)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_timer_loop", context=context)
    work = Workload(time.monotonic_ns)
    starts: list[int] = []

    def callback() -> None:
        starts.append(time.monotonic_ns())
        work.tick(starts[-1])

    node.create_timer(1.0 / rate_hz, callback)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < seconds:
        executor.spin_once(timeout_sec=0.05)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    loop_figures("rclpy timer (executor)", np.array(starts), round(1e9 / rate_hz), cpu, wall)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each loop run")
    parser.add_argument("--rate", type=float, default=500.0, help="control rate in Hz")
    args = parser.parse_args()
    controller = JointController.from_urdf(urdf_string(), load_controller_config(CONFIG_PATH))
    print(f"load average {', '.join(f'{v:.2f}' for v in __import__('os').getloadavg())}")
    bench_ik(controller, np.random.default_rng(0))
    bench_update_cost()
    bench_loops(args.seconds, args.rate)


if __name__ == "__main__":
    main()

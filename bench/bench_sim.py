"""Simulation figures: physics steps per second, control-step cost, render time per camera frame.

    python bench/bench_sim.py [--seconds 3] [--frames 30]

Physics: the full tabletop scene (arm, 3 cubes, zone, 2 buttons of ``build_and_signal``) with the
scripted expert's joint targets replayed, raw ``mj_step`` calls and whole ``TabletopSim.step``
control periods (10 physics steps + button latches + Task Progress). Rendering: one RGB frame of
each camera with the fast settings (no shadows, reflections or multisampling), at 224x224 and
480x640, plus depth at 224x224. CPU only; figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np

from wallwm_sim.cameras import CAMERA_NAMES
from wallwm_sim.expert import ScriptedExpert
from wallwm_sim.rollout import run_episode
from wallwm_sim.sim import SimConfig, TabletopSim


def expert_targets(sim: TabletopSim) -> np.ndarray:
    """Joint commands of one expert episode (to drive the benchmark with realistic motion)."""

    class Recorder:
        cameras: tuple[str, ...] = ()

        def __init__(self) -> None:
            self.commands: list[np.ndarray] = []

        def wants_frames(self, step: int) -> bool:
            return False

        def begin(self, *args) -> None:
            pass

        def record(self, step, observation, action, joint_target, gripper, progress) -> None:
            self.commands.append(np.append(joint_target, gripper))

        def end(self, *args) -> None:
            pass

    recorder = Recorder()
    run_episode(sim, ScriptedExpert(), "build_and_signal", 0, stop_on_success=False, sink=recorder)
    return np.array(recorder.commands)


def bench_physics(sim: TabletopSim, commands: np.ndarray, seconds: float) -> None:
    sim.reset("build_and_signal", 0)
    substeps = sim.config.substeps
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for command in commands:
            sim.data.ctrl[sim.ids.arm_actuators] = command[:6]
            mujoco.mj_step(sim.model, sim.data, nstep=substeps)
            steps += substeps
        sim.reset("build_and_signal", 0)
    elapsed = time.perf_counter() - start
    print(
        f"physics mj_step (dt {sim.model.opt.timestep * 1e3:.0f} ms, nq {sim.model.nq}): "
        f"{steps / elapsed:10.0f} steps/s  ({steps * sim.model.opt.timestep / elapsed:5.1f}x real time)"
    )

    sim.reset("build_and_signal", 0)
    control_steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for command in commands:
            sim.set_command(command[:6], command[6])
            sim.step()
            control_steps += 1
        sim.reset("build_and_signal", 0)
    elapsed = time.perf_counter() - start
    period = sim.config.control_period_s
    print(
        f"TabletopSim.step ({period * 1e3:.0f} ms control period): "
        f"{elapsed / control_steps * 1e6:8.0f} us per step  "
        f"({control_steps * substeps / elapsed:8.0f} physics steps/s, "
        f"{control_steps * period / elapsed:5.1f}x real time)"
    )


def bench_rendering(sim: TabletopSim, frames: int) -> None:
    sim.reset("build_and_signal", 0)
    for height, width in ((224, 224), (480, 640)):
        for camera in CAMERA_NAMES:
            sim.render(camera, height, width)  # warm-up (renderer creation, first upload)
            start = time.perf_counter()
            for _ in range(frames):
                image = sim.render(camera, height, width)
            elapsed = (time.perf_counter() - start) / frames
            assert image.shape == (height, width, 3)
            print(f"render {camera:<9} {height}x{width}: {elapsed * 1e3:6.1f} ms per frame")
    start = time.perf_counter()
    for _ in range(frames):
        sim.render_depth("front", 224, 224)
    print(
        f"render depth front 224x224: {(time.perf_counter() - start) / frames * 1e3:6.1f} ms per frame"
    )
    start = time.perf_counter()
    for _ in range(frames):
        sim.render_all(height=224, width=224)
    print(
        f"render all {len(CAMERA_NAMES)} cameras 224x224: {(time.perf_counter() - start) / frames * 1e3:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each physics run")
    parser.add_argument("--frames", type=int, default=30, help="frames per render measurement")
    args = parser.parse_args()
    with TabletopSim(SimConfig()) as sim:
        commands = expert_targets(sim)
        bench_physics(sim, commands, args.seconds)
        bench_rendering(sim, args.frames)


if __name__ == "__main__":
    main()

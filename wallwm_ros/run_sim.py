"""The README's main job: the simulated closed loop, one task, per-event outcomes and the score.

    python -m wallwm_ros.run_sim [--task pick_place] [--seed 0] [--variant train]
        [--policy wallwm|expert] [--checkpoint DIR] [--fast] [--out build/run_sim]

Starts the simulation, policy and controller nodes (the in-process bringup: the same nodes and
parameters as ``ros2 launch wallwm_bringup sim.launch.py``, talking over DDS), resets the
episode, sends the task as next-event instructions through the ExecuteTask action, prints the
feedback and each event's outcome, then asks the simulation for the Task Progress score and
writes a contact sheet and a GIF of the front camera to ``--out``.

``--policy wallwm`` (default) serves the best WALL-WM checkpoint the project has;
``--policy expert`` replays the scripted expert's end-effector motion through the identical ROS
path, as the reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image

from wallwm_core.config_loading import ConfigError
from wallwm_core.outcome import Outcome
from wallwm_msgs.srv import GetTaskProgress, ResetSimulation
from wallwm_ros import qos
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup import PolicyChoice, default_checkpoint, sim_bringup
from wallwm_ros.bringup_paths import bringup_config
from wallwm_ros.image_decoding import image_to_array
from wallwm_ros.inprocess_bringup import InProcessBringup
from wallwm_ros.send_goal import NoServerError, execute_task, format_task_feedback

FRAME_EVERY_S = 0.5  # sim seconds between frames kept for the contact sheet / GIF


@dataclasses.dataclass
class EpisodeFrames:
    """Front-camera frames of the run, one every FRAME_EVERY_S of simulation time."""

    frames: list[np.ndarray] = dataclasses.field(default_factory=list)
    last_stamp_ns: int = -(10**18)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def on_image(self, msg: Image) -> None:
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if stamp_ns - self.last_stamp_ns < FRAME_EVERY_S * 1e9:
            return
        array = np.array(image_to_array(msg.encoding, msg.height, msg.width, msg.step, 0, msg.data))
        with self.lock:
            self.frames.append(array)
            self.last_stamp_ns = stamp_ns

    def write(self, out: Path) -> list[Path]:
        from PIL import Image as PILImage

        with self.lock:
            frames = list(self.frames)
        if not frames:
            return []
        picks = [frames[round(i)] for i in np.linspace(0, len(frames) - 1, min(8, len(frames)))]
        sheet = np.concatenate(picks, axis=1)
        sheet_path, gif_path = out / "contact_sheet.png", out / "episode.gif"
        PILImage.fromarray(sheet).save(sheet_path)
        images = [PILImage.fromarray(f) for f in frames]
        images[0].save(gif_path, save_all=True, append_images=images[1:], duration=100, loop=0)
        return [sheet_path, gif_path]


def _call(node, service_type, name: str, request, timeout_s: float = 30.0):
    client = node.create_client(service_type, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise NoServerError(f"no service {name!r} after {timeout_s} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise NoServerError(f"service {name!r} did not answer in {timeout_s} s")
            time.sleep(0.01)
        return future.result()
    finally:
        node.destroy_client(client)


def _policy_choice(args: argparse.Namespace, out: Path) -> tuple[PolicyChoice, list[str] | None]:
    """The policy to serve, and (for the expert) the event instructions of its script."""
    if args.policy == "expert":
        from wallwm_ros.expert_replay import write_expert_replay

        print(f"recording the scripted expert on {args.task} seed {args.seed} (offline) ...")
        replay_file, events = write_expert_replay(args.task, args.seed, args.variant, out)
        print(f"policy: scripted-expert replay ({replay_file}), served by the policy node")
        return PolicyChoice("replay", replay_file=str(replay_file)), events
    checkpoint = args.checkpoint
    if not checkpoint:
        try:
            checkpoint = default_checkpoint()
        except ConfigError:
            from wallwm_ros.sim_checkpoint import write_untrained_checkpoint

            checkpoint = str(write_untrained_checkpoint(out / "untrained_checkpoint"))
            print(
                "NOTE: no trained WALL-WM checkpoint exists in this project yet. The policy is a "
                f"randomly initialised `tiny` WALL-WM model ({checkpoint}): the whole loop runs "
                "for real, but expect a Task Progress near 0. Run with --policy expert for the "
                "reference."
            )
    print(f"policy: WALL-WM checkpoint {checkpoint}")
    return PolicyChoice("wallwm", checkpoint=checkpoint), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="pick_place")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default="train")
    parser.add_argument("--policy", choices=("wallwm", "expert"), default="wallwm")
    parser.add_argument("--checkpoint", default="", help="WALL-WM checkpoint directory")
    parser.add_argument(
        "--fast", action="store_true", help="run the simulation faster than real time"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="task time limit, sim seconds")
    parser.add_argument("--out", type=Path, default=Path("build/run_sim"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    print(
        f"wallwm simulated closed loop: task {args.task}, seed {args.seed}, variant {args.variant}"
    )
    choice, script_events = _policy_choice(args, args.out)
    specs = sim_bringup(
        bringup_config("sim_node.yaml").parent,
        choice,
        task=args.task,
        seed=args.seed,
        variant=args.variant,
        real_time=not args.fast,
    )
    rclpy.init()
    bringup = None
    spinner = BackgroundSpinner(SingleThreadedExecutor())
    try:
        bringup = InProcessBringup(specs)
        print("nodes up: " + ", ".join(bringup.nodes))
        client = spinner.add(rclpy.create_node("wallwm_run_sim"))
        frames = EpisodeFrames()
        client.create_subscription(Image, "front/image_raw", frames.on_image, qos.SENSORS)
        reset = _call(
            client,
            ResetSimulation,
            "reset_simulation",
            ResetSimulation.Request(task=args.task, variant=args.variant, seed=args.seed),
        )
        if not reset.success:
            print(f"run_sim: reset failed: {reset.message}", file=sys.stderr)
            return 1
        events = script_events or list(reset.event_instructions)
        print(f"task: {reset.task_description!r}")
        for index, event in enumerate(events):
            print(f"  event {index + 1}: {event}")
        last_line = [""]

        def show(feedback) -> None:
            line = format_task_feedback(feedback)
            if line.split(":")[0] != last_line[0].split(":")[0]:
                print("  " + line, flush=True)
            last_line[0] = line

        result = execute_task(
            client,
            reset.task_description,
            events,
            timeout_s=args.timeout,
            server_wait_s=60.0,
            on_feedback=show,
        )
        progress = _call(client, GetTaskProgress, "get_task_progress", GetTaskProgress.Request())
    except (NoServerError, ConfigError) as error:
        print(f"run_sim failed: {error}", file=sys.stderr)
        return 1
    finally:
        spinner.close()
        if bringup is not None:
            bringup.close()
        rclpy.try_shutdown()

    if not result.accepted:
        print("run_sim: the task goal was rejected")
        return 1
    print("per-event outcomes:")
    for index, (instruction, outcome, message) in enumerate(result.events):
        print(f"  {index + 1}. {instruction!r}: {outcome.name} ({message})")
    print(f"task outcome: {result.outcome.name} in {result.duration_s:.1f} s ({result.message})")
    met = ", ".join(progress.criteria_met) or "none"
    print(
        f"Task Progress: {progress.progress:.0f}/100 ({progress.points}/{progress.max_points} "
        f"points; met: {met})"
    )
    for path in frames.write(args.out):
        print(f"wrote {path}")
    if args.policy == "expert" and result.outcome != Outcome.SUCCEEDED:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The README's main job: the simulated closed loop, one task, per-event outcomes and the score.

    python -m wallwm_ros.closed_loop.run_sim [--task pick_place] [--seed 0] [--variant train]
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
import sys
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor

from wallwm_core.config_loading import ConfigError
from wallwm_core.outcome import Outcome
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup import PolicyChoice, sim_bringup
from wallwm_ros.bringup_paths import bringup_config
from wallwm_ros.closed_loop.inprocess_bringup import InProcessBringup
from wallwm_ros.closed_loop.sim_checkpoint import UNTRAINED_NOTE, checkpoint_for_sim
from wallwm_ros.closed_loop.sim_episode import EpisodeError, SimEpisodeRunner
from wallwm_ros.send_goal import NoServerError, format_task_feedback


def _policy_choice(args: argparse.Namespace, out: Path) -> tuple[PolicyChoice, list[str] | None]:
    """The policy to serve, and (for the expert) the event instructions of its script."""
    if args.policy == "expert":
        from wallwm_ros.closed_loop.expert_replay import write_expert_replay

        print(f"recording the scripted expert on {args.task} seed {args.seed} (offline) ...")
        replay_file, events = write_expert_replay(args.task, args.seed, args.variant, out)
        print(f"policy: scripted-expert replay ({replay_file}), served by the policy node")
        return PolicyChoice("replay", replay_file=str(replay_file)), events
    checkpoint, untrained = checkpoint_for_sim(args.checkpoint, out)
    if untrained:
        print(UNTRAINED_NOTE.format(checkpoint=checkpoint))
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
        runner = SimEpisodeRunner(spinner.add(rclpy.create_node("wallwm_run_sim")))
        last_line = [""]

        def announce(reset, events: list[str]) -> None:
            print(f"task: {reset.task_description!r}")
            for index, event in enumerate(events):
                print(f"  event {index + 1}: {event}")

        def show(feedback) -> None:
            line = format_task_feedback(feedback)
            if line.split(":")[0] != last_line[0].split(":")[0]:
                print("  " + line, flush=True)
            last_line[0] = line

        episode = runner.run(
            args.task,
            args.seed,
            args.variant,
            events=script_events,
            timeout_s=args.timeout,
            on_reset=announce,
            on_feedback=show,
        )
    except (NoServerError, ConfigError, EpisodeError) as error:
        print(f"run_sim failed: {error}", file=sys.stderr)
        return 1
    finally:
        spinner.close()
        if bringup is not None:
            bringup.close()
        rclpy.try_shutdown()

    result = episode.result
    if not result.accepted:
        print("run_sim: the task goal was rejected")
        return 1
    print("per-event outcomes:")
    for index, (instruction, outcome, message) in enumerate(result.events):
        print(f"  {index + 1}. {instruction!r}: {outcome.name} ({message})")
    print(f"task outcome: {result.outcome.name} in {result.duration_s:.1f} s ({result.message})")
    met = ", ".join(episode.criteria_met) or "none"
    print(
        f"Task Progress: {episode.progress:.0f}/100 ({episode.points}/{episode.max_points} "
        f"points; met: {met})"
    )
    for path in (
        runner.frames.write_contact_sheet(args.out / "contact_sheet.png"),
        runner.frames.write_gif(args.out / "episode.gif"),
    ):
        if path is not None:
            print(f"wrote {path}")
    if args.policy == "expert" and result.outcome != Outcome.SUCCEEDED:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

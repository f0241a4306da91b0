"""The README's main job: the simulated closed loop, one task, per-event outcomes and the score.

    python -m wallwm_ros.closed_loop.run_sim [--task pick_place] [--seed 0] [--variant train]
        [--policy wallwm|expert] [--checkpoint DIR] [--lockstep | --fast] [--out DIR]
        [--single-process]

Starts the simulation, policy and controller nodes (the in-process bringup: the same nodes and
parameters as ``ros2 launch wallwm_bringup sim.launch.py``, talking over DDS; the policy node in
a child process of its own, so that inference does not wait for the interpreter lock the
simulation and controller loops hold, unless ``--single-process``), resets the
episode, sends the task as next-event instructions through the ExecuteTask action, prints the
feedback and each event's outcome, then asks the simulation for the Task Progress score and
writes a contact sheet and a GIF of the front camera to ``--out``.

``--policy wallwm`` (default) serves the best WALL-WM checkpoint the project has;
``--policy expert`` replays the scripted expert's end-effector motion through the identical ROS
path, as the reference.

Time: real time by default (a demo); ``--lockstep`` makes the simulation wait for the controller
every control period (results do not depend on machine load), ``--fast`` is lockstep without the
wall-clock pacing. Isolation: each run claims a ROS domain of its own (``ROS_DOMAIN_ID`` or 0,
else the next one no other wallwm run holds, see :mod:`wallwm_ros.closed_loop.isolation`) and
writes to a new folder under ``build/run_sim/`` unless ``--out`` names one (which another live
run must not be using). The task outcome is reported by the policy's planner and by the task's
rubric (Task Progress); when the two disagree the last line says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor

from wallwm_core.config_loading import ConfigError
from wallwm_core.outcome import Outcome
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup import PolicyChoice, sim_bringup
from wallwm_ros.bringup_paths import bringup_config
from wallwm_ros.closed_loop.inprocess_bringup import InProcessBringup
from wallwm_ros.closed_loop.isolation import claim_domain, claim_output
from wallwm_ros.closed_loop.sim_checkpoint import UNTRAINED_NOTE, checkpoint_for_sim
from wallwm_ros.closed_loop.sim_episode import (
    EpisodeError,
    RosEpisode,
    SimEpisodeRunner,
    loop_fault,
)
from wallwm_ros.send_goal import NoServerError, format_task_feedback
from wallwm_sim.event_rubric import verdicts_at_episode_end
from wallwm_sim.tasks import TASK_NAMES, VARIANTS, get_task

DEFAULT_OUT_ROOT = Path("build/run_sim")


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bash scripts/main.sh",
        description=__doc__.split("\n\n")[0],
        epilog=f"tasks: {', '.join(TASK_NAMES)}. variants: {', '.join(VARIANTS)} (not every task "
        "has every variant). seeds: any integer >= 0 (the task's randomiser: layout, colours).",
    )
    parser.add_argument("--task", default="pick_place", help="task name (listed below)")
    parser.add_argument("--seed", type=int, default=0, help="randomiser seed, >= 0")
    parser.add_argument("--variant", default="train", help="train or a generalisation variant")
    parser.add_argument("--policy", choices=("wallwm", "expert"), default="wallwm")
    parser.add_argument("--checkpoint", default="", help="WALL-WM checkpoint directory")
    pacing = parser.add_mutually_exclusive_group()
    pacing.add_argument(
        "--lockstep",
        action="store_true",
        help="real time, but the simulation waits for the controller every control period",
    )
    pacing.add_argument(
        "--fast",
        action="store_true",
        help="lockstep without wall-clock pacing: as fast as the controller keeps up",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="task time limit, sim seconds")
    parser.add_argument(
        "--single-process",
        action="store_true",
        help="run the policy node in this process too (inference is slower: docs/inference.md)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default: a new one under {DEFAULT_OUT_ROOT}/)",
    )
    parser.add_argument(
        "--domain-id",
        type=int,
        default=None,
        help="ROS domain (default: ROS_DOMAIN_ID or 0, or the next one no other run holds)",
    )
    return parser


def _check_episode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Task, variant and seed before anything is built (a checkpoint takes a while)."""
    try:
        task = get_task(args.task)
    except ValueError as error:
        parser.error(str(error))
    if args.variant not in task.variants:
        parser.error(
            f"task {args.task!r} has the variants {list(task.variants)}, not {args.variant!r}"
        )
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")


def _default_out(args: argparse.Namespace) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return DEFAULT_OUT_ROOT / f"{stamp}-{args.task}-seed{args.seed}-{os.getpid()}"


def print_episode_report(episode: RosEpisode) -> bool:
    """Print each event by planner and rubric, then the task line; True when they agree."""
    task = get_task(episode.task)
    instance = task.sample(episode.seed, episode.variant)
    milestones = {m.name: m.name in episode.criteria_met for m in task.rubric(instance).milestones}
    records = [(i, o.name, m) for i, o, m in episode.result.events]
    verdicts = verdicts_at_episode_end(records, instance.subtasks, milestones)
    print("per-event outcomes (planner | rubric):")
    for verdict in verdicts:
        attempt = f" (attempt {verdict.attempt})" if verdict.attempt > 1 else ""
        if verdict.milestone:
            rubric = (
                f"{verdict.milestone} {'reached' if verdict.milestone_reached else 'NOT reached'}"
            )
        else:
            rubric = "no milestone"
        flag = "" if verdict.agrees else "  <- planner and rubric disagree"
        print(
            f"  event {verdict.index + 1}{attempt} {verdict.instruction!r}: "
            f"{verdict.planner_outcome} ({verdict.message}) | {rubric}{flag}"
        )
    result = episode.result
    solved = episode.progress >= 100.0
    planner_ok = result.outcome == Outcome.SUCCEEDED
    agrees = planner_ok == solved
    verdict_text = (
        ""
        if agrees
        else (
            " -- but the rubric disagrees: the task is NOT solved"
            if planner_ok
            else " -- but the rubric says the task is solved"
        )
    )
    print(
        f"task outcome (planner): {result.outcome.name} in {result.duration_s:.1f} s "
        f"({result.message}){verdict_text}"
    )
    met = ", ".join(episode.criteria_met) or "none"
    print(
        f"Task Progress (rubric): {episode.progress:.0f}/100 ({episode.points}/"
        f"{episode.max_points} points; met: {met})"
    )
    return agrees


def format_latencies(latencies_ms: Sequence[float]) -> str:
    """The policy node's inference time per chunk: first, median and slowest."""
    if not latencies_ms:
        return "inference per chunk (policy node): no chunk"
    return (
        f"inference per chunk (policy node): {len(latencies_ms)} chunks, first "
        f"{latencies_ms[0]:.0f} ms, median {statistics.median(latencies_ms):.0f} ms, "
        f"slowest {max(latencies_ms):.0f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_episode(parser, args)
    try:
        out_claim = claim_output(args.out or _default_out(args))
        domain = claim_domain(args.domain_id)
    except ConfigError as error:
        print(f"run_sim: {error}", file=sys.stderr)
        return 2
    out = out_claim.value
    print(
        f"wallwm simulated closed loop: task {args.task}, seed {args.seed}, variant {args.variant}"
    )
    print(f"output: {out}; {domain.note}")
    choice, script_events = _policy_choice(args, out)
    specs = sim_bringup(
        bringup_config("sim_node.yaml").parent,
        choice,
        task=args.task,
        seed=args.seed,
        variant=args.variant,
        real_time=not args.fast,
        lockstep=args.lockstep or args.fast,
    )
    rclpy.init(domain_id=domain.value)
    bringup = None
    spinner = BackgroundSpinner(SingleThreadedExecutor())
    try:
        bringup = InProcessBringup(specs, processes=() if args.single_process else ("policy_node",))
        children = [f"{name} (process {child.pid})" for name, child in bringup.processes.items()]
        print("nodes up: " + ", ".join([*bringup.nodes, *children]))
        sim_fault = loop_fault(bringup.nodes["sim_node"])
        runner = SimEpisodeRunner(
            spinner.add(rclpy.create_node("wallwm_run_sim")),
            sim_fault=lambda: sim_fault() or bringup.fault(),
        )
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
        control = bringup.nodes["controller_node"].controller.status()
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
        print(f"run_sim: the task goal was rejected ({result.message})")
        return 1
    agrees = print_episode_report(episode)
    # What reached the arm: chunks the controller node took from DDS, and the joint motion the
    # simulation reported back while the goal ran.
    print(
        f"controller: {control.chunks_accepted} chunks accepted, {control.chunks_rejected} "
        f"rejected; arm motion: up to {episode.arm_motion_rad:.3f} rad per joint"
    )
    print(format_latencies(episode.chunk_latencies_ms))
    for path in (
        runner.frames.write_contact_sheet(out / "contact_sheet.png"),
        runner.frames.write_gif(out / "episode.gif"),
    ):
        if path is not None:
            print(f"wrote {path}")
    # The reference must solve the task, by both verdicts.
    if args.policy == "expert" and (result.outcome != Outcome.SUCCEEDED or not agrees):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

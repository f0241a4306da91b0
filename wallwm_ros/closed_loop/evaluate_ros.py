"""Evaluation through the ROS nodes: a policy served by the policy node over tasks x seeds.

    python -m wallwm_ros.closed_loop.evaluate_ros --policy expert --tasks all --seeds 0-2 \
        --output build/eval_ros
    python -m wallwm_ros.closed_loop.evaluate_ros --policy wallwm [--checkpoint DIR] --seeds 0-4 \
        --output ...

One in-process bringup (the nodes and parameters of ``sim.launch.py``, talking over DDS) serves
every episode; a WALL-WM policy node runs in a child process of its own unless
``--single-process`` (its inference would wait for the interpreter lock otherwise). Per (task, variant, seed) the sim node is reset, the task goes to the policy
node's ExecuteTask action, the controller node drives the simulated arm, and the score is the
sim node's Task Progress when the goal ends. The report has the format of
:mod:`wallwm_sim.evaluate` (``report.json``, ``task_progress.png``; ``--videos N`` keeps front
camera GIFs), with each episode's task outcome and per-event outcomes added. Every event attempt
is judged twice (wallwm_sim.event_rubric): by the policy node's planner, and by the event's rubric
milestone in the sim node's ``get_task_progress`` when the episode ends; ``report.json`` lists
every disagreement and counts them per task.

``--policy expert`` is the reference: per episode the scripted expert solves the episode offline
and the policy node (restarted with that replay file) replays its tool motion. ``--policy
wallwm`` serves one WALL-WM checkpoint for all episodes; without ``--checkpoint`` it is the one
wallwm_core ships, or an untrained ``tiny`` model (said so). Deterministic given the seeds up to
the timing of the threads: episodes run on simulation time in lockstep (the simulation waits for
the controller every control period, so a busy machine slows the evaluation down but does not
change its scores); ``--real-time`` also paces it to the wall clock. Two evaluations at once keep
apart: each claims a ROS domain of its own and refuses an ``--output`` folder another live run
writes to (:mod:`wallwm_ros.closed_loop.isolation`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from tqdm import tqdm

from wallwm_core.config_loading import ConfigError
from wallwm_core.outcome import Outcome
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.bringup import NodeSpec, PolicyChoice, sim_bringup
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
from wallwm_ros.send_goal import NoServerError
from wallwm_sim.cli_args import add_episode_arguments
from wallwm_sim.evaluate import EvalReport, format_table, write_report
from wallwm_sim.event_rubric import verdicts_at_episode_end
from wallwm_sim.rollout import EpisodeResult
from wallwm_sim.sim_loop import LoopCounters
from wallwm_sim.tasks import VARIANTS, get_task

logger = logging.getLogger(__name__)
POLICIES = ("expert", "wallwm")
POLICY_NODE = "policy_node"


@dataclasses.dataclass(frozen=True)
class RosEvalConfig:
    """What to evaluate and how; ``workdir`` receives expert replays and generated checkpoints."""

    policy: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: tuple[str, ...] = ("train",)
    checkpoint: str = ""
    real_time: bool = False
    timeout_s: float | None = None  # per task goal, sim seconds; default: the task's time limit
    workdir: Path = Path("build/eval_ros")
    video_dir: Path | None = None
    videos_per_task: int = 0
    # A WALL-WM policy node runs in a child process unless this is set (see inprocess_bringup).
    single_process: bool = False

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if not self.tasks or not self.seeds:
            raise ConfigError("the evaluation needs at least one task and one seed")
        for task in self.tasks:
            get_task(task)  # raises on an unknown task name
        unknown = set(self.variants) - set(VARIANTS)
        if unknown:
            raise ConfigError(f"unknown variants {sorted(unknown)}; variants are {VARIANTS}")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ConfigError(f"timeout_s must be positive, got {self.timeout_s}")

    def jobs(self) -> list[tuple[str, str, int]]:
        """(task, variant, seed) in evaluation order; variants a task lacks are skipped."""
        return [
            (task, variant, seed)
            for task in self.tasks
            for variant in self.variants
            if variant in get_task(task).variants
            for seed in self.seeds
        ]


class _PolicyNodeSwitch:
    """Keeps the policy node serving the episode's policy, restarting it only on a change."""

    def __init__(self, bringup: InProcessBringup, spec: NodeSpec) -> None:
        self._bringup = bringup
        self._spec = spec

    def serve(self, spec: NodeSpec) -> None:
        if spec != self._spec:
            self._bringup.restart(spec)
            self._spec = spec


def _episode_result(
    episode: RosEpisode, before: LoopCounters, after: LoopCounters, control_period_ns: int
) -> EpisodeResult:
    task = get_task(episode.task)
    instance = task.sample(episode.seed, episode.variant)
    rubric = task.rubric(instance)
    milestones = {m.name: m.name in episode.criteria_met for m in rubric.milestones}
    outcome = episode.result.outcome
    event_outcomes = tuple(
        (instruction, event_outcome.name, message)
        for instruction, event_outcome, message in episode.result.events
    )
    return EpisodeResult(
        task=episode.task,
        seed=episode.seed,
        variant=episode.variant,
        instruction=episode.task_description,
        score=episode.progress,
        milestones=milestones,
        steps=(after.clock_ns - before.clock_ns) // control_period_ns,
        duration_s=(after.clock_ns - before.clock_ns) / 1e9,
        policy_done=outcome == Outcome.SUCCEEDED,
        rejected_commands=sum(after.rejected.values()) - sum(before.rejected.values()),
        outcome=outcome.name if outcome is not None else "REJECTED",
        event_outcomes=event_outcomes,
        events=verdicts_at_episode_end(event_outcomes, instance.subtasks, milestones),
        chunk_latencies_ms=episode.chunk_latencies_ms,
    )


@contextlib.contextmanager
def _ros_session(
    specs: Sequence[NodeSpec], domain_id: int | None = None, processes: Sequence[str] = ()
) -> Iterator[tuple[InProcessBringup, SimEpisodeRunner]]:
    """The bringup and an episode runner on their own ROS context, torn down on exit."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    bringup = None
    spinner = BackgroundSpinner(SingleThreadedExecutor(context=context))
    try:
        bringup = InProcessBringup(specs, context=context, processes=processes)
        node = spinner.add(rclpy.create_node("wallwm_evaluate_ros", context=context))
        sim_fault = loop_fault(bringup.nodes["sim_node"])
        yield (
            bringup,
            SimEpisodeRunner(node, sim_fault=lambda: sim_fault() or bringup.fault()),
        )
    finally:
        spinner.close()
        if bringup is not None:
            bringup.close()
        rclpy.try_shutdown(context=context)


def evaluate_through_ros(
    config: RosEvalConfig, show_progress: bool = True, domain_id: int | None = None
) -> EvalReport:
    """Run every (task, variant, seed) of ``config`` through the ROS nodes (see the module doc);
    ``domain_id``: the ROS domain (default: ``ROS_DOMAIN_ID``)."""
    from wallwm_ros.closed_loop.expert_replay import write_expert_replay

    config.workdir.mkdir(parents=True, exist_ok=True)
    jobs = config.jobs()
    config_dir = bringup_config("sim_node.yaml").parent
    wallwm_choice = None
    if config.policy == "wallwm":
        checkpoint, untrained = checkpoint_for_sim(config.checkpoint, config.workdir)
        if untrained:
            logger.warning(UNTRAINED_NOTE.format(checkpoint=checkpoint))
        wallwm_choice = PolicyChoice("wallwm", checkpoint=checkpoint)

    def plan(task: str, variant: str, seed: int) -> tuple[list[NodeSpec], list[str] | None]:
        """The bringup for this episode, and the events to send (None: the sim's own)."""
        events = None
        choice = wallwm_choice
        if config.policy == "expert":
            replay, events = write_expert_replay(
                task, seed, variant, config.workdir / f"expert_{task}_{variant}_seed{seed}"
            )
            choice = PolicyChoice("replay", replay_file=str(replay))
        specs = sim_bringup(
            config_dir,
            choice,
            task=task,
            seed=seed,
            variant=variant,
            real_time=config.real_time,
            lockstep=True,
        )
        return specs, events

    first_plan = plan(*jobs[0])
    first_specs = first_plan[0]
    policy_index = [spec.name for spec in first_specs].index(POLICY_NODE)
    episodes: list[EpisodeResult] = []
    videos_done: dict[str, int] = {}
    # The WALL-WM policy node infers in a process of its own (one for all episodes); the replay
    # policy infers nothing and is restarted per episode, so it stays in this process.
    processes = (POLICY_NODE,) if config.policy == "wallwm" and not config.single_process else ()
    with _ros_session(first_specs, domain_id, processes) as (bringup, runner):
        policy_node = _PolicyNodeSwitch(bringup, first_specs[policy_index])
        sim_node = bringup.nodes["sim_node"]
        sim_loop, control_period_ns = sim_node.loop, sim_node.config.control_period_ns
        for index, (task, variant, seed) in enumerate(
            tqdm(jobs, desc=f"eval {config.policy} via ROS", disable=not show_progress)
        ):
            specs, events = first_plan if index == 0 else plan(task, variant, seed)
            policy_node.serve(specs[policy_index])
            before = sim_loop.counters()
            started = time.perf_counter()
            episode = runner.run(
                task,
                seed,
                variant,
                events=events,
                timeout_s=config.timeout_s or get_task(task).time_limit_s,
            )
            result = _episode_result(episode, before, sim_loop.counters(), control_period_ns)
            result = dataclasses.replace(result, wall_s=time.perf_counter() - started)
            disagrees = (result.outcome == Outcome.SUCCEEDED.name) != (result.score >= 100.0)
            logger.info(
                "%s %s seed %d: Task Progress %.0f (rubric), task outcome %s (planner)%s",
                task,
                variant,
                seed,
                result.score,
                result.outcome,
                " -- planner and rubric DISAGREE" if disagrees else "",
            )
            episodes.append(result)
            if config.video_dir is not None and videos_done.get(task, 0) < config.videos_per_task:
                config.video_dir.mkdir(parents=True, exist_ok=True)
                runner.frames.write_gif(config.video_dir / f"{task}_{variant}_seed{seed}.gif")
                videos_done[task] = videos_done.get(task, 0) + 1
    return EvalReport(
        f"{config.policy} (ROS nodes)",
        config.tasks,
        config.variants,
        config.seeds,
        tuple(episodes),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wallwm_ros.closed_loop.evaluate_ros", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--policy", choices=POLICIES, default="expert")
    parser.add_argument("--checkpoint", default="", help="WALL-WM checkpoint directory")
    add_episode_arguments(parser, default_seeds="0-2")
    parser.add_argument(
        "--output", type=Path, required=True, help="directory for report.json and plots"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="sim seconds per task (default: task limit)"
    )
    parser.add_argument(
        "--real-time",
        action="store_true",
        help="also pace the (lockstep) simulation to the wall clock",
    )
    parser.add_argument("--videos", type=int, default=0, help="front-camera GIFs per task")
    parser.add_argument(
        "--single-process",
        action="store_true",
        help="run a WALL-WM policy node in this process too (slower inference, docs/inference.md)",
    )
    parser.add_argument(
        "--domain-id",
        type=int,
        default=None,
        help="ROS domain (default: ROS_DOMAIN_ID or 0, or the next one no other run holds)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = RosEvalConfig(
            policy=args.policy,
            tasks=tuple(args.tasks),
            seeds=tuple(args.seeds),
            variants=tuple(args.variants),
            checkpoint=args.checkpoint,
            real_time=args.real_time,
            timeout_s=args.timeout,
            workdir=args.output / "work",
            video_dir=args.output / "videos" if args.videos else None,
            videos_per_task=args.videos,
            single_process=args.single_process,
        )
    except (ConfigError, ValueError) as error:
        parser.error(str(error))
    try:
        output_claim = claim_output(args.output)
        domain = claim_domain(args.domain_id)
    except ConfigError as error:
        print(f"evaluate_ros: {error}", file=sys.stderr)
        return 2
    logger.info("output %s; %s", output_claim.value, domain.note)
    try:
        report = evaluate_through_ros(config, domain_id=domain.value)
    except (NoServerError, ConfigError, EpisodeError) as error:
        print(f"evaluate_ros failed: {error}", file=sys.stderr)
        return 1
    path = write_report(report, args.output)
    print(format_table(report))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

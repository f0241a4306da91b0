"""Evaluation harness: a policy over tasks x variants x seeds, scored by Task Progress.

Writes ``report.json`` (per-episode results, per-task and suite means), ``task_progress.png``
(matplotlib, Agg) and optionally GIF videos. Deterministic given the seeds.

    python -m wallwm_sim.evaluate --policy expert --tasks all --seeds 0-4 --output build/eval
    python -m wallwm_sim.evaluate --policy do_nothing --seeds 0-1 --output build/eval_idle
    python -m wallwm_sim.evaluate --policy wallwm --checkpoint DIR --seeds 100-119 --output ...
    python -m wallwm_sim.evaluate --policy my_pkg.policies:make_policy ...

A policy is any object following :class:`wallwm_sim.policy.Policy`; ``--policy module:factory``
names a callable returning one. ``--policy wallwm`` runs a WALL-WM checkpoint in closed loop with
the ROS nodes' semantics, without DDS (:mod:`wallwm_sim.closed_loop_policy`; inference on
simulated time, ``--latency`` charges it); without ``--checkpoint`` it is the one wallwm_core
ships, or an untrained ``tiny`` model (said so). Its report adds per-event outcomes judged by
the planner and by the rubric (:mod:`wallwm_sim.event_rubric`), every disagreement, chunks per
event and the inference latency per chunk. A missing or corrupt checkpoint exits with code 2. To
evaluate the ROS nodes (policy node + controller node driving the sim node) over tasks x seeds,
the wallwm package's ROS evaluation writes the same report format.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from wallwm_sim.cli_args import add_episode_arguments, load_policy_factory
from wallwm_sim.closed_loop_policy import ClosedLoopPolicy, ClosedLoopSettings
from wallwm_sim.event_rubric import event_summary, latency_summary
from wallwm_sim.policy import Action, Observation, Policy
from wallwm_sim.rollout import EpisodeResult, run_episode
from wallwm_sim.sim import SimConfig, TabletopSim
from wallwm_sim.tasks import TaskInstance, episode_jobs, get_task

logger = logging.getLogger(__name__)
SUCCESS_SCORE = 100.0


@dataclasses.dataclass(frozen=True)
class EvalReport:
    policy: str
    tasks: tuple[str, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    episodes: tuple[EpisodeResult, ...]

    def scores(self, task: str | None = None, variant: str | None = None) -> np.ndarray:
        return np.array(
            [
                e.score
                for e in self.episodes
                if (task is None or e.task == task) and (variant is None or e.variant == variant)
            ]
        )

    def table(self) -> dict[str, dict[str, Any]]:
        """Per task (and ``suite``): mean/std Task Progress, success rate, episode count, and
        the mean per variant."""

        def summary(scores: np.ndarray) -> dict[str, Any]:
            return {
                "mean": float(scores.mean()) if scores.size else float("nan"),
                "std": float(scores.std()) if scores.size else float("nan"),
                "success_rate": float((scores >= SUCCESS_SCORE).mean())
                if scores.size
                else float("nan"),
                "num_episodes": int(scores.size),
            }

        table = {}
        for task in self.tasks:
            row = summary(self.scores(task))
            row["per_variant"] = {
                v: summary(self.scores(task, v))["mean"]
                for v in self.variants
                if self.scores(task, v).size
            }
            row.update(self._event_columns(task))
            table[task] = row
        # Suite: mean over tasks of the per-task means (each task weighs the same).
        task_means = np.array([table[t]["mean"] for t in self.tasks])
        table["suite"] = {
            "mean": float(task_means.mean()),
            "success_rate": float((self.scores() >= SUCCESS_SCORE).mean()),
            "num_episodes": len(self.episodes),
            **self._event_columns(None),
        }
        return table

    def _event_columns(self, task: str | None) -> dict[str, Any]:
        """Event outcomes and inference latency of the episodes of ``task`` (None: all), for
        event policies; nothing for the others."""
        episodes = [e for e in self.episodes if task is None or e.task == task]
        if not any(e.events or e.chunk_latencies_ms for e in episodes):
            return {}
        latencies = [ms for e in episodes for ms in e.chunk_latencies_ms]
        return {
            "events": event_summary([e.events for e in episodes]),
            "task_disagreements": sum(_task_disagrees(e) for e in episodes),
            "inference_latency_ms": latency_summary(latencies),
            "wall_s_per_episode": float(np.mean([e.wall_s for e in episodes])),
        }

    def disagreements(self) -> list[dict[str, Any]]:
        """Every event attempt where the planner and the rubric disagree, and every episode whose
        task outcome disagrees with its Task Progress (SUCCEEDED below 100, or 100 otherwise)."""
        rows = []
        for e in self.episodes:
            where = {"task": e.task, "variant": e.variant, "seed": e.seed}
            if _task_disagrees(e):
                rows.append({**where, "what": "task", "outcome": e.outcome, "score": e.score})
            for v in e.events:
                if not v.agrees:
                    rows.append(
                        {
                            **where,
                            "what": "event",
                            "event": v.index,
                            "attempt": v.attempt,
                            "instruction": v.instruction,
                            "planner_outcome": v.planner_outcome,
                            "milestone": v.milestone,
                            "milestone_reached": v.milestone_reached,
                            "checked_at": v.checked_at,
                        }
                    )
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "tasks": list(self.tasks),
            "variants": list(self.variants),
            "seeds": list(self.seeds),
            "table": self.table(),
            "rubrics": {t: get_task(t).rubric_table() for t in self.tasks},
            "event_milestones": {
                t: [s.milestone for s in get_task(t).sample(0, "train").subtasks]
                for t in self.tasks
            },
            "disagreements": self.disagreements(),
            "episodes": [dataclasses.asdict(e) for e in self.episodes],
        }


def _task_disagrees(episode: EpisodeResult) -> bool:
    """The policy's task outcome and the rubric disagree (event policies only)."""
    if not episode.outcome:
        return False
    return (episode.outcome == "SUCCEEDED") != (episode.score >= SUCCESS_SCORE)


class GifSink:
    """Keeps every ``frame_period_steps``-th frame of ``cameras`` (side by side) for a GIF."""

    cameras: tuple[str, ...] = ("front", "overhead")

    def __init__(
        self, cameras: tuple[str, ...] = ("front", "overhead"), frame_period_steps: int = 10
    ) -> None:
        self.cameras = cameras
        self.frame_period_steps = frame_period_steps
        self.frames: list[np.ndarray] = []

    def wants_frames(self, step: int) -> bool:
        return step % self.frame_period_steps == 0

    def begin(self, sim: TabletopSim, instance: TaskInstance) -> None:
        self.frames = []
        self.period_s = sim.config.control_period_s * self.frame_period_steps

    def record(
        self, step: int, observation: Observation, action: Action | None, *args: Any
    ) -> None:
        if self.wants_frames(step):
            self.frames.append(
                np.concatenate([observation.images[c] for c in self.cameras], axis=1)
            )

    def end(self, sim: TabletopSim, result: EpisodeResult) -> None:
        pass

    def save(self, path: Path) -> None:
        save_gif(self.frames, path, self.period_s)


def save_gif(frames: Sequence[np.ndarray], path: Path, frame_period_s: float) -> Path | None:
    """RGB ``frames`` as a looping GIF, ``frame_period_s`` apart; ``None`` when there are none."""
    from PIL import Image

    if not frames:
        return None
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=round(frame_period_s * 1000),
        loop=0,
    )
    return path


def evaluate_policy(
    make_policy: Callable[[], Policy | ClosedLoopPolicy],
    tasks: Sequence[str],
    seeds: Sequence[int],
    variants: Sequence[str] = ("train",),
    policy_name: str = "policy",
    sim_config: SimConfig | None = None,
    max_duration_s: float | None = None,
    video_dir: Path | None = None,
    videos_per_task: int = 0,
    show_progress: bool = True,
) -> EvalReport:
    """Run ``make_policy()`` on every (task, variant, seed); variants a task lacks are skipped.

    Episodes stop at Task Progress 100, when the policy reports done, or at the time limit.
    A :class:`~wallwm_sim.closed_loop_policy.ClosedLoopPolicy` runs each episode's task until
    its goal ends (done, given up, or the time limit), as the ROS harness does.
    """
    policy = make_policy()
    if isinstance(policy, ClosedLoopPolicy):
        sim_config = policy.sim_config()  # the sim node's control rate and image size
    episodes: list[EpisodeResult] = []
    jobs = episode_jobs(tasks, variants, seeds)
    videos_done: dict[str, int] = {}
    with TabletopSim(sim_config) as sim:
        for task, variant, seed in tqdm(
            jobs, desc=f"eval {policy_name}", disable=not show_progress
        ):
            video = video_dir is not None and videos_done.get(task, 0) < videos_per_task
            gif = video_dir / f"{task}_{variant}_seed{seed}.gif" if video else None
            if isinstance(policy, ClosedLoopPolicy):
                run = policy.run_episode(
                    sim,
                    task,
                    seed,
                    variant,
                    max_duration_s,
                    video_cameras=GifSink.cameras if video else (),
                )
                result = run.result
                if gif is not None:
                    gif.parent.mkdir(parents=True, exist_ok=True)
                    save_gif(run.frames, gif, policy.settings.camera_period_ns / 1e9)
            else:
                sink = GifSink() if video else None
                result = run_episode(sim, policy, task, seed, variant, max_duration_s, sink=sink)
                if sink is not None and gif is not None:
                    gif.parent.mkdir(parents=True, exist_ok=True)
                    sink.save(gif)
            if video:
                videos_done[task] = videos_done.get(task, 0) + 1
            episodes.append(result)
    return EvalReport(policy_name, tuple(tasks), tuple(variants), tuple(seeds), tuple(episodes))


def plot_report(report: EvalReport, path: Path) -> None:
    """Bar chart of mean Task Progress per task (error bars: std), suite mean as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = report.table()
    means = [table[t]["mean"] for t in report.tasks]
    stds = [table[t]["std"] for t in report.tasks]
    figure, axes = plt.subplots(figsize=(1.4 * len(report.tasks) + 2, 4))
    axes.bar(range(len(report.tasks)), means, yerr=stds, capsize=4, color="tab:blue")
    axes.axhline(
        table["suite"]["mean"],
        color="tab:red",
        linestyle="--",
        label=f"suite {table['suite']['mean']:.1f}",
    )
    axes.set_xticks(range(len(report.tasks)), report.tasks, rotation=25, ha="right")
    axes.set_ylim(0, 105)
    axes.set_ylabel("Task Progress (0-100)")
    axes.set_title(f"{report.policy}: {len(report.seeds)} seeds x {', '.join(report.variants)}")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(report: EvalReport, output: Path) -> Path:
    """Write ``report.json`` and ``task_progress.png`` into ``output``; returns the JSON path."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / "report.json"
    path.write_text(json.dumps(report.to_json(), indent=1))
    plot_report(report, output / "task_progress.png")
    return path


def format_table(report: EvalReport) -> str:
    table = report.table()
    lines = [f"{'task':<18} {'mean':>6} {'std':>6} {'success':>8} {'n':>4}"]
    for task in report.tasks:
        row = table[task]
        lines.append(
            f"{task:<18} {row['mean']:6.1f} {row['std']:6.1f} {row['success_rate']:8.2f} {row['num_episodes']:4d}"
        )
    suite = table["suite"]
    lines.append(
        f"{'suite':<18} {suite['mean']:6.1f} {'':>6} {suite['success_rate']:8.2f} {suite['num_episodes']:4d}"
    )
    if "events" in suite:
        lines += ["", _format_events(report, table)]
    disagreeing = [e for e in report.episodes if _task_disagrees(e)]
    if disagreeing:
        lines += [
            "",
            f"{len(disagreeing)} episode(s) where the task outcome and the rubric DISAGREE "
            "(outcome SUCCEEDED below 100, or another outcome at 100): "
            + ", ".join(
                f"{e.task} {e.variant} seed {e.seed}: {e.outcome} at {e.score:.0f}"
                for e in disagreeing
            ),
        ]
    return "\n".join(lines)


def _format_events(report: EvalReport, table: dict[str, dict[str, Any]]) -> str:
    """Event outcomes (planner vs rubric), disagreements, chunks and latency per task."""
    lines = [
        f"{'task':<18} {'events':>6} {'tries':>5} {'planner':>7} {'rubric':>6} {'disagree':>8} "
        f"{'chunks/ev':>9} {'lat p50':>7} {'p95':>6} {'max':>6} ms {'wall s/ep':>9}"
    ]
    for name in (*report.tasks, "suite"):
        row = table[name]
        events, latency = row["events"], row["inference_latency_ms"]
        disagreements = events["disagreements"] + row["task_disagreements"]
        if latency["count"]:
            timing = f"{latency['p50']:7.1f} {latency['p95']:6.1f} {latency['max']:6.1f}   "
        else:
            timing = f"{'-':>7} {'-':>6} {'-':>6}   "
        lines.append(
            f"{name:<18} {events['events']:6d} {events['attempts']:5d} "
            f"{events['planner_succeeded']:7d} {events['rubric_succeeded']:6d} {disagreements:8d} "
            f"{events['chunks_per_event']:9.1f} {timing}{row['wall_s_per_episode']:9.1f}"
        )
    return "\n".join(lines)


LATENCY_HELP = (
    "inference time on simulated time (--policy wallwm): 'none' (default: the simulation waits "
    "for the model, an infinitely fast computer), 'measured' (each chunk reaches the controller "
    "its measured inference time late, as on the ROS path), or a fixed number of milliseconds"
)


def parse_latency(text: str) -> tuple[str, float]:
    """``none``, ``measured`` or milliseconds -> (ClosedLoopSettings.latency, fixed seconds)."""
    if text in ("none", "measured"):
        return text, 0.0
    try:
        milliseconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--latency must be 'none', 'measured' or milliseconds, got {text!r}"
        ) from None
    if not milliseconds > 0 or not np.isfinite(milliseconds):
        raise argparse.ArgumentTypeError(f"--latency milliseconds must be positive, got {text!r}")
    return "fixed", milliseconds / 1e3


def _wallwm_factory(
    args: argparse.Namespace,
) -> tuple[Callable[[], Policy | ClosedLoopPolicy], SimConfig, str] | str:
    """The closed-loop WALL-WM policy, its simulator settings and report name, or why it
    cannot load."""
    from wallwm_sim.closed_loop_policy import wallwm_closed_loop
    from wallwm_sim.untrained_checkpoint import UNTRAINED_NOTE, checkpoint_for_sim

    latency, fixed_s = args.latency
    try:
        settings = ClosedLoopSettings(
            latency=latency,
            fixed_latency_s=fixed_s,
            image_size=args.image_size or 224,
            replan_fraction=args.replan_fraction,
        )
    except ValueError as error:
        return str(error)
    if args.checkpoint is not None and not args.checkpoint.strip():
        return "--checkpoint is empty"
    checkpoint, untrained = checkpoint_for_sim(args.checkpoint or "", args.output / "work")
    if untrained:
        logger.warning(UNTRAINED_NOTE.format(checkpoint=checkpoint))
    try:
        policy = wallwm_closed_loop(checkpoint, settings, device=args.device)
    except (ValueError, OSError) as error:  # CheckpointError is a ValueError
        return f"--checkpoint {checkpoint}: {error}"
    name = (
        f"wallwm ({Path(checkpoint).name}{', untrained' if untrained else ''}, latency {latency})"
    )
    return (lambda: policy), policy.sim_config(), name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wallwm_sim.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--policy", default="expert", help="expert, do_nothing, wallwm or module:factory"
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="WALL-WM checkpoint directory for --policy wallwm (default: the shipped one, else "
        "an untrained tiny model)",
    )
    parser.add_argument("--latency", type=parse_latency, default=("none", 0.0), help=LATENCY_HELP)
    parser.add_argument(
        "--device", default=None, help="--policy wallwm: cpu or cuda (default: CUDA if present)"
    )
    parser.add_argument(
        "--replan-fraction",
        type=float,
        default=ClosedLoopSettings.replan_fraction,
        help="--policy wallwm: infer the next chunk once this fraction of a chunk has run "
        "(the policy node's replan_fraction parameter; default %(default)s)",
    )
    add_episode_arguments(parser, default_seeds="0-4")
    parser.add_argument(
        "--output", type=Path, required=True, help="directory for report.json and plots"
    )
    parser.add_argument(
        "--max-duration",
        type=float,
        default=None,
        help="simulated seconds per episode (default: the task's time limit)",
    )
    parser.add_argument(
        "--videos", type=int, default=0, help="GIF videos per task (front + overhead)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image height and width: video frames (default 160), and the cameras the WALL-WM "
        "policy sees (default 224, as the sim node renders them)",
    )
    args = parser.parse_args(argv)
    if args.max_duration is not None and not args.max_duration > 0:
        parser.error(f"--max-duration must be positive, got {args.max_duration}")
    if args.checkpoint is not None and args.policy != "wallwm":
        parser.error("--checkpoint goes with --policy wallwm")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.policy == "wallwm":
        loaded = _wallwm_factory(args)
        if isinstance(loaded, str):
            print(f"evaluate: {loaded}", file=sys.stderr)
            return 2
        factory, config, name = loaded
    else:
        name = args.policy
        try:
            factory = load_policy_factory(args.policy)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
        size = args.image_size or 160
        config = SimConfig(image_height=size, image_width=size)
    report = evaluate_policy(
        factory,
        args.tasks,
        args.seeds,
        args.variants,
        policy_name=name,
        sim_config=config,
        max_duration_s=args.max_duration,
        video_dir=args.output / "videos" if args.videos else None,
        videos_per_task=args.videos,
    )
    path = write_report(report, args.output)
    print(format_table(report))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

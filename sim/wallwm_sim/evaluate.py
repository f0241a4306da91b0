"""Evaluation harness: a policy over tasks x variants x seeds, scored by Task Progress.

Writes ``report.json`` (per-episode results, per-task and suite means), ``task_progress.png``
(matplotlib, Agg) and optionally GIF videos. Deterministic given the seeds.

    python -m wallwm_sim.evaluate --policy expert --tasks all --seeds 0-4 --output build/eval
    python -m wallwm_sim.evaluate --policy do_nothing --seeds 0-1 --output build/eval_idle
    python -m wallwm_sim.evaluate --policy my_pkg.policies:make_policy ...

A policy is any object following :class:`wallwm_sim.policy.Policy`; ``--policy module:factory``
names a callable returning one. The ROS evaluation of the wallwm package (policy node +
controller node driving the sim node, over tasks x seeds) writes the same report format.
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
from wallwm_sim.policy import Action, Observation, Policy
from wallwm_sim.rollout import EpisodeResult, run_episode
from wallwm_sim.sim import SimConfig, TabletopSim
from wallwm_sim.tasks import TaskInstance, get_task

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
            table[task] = row
        # Suite: mean over tasks of the per-task means (each task weighs the same).
        task_means = np.array([table[t]["mean"] for t in self.tasks])
        table["suite"] = {
            "mean": float(task_means.mean()),
            "success_rate": float((self.scores() >= SUCCESS_SCORE).mean()),
            "num_episodes": len(self.episodes),
        }
        return table

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "tasks": list(self.tasks),
            "variants": list(self.variants),
            "seeds": list(self.seeds),
            "table": self.table(),
            "rubrics": {t: get_task(t).rubric_table() for t in self.tasks},
            "episodes": [dataclasses.asdict(e) for e in self.episodes],
        }


class GifSink:
    """Keeps every ``frame_period_steps``-th frame of ``cameras`` (side by side) for a GIF."""

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
    make_policy: Callable[[], Policy],
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
    """
    policy = make_policy()
    episodes: list[EpisodeResult] = []
    jobs = [
        (task, variant, seed)
        for task in tasks
        for variant in variants
        if variant in get_task(task).variants
        for seed in seeds
    ]
    videos_done: dict[str, int] = {}
    with TabletopSim(sim_config) as sim:
        for task, variant, seed in tqdm(
            jobs, desc=f"eval {policy_name}", disable=not show_progress
        ):
            sink = None
            if video_dir is not None and videos_done.get(task, 0) < videos_per_task:
                sink = GifSink()
            result = run_episode(sim, policy, task, seed, variant, max_duration_s, sink=sink)
            if sink is not None:
                video_dir.mkdir(parents=True, exist_ok=True)
                sink.save(video_dir / f"{task}_{variant}_seed{seed}.gif")
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
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wallwm_sim.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--policy", default="expert", help="expert, do_nothing or module:factory")
    add_episode_arguments(parser, default_seeds="0-4")
    parser.add_argument(
        "--output", type=Path, required=True, help="directory for report.json and plots"
    )
    parser.add_argument(
        "--max-duration", type=float, default=None, help="seconds per episode (default: task limit)"
    )
    parser.add_argument(
        "--videos", type=int, default=0, help="GIF videos per task (front + overhead)"
    )
    parser.add_argument("--image-size", type=int, default=160, help="video frame height and width")
    args = parser.parse_args(argv)
    try:
        factory = load_policy_factory(args.policy)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = SimConfig(image_height=args.image_size, image_width=args.image_size)
    report = evaluate_policy(
        factory,
        args.tasks,
        args.seeds,
        args.variants,
        policy_name=args.policy,
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

"""Generate scripted-expert demonstrations in the episode format (see ``episode_format``).

    python -m wallwm_sim.generate_demos --output build/demos --tasks all --seeds 0-99
    python -m wallwm_sim.generate_demos --output build/demos_gen --variants novel_colours \\
        --seeds 1000-1009 --cameras front,wrist --image-size 128 --camera-rate 10

Episodes whose final Task Progress is below ``--min-score`` are not written. The output folder
is appended to; a (task, variant, seed) it already holds is skipped and counted, not recorded
twice (the expert is deterministic: it would be the same episode). One process writes a folder at
a time (a lock in it): run parallel generators on folders of their own and list them all in the
training config's ``data.paths``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from wallwm_core.episode_format import IMAGE_FORMATS, list_episodes
from wallwm_core.file_lock import try_lock
from wallwm_sim.cameras import CAMERA_NAMES
from wallwm_sim.cli_args import add_episode_arguments, parse_names
from wallwm_sim.expert import ScriptedExpert
from wallwm_sim.recorder import EpisodeRecorder
from wallwm_sim.rollout import run_episode
from wallwm_sim.sim import SimConfig, TabletopSim
from wallwm_sim.tasks import episode_jobs

logger = logging.getLogger(__name__)
WRITER_LOCK = ".generate_demos.lock"


class OutputBusyError(RuntimeError):
    """Another process is writing the output folder."""


def generate(
    output: Path,
    tasks: Sequence[str],
    seeds: Sequence[int],
    variants: Sequence[str] = ("train",),
    cameras: Sequence[str] = CAMERA_NAMES,
    image_size: tuple[int, int] = (224, 224),
    camera_rate_hz: float = 10.0,
    image_format: str = "png",
    min_score: float = 100.0,
    show_progress: bool = True,
) -> tuple[int, int]:
    """Record the expert on every (task, variant, seed) ``output`` does not hold yet; returns
    (written, dropped). Those already there are skipped with a logged count.

    Raises OutputBusyError when another process is writing ``output`` (two writers would both
    take the next episode index: one crashed, its episode lost)."""
    lock = try_lock(output / WRITER_LOCK)
    if lock is None:
        raise OutputBusyError(
            f"{output} is being written by another generate_demos process (lock "
            f"{output / WRITER_LOCK}): give each process a folder of its own and list them all "
            "in data.paths"
        )
    with lock:  # closing the file releases the lock
        config = SimConfig(image_height=image_size[0], image_width=image_size[1])
        frame_period = max(1, round(1.0 / (camera_rate_hz * config.control_period_s)))
        recorder = EpisodeRecorder(output, tuple(cameras), frame_period, image_format, min_score)
        expert = ScriptedExpert(config.control_period_s, recorder.kinematics)
        jobs = episode_jobs(tasks, variants, seeds)
        recorded = {(e["task"], e["variant"], e["seed"]) for e in list_episodes(output)}
        skipped = [job for job in jobs if job in recorded]
        if skipped:
            logger.warning(
                "%d of %d episodes are already in %s (same task, variant and seed): skipped, "
                "not recorded twice",
                len(skipped),
                len(jobs),
                output,
            )
            jobs = [job for job in jobs if job not in recorded]
        written = 0
        with TabletopSim(config) as sim:
            bar = tqdm(jobs, desc="demos", unit="episode", disable=not show_progress)
            for task, variant, seed in bar:
                run_episode(sim, expert, task, seed, variant, stop_on_success=False, sink=recorder)
                written += recorder.last_written is not None
                bar.set_postfix(written=written, dropped=recorder.num_dropped)
        return written, recorder.num_dropped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wallwm_sim.generate_demos", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="dataset directory (appended to)"
    )
    add_episode_arguments(parser, default_seeds="0-9")
    parser.add_argument(
        "--cameras", type=parse_names, default=list(CAMERA_NAMES), help="comma list"
    )
    parser.add_argument(
        "--image-size", type=int, nargs="+", default=[224], help="H [W] of the frames"
    )
    parser.add_argument(
        "--camera-rate", type=float, default=10.0, help="frames per second per camera"
    )
    parser.add_argument("--image-format", choices=IMAGE_FORMATS, default="png")
    parser.add_argument(
        "--min-score", type=float, default=100.0, help="drop episodes scoring below this"
    )
    args = parser.parse_args(argv)
    unknown = set(args.cameras) - set(CAMERA_NAMES)
    if unknown:
        parser.error(f"unknown cameras {sorted(unknown)}; cameras are {CAMERA_NAMES}")
    if len(args.image_size) not in (1, 2):
        parser.error("--image-size takes H or H W")
    size = (args.image_size[0], args.image_size[-1])
    if args.camera_rate <= 0:
        parser.error("--camera-rate must be positive")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        written, dropped = generate(
            args.output,
            args.tasks,
            args.seeds,
            args.variants,
            args.cameras,
            size,
            args.camera_rate,
            args.image_format,
            args.min_score,
        )
    except OutputBusyError as error:
        parser.exit(2, f"error: {error}\n")
    print(f"wrote {written} episodes to {args.output} ({dropped} below --min-score dropped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

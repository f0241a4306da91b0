"""Where a checkpoint's actions come from: open-loop action error by the future video it reads.

    python -m wallwm_core.training.future_video RUN_DIR [--checkpoint DIR] [--windows 32]
        [--sources predicted,recorded,noise] [--output report.json]

On the run's validation windows (the same windows, batches, noise and sampler steps as the
run's validation, so ``predicted`` reproduces its ``val/action_mm`` with ``--windows`` equal to
``eval.open_loop_windows``; ``--checkpoint`` defaults to the run's ``best``), a chunk is sampled from each
window's observation with the action tower reading one of these as the future frames:

- ``predicted``: the video the model denoises itself (deployment with
  ``sampler.future_video: predicted``, the paper's path);
- ``recorded``: the window's recorded future latents (an oracle no deployment has);
- ``noise``: pure noise at t = 1 (``sampler.future_video: noise``);

and compared with the recorded actions like the run's validation (position mm, rotation
degrees, gripper), beside holding still. If ``recorded`` is far better than ``predicted``, the
action tower acts as an inverse-dynamics model of the future video, and the video prediction is
what limits the actions (docs/results.md, "Where the actions come from").

Exit codes: 0 done, 2 bad input (run, checkpoint, dataset).
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
import torch
import yaml

from wallwm_core.checkpoint import empty_model, load_checkpoint, load_module_state
from wallwm_core.config_loading import ConfigError
from wallwm_core.inference.config import SamplerConfig
from wallwm_core.inference.sampler import WindowNoise, WindowSampler
from wallwm_core.model.wallwm import WallWM
from wallwm_core.normalization import NormalizationStats
from wallwm_core.training.batch import Batch
from wallwm_core.training.config import train_config_from_dict
from wallwm_core.training.validation import VAL_SEED, observation_inputs, pose_errors

SOURCES = ("predicted", "recorded", "noise")
PrepareFn = Callable[..., Any]
logger = logging.getLogger("wallwm_core.training.future_video")


def sample_with_future(
    model: WallWM, batch: Batch, sampler: SamplerConfig, source: str, generator: torch.Generator
) -> torch.Tensor:
    """Normalised action chunks ``[B, T, D]`` for ``batch``'s windows, the action tower reading
    ``source`` (one of :data:`SOURCES`) as the future frames."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    context = model.config.objective.context_latent_frames
    inputs = observation_inputs(model, batch)
    # The source decides the future frames, not the sampler's own future_video setting; with
    # "noise" the sampler's anchor pass reads them at t = 1, as deployment does.
    reads = "noise" if source == "noise" else "predicted"
    window = WindowSampler(model, dataclasses.replace(sampler, future_video=reads))
    steps = batch.action_mask.sum(dim=1).clamp_min(1)
    frames = batch.video_latents.shape[2] - context
    video_mask, action_mask = window.window_masks(inputs, steps, frames)
    video_shape = (*inputs.context_latents.shape[:2], frames, *inputs.context_latents.shape[3:])
    action_shape = (*action_mask.shape, model.config.action.token_dim)
    noise = WindowNoise.draw(video_shape, action_shape, generator, batch.actions.device)
    future_mask = video_mask[:, :, context:, None]
    if source == "predicted":
        future = window.sample_video(inputs, video_mask, noise.video)
    else:
        future = batch.video_latents[:, :, context:].float() * future_mask
    latents, times = window.anchor_video_input(inputs, future, noise.anchor)
    actions = window.sample_actions(
        inputs, video_mask, latents, times, action_mask, noise.actions, "cached"
    )
    result = torch.zeros_like(batch.actions)
    result[:, : actions.shape[1]] = actions.to(result.dtype)
    return result


@torch.no_grad()
def compare_sources(
    model: WallWM,
    dataset: Any,
    indices: Sequence[int],
    sampler: SamplerConfig,
    action_stats: NormalizationStats,
    sources: Sequence[str] = SOURCES,
    batch_size: int = 16,
) -> dict[str, dict[str, float]]:
    """``{source or "hold": {"position_mm", "rotation_deg", "gripper"}}`` over ``indices``."""
    model.eval()
    sums = {name: torch.zeros(4, dtype=torch.float64) for name in (*sources, "hold")}
    num_arms = model.config.action.num_arms
    for start in range(0, len(indices), batch_size):
        batch = dataset.batch(list(indices[start : start + batch_size]))
        recorded = action_stats.unnormalize(batch.actions.double())
        mask = batch.action_mask
        for source in sources:
            generator = torch.Generator().manual_seed(VAL_SEED + start + 1)
            normalised = sample_with_future(model, batch, sampler, source, generator)
            predicted = action_stats.unnormalize(normalised.double())
            sums[source] += pose_errors(predicted, recorded, mask, num_arms)
        sums["hold"] += pose_errors(recorded[:, :1].expand_as(recorded), recorded, mask, num_arms)
    return {
        name: {
            "position_mm": float(total[0] / total[3].clamp_min(1)),
            "rotation_deg": float(total[1] / total[3].clamp_min(1)),
            "gripper": float(total[2] / total[3].clamp_min(1)),
        }
        for name, total in sums.items()
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wallwm_core.training.future_video",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="a training run (its config and data)")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (default RUN/best)")
    parser.add_argument("--windows", type=int, default=32, help="validation windows (32)")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated")
    parser.add_argument("--output", type=Path, help="also write the table as JSON here")
    return parser


def main(argv: Sequence[str] | None = None, prepare: PrepareFn | None = None) -> int:
    """The command line; ``prepare`` replaces prepare_data (tests pass synthetic data)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    sources = [s for s in args.sources.split(",") if s]
    try:
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown or not sources:
            raise ConfigError(f"--sources: {unknown or 'none given'} (choose from {SOURCES})")
        if args.windows < 1:
            raise ConfigError(f"--windows must be >= 1, got {args.windows}")
        config_file = args.run_dir / "config.yaml"
        if not config_file.is_file():
            raise ConfigError(f"{args.run_dir}: not a training run (no config.yaml)")
        config = train_config_from_dict(yaml.safe_load(config_file.read_text()), str(config_file))
        checkpoint = load_checkpoint(args.checkpoint or args.run_dir / "best")
        model = empty_model(checkpoint.model_config)
        load_module_state(model, checkpoint.model_state, "checkpoint")
        if prepare is None:
            from wallwm_core.training.data import prepare_data as prepare
        prepared = prepare(config.data, model, log=logger.info, device="cpu")
    except (OSError, ValueError) as error:  # ConfigError, CheckpointError, DatasetError
        print(f"error: {error}", file=sys.stderr)
        return 2
    count = min(args.windows, config.eval.windows, len(prepared.val))
    order = np.random.default_rng(config.seed + 1).permutation(len(prepared.val))
    table = compare_sources(
        model, prepared.val, order[:count].tolist(), config.eval.sampler,
        checkpoint.action_stats, sources, batch_size=config.eval.batch_size,
    )  # fmt: skip
    print(f"{'future video':14s} {'position mm':>12s} {'rotation deg':>13s} {'gripper':>8s}")
    for name, row in table.items():
        print(
            f"{name:14s} {row['position_mm']:12.1f} {row['rotation_deg']:13.1f} "
            f"{row['gripper']:8.3f}"
        )
    if args.output is not None:
        report = {"run": str(args.run_dir), "windows": count, "errors": table}
        args.output.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The data side of training: codec PSNR, preparation time and ``WindowDataset.batch()`` cost
against a training step of the same batch.

    python bench/bench_training_data.py --dataset build/bench_data --seeds 0-3 \\
        [--tasks all] [--image-size 64] [--codec-steps 500] [--config tiny] [--batch 8]

Records scripted-expert demos into ``--dataset`` if it has none (all cameras, raw images), runs
:func:`~wallwm_core.training.data.prepare_data` (codec stage, latent cache: the first run
builds, later runs reuse), then times ``train.batch()`` on weighted draws and a training step
(forward, backward, optimiser) of the model on the same batches, alternating the two so load
changes hit both alike. The figure that matters is the ratio: data time as a share of a step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from wallwm_core.episode_format import list_episodes
from wallwm_core.model.config import load_model_config
from wallwm_core.model.wallwm import build_model
from wallwm_core.training.data import DataConfig, prepare_data
from wallwm_core.training.optim import build_optimizer, training_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("build/bench_data"))
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--seeds", default="0-3")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--codec-steps", type=int, default=500)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if not list_episodes(args.dataset):
        from wallwm_sim.cli_args import parse_seeds, parse_tasks
        from wallwm_sim.generate_demos import generate

        start = time.perf_counter()
        written, _ = generate(
            args.dataset,
            parse_tasks(args.tasks),
            parse_seeds(args.seeds),
            image_size=(args.image_size, args.image_size),
            image_format="raw",
        )
        print(f"recorded {written} demos in {time.perf_counter() - start:.1f} s")

    model = build_model(load_model_config(args.config))
    config = DataConfig(paths=(str(args.dataset),), codec_steps=args.codec_steps, val_fraction=0.25)
    start = time.perf_counter()
    data = prepare_data(config, model)
    prepare_s = time.perf_counter() - start
    report = data.report
    print(
        f"prepare_data: {prepare_s:.1f} s (codec trained now: {report['codec']['trained']}, "
        f"cache rebuilt: {report['latent_cache']['rebuilt']})"
    )
    print(
        f"codec validation PSNR: {data.codec_psnr_db:.2f} dB after {args.codec_steps} steps "
        f"({report['episodes']['val']} validation episodes)"
    )

    rng = np.random.default_rng(0)
    optimizer = build_optimizer(model)
    generator = torch.Generator().manual_seed(0)
    data_s, step_s = [], []
    for _ in range(args.repeats):
        indices = rng.choice(len(data.train), args.batch, p=data.train.weights)
        start = time.perf_counter()
        batch = data.train.batch(indices)
        data_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        training_step(model, batch, optimizer, generator)
        step_s.append(time.perf_counter() - start)
    data_ms, step_ms = 1e3 * statistics.median(data_s), 1e3 * statistics.median(step_s)
    shape = tuple(batch.video_latents.shape)
    print(
        f"batch {args.batch} windows, video_latents {shape}, actions {tuple(batch.actions.shape)}"
    )
    print(f"WindowDataset.batch(): {data_ms:.2f} ms median over {args.repeats}")
    print(f"training step ({args.config}, {args.threads} thread(s)): {step_ms:.1f} ms median")
    print(f"data share of a step: {100 * data_ms / (data_ms + step_ms):.2f} %")


if __name__ == "__main__":
    main()

"""Measure how fast a config overfits one fixed batch on this machine (figures for the README).

    python -m wallwm_core.training.overfit --config tiny --steps 300

Two runs from the same initialisation, both on one fixed fake batch (2 samples, 2 views,
padding included): ``fresh`` draws new noise and times every step (real flow-matching training)
and reports the loss averaged over 4 fixed evaluation draws; ``fixed`` reuses one draw every
step (a deterministic regression, what the unit test checks).
"""

from __future__ import annotations

import argparse
import time

import torch

from wallwm_core.model.config import load_model_config
from wallwm_core.model.wallwm import WallWM, build_model
from wallwm_core.training.batch import Batch, make_fake_batch
from wallwm_core.training.objective import compute_loss
from wallwm_core.training.optim import build_optimizer, training_step

EVAL_SEEDS = (100, 101, 102, 103)


def evaluate(model: WallWM, batch: Batch) -> float:
    """Total loss averaged over fixed noise/time draws."""
    model.eval()
    with torch.no_grad():
        losses = [
            float(compute_loss(model, batch, torch.Generator().manual_seed(seed)).total)
            for seed in EVAL_SEEDS
        ]
    model.train()
    return sum(losses) / len(losses)


def run(config_name: str, steps: int, fixed_draws: bool, seed: int = 0) -> None:
    config = load_model_config(config_name)
    torch.manual_seed(seed)
    model = build_model(config)
    batch = make_fake_batch(
        config, num_frames=2, latent_hw=(4, 4), generator=torch.Generator().manual_seed(seed)
    )
    optimizer = build_optimizer(model)
    generator = torch.Generator().manual_seed(seed + 1)
    mode = "fixed" if fixed_draws else "fresh"
    start_loss = evaluate(model, batch)
    first_train = None
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if fixed_draws:
            generator = torch.Generator().manual_seed(seed + 1)
        losses = training_step(model, batch, optimizer, generator)
        first_train = first_train if first_train is not None else losses["total"]
        if step % max(1, steps // 5) == 0 or step == steps:
            elapsed = time.perf_counter() - start
            if fixed_draws:
                loss, reference = losses["total"], first_train
            else:
                loss, reference = evaluate(model, batch), start_loss
            detail = f"loss {loss:.4f} ({reference / loss:.1f}x down)"
            print(f"[{mode}] step {step:4d}  {elapsed:6.1f} s  {detail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--fixed-steps", type=int, default=40)
    # Toy tensors: extra threads only add synchronisation (and stall on a shared machine).
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run(args.config, args.fixed_steps, fixed_draws=True)
    run(args.config, args.steps, fixed_draws=False)


if __name__ == "__main__":
    main()

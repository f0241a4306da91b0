"""Training speed on this machine: samples/s, step split, peak RSS and model FLOP utilisation.

    python bench/bench_training.py [--configs tiny ref cpu] [--threads 1 2] [--steps 3]
                                   [--busy 2] [--out bench_training.json]

Each measurement runs in a fresh child process (clean peak RSS and thread setting) that first
measures its own matmul peak (a 2048 x 2048 float32 matmul, best of 5, same thread count),
then counts the FLOPs of one forward + backward with ``torch.utils.flop_counter`` and times
``--steps`` optimiser steps (after one warm-up) of the training loop's own ``train_step`` on a
memory-mapped synthetic latent cache shaped like the config's windows (3 views, 8x8 latents).

MFU = counted FLOPs per step / median step time / that peak. On a shared machine wall time
mostly measures the other jobs, so each case also reports process CPU seconds per step and
"MFU/CPU" = FLOPs per CPU second over the matmul's FLOPs per CPU second (time spent waiting
for a core is not counted; spinning threads are). The figures that compare variants are ratios
inside one run; absolute figures depend on the load (the 1-minute load average is printed).

Rows:
- per config and thread count: the loop's step with the config's default optimiser;
- ``old``: the step code before the loop (``optim.build_optimizer``: Muon + per-parameter
  AdamW, and ``optim.training_step``), on the same config and data;
- ``adamw``: the loop's step with AdamW only (fused kernel); the default rows use Muon for
  the block matrices (its Newton-Schulz runs in bfloat16, slow without bfloat16 units);
- first, the optimiser step alone on random gradients: Muon + per-parameter AdamW (the old
  default), Muon + fused AdamW, AdamW, fused AdamW;
- ``busy N``: the AdamW step while N child processes run single-threaded matmuls beside it,
  for each thread count (the variants above use the first thread count given).

Configs: ``tiny`` (toy), ``ref`` (the 2-3M config issue 12 measured before this work: video
128 / action 96 wide, 2x2 patches, 432 video tokens per window, batch 8), ``cpu`` (the CPU
training config, ``wallwm_core/configs/model_cpu.yaml`` with ``train_cpu.yaml``'s batch) and
``cpu64`` (its 64-step variant of the ablation, same batch; windows of 64 steps and 17 frames).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

VIEWS = 3
LATENT_HW = (8, 8)
PEAK_N = 2048


@dataclasses.dataclass(frozen=True)
class Case:
    config: str
    batch: int
    threads: int
    optimizer: str = "muon_adamw"
    step_code: str = "loop"  # "loop" (train.train_step) | "old" (optim.training_step)
    busy: int = 0
    label: str = ""


def model_config(name: str):
    from wallwm_core.model.config import CONFIG_DIR, load_model_config, model_config_from_dict

    if name != "ref":
        return load_model_config(name)
    data = yaml.safe_load((CONFIG_DIR / "model_tiny.yaml").read_text())
    data["name"] = "ref"
    data["video_tower"].update(dim=128, ffn_dim=256, num_layers=4, freq_dim=64, text_dim=64)
    data["video_tower"]["rope_axes_dim"] = [8, 8, 8, 8]
    data["action_tower"].update(dim=96, ffn_dim=192, num_layers=4, freq_dim=64)
    data["text_encoder"].update(dim=64, ffn_dim=128)
    data["limits"].update(max_latent_frames=9, max_action_steps=32)
    return model_config_from_dict(data)


def matmul_peak_gflops() -> tuple[float, float]:
    """(GFLOP per wall second, GFLOP per process CPU second) of a float32 matmul, best of 5."""
    a, b = torch.randn(PEAK_N, PEAK_N), torch.randn(PEAK_N, PEAK_N)
    a @ b
    best_wall = best_cpu = float("inf")
    for _ in range(5):
        start, start_cpu = time.perf_counter(), time.process_time()
        a @ b
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    flops = 2 * PEAK_N**3 / 1e9
    return flops / best_wall, flops / best_cpu


class CachedWindows:
    """Windows whose latents live in a float16 memory-mapped file, like the latent cache."""

    def __init__(self, config, size: int, folder: Path) -> None:
        from wallwm_core.tokenizer import ByteTokenizer
        from wallwm_core.training.batch import look_at_camera

        frames, steps = config.limits.max_latent_frames, config.limits.max_action_steps
        shape = (size, VIEWS, frames, config.video_tower.in_channels, *LATENT_HW)
        rng = np.random.default_rng(0)
        self.latents = np.lib.format.open_memmap(
            folder / f"{config.name}.npy", mode="w+", dtype=np.float16, shape=shape
        )
        self.latents[:] = rng.standard_normal(shape).astype(np.float16)
        self.actions = rng.standard_normal((size, steps, config.action.token_dim)).astype("f4")
        self.state = rng.standard_normal((size, config.action.state_dim)).astype("f4")
        ids, mask = ByteTokenizer().encode(
            ["pick up the red cube"] * size, config.text_encoder.max_length
        )
        self.ids, self.text_mask = ids, mask
        self.weights = np.full(size, 1.0 / size)
        self.config = config
        from wallwm_core.training.batch import cross_view_allowed_from_cameras

        rig = [
            look_at_camera((np.cos(a), np.sin(a), 0.6), (0, 0, 0), (64, 64), 64.0)
            for a in np.linspace(0.0, np.pi / 2, VIEWS)
        ]
        grid = config.patch_grid(LATENT_HW)
        self.cross_view = cross_view_allowed_from_cameras(
            [rig], grid, config.video_tower.sight_cone
        )

    def __len__(self) -> int:
        return len(self.weights)

    def batch(self, indices):
        from wallwm_core.training.batch import Batch

        index = np.asarray(indices)
        latents = torch.from_numpy(self.latents[np.sort(index)].astype(np.float32))
        count = len(index)
        frames, steps = latents.shape[2], self.actions.shape[1]
        return Batch(
            video_latents=latents,
            video_mask=torch.ones(count, VIEWS, frames, *LATENT_HW, dtype=torch.bool),
            text_ids=self.ids[index],
            text_mask=self.text_mask[index],
            state=torch.from_numpy(self.state[index]),
            actions=torch.from_numpy(self.actions[index]),
            action_mask=torch.ones(count, steps, dtype=torch.bool),
            event_length_s=torch.full((count,), 2.0),
            cross_view_allowed=self.cross_view.expand(count, -1, -1),
        )


def _measure(case: Case, steps: int, folder: str) -> dict[str, Any]:
    """One case, in a fresh process (see the module doc)."""
    torch.set_num_threads(case.threads)
    from torch.utils.flop_counter import FlopCounterMode

    from wallwm_core.model.wallwm import build_model
    from wallwm_core.training import optim as old_optim
    from wallwm_core.training import train
    from wallwm_core.training.config import train_config_from_dict
    from wallwm_core.training.distributed import DistInfo
    from wallwm_core.training.objective import compute_loss

    peak, peak_cpu = matmul_peak_gflops()
    config = model_config(case.config)
    torch.manual_seed(0)
    model = build_model(config)
    params = sum(p.numel() for p in model.parameters())
    dataset = CachedWindows(config, 256, Path(folder))
    train_config = train_config_from_dict(
        {
            "model": case.config if case.config != "ref" else "tiny",
            "run_dir": folder,
            "data": {"paths": [folder]},
            "train": {"steps": 1000, "batch_size": case.batch},
            "optim": {"optimizer": case.optimizer, "warmup_steps": 0},
            "runtime": {"threads": case.threads, "device": "cpu"},
        }
    )
    info = DistInfo()
    state = train.init_state(model, train_config, info)
    batch = dataset.batch(list(range(case.batch)))
    with FlopCounterMode(display=False) as counter:
        compute_loss(model, batch, torch.Generator().manual_seed(0)).total.backward()
    flops = counter.get_total_flops()
    model.zero_grad(set_to_none=True)

    # The step code before the loop: optim.build_optimizer (Muon + per-parameter AdamW).
    old_optimizer = old_optim.build_optimizer(model) if case.step_code == "old" else None
    records = []
    for index in range(steps + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        if case.step_code == "old":
            data_start = time.perf_counter()
            batch = dataset.batch(
                state.index_rng.choice(len(dataset), case.batch, p=dataset.weights).tolist()
            )
            data = time.perf_counter() - data_start
            old_optim.training_step(model, batch, old_optimizer, torch.Generator())
            record = {"time_data": data}
        else:
            record = train.train_step(state, dataset, train_config, info)
        record["total"] = time.perf_counter() - start
        record["cpu"] = time.process_time() - start_cpu
        if index > 0:  # the first step warms up
            records.append(record)
    total = statistics.median(r["total"] for r in records)
    cpu = statistics.median(r["cpu"] for r in records)
    result = {
        **dataclasses.asdict(case),
        "params_m": params / 1e6,
        "gflop_per_step": flops / 1e9,
        "step_s": total,
        "samples_per_s": case.batch / total,
        "peak_gflops": peak,
        "achieved_gflops": flops / total / 1e9,
        "mfu": flops / total / 1e9 / peak,
        "cpu_s": cpu,
        "peak_gflops_per_cpu_s": peak_cpu,
        "mfu_cpu_time": flops / cpu / 1e9 / peak_cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for part in ("data", "forward", "backward", "optimizer"):
        values = [r[f"time_{part}"] for r in records if f"time_{part}" in r]
        if values:
            result[f"share_{part}"] = statistics.median(values) / total
    return result


def optimizer_steps(config_name: str, threads: int, repeats: int = 5) -> dict[str, float]:
    """Median seconds of one optimiser step alone (random gradients), per optimiser variant."""
    from wallwm_core.model.wallwm import build_model
    from wallwm_core.training.optim import MuonAdamW

    torch.set_num_threads(threads)
    config = model_config(config_name)
    model = build_model(config)
    for parameter in model.parameters():
        parameter.grad = torch.randn_like(parameter)
    variants = {
        "muon + adamw (old)": {},
        "muon + fused adamw": {"fused": True},
        "adamw": {"use_muon": False},
        "fused adamw": {"use_muon": False, "fused": True},
    }
    result = {}
    for name, options in variants.items():
        optimizer = MuonAdamW(model, config.optimizer, **options)
        optimizer.step()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            optimizer.step()
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times)
    return result


def _busy_worker(stop: Any) -> None:
    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def run_case(case: Case, steps: int, folder: str) -> dict[str, Any]:
    context = mp.get_context("spawn")
    stop = context.Event()
    busy = [context.Process(target=_busy_worker, args=(stop,)) for _ in range(case.busy)]
    for process in busy:
        process.start()
    try:
        with context.Pool(1) as pool:
            return pool.apply(_measure, (case, steps, folder))
    finally:
        stop.set()
        for process in busy:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


def cases(args: argparse.Namespace) -> list[Case]:
    batches = {"tiny": 8, "ref": 8, "cpu": args.cpu_batch, "cpu64": args.cpu_batch}
    result = []
    for threads in args.threads:
        for name in args.configs:
            result.append(Case(name, batches[name], threads, label=f"{name} t{threads}"))
    first = args.threads[0]  # the variants run with the first thread count given
    for name in args.configs:
        label = f"{name} t{first}"
        result.append(Case(name, batches[name], first, "adamw", label=f"{label} adamw"))
        result.append(Case(name, batches[name], first, step_code="old", label=f"{label} old"))
    if args.busy and "cpu" in args.configs:
        for threads in args.threads:
            label = f"cpu t{threads} adamw busy{args.busy}"
            case = Case("cpu", args.cpu_batch, threads, "adamw", busy=args.busy, label=label)
            result.append(case)
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'case':22s} {'params':>7s} {'GFLOP':>7s} {'step s':>7s} {'smp/s':>6s} {'MFU':>5s} "
        f"{'peak':>5s} {'data':>5s} {'fwd':>5s} {'bwd':>5s} {'opt':>5s} {'RSS MB':>7s} "
        f"{'CPU s':>6s} {'MFU/CPU':>7s} {'load':>5s}"
    )
    print(header)
    for r in results:

        def share(part: str, r: dict[str, Any] = r) -> str:
            return f"{100 * r[f'share_{part}']:4.0f}%" if f"share_{part}" in r else "    -"

        print(
            f"{r['label']:22s} {r['params_m']:6.2f}M {r['gflop_per_step']:7.1f} "
            f"{r['step_s']:7.3f} {r['samples_per_s']:6.1f} {100 * r['mfu']:4.0f}% "
            f"{r['peak_gflops']:5.0f} {share('data')} {share('forward')} {share('backward')} "
            f"{share('optimizer')} {r['peak_rss_mb']:7.0f} {r['cpu_s']:6.2f} "
            f"{100 * r['mfu_cpu_time']:6.0f}% {r.get('load', 0.0):5.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "ref", "cpu"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cpu-batch", type=int, default=32)
    parser.add_argument("--busy", type=int, default=2, help="busy child processes (0: skip)")
    parser.add_argument("--out", default="", help="also write the results as JSON")
    parser.add_argument("--optimizer-only", action="store_true", help="only the optimiser table")
    args = parser.parse_args()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {platform.processor() or platform.machine()}"
        f"  {os.cpu_count()} CPUs  torch {torch.__version__}  load {os.getloadavg()[0]:.1f}"
    )
    print(f"optimizer step alone, {args.threads[0]} thread(s), seconds (median of 5):")
    optimizer_results = {}
    for name in args.configs:
        optimizer_results[name] = optimizer_steps(name, args.threads[0])
        cells = "  ".join(f"{k} {v:.4f}" for k, v in optimizer_results[name].items())
        print(f"  {name:5s} {cells}", flush=True)
    if args.optimizer_only:
        return
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for case in cases(args):
            load = os.getloadavg()[0]
            result = run_case(case, args.steps, folder)
            result["load"] = (load + os.getloadavg()[0]) / 2
            results.append(result)
            print_table([result])
            sys.stdout.flush()
    print("\nall cases:")
    print_table(results)
    if args.out:
        data = {"cases": results, "optimizer_step_s": optimizer_results}
        Path(args.out).write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()

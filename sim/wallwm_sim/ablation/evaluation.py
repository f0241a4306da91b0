"""The evaluation stage: each finished run's final EMA checkpoint in closed loop, in shards.

A shard is one (run, task, variant, block of ``eval.shard_episodes`` seeds); it is evaluated
with :func:`wallwm_sim.evaluate.evaluate_policy` (the closed-loop harness of
``python -m wallwm_sim.evaluate --policy wallwm``) and written whole or not at all:
``OUTPUT/eval/ARM/seedN/TASK.VARIANT.seedsA-B/`` holds the harness's ``report.json`` and
``task_progress.png`` plus ``shard.json`` (what was evaluated, how, when, where). A shard whose
``shard.json`` matches the plan is skipped; a stale one (another checkpoint or settings) is
evaluated again. How an arm runs in closed loop follows from its training windows
(:class:`wallwm_sim.ablation.spec.ArmEval`).

With ``eval.jobs > 1`` the driver starts that many worker processes
(``--stage eval --worker K/N``); worker K evaluates the shards whose index is K modulo N.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wallwm_core.machine_info import machine_description
from wallwm_sim.ablation.runs import Stopper, run_status
from wallwm_sim.ablation.spec import ArmEval, Plan, Run

logger = logging.getLogger(__name__)
SHARD_FILE = "shard.json"
REPORT_FILE = "report.json"


@dataclasses.dataclass(frozen=True)
class Shard:
    run: Run
    task: str
    variant: str
    seeds: tuple[int, ...]
    path: Path


def shards(plan: Plan, runs: Sequence[Run] | None = None) -> list[Shard]:
    """Every shard of the plan, run-major, in a fixed order."""
    size = plan.spec.eval.shard_episodes
    seeds = plan.spec.eval.seed_list
    result = []
    for run in runs if runs is not None else plan.runs:
        folder = plan.output / "eval" / run.arm / f"seed{run.seed}"
        for task, variant in plan.spec.eval.cells():
            for start in range(0, len(seeds), size):
                block = tuple(seeds[start : start + size])
                name = f"{task}.{variant}.seeds{block[0]}-{block[-1]}"
                result.append(Shard(run, task, variant, block, folder / name))
    return result


def checkpoint_of(plan: Plan, run: Run) -> Path | None:
    """The checkpoint to evaluate, None until the run is finished."""
    status = run_status(run)
    if status.state != "done" or status.checkpoint is None:
        return None
    if plan.spec.eval.checkpoint == "best":
        best = run.run_dir / "best"
        return best if best.is_dir() else None
    return status.checkpoint


def settings_of(plan: Plan, arm_eval: ArmEval) -> dict[str, Any]:
    """The evaluation settings a shard records (and must match to be reused)."""
    spec = plan.spec.eval
    return {
        "mode": arm_eval.mode,
        "chunk_steps": arm_eval.chunk_steps,
        "instruction": arm_eval.instruction,
        "latency": spec.latency,
        "image_size": spec.image_size,
        "max_duration_s": spec.max_duration_s,
        "checkpoint": spec.checkpoint,
    }


def expected_meta(plan: Plan, shard: Shard, checkpoint: Path) -> dict[str, Any]:
    return {
        "arm": shard.run.arm,
        "training_seed": shard.run.seed,
        "task": shard.task,
        "variant": shard.variant,
        "seeds": list(shard.seeds),
        "checkpoint": str(checkpoint),
        "settings": settings_of(plan, plan.arm_eval[shard.run.arm]),
    }


def shard_done(plan: Plan, shard: Shard, checkpoint: Path) -> bool:
    """The shard's files exist and record this checkpoint, seeds and settings."""
    meta_file = shard.path / SHARD_FILE
    if not (meta_file.is_file() and (shard.path / REPORT_FILE).is_file()):
        return False
    meta = json.loads(meta_file.read_text())
    wanted = expected_meta(plan, shard, checkpoint)
    return all(meta.get(key) == value for key, value in wanted.items())


class ClosedLoopCache:
    """One closed-loop policy per run (the checkpoint loads once for all its shards)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._key: str | None = None
        self._policy: Any = None

    def get(self, run: Run, checkpoint: Path) -> Any:
        if self._key != str(checkpoint):
            self._policy = closed_loop_for(self.plan, self.plan.arm_eval[run.arm], checkpoint)
            self._key = str(checkpoint)
        return self._policy


def closed_loop_for(plan: Plan, arm_eval: ArmEval, checkpoint: Path) -> Any:
    """The checkpoint as a ClosedLoopPolicy, run the way ``arm_eval`` says."""
    import torch

    from wallwm_core.checkpoint import MODEL_CONFIG_FILE, load_metadata
    from wallwm_core.inference.config import UnifiedConfig
    from wallwm_sim.closed_loop_policy import (
        ClosedLoopPolicy,
        ClosedLoopSettings,
        wallwm_closed_loop,
    )
    from wallwm_sim.evaluate import parse_latency
    from wallwm_sim.tasks import get_task

    spec = plan.spec.eval
    torch.set_num_threads(spec.threads)
    latency, fixed_s = parse_latency(spec.latency)
    settings = ClosedLoopSettings(
        latency=latency, fixed_latency_s=fixed_s, image_size=spec.image_size
    )
    if arm_eval.instruction == "task":
        # The whole task is one event: it may last as long as the task.
        longest = max(get_task(t).time_limit_s for t in spec.tasks)
        settings = dataclasses.replace(
            settings, max_event_duration_s=max(settings.max_event_duration_s, longest)
        )
    inference = load_metadata(checkpoint).inference
    if arm_eval.mode == "unified":
        from wallwm_core.model.config import load_model_config

        model = load_model_config(checkpoint / MODEL_CONFIG_FILE)
        per_frame = model.action.steps_per_latent_frame
        window = UnifiedConfig(
            history_frames=model.objective.context_latent_frames - 1,
            future_frames=math.ceil(arm_eval.chunk_steps / per_frame),
            chunk_steps=arm_eval.chunk_steps,
        )
        inference = dataclasses.replace(inference, mode="unified", unified=window)
    loaded = wallwm_closed_loop(checkpoint, settings, device=spec.device, inference=inference)
    if arm_eval.instruction == "events":
        return loaded

    def task_instruction(task: str, seed: int, variant: str) -> tuple[Any, list[str]]:
        return loaded.policy, [get_task(task).sample(seed, variant).instruction]

    return ClosedLoopPolicy(None, loaded.cameras, settings, per_episode=task_instruction)


def evaluate_shard(plan: Plan, shard: Shard, checkpoint: Path, cache: ClosedLoopCache) -> Path:
    """Evaluate one shard and publish its folder (see the module doc)."""
    from wallwm_sim.evaluate import evaluate_policy, write_report

    policy = cache.get(shard.run, checkpoint)
    started = time.perf_counter()
    report = evaluate_policy(
        lambda: policy,
        [shard.task],
        list(shard.seeds),
        [shard.variant],
        policy_name=f"{shard.run.key} ({plan.arm_eval[shard.run.arm].describe()})",
        max_duration_s=plan.spec.eval.max_duration_s,
        show_progress=False,
    )
    tmp = shard.path.with_name(f"{shard.path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_report(report, tmp)
    meta = {
        **expected_meta(plan, shard, checkpoint),
        "checkpoint_step": run_status(shard.run).step,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "wall_s": time.perf_counter() - started,
        "command": " ".join(["python -m wallwm_sim.ablation", *sys.argv[1:]]),
    }
    (tmp / SHARD_FILE).write_text(json.dumps(meta, indent=1))
    if shard.path.exists():
        shutil.rmtree(shard.path)  # stale: another checkpoint or other settings
    tmp.rename(shard.path)
    return shard.path


def evaluate_all(plan: Plan, worker: tuple[int, int] = (0, 1)) -> int:
    """Evaluate this worker's share of the pending shards in this process; 0 when every shard
    of a finished run is done, 1 when some run is not finished yet (its shards wait) or its
    checkpoint cannot be evaluated (logged; the other runs go on)."""
    index, count = worker
    cache = ClosedLoopCache(plan)
    waiting, broken = set(), set()
    for position, shard in enumerate(shards(plan)):
        if position % count != index:
            continue
        checkpoint = checkpoint_of(plan, shard.run)
        if checkpoint is None:
            waiting.add(shard.run.key)
            continue
        if shard_done(plan, shard, checkpoint):
            continue
        if shard.run.key in broken:
            continue
        logger.info("evaluating %s -> %s", shard.run.key, shard.path)
        try:
            path = evaluate_shard(plan, shard, checkpoint, cache)
        except (ValueError, OSError) as error:  # CheckpointError is a ValueError
            logger.error("%s: cannot evaluate %s: %s", shard.run.key, checkpoint, error)
            broken.add(shard.run.key)
            continue
        logger.info("wrote %s", path / REPORT_FILE)
    for key in sorted(waiting):
        logger.warning("%s: training not finished; its evaluation waits", key)
    return 1 if waiting or broken else 0


def evaluate_in_workers(plan: Plan, argv_spec: Sequence[str]) -> int:
    """``eval.jobs`` worker processes of this command (``argv_spec``: the spec and its
    overrides), one per share, signals passed on."""
    count = plan.spec.eval.jobs
    if count == 1:
        return evaluate_all(plan)
    log_dir = plan.output / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    codes, logs = [], []
    with Stopper() as stopper:
        for index in range(count):
            log = (log_dir / f"eval_worker{index}.log").open("a")
            command = [
                sys.executable,
                "-m",
                "wallwm_sim.ablation",
                *argv_spec,
                "--stage",
                "eval",
                "--worker",
                f"{index}/{count}",
            ]
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            stopper.processes.append(process)
            logs.append(log)
        for process, log in zip(stopper.processes, logs, strict=True):
            codes.append(process.wait())
            log.close()
        if stopper.signal is not None:
            return 128 + stopper.signal
    return max(codes) if all(c >= 0 for c in codes) else 1

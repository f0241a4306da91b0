"""The training stage: every arm x training seed as a resumable training subprocess.

Per run (``OUTPUT/runs/ARM/seedN``): finished (its ``last`` checkpoint is at ``train.steps``)
-> skipped; interrupted (a ``last`` checkpoint below that) -> ``--resume``; missing, or a folder
without a checkpoint (stopped during data preparation) -> started afresh. The run's resolved
config must match the one it was made with (model, seed, data, optimiser, steps, batch,
validation; ``runtime`` and the logging / checkpoint intervals may change), else it is refused.

Each run is ``python -m wallwm_core.training.train BASE_CONFIG [--resume RUN] OVERRIDES...`` in
a session of its own, its output appended to ``OUTPUT/logs/ARM_seedN.log``. A signal to the
driver (SIGTERM, SIGINT, SIGHUP) is passed on once as SIGTERM: each run saves a checkpoint and
exits 143, and the next invocation resumes it. A run also holds an exclusive lock
(``seedN.lock``) that its process inherits: a run still going after its driver died is never
started twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from wallwm_core.file_lock import try_lock
from wallwm_core.training.config import train_config_to_dict
from wallwm_sim.ablation.spec import Plan, Run

logger = logging.getLogger(__name__)

TRAIN_MODULE = "wallwm_core.training.train"
EXIT_OK, EXIT_BAD_INPUT, EXIT_SIGTERM = 0, 2, 143
# Sections of the training config a run may change between sessions.
MUTABLE = {
    "runtime": None,
    "train": ("log_interval", "eval_interval", "checkpoint_interval", "keep_last"),
}
POLL_S = 2.0


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """Where a run stands: ``state`` is ``missing``, ``empty`` (a folder without a checkpoint),
    ``partial`` or ``done``; ``step`` / ``samples_seen`` of its ``last`` checkpoint."""

    state: str
    step: int = 0
    samples_seen: int = 0
    checkpoint: Path | None = None


def run_status(run: Run) -> RunStatus:
    """The run's state on disk (see :class:`RunStatus`)."""
    if not run.run_dir.exists():
        return RunStatus("missing")
    last = run.run_dir / "last"
    target = last.resolve() if last.is_symlink() or last.exists() else None
    state_file = target / "training_state" / "state.json" if target is not None else None
    if state_file is None or not state_file.is_file():
        return RunStatus("empty")
    counters = json.loads(state_file.read_text())
    step, samples = int(counters["step"]), int(counters["samples_seen"])
    state = "done" if step >= run.config.train.steps else "partial"
    return RunStatus(state, step, samples, target)


def config_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Keys (dotted) where the run's saved config and the spec's differ, beyond what may
    change between sessions (:data:`MUTABLE`)."""

    def flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        items: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                items.update(flat(value, f"{prefix}{key}."))
            else:
                items[f"{prefix}{key}"] = value
        return items

    def mutable(key: str) -> bool:
        section, _, name = key.partition(".")
        if section not in MUTABLE:
            return False
        names = MUTABLE[section]
        return names is None or name in names

    left, right = flat(saved), flat(wanted)
    return [
        f"{k}: run has {left.get(k)!r}, spec gives {right.get(k)!r}"
        for k in sorted(set(left) | set(right))
        if not mutable(k) and left.get(k) != right.get(k)
    ]


def train_command(run: Run, resume: bool) -> list[str]:
    """The train command line (``--resume`` first: argparse wants the positionals together)."""
    command = [sys.executable, "-m", TRAIN_MODULE]
    if resume:
        command += ["--resume", str(run.run_dir)]
    return [*command, str(run.config_path), *run.overrides]


@dataclasses.dataclass
class Job:
    run: Run
    process: subprocess.Popen
    lock: Any  # the open lock file (its flock is shared with the child)
    log: Any


class Stopper:
    """Signals to the driver: remember the first, pass SIGTERM on once to every child."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.signal: int | None = None
        self.processes: list[subprocess.Popen] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Stopper:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None:
            return
        self.signal = signum
        logger.warning("signal %d: stopping %d child process(es)", signum, len(self.processes))
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)


def prepare(run: Run) -> bool | str:
    """Decide how ``run`` starts: True to resume, False to start afresh, or why not to run it
    ("done" or a refusal message)."""
    status = run_status(run)
    if status.state == "done":
        return "done"
    if status.state == "empty":
        # Stopped before its first checkpoint (data preparation, first steps): nothing to keep.
        logger.info("%s: no checkpoint yet; starting it afresh", run.key)
        shutil.rmtree(run.run_dir)
        return False
    if status.state == "missing":
        return False
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    differences = config_differences(saved, train_config_to_dict(run.config))
    if differences:
        return (
            f"{run.key}: the run was made with another config ({'; '.join(differences[:4])}); "
            f"move {run.run_dir} away or restore the spec"
        )
    return True


def _start(run: Run, resume: bool, lock: Any) -> Job:
    run.log.parent.mkdir(parents=True, exist_ok=True)
    log = run.log.open("a")
    command = train_command(run, resume)
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n")
    log.flush()
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # the driver passes signals on itself, exactly once
        pass_fds=(lock.fileno(),),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    logger.info(
        "%s: %s (pid %d, log %s)",
        run.key,
        "resuming" if resume else "starting",
        process.pid,
        run.log,
    )
    return Job(run, process, lock, log)


def train_all(plan: Plan, runs: Sequence[Run] | None = None) -> int:
    """Train every run of ``plan`` that is not finished, ``training.jobs`` at a time.

    Returns 0 when all are finished, 143 / 130 / 129 when stopped by a signal (all resumable),
    1 when a run failed or was refused (the log names it; the others still ran).
    """
    pending: Iterator[Run] = iter(runs if runs is not None else plan.runs)
    jobs_at_once = plan.spec.training.jobs
    failed: list[str] = []
    jobs: list[Job] = []
    with Stopper() as stopper:
        while True:
            while stopper.signal is None and len(jobs) < jobs_at_once:
                run = next(pending, None)
                if run is None:
                    break
                lock = try_lock(run.run_dir.with_name(run.run_dir.name + ".lock"))
                if lock is None:
                    logger.error("%s: another process is training it; skipped", run.key)
                    failed.append(run.key)
                    continue
                decision = prepare(run)
                if isinstance(decision, str):
                    lock.close()
                    if decision == "done":
                        logger.info("%s: finished, skipped", run.key)
                    else:
                        logger.error("%s", decision)
                        failed.append(run.key)
                    continue
                jobs.append(_start(run, decision, lock))
                stopper.processes.append(jobs[-1].process)
                if stopper.signal is not None:  # the signal came while it started
                    with contextlib.suppress(ProcessLookupError):
                        jobs[-1].process.send_signal(signal.SIGTERM)
            if not jobs:
                break
            time.sleep(POLL_S)
            for job in list(jobs):
                code = job.process.poll()
                if code is None:
                    continue
                jobs.remove(job)
                stopper.processes.remove(job.process)
                job.log.close()
                job.lock.close()
                _report_exit(job.run, code, failed)
    if stopper.signal is not None:
        return 128 + stopper.signal
    return 1 if failed else 0


def _report_exit(run: Run, code: int, failed: list[str]) -> None:
    status = run_status(run)
    if code == EXIT_OK and status.state == "done":
        logger.info("%s: done at step %d (%d samples)", run.key, status.step, status.samples_seen)
    elif code in (EXIT_SIGTERM, -signal.SIGTERM):  # -15: stopped before its loop began
        logger.info("%s: stopped at step %d; resumes next time", run.key, status.step)
    else:
        logger.error("%s: exit code %d at step %d; see %s", run.key, code, status.step, run.log)
        failed.append(run.key)


def status_lines(plan: Plan) -> list[str]:
    """One line per run: state, step, samples."""
    lines = []
    for run in plan.runs:
        status = run_status(run)
        total = run.config.train.steps
        lines.append(
            f"{run.key:<24} {status.state:<8} step {status.step:>6}/{total} "
            f"({status.samples_seen} samples)"
        )
    return lines

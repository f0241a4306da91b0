"""The report stage: every evaluated shard aggregated into ``ablation.json``, ``ablation.md`` and
``ablation.png`` in the output folder.

Per arm: Task Progress per (task, variant), per task and per group of variants ("reasoning",
"generalization"), pooled over training seeds as the mean of (training seed, task, variant)
cell means with a stratified bootstrap interval (:mod:`wallwm_sim.ablation.stats`), the mean of
each training seed and a t-interval over them, the success rate (Task Progress 100) with a
Wilson interval, the difference to the reference arm, and where failed episodes failed
(:mod:`wallwm_sim.ablation.failures`) and, for arms with one instruction per event, how long
their events lasted beside the demonstrations (:mod:`wallwm_sim.ablation.durations`). Missing
shards leave the report incomplete, and it says so; evaluation seeds that appear in a run's
training data are an error it names.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wallwm_core.machine_info import machine_description
from wallwm_sim.ablation import stats
from wallwm_sim.ablation.durations import demonstration_durations, event_durations
from wallwm_sim.ablation.evaluation import (
    REPORT_FILE,
    checkpoint_of,
    shard_done,
    shards,
)
from wallwm_sim.ablation.failures import ENDED_EARLY, failure_point
from wallwm_sim.ablation.runs import run_status
from wallwm_sim.ablation.spec import Plan
from wallwm_sim.tasks import get_task

JSON_FILE, MARKDOWN_FILE, PLOT_FILE = "ablation.json", "ablation.md", "ablation.png"
SUCCESS_SCORE = 100.0
# The paper's numbers for its fixed-chunk base and its event recipe (issue 13, item 6).
PAPER = {"reasoning": (32.6, 71.6), "generalization": (22.0, 53.75)}

Cell = tuple[str, int, str, str]  # (arm, training seed, task, variant)


@dataclasses.dataclass
class Collected:
    """What the shards hold: episode rows per cell, and what is missing or wrong."""

    episodes: dict[Cell, list[dict[str, Any]]]
    shards_found: int
    shards_total: int
    problems: list[str]
    runs: dict[str, list[dict[str, Any]]]  # arm -> per-run facts

    def episodes_of(self, arm: str, task: str | None = None) -> list[dict[str, Any]]:
        """Every episode row of ``arm`` (of ``task`` only, if given), over seeds and variants."""
        return [
            e
            for (a, _, t, _), found in self.episodes.items()
            if a == arm and task in (None, t)
            for e in found
        ]


def collect(plan: Plan) -> Collected:
    """Read every shard of the plan that is done (matching its run's checkpoint)."""
    episodes: dict[Cell, list[dict[str, Any]]] = collections.defaultdict(list)
    problems: list[str] = []
    found = 0
    all_shards = shards(plan)
    eval_seeds = set(plan.spec.eval.seed_list)
    runs: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for run in plan.runs:
        status = run_status(run)
        facts = {
            "seed": run.seed,
            "state": status.state,
            "step": status.step,
            "samples_seen": status.samples_seen,
            "run_dir": str(run.run_dir),
        }
        data_report = run.run_dir / "data_report.json"
        if data_report.is_file():
            seeds = json.loads(data_report.read_text()).get("seeds", {})
            trained = set(seeds.get("train", [])) | set(seeds.get("val", []))
            overlap = sorted(trained & eval_seeds)
            facts["data_seeds"] = [min(trained), max(trained)] if trained else []
            if overlap:
                problems.append(
                    f"{run.key}: evaluation seeds {overlap} are in its training data: its "
                    "results do not measure held-out episodes"
                )
        if status.state == "done" and status.samples_seen != plan.spec.training.samples:
            problems.append(
                f"{run.key}: trained on {status.samples_seen} samples, the spec says "
                f"{plan.spec.training.samples}"
            )
        runs[run.arm].append(facts)
    for shard in all_shards:
        checkpoint = checkpoint_of(plan, shard.run)
        if checkpoint is None or not shard_done(plan, shard, checkpoint):
            continue
        found += 1
        report = json.loads((shard.path / REPORT_FILE).read_text())
        for episode in report["episodes"]:
            cell = (shard.run.arm, shard.run.seed, episode["task"], episode["variant"])
            episodes[cell].append(episode)
    return Collected(dict(episodes), found, len(all_shards), problems, dict(runs))


def _scores(rows: Iterable[dict[str, Any]]) -> np.ndarray:
    return np.array([float(r["score"]) for r in rows], dtype=float)


def summarise(
    plan: Plan, data: Collected, arm: str, cells: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """Task Progress and success of ``arm`` over the (task, variant) ``cells``, pooled over its
    training seeds (see the module doc)."""
    report = plan.spec.report
    strata, per_seed = [], {}
    successes = count = 0
    for seed in plan.spec.training.seeds:
        seed_cells = [_scores(data.episodes.get((arm, seed, t, v), [])) for t, v in cells]
        seed_cells = [c for c in seed_cells if c.size]
        strata += seed_cells
        if seed_cells:
            per_seed[str(seed)] = float(np.mean([c.mean() for c in seed_cells]))
        successes += sum(int((c >= SUCCESS_SCORE).sum()) for c in seed_cells)
        count += sum(c.size for c in seed_cells)
    progress = stats.stratified_bootstrap(strata, report.bootstrap_resamples, report.confidence)
    return {
        "task_progress": progress.to_json(),
        "per_seed": per_seed,
        "seed_t_interval": stats.t_interval(list(per_seed.values()), report.confidence).to_json(),
        "success": stats.wilson(successes, count, report.confidence).to_json(),
    }


def _strata(plan: Plan, data: Collected, arm: str, cells: Sequence[tuple[str, str]]) -> list:
    return [
        _scores(data.episodes.get((arm, seed, t, v), []))
        for seed in plan.spec.training.seeds
        for t, v in cells
    ]


def scopes(plan: Plan) -> dict[str, list[tuple[str, str]]]:
    """Named sets of (task, variant) cells: each group, each task, each (task, variant)."""
    cells = plan.spec.eval.cells()
    result = {
        name: [(t, v) for t, v in cells if v in variants]
        for name, variants in plan.spec.report.groups.items()
    }
    for task in plan.spec.eval.tasks:
        result[task] = [(t, v) for t, v in cells if t == task]
    for task, variant in cells:
        result[f"{task}/{variant}"] = [(task, variant)]
    return result


def _per_event(plan: Plan, arm: str) -> bool:
    """Whether ``arm`` runs a task's events one instruction each (else the task as one)."""
    return plan.arm_eval[arm].instruction == "events"


def failure_points(plan: Plan, data: Collected, arm: str) -> dict[str, Any]:
    """Where the failed episodes of ``arm`` failed, per task and event index."""
    per_event = _per_event(plan, arm)
    tasks: dict[str, dict[str, Any]] = {}
    totals = collections.Counter()
    for task in plan.spec.eval.tasks:
        milestones = [s.milestone for s in get_task(task).sample(0, "train").subtasks]
        rows: dict[int, dict[str, Any]] = {}
        episodes = data.episodes_of(arm, task)
        failed = 0
        for episode in episodes:
            point = failure_point(episode, milestones, per_event)
            if point is None:
                continue
            failed += 1
            if point.index not in rows:
                subtasks = get_task(task).sample(int(episode["seed"]), episode["variant"]).subtasks
                example = subtasks[point.index].caption if point.index < len(subtasks) else ""
                rows[point.index] = {
                    "index": point.index,
                    "milestone": point.milestone or "(after the last event)",
                    "example": example,
                    "failures": 0,
                    "kinds": collections.Counter(),
                }
            rows[point.index]["failures"] += 1
            rows[point.index]["kinds"][point.kind] += 1
            where = (
                "first_event"
                if point.index == 0
                else "after_last_event"
                if point.index >= len(milestones)
                else "transition"
            )
            totals[where] += 1
            totals[ENDED_EARLY] += point.kind == ENDED_EARLY
        for row in rows.values():
            row["share"] = row["failures"] / failed
            row["kinds"] = dict(row["kinds"])
        tasks[task] = {
            "episodes": len(episodes),
            "failed": failed,
            "events": [rows[i] for i in sorted(rows)],
        }
    return {
        "per_event_instructions": per_event,
        "failed": sum(t["failed"] for t in tasks.values()),
        "at_first_event": totals["first_event"],
        "at_transition": totals["transition"],
        "after_last_event": totals["after_last_event"],
        "ended_early": totals[ENDED_EARLY] if per_event else None,
        "tasks": tasks,
    }


def aggregate(plan: Plan, data: Collected, command: str) -> dict[str, Any]:
    """The content of ``ablation.json``."""
    spec = plan.spec
    named = scopes(plan)
    # The folders as the runs resolved them (the spec's may be relative to another directory).
    data_paths = plan.runs[0].config.data.paths if plan.runs else spec.data.paths
    demonstrations, demonstration_notes = demonstration_durations(data_paths, spec.eval.tasks)
    arms: dict[str, Any] = {}
    for arm in spec.arms:
        arms[arm.name] = {
            "overrides": list(arm.overrides),
            "evaluation": plan.arm_eval[arm.name].describe(),
            "runs": data.runs.get(arm.name, []),
            "scopes": {
                name: summarise(plan, data, arm.name, cells) for name, cells in named.items()
            },
            "failure_points": failure_points(plan, data, arm.name),
            "event_durations": (
                event_durations(data.episodes_of(arm.name), demonstrations)
                if _per_event(plan, arm.name)
                else None
            ),
        }
    reference = spec.reference
    differences = {
        arm.name: {
            name: stats.bootstrap_difference(
                _strata(plan, data, arm.name, cells),
                _strata(plan, data, reference, cells),
                spec.report.bootstrap_resamples,
                spec.report.confidence,
            ).to_json()
            for name, cells in named.items()
        }
        for arm in spec.arms
        if arm.name != reference
    }
    expected = len(spec.eval.cells()) * len(spec.eval.seed_list) * len(plan.runs)
    found = sum(len(v) for v in data.episodes.values())
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "command": command,
        "spec": str(plan.spec_path),
        "protocol_checked": spec.check_protocol,
        "complete": found == expected and not data.problems,
        "episodes": {"found": found, "expected": expected},
        "shards": {"found": data.shards_found, "expected": data.shards_total},
        "problems": data.problems,
        "samples_per_run": spec.training.samples,
        "training_seeds": list(spec.training.seeds),
        "eval": {
            "tasks": list(spec.eval.tasks),
            "variants": list(spec.eval.variants),
            "seeds": spec.eval.seeds,
            "latency": spec.eval.latency,
            "image_size": spec.eval.image_size,
            "checkpoint": spec.eval.checkpoint,
        },
        "groups": {k: list(v) for k, v in spec.report.groups.items()},
        "method": {
            "task_progress": "mean over (training seed, task, variant) cells of the cell means; "
            f"percentile bootstrap, {spec.report.bootstrap_resamples} resamples of the episodes "
            "within each cell",
            "seed_spread": "per-training-seed means and Student's t interval over them",
            "success": "episodes at Task Progress 100, Wilson score interval",
            "difference": "arm minus reference arm, each side bootstrapped independently",
            "confidence": spec.report.confidence,
        },
        "reference_arm": reference,
        "arms": arms,
        "differences": differences,
        "paper": {k: {"chunk": v[0], "event": v[1]} for k, v in PAPER.items()},
        "demonstration_notes": demonstration_notes,
    }


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
def _ci(interval: dict[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    if interval["n"] == 0 or math.isnan(interval["value"]):
        return "-"
    value, low, high = (interval[k] * scale for k in ("value", "low", "high"))
    if math.isnan(low):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown(result: dict[str, Any]) -> str:
    """``ablation.md``: the tables of ``result`` (see docs/ablation.md for how to read them)."""
    level = round(100 * result["method"]["confidence"])
    arms = result["arms"]
    groups = list(result["groups"])
    tasks = result["eval"]["tasks"]
    lines = [
        "# Event-vs-chunk ablation",
        "",
        f"Made {result['created']} on {result['machine']} by `{result['command']}` "
        f"(spec `{result['spec']}`).",
        "",
    ]
    if not result["complete"]:
        lines += [
            f"**Incomplete**: {result['episodes']['found']} of {result['episodes']['expected']} "
            f"episodes ({result['shards']['found']} of {result['shards']['expected']} shards).",
            "",
        ]
    if not result["protocol_checked"]:
        lines += ["**Protocol checks off** (check_protocol: false): not an ablation result.", ""]
    for problem in result["problems"]:
        lines.append(f"- **Problem**: {problem}")
    if result["problems"]:
        lines.append("")
    lines += [
        f"{len(result['training_seeds'])} training seed(s) per arm, {result['samples_per_run']} "
        f"samples per run; evaluation seeds {result['eval']['seeds']} of "
        f"{', '.join(tasks)} x {', '.join(result['eval']['variants'])} (the `"
        f"{result['eval']['checkpoint']}` EMA checkpoint, latency {result['eval']['latency']}, "
        f"{result['eval']['image_size']} px). Task Progress: mean [{level}% stratified bootstrap "
        "CI]; success: rate [Wilson CI]. Groups: "
        + "; ".join(f"{g} = {', '.join(v)}" for g, v in result["groups"].items())
        + ".",
        "",
        "| arm | evaluation | "
        + " | ".join(f"{g} TP" for g in groups)
        + " | "
        + " | ".join(f"{g} success %" for g in groups)
        + " |",
        "|---" * (2 + 2 * len(groups)) + "|",
    ]
    for name, arm in arms.items():
        scopes_ = arm["scopes"]
        lines.append(
            f"| {name} | {arm['evaluation']} | "
            + " | ".join(_ci(scopes_[g]["task_progress"]) for g in groups)
            + " | "
            + " | ".join(_ci(scopes_[g]["success"], 100.0, 0) for g in groups)
            + " |"
        )
    lines += [
        "",
        "Per training seed (Task Progress; t-interval over the seeds' means):",
        "",
        "| arm | " + " | ".join(groups) + " |",
        "|---" * (1 + len(groups)) + "|",
    ]
    for name, arm in arms.items():
        cells = []
        for g in groups:
            scope = arm["scopes"][g]
            seeds = ", ".join(f"{s}: {v:.1f}" for s, v in scope["per_seed"].items()) or "-"
            cells.append(f"{seeds} (t: {_ci(scope['seed_t_interval'])})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    per_cell = [k for k in next(iter(arms.values()))["scopes"] if "/" in k]
    lines += [
        "",
        "Per task and variant (Task Progress):",
        "",
        "| arm | " + " | ".join(tasks) + " | " + " | ".join(per_cell) + " |",
        "|---" * (1 + len(tasks) + len(per_cell)) + "|",
    ]
    for name, arm in arms.items():
        values = [_ci(arm["scopes"][k]["task_progress"]) for k in (*tasks, *per_cell)]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    if result["differences"]:
        lines += [
            "",
            f"Difference to the reference arm {result['reference_arm']} (Task Progress points):",
            "",
            "| arm | " + " | ".join([*groups, *tasks]) + " |",
            "|---" * (1 + len(groups) + len(tasks)) + "|",
        ]
        for name, diff in result["differences"].items():
            values = [_ci(diff[k]) for k in (*groups, *tasks)]
            lines.append(f"| {name} - {result['reference_arm']} | " + " | ".join(values) + " |")
    lines += [
        "",
        "The paper (its scale, not ours): reasoning "
        f"{PAPER['reasoning'][0]} (chunk) -> {PAPER['reasoning'][1]} (event), generalization "
        f"{PAPER['generalization'][0]} -> {PAPER['generalization'][1]}.",
        "",
        "## Failure points",
        "",
        "Where failed episodes failed: the first event (in task order) whose milestone did not "
        "hold at the end of the episode. Index 0 is the first event; k >= 1 is the transition "
        "from event k-1 into event k. Kinds (arms that run one instruction per event): the "
        "planner's verdict on that event's last attempt: 'ended early' = the policy declared "
        "the event done before its milestone was reached.",
        "",
        "| arm | failed | at first event | at a transition | after last event | ended early |",
        "|---|---|---|---|---|---|",
    ]
    for name, arm in arms.items():
        f = arm["failure_points"]
        early = "-" if f["ended_early"] is None else str(f["ended_early"])
        lines.append(
            f"| {name} | {f['failed']} | {f['at_first_event']} | {f['at_transition']} | "
            f"{f['after_last_event']} | {early} |"
        )
    lines += [
        "",
        "| arm | task | event | milestone | example instruction | failures | share | kinds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, arm in arms.items():
        for task, found in arm["failure_points"]["tasks"].items():
            for row in found["events"]:
                kinds = ", ".join(f"{k or '-'}: {n}" for k, n in sorted(row["kinds"].items()))
                lines.append(
                    f"| {name} | {task} | {row['index']} | {row['milestone']} | "
                    f"{row['example']} | {row['failures']} | {100 * row['share']:.0f}% | {kinds} |"
                )
    lines += _duration_lines(result)
    lines += ["", f"![ablation]({PLOT_FILE})", ""]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _duration_lines(result: dict[str, Any]) -> list[str]:
    rows = [
        (name, row)
        for name, arm in result["arms"].items()
        for row in (arm.get("event_durations") or [])
    ]
    if not rows:
        return []
    lines = [
        "",
        "## Event durations",
        "",
        "Arms with one instruction per event: the first attempt at each event (all evaluated "
        "variants), how long it lasted until the policy ended it (or the planner did), beside the "
        "same event in the demonstrations (train variant, `subtask` track of data.paths). "
        "Events that end much sooner than the demonstrations' point at the Δt head; events of "
        "about their length that miss the milestone point at the motion. Succeeded: the "
        "rubric's verdict when the attempt ended.",
        "",
        "| arm | task | event | first attempts | median s | succeeded | ended before "
        "the demonstrations' median | demonstrations | their median s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows:
        shorter = row["shorter_than_demonstrations"]
        lines.append(
            f"| {name} | {row['task']} | {row['index']} | {row['first_attempts']} | "
            f"{_seconds(row['median_s'])} | {row['succeeded']} | "
            f"{'-' if shorter is None else f'{100 * shorter:.0f}%'} | {row['demonstrations']} | "
            f"{_seconds(row['demonstrations_median_s'])} |"
        )
    notes = result.get("demonstration_notes", [])
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return lines


def plot(result: dict[str, Any], path: Path) -> None:
    """Grouped bars: Task Progress per arm for each group and task, CI whiskers; the caption
    names the date, the machine and the command."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*result["groups"], *result["eval"]["tasks"]]
    arms = list(result["arms"])
    width = 0.8 / max(1, len(arms))
    figure, axes = plt.subplots(figsize=(2.2 * len(names) + 2, 4.6))
    for position, arm in enumerate(arms):
        values, errors = [], [[], []]
        for name in names:
            interval = result["arms"][arm]["scopes"][name]["task_progress"]
            value = interval["value"] if interval["n"] else 0.0
            values.append(value)
            low = interval["low"] if interval["n"] and not math.isnan(interval["low"]) else value
            high = interval["high"] if interval["n"] and not math.isnan(interval["high"]) else value
            errors[0].append(value - low)
            errors[1].append(high - value)
        x = np.arange(len(names)) + (position - (len(arms) - 1) / 2) * width
        axes.bar(x, values, width, yerr=errors, capsize=3, label=arm)
    axes.set_xticks(range(len(names)), names, rotation=15)
    axes.set_ylim(0, 105)
    axes.set_ylabel("Task Progress (0-100)")
    level = round(100 * result["method"]["confidence"])
    status = "" if result["complete"] else " (INCOMPLETE)"
    axes.set_title(f"Event vs chunk: Task Progress, {level}% bootstrap CI{status}")
    axes.legend(loc="upper right", fontsize=8)
    caption = f"{result['created']} | {result['machine']} | {result['command']}"
    figure.text(0.01, 0.01, caption, fontsize=6, ha="left", va="bottom", wrap=True)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _json_safe(value: Any) -> Any:
    """NaN (an interval without data) as null: strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write(plan: Plan, command: str) -> dict[str, Any]:
    """Aggregate and write the three files into the output folder; returns the JSON content."""
    result = aggregate(plan, collect(plan), command)
    plan.output.mkdir(parents=True, exist_ok=True)
    (plan.output / JSON_FILE).write_text(json.dumps(_json_safe(result), indent=1))
    (plan.output / MARKDOWN_FILE).write_text(markdown(result))
    plot(result, plan.output / PLOT_FILE)
    return result

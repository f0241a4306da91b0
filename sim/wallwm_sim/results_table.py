"""Tables and a plot for docs/results.md from evaluation reports (``report.json`` of
:mod:`wallwm_sim.evaluate` or of the ROS evaluation).

    python -m wallwm_sim.results_table wallwm=build/eval_a/report.json,build/eval_b/report.json \
        expert=build/eval_expert/report.json do_nothing=build/eval_idle/report.json \
        --plot docs/figures/results_cpu.png [--command "how the reports were made"]

Prints Markdown: Task Progress per task and variant for every report (mean with a 95%
percentile-bootstrap interval over episodes, and the episode count), the milestone reached most
often, and per-event success for the reports with event outcomes (rubric verdicts with Wilson
intervals, the planner's verdicts and their disagreements, chunks per event, inference latency).
The plot draws the first table; its caption names the date, the machine and the command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wallwm_core.machine_info import machine_description
from wallwm_sim.ablation.stats import Interval, stratified_bootstrap, wilson

Report = dict[str, Any]


def load_reports(pairs: Sequence[str]) -> dict[str, Report]:
    """``label=path[,path...]`` pairs -> {label: report}, the episodes of several reports of one
    policy joined; ValueError names a bad pair or file."""
    reports: dict[str, Report] = {}
    for pair in pairs:
        label, sep, paths = pair.partition("=")
        if not sep or not label or not paths:
            raise ValueError(f"expected LABEL=REPORT.json, got {pair!r}")
        episodes: list[dict[str, Any]] = []
        for path in paths.split(","):
            try:
                report = json.loads(Path(path).read_text())
            except (OSError, json.JSONDecodeError) as error:
                raise ValueError(f"{label}: cannot read {path}: {error}") from error
            if not isinstance(report, dict) or not isinstance(report.get("episodes"), list):
                raise ValueError(f"{label}: {path} is not an evaluation report (no episode list)")
            episodes.extend(report["episodes"])
        reports[label] = {"episodes": episodes}
    return reports


def cells(reports: dict[str, Report]) -> list[tuple[str, str]]:
    """Every (task, variant) some report holds, in the reports' order."""
    seen: dict[tuple[str, str], None] = {}
    for report in reports.values():
        for episode in report["episodes"]:
            seen[(episode["task"], episode["variant"])] = None
    return list(seen)


def task_progress(report: Report, task: str, variant: str) -> Interval:
    scores = [
        float(e["score"])
        for e in report["episodes"]
        if e["task"] == task and e["variant"] == variant
    ]
    return stratified_bootstrap([scores])


def _interval(interval: Interval) -> str:
    if interval.n == 0:
        return "-"
    if interval.low == interval.high:
        return f"{interval.value:.1f} (n={interval.n})"
    return f"{interval.value:.1f} [{interval.low:.1f}, {interval.high:.1f}] (n={interval.n})"


def progress_table(reports: dict[str, Report]) -> str:
    labels = list(reports)
    lines = [
        "| task | variant | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for task, variant in cells(reports):
        row = [_interval(task_progress(reports[label], task, variant)) for label in labels]
        lines.append(f"| {task} | {variant} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def milestone_table(report: Report) -> str:
    """How often each rubric milestone was reached, per task (all variants)."""
    lines = ["| task | episodes | milestones reached (share of episodes) |", "|---|---|---|"]
    for task in dict.fromkeys(e["task"] for e in report["episodes"]):
        episodes = [e for e in report["episodes"] if e["task"] == task]
        counts: Counter[str] = Counter()
        for episode in episodes:
            counts.update(name for name, met in episode["milestones"].items() if met)
        names = list(episodes[0]["milestones"])
        shares = ", ".join(f"{n} {counts[n] / len(episodes):.2f}" for n in names)
        lines.append(f"| {task} | {len(episodes)} | {shares} |")
    return "\n".join(lines)


def event_table(report: Report) -> str:
    """Per task: event attempts, rubric successes (Wilson 95%), planner successes, disagreements,
    chunks per event and the inference latency per chunk."""
    lines = [
        "| task | attempts | succeeded (rubric; planner if no milestone) | planner succeeded | disagree | chunks/event "
        "| latency p50 / p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in dict.fromkeys(e["task"] for e in report["episodes"]):
        episodes = [e for e in report["episodes"] if e["task"] == task]
        attempts = [a for e in episodes for a in e.get("events", [])]
        if not attempts:
            continue
        rubric = sum(bool(a["succeeded"]) for a in attempts)
        planner = sum(a["planner_outcome"] == "SUCCEEDED" for a in attempts)
        disagree = sum(not a["agrees"] for a in attempts)
        chunks = sum(int(a.get("chunks", 0)) for a in attempts) / len(attempts)
        latencies = [ms for e in episodes for ms in e.get("chunk_latencies_ms", [])]
        latency = "-"
        if latencies:
            p50, p95 = np.percentile(latencies, [50, 95])
            latency = f"{p50:.0f} / {p95:.0f}"
        share = wilson(rubric, len(attempts))
        lines.append(
            f"| {task} | {len(attempts)} | {rubric} ({share.value:.2f} [{share.low:.2f}, "
            f"{share.high:.2f}]) | {planner} | {disagree} | {chunks:.1f} | {latency} |"
        )
    return "\n".join(lines)


def plot(reports: dict[str, Report], path: Path, command: str) -> None:
    """Grouped bars per (task, variant), one per report, with the bootstrap whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = cells(reports)
    labels = list(reports)
    width = 0.8 / max(1, len(labels))
    figure, axes = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 2), 4.8))
    for position, label in enumerate(labels):
        intervals = [task_progress(reports[label], t, v) for t, v in names]
        values = [i.value if i.n else 0.0 for i in intervals]
        below = [i.value - i.low if i.n else 0.0 for i in intervals]
        above = [i.high - i.value if i.n else 0.0 for i in intervals]
        x = np.arange(len(names)) + (position - (len(labels) - 1) / 2) * width
        axes.bar(x, values, width, yerr=[below, above], capsize=2, label=label)
    axes.set_xticks(range(len(names)), [f"{t}\n{v}" for t, v in names], rotation=60, fontsize=7)
    axes.set_ylim(0, 105)
    axes.set_ylabel("Task Progress (0-100), 95% bootstrap CI")
    axes.legend(loc="upper right", fontsize=8)
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    figure.text(
        0.01,
        0.005,
        f"{created} | {machine_description()} | {command}",
        fontsize=6,
        ha="left",
        wrap=True,
    )
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wallwm_sim.results_table", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("reports", nargs="+", metavar="LABEL=REPORT.json")
    parser.add_argument("--plot", type=Path, help="write the Task Progress bar chart here")
    parser.add_argument("--command", default="", help="the commands behind the reports")
    args = parser.parse_args(argv)
    try:
        reports = load_reports(args.reports)
    except ValueError as error:
        print(f"results_table: {error}", file=sys.stderr)
        return 2
    print("### Task Progress (mean, 95% bootstrap interval over episodes, episodes)\n")
    print(progress_table(reports))
    for label, report in reports.items():
        if any(e.get("events") for e in report["episodes"]):
            print(f"\n### {label}: milestones reached\n")
            print(milestone_table(report))
            print(f"\n### {label}: per-event success (rubric milestone at the attempt's end)\n")
            print(event_table(report))
    if args.plot is not None:
        plot(reports, args.plot, args.command or " ".join(sys.argv))
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

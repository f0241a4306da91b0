"""docs/results.md's tables from evaluation reports: python -m wallwm_sim.results_table."""

from __future__ import annotations

import json

import pytest

from wallwm_sim import results_table


def _episode(task, variant, score, succeeded=None):
    events = []
    if succeeded is not None:
        events = [
            {"succeeded": ok, "planner_outcome": "SUCCEEDED", "agrees": ok, "chunks": 3}
            for ok in succeeded
        ]
    return {
        "task": task,
        "variant": variant,
        "score": score,
        "milestones": {"reach": score > 0, "place": score == 100},
        "events": events,
        "chunk_latencies_ms": [100.0, 200.0] if events else [],
    }


@pytest.fixture
def reports(tmp_path):
    model = [_episode("pick_place", "train", s, [s > 0, s == 100]) for s in (0, 100, 100, 0)]
    model.append(_episode("pick_place", "novel_layout", 10, [True, False]))
    expert = [_episode("pick_place", "train", 100) for _ in range(3)]
    paths = {}
    # the model's episodes come in two reports (two evaluation processes), joined by a comma
    for name, episodes in (("model_a", model[:2]), ("model_b", model[2:]), ("expert", expert)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps({"episodes": episodes}))
    return {"model": f"{paths['model_a']},{paths['model_b']}", "expert": paths["expert"]}


def test_tables_give_means_intervals_and_event_success(reports, tmp_path, capsys):
    plot = tmp_path / "plot.png"
    argv = [f"{label}={path}" for label, path in reports.items()] + ["--plot", str(plot)]
    assert results_table.main(argv) == 0
    out = capsys.readouterr().out
    # 4 train episodes at 0, 100, 100, 0: mean 50, an interval strictly inside [0, 100]
    row = next(line for line in out.splitlines() if line.startswith("| pick_place | train |"))
    model_cell, expert_cell = row.split("|")[3:5]
    assert model_cell.strip().startswith("50.0 [") and "(n=4)" in model_cell
    assert expert_cell.strip() == "100.0 (n=3)"
    assert "| pick_place | novel_layout | 10.0 (n=1) | - |" in out
    # 10 event attempts, 5 reached their milestone (2 + 2 + 1)
    events = next(line for line in out.splitlines() if line.startswith("| pick_place | 10 |"))
    assert "| 5 (0.50 [" in events and "| 10 | 5 | 3.0 | 150 / 200 |" in events
    assert "reach 0.60, place 0.40" in out
    assert plot.stat().st_size > 0


def test_bad_report_arguments_exit_2(tmp_path, capsys):
    not_a_report = tmp_path / "x.json"
    not_a_report.write_text("{}")
    for argv, says in (
        (["model"], "expected LABEL=REPORT.json"),
        ([f"model={tmp_path / 'missing.json'}"], "cannot read"),
        ([f"model={not_a_report}"], "is not an evaluation report"),
    ):
        assert results_table.main(argv) == 2
        assert says in capsys.readouterr().err

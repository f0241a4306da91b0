"""The event-vs-chunk ablation driver (wallwm_sim.ablation): spec validation, the statistics,
aggregation of synthetic evaluation reports (Task Progress, success, failure points), run
decisions, and one small run end to end (2 arms x 1 seed of `tiny` on generated demos, one
short episode each, report)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from wallwm_core.config_loading import ConfigError
from wallwm_core.episode_format import CaptionSegment, episode_dir_name
from wallwm_core.file_lock import try_lock
from wallwm_core.training.config import train_config_to_dict
from wallwm_sim.ablation import durations, evaluation, report, runs, stats
from wallwm_sim.ablation.__main__ import main
from wallwm_sim.ablation.failures import ENDED_EARLY, NOT_STARTED, UNDONE_LATER, failure_point
from wallwm_sim.ablation.spec import load_spec, resolve, spec_from_dict

REPO = Path(__file__).resolve().parents[1]
PRESS = ["press_first", "press_second", "press_third"]  # press_buttons' event milestones


def smoke_spec(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A spec over the toy config (protocol checks off), changed by ``section.key=value``."""
    data: dict[str, Any] = {
        "output": str(tmp_path / "out"),
        "check_protocol": False,
        "data": {"paths": [str(tmp_path / "demos")], "cache_dir": str(tmp_path / "cache")},
        "training": {
            "base_config": "train_smoke",
            "seeds": [0, 1],
            "steps": 4,
            "batch_size": 4,
            "overrides": ["runtime.tensorboard=false"],
        },
        "arms": [
            {"name": "event", "overrides": ["data.window_mode=event"]},
            {
                "name": "chunk8",
                "overrides": [
                    "data.window_mode=fixed",
                    "data.fixed_window_steps=8",
                    "data.fixed_instruction=task",
                ],
            },
        ],
        "eval": {"tasks": ["press_buttons"], "variants": ["train", "novel_order"], "seeds": "0-3"},
        "report": {
            "groups": {"reasoning": ["train"], "generalization": ["novel_order"]},
            "bootstrap_resamples": 2000,
        },
    }
    for key, value in changes.items():
        *path, last = key.split(".")
        node = data
        for part in path:
            node = node[part]
        node[last] = value
    return data


def plan_of(tmp_path: Path, **changes: Any):
    spec = spec_from_dict(smoke_spec(tmp_path, **changes))
    return resolve(spec, tmp_path / "spec.yaml")


# ----------------------------------------------------------------------------------------------
# the spec
# ----------------------------------------------------------------------------------------------
def test_shipped_spec_resolves_to_three_arms_of_one_model() -> None:
    spec, path = load_spec("ablation_cpu")
    plan = resolve(spec, path)
    assert [r.key for r in plan.runs] == [
        f"{arm}/seed{seed}" for arm in ("A_event", "B32_task", "B64_task") for seed in (0, 1)
    ]
    assert {r.config.model for r in plan.runs} == {"cpu64_vdrop"}
    assert {r.config.eval.sampler.future_video for r in plan.runs} == {"noise"}
    assert {r.config.train.steps * r.config.train.batch_size for r in plan.runs} == {64000}
    modes = {arm: (e.mode, e.chunk_steps, e.instruction) for arm, e in plan.arm_eval.items()}
    assert modes == {
        "A_event": ("event", 64, "events"),
        "B32_task": ("unified", 32, "task"),
        "B64_task": ("unified", 64, "task"),
    }
    assert len(spec.eval.seed_list) >= 30 and len(spec.training.seeds) >= 2
    assert spec.eval.cells() == [
        ("press_buttons", "train"),
        ("press_buttons", "novel_order"),
        ("press_buttons", "novel_layout"),
        ("build_and_signal", "train"),
        ("build_and_signal", "novel_layout"),
    ]
    run = plan.runs[2]  # B32_task/seed0
    assert run.config.data.window_mode == "fixed" and run.config.seed == 0
    assert run.run_dir == plan.output / "runs" / "B32_task" / "seed0"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outptu": "x"}, "unknown config key 'outptu'; did you mean 'output'"),
        ({"eval.seed": "0-3"}, "unknown config key 'eval.seed'; did you mean 'eval.seeds'"),
        ({"training.step": 3}, "did you mean 'training.steps'"),
        (
            {"arms": [{"name": "a", "overides": []}]},
            r"unknown config key 'arms\[0\].overides'; did you mean 'arms\[0\].overrides'",
        ),
        ({"eval.seeds": "95-104"}, r"eval.seeds \[100, 101, 102, 103, 104\] lie outside"),
        ({"eval.tasks": ["press_button"]}, "did you mean 'press_buttons'"),
        ({"eval.variants": ["train", "novel_colour"]}, "unknown \\['novel_colour'\\]"),
        ({"eval.latency": "soon"}, "--latency must be"),
        ({"training.seeds": [0, 0]}, "repeat a seed"),
        ({"report.reference_arm": "B"}, "reference_arm 'B' is not an arm"),
        ({"report.groups": {"novel": ["novel_layout"]}}, "not in eval.variants"),
    ],
)
def test_spec_errors_name_the_problem(tmp_path, changes, message) -> None:
    with pytest.raises(ConfigError, match=message):
        spec_from_dict(smoke_spec(tmp_path, **changes))


@pytest.mark.parametrize(
    ("arm_overrides", "message"),
    [
        (["train.steps=10"], "train.steps is set by the driver; use training.steps"),
        (["model=small"], "model is set by the driver; use training.overrides"),
        (["seed=3"], "seed is set by the driver"),
        (["data.window_mod=fixed"], "arm 'x'.*did you mean 'data.window_mode'"),
        (
            ["data.window_mode=fixed", "data.fixed_window_steps=16"],
            "arm 'x': data.fixed_window_steps=16 exceeds the model's limits.max_action_steps=12",
        ),
        (["data.window_mode"], "must look like section.key=value"),
    ],
)
def test_arm_overrides_are_checked(tmp_path, arm_overrides, message) -> None:
    data = smoke_spec(tmp_path)
    data["arms"][1] = {"name": "x", "overrides": arm_overrides}
    with pytest.raises(ConfigError, match=message):
        resolve(spec_from_dict(data), tmp_path / "spec.yaml")


def test_cli_refuses_a_bad_spec_and_missing_data(tmp_path, capsys) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(smoke_spec(tmp_path, outptu="x")))
    assert main([str(spec_file), "--stage", "status"]) == 2
    assert "did you mean 'output'" in capsys.readouterr().err
    spec_file.write_text(yaml.safe_dump(smoke_spec(tmp_path)))  # tmp_path/demos is missing
    assert main([str(spec_file), "--stage", "train"]) == 2
    assert "are not folders" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()
    # key=value changes to the spec, before or after the options.
    overrides = ["eval.seeds=0-1", "--stage", "status", "eval.shard_episodes=1"]
    assert main([str(spec_file), *overrides]) == 0
    assert "evaluation shards done: 0/16" in capsys.readouterr().out
    assert main([str(spec_file), "eval.seeds=0-200", "--stage", "status"]) == 2


def test_protocol_checks(tmp_path) -> None:
    base = {"check_protocol": True, "eval.seeds": "0-29"}
    with pytest.raises(ConfigError, match=">= 2 training seeds"):
        spec_from_dict(smoke_spec(tmp_path, **base, **{"training.seeds": [0]}))
    with pytest.raises(ConfigError, match=r">= 30 episodes per task, variant and arm .* got 8"):
        spec_from_dict(smoke_spec(tmp_path, check_protocol=True))  # 4 eval x 2 training seeds
    with pytest.raises(ConfigError, match=r"and arm .* got 28"):
        spec_from_dict(smoke_spec(tmp_path, **{**base, "eval.seeds": "0-13"}))
    assert spec_from_dict(smoke_spec(tmp_path, **{**base, "eval.seeds": "0-14"}))  # 15 x 2
    only_event = [{"name": "a"}, {"name": "b", "overrides": ["optim.lr=1e-3"]}]
    spec = spec_from_dict(smoke_spec(tmp_path, **base, arms=only_event))
    with pytest.raises(ConfigError, match="need both"):
        resolve(spec, tmp_path / "spec.yaml")
    resolve(spec_from_dict(smoke_spec(tmp_path, **base)), tmp_path / "spec.yaml")  # passes


# ----------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------
def test_wilson_matches_the_closed_form() -> None:
    interval = stats.wilson(8, 10)
    assert interval.value == 0.8
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)
    none = stats.wilson(0, 10)
    assert none.low == 0.0 and none.high == pytest.approx(3.8415 / 13.8415, abs=1e-4)
    assert stats.wilson(10, 10).high == 1.0 and stats.wilson(10, 10).low < 1.0
    assert math.isnan(stats.wilson(0, 0).value)


def test_stratified_bootstrap_weighs_cells_equally_and_covers_the_normal_interval() -> None:
    # Half 0, half 100 in 30 episodes: standard error 50 / sqrt(30) = 9.13, so the 95% interval
    # is about 50 +- 17.9.
    interval = stats.stratified_bootstrap([[0.0] * 15 + [100.0] * 15], resamples=20000)
    assert interval.value == 50.0 and interval.n == 30
    assert 30.0 < interval.low < 35.0 and 65.0 < interval.high < 70.0
    # Two cells of 10 and 40 episodes: the mean of the cell means, not of the episodes.
    assert stats.stratified_bootstrap([[100.0] * 10, [0.0] * 40]).value == 50.0
    # No variation inside the cells: nothing to resample.
    fixed = stats.stratified_bootstrap([[100.0] * 10, [0.0] * 40])
    assert (fixed.low, fixed.high) == (50.0, 50.0)
    assert math.isnan(stats.stratified_bootstrap([[], []]).value)


def test_difference_and_t_interval() -> None:
    diff = stats.bootstrap_difference([[100.0] * 30], [[0.0] * 15 + [100.0] * 15])
    assert diff.value == 50.0 and 30.0 < diff.low < 35.0 and 65.0 < diff.high < 70.0
    # Two seed means 40 and 60: sd 14.14, t(0.975, 1) = 12.706 -> 50 +- 127.06.
    t = stats.t_interval([40.0, 60.0])
    assert t.value == 50.0
    assert t.low == pytest.approx(-77.06, abs=0.01) and t.high == pytest.approx(177.06, abs=0.01)
    assert math.isnan(stats.t_interval([40.0]).low)


# ----------------------------------------------------------------------------------------------
# failure points and aggregation on synthetic report.json files
# ----------------------------------------------------------------------------------------------
def attempt(index: int, planner: str, succeeded: bool, duration_s: float = 2.0) -> dict[str, Any]:
    return {
        "index": index,
        "planner_outcome": planner,
        "succeeded": succeeded,
        "milestone_reached": succeeded,
        "duration_s": duration_s,
    }


def episode(seed: int, variant: str, achieved: list[str], events=(), outcome="TIMED_OUT"):
    points = {"press_first": 30.0, "press_second": 30.0, "press_third": 40.0}
    return {
        "task": "press_buttons",
        "seed": seed,
        "variant": variant,
        "score": sum(points[m] for m in achieved),
        "milestones": {m: m in achieved for m in PRESS},
        "events": list(events),
        "outcome": "SUCCEEDED" if len(achieved) == 3 else outcome,
    }


def test_failure_point_views() -> None:
    assert failure_point(episode(0, "train", PRESS), PRESS, True) is None
    early = episode(0, "train", ["press_first"], [attempt(0, "SUCCEEDED", True)] * 1)
    early["events"].append(attempt(1, "SUCCEEDED", False))
    assert failure_point(early, PRESS, True).__dict__ == {
        "index": 1,
        "milestone": "press_second",
        "kind": ENDED_EARLY,
    }
    retried = episode(0, "train", [], [attempt(0, "TIMED_OUT", False)] * 2)
    assert failure_point(retried, PRESS, True).kind == "timed out"
    unstarted = episode(0, "train", PRESS[:2], [attempt(0, "SUCCEEDED", True)])
    unstarted["events"].append(attempt(1, "SUCCEEDED", True))
    assert (failure_point(unstarted, PRESS, True).index, unstarted["score"]) == (2, 60.0)
    assert failure_point(unstarted, PRESS, True).kind == NOT_STARTED
    # The milestone held when its attempt ended and was lost later.
    lost = episode(0, "train", ["press_second"], [attempt(0, "SUCCEEDED", True)])
    assert failure_point(lost, PRESS, True).kind == UNDONE_LATER
    # One instruction for the whole task: the task outcome is the kind.
    assert failure_point(episode(0, "train", ["press_first"]), PRESS, False).kind == "timed out"


def fake_finished_run(run, data_seeds: list[int]) -> Path:
    """A run folder as training leaves it when finished (only what the driver reads)."""
    step_dir = run.run_dir / f"step_{run.config.train.steps:06d}"
    (step_dir / "training_state").mkdir(parents=True)
    samples = run.config.train.steps * run.config.train.batch_size
    counters = {"step": run.config.train.steps, "samples_seen": samples}
    (step_dir / "training_state" / "state.json").write_text(json.dumps(counters))
    (run.run_dir / "last").symlink_to(step_dir.name)
    (run.run_dir / "config.yaml").write_text(yaml.safe_dump(train_config_to_dict(run.config)))
    seeds = {"train": data_seeds[1:], "val": data_seeds[:1]}
    (run.run_dir / "data_report.json").write_text(json.dumps({"seeds": seeds}))
    return step_dir


def write_shard(plan, shard, checkpoint: Path, rows: list[dict[str, Any]]) -> None:
    shard.path.mkdir(parents=True)
    (shard.path / "report.json").write_text(json.dumps({"episodes": rows}))
    meta = evaluation.expected_meta(plan, shard, checkpoint)
    (shard.path / "shard.json").write_text(json.dumps(meta))


def synthetic_rows(arm: str, seed: int, variant: str, seeds: tuple[int, ...]) -> list[dict]:
    """event arm: train 100, 100, 30 (ended early at event 1), 0 (timed out at event 0) per
    seed block pair; novel_order all 0 at event 0. chunk8: everything 30, task TIMED_OUT."""
    rows = []
    for s in seeds:
        if arm == "chunk8":
            rows.append(episode(s, variant, ["press_first"]))
        elif variant == "novel_order":
            rows.append(episode(s, variant, [], [attempt(0, "TIMED_OUT", False)]))
        elif s in (0, 1):
            rows.append(
                episode(s, variant, PRESS, [attempt(i, "SUCCEEDED", True) for i in range(3)])
            )
        elif s == 2:
            events = [attempt(0, "SUCCEEDED", True), attempt(1, "SUCCEEDED", False, 0.5)]
            rows.append(episode(s, variant, ["press_first"], events))
        else:
            rows.append(episode(s, variant, [], [attempt(0, "TIMED_OUT", False)]))
    return rows


def write_demonstration_events(root: Path, episodes: list[list[tuple[int, float]]]) -> None:
    """A dataset folder's index and events.json files (all the durations read): one press_buttons
    episode per list of (subtask index, seconds) events, in that order, and one stack episode."""
    root.mkdir(parents=True)
    lines = []
    for number, (task, events) in enumerate(
        [*(("press_buttons", e) for e in episodes), ("stack", [(0, 9.0)])]
    ):
        directory = root / episode_dir_name(number)
        directory.mkdir()
        start, track = 0, []
        for index, seconds in events:
            end = start + round(seconds * 1e9)
            track.append(CaptionSegment(f"event {index}", 0, 1, start, end, index).to_json())
            start = end
        (directory / "events.json").write_text(json.dumps({"subtask": track}))
        lines.append(json.dumps({"index": number, "directory": directory.name, "task": task}))
    (root / "episodes.jsonl").write_text("\n".join(lines) + "\n")


def test_event_durations_against_demonstrations(tmp_path) -> None:
    demos_dir = tmp_path / "demos"
    # Episode 1 has no subtask indices (its positions count), episode 2 lists event 1 first.
    write_demonstration_events(
        demos_dir, [[(0, 2.0), (1, 3.0)], [(-1, 4.0), (-1, 3.0)], [(1, 5.0), (0, 3.0)]]
    )
    demos, notes = durations.demonstration_durations(
        [demos_dir, demos_dir, tmp_path / "missing"], ["press_buttons"]
    )
    assert demos == {("press_buttons", 0): [2.0, 4.0, 3.0], ("press_buttons", 1): [3.0, 3.0, 5.0]}
    assert notes == [f"{tmp_path / 'missing'}: no demonstrations found"]

    # First attempts only: a retry never stands in (not even for a first attempt without a
    # duration), and "succeeded" is the rubric's verdict (events without a milestone too).
    first = episode(0, "train", ["press_first"], [attempt(0, "SUCCEEDED", True, 1.0)])
    first["events"][0]["milestone_reached"] = None
    retried = episode(1, "train", [], [attempt(0, "SUCCEEDED", False, 3.5)])
    retried["events"] += [
        attempt(0, "SUCCEEDED", False, 10.0),
        attempt(1, "TIMED_OUT", False, math.nan),
        attempt(1, "SUCCEEDED", False, 2.0),
    ]
    unmeasured = episode(2, "train", [], [attempt(0, "SUCCEEDED", False, 2.0)])
    unmeasured["events"][0]["duration_s"] = None
    rows = durations.event_durations([first, retried, unmeasured], demos)
    assert rows == [
        {
            "task": "press_buttons",
            "index": 0,
            "first_attempts": 2,
            "median_s": 2.25,
            "succeeded": 1,
            "shorter_than_demonstrations": 0.5,
            "demonstrations": 3,
            "demonstrations_median_s": 3.0,
        }
    ]
    assert durations.event_durations([first], {})[0]["shorter_than_demonstrations"] is None

    # Bad data is noted and skipped, never fatal.
    (demos_dir / episode_dir_name(1) / "events.json").write_text("{not json")
    wrong_type = {"subtask": [{**CaptionSegment("x", 0, 1, 0, 1).to_json(), "start_ns": "0"}]}
    (demos_dir / episode_dir_name(2) / "events.json").write_text(json.dumps(wrong_type))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "episodes.jsonl").write_text('{"index": 0, "direc')
    demos, notes = durations.demonstration_durations(
        [demos_dir, broken], ["press_buttons", "build_and_signal"]
    )
    assert demos == {("press_buttons", 0): [2.0], ("press_buttons", 1): [3.0]}
    assert "2 episode(s) skipped, unreadable" in notes[0]
    assert notes[1].startswith(f"{broken}: unreadable episode index")
    assert notes[2] == "build_and_signal: no demonstrations in the data folders"


def test_report_aggregates_synthetic_shards(tmp_path) -> None:
    plan = plan_of(tmp_path, **{"eval.shard_episodes": 2})
    write_demonstration_events(
        tmp_path / "demos", [[(0, 1.0), (1, 1.0), (2, 1.0)], [(0, 1.0), (1, 2.0), (2, 1.0)]]
    )
    checkpoints = {r.key: fake_finished_run(r, [1000, 1001, 1002]) for r in plan.runs}
    all_shards = evaluation.shards(plan)
    assert len(all_shards) == 2 * 2 * 2 * 2  # arms x seeds x variants x seed blocks
    for shard in all_shards:
        rows = synthetic_rows(shard.run.arm, shard.run.seed, shard.variant, shard.seeds)
        write_shard(plan, shard, checkpoints[shard.run.key], rows)
    result = report.write(plan, "pytest")
    assert result["complete"] and result["problems"] == []
    assert result["episodes"] == {"found": 32, "expected": 32}
    event = result["arms"]["event"]["scopes"]
    # train: (100 + 100 + 30 + 0) / 4 = 57.5 for both training seeds.
    assert event["reasoning"]["task_progress"]["value"] == pytest.approx(57.5)
    assert event["reasoning"]["per_seed"] == {"0": 57.5, "1": 57.5}
    assert event["reasoning"]["seed_t_interval"]["low"] == pytest.approx(57.5)
    low, high = (event["reasoning"]["task_progress"][k] for k in ("low", "high"))
    assert 20.0 < low < 57.5 < high < 95.0
    success = event["reasoning"]["success"]
    assert (success["value"], success["n"]) == (0.5, 8)
    assert success["low"] == pytest.approx(stats.wilson(4, 8).low)
    assert event["generalization"]["task_progress"]["value"] == 0.0
    assert event["press_buttons"]["task_progress"]["value"] == pytest.approx(57.5 / 2)
    chunk = result["arms"]["chunk8"]["scopes"]
    assert chunk["reasoning"]["task_progress"]["value"] == pytest.approx(30.0)
    diff = result["differences"]["chunk8"]["reasoning"]
    assert (
        diff["value"] == pytest.approx(30.0 - 57.5) and diff["low"] < diff["value"] < diff["high"]
    )

    failures = result["arms"]["event"]["failure_points"]
    # Failed per training seed: 2 train episodes (event 1 ended early, event 0 timed out) and 4
    # novel_order ones at event 0.
    assert (failures["failed"], failures["at_first_event"], failures["at_transition"]) == (
        12,
        10,
        2,
    )
    assert failures["ended_early"] == 2
    rows = {r["index"]: r for r in failures["tasks"]["press_buttons"]["events"]}
    assert rows[1]["kinds"] == {ENDED_EARLY: 2} and rows[1]["milestone"] == "press_second"
    assert rows[0]["kinds"] == {"timed out": 10}
    assert rows[1]["example"].startswith("press the ") and rows[1]["share"] == pytest.approx(2 / 12)
    chunk_failures = result["arms"]["chunk8"]["failure_points"]
    assert chunk_failures["at_transition"] == 16 and chunk_failures["ended_early"] is None
    # Event 1 was attempted by 3 train episodes per training seed; the ended-early one (0.5 s)
    # is the only one shorter than the demonstrations' median (1.5 s).
    timed = {r["index"]: r for r in result["arms"]["event"]["event_durations"]}
    assert (timed[1]["first_attempts"], timed[1]["succeeded"], timed[1]["demonstrations"]) == (
        6,
        4,
        2,
    )
    assert timed[1]["shorter_than_demonstrations"] == pytest.approx(2 / 6)
    assert timed[0]["first_attempts"] == 16 and timed[0]["demonstrations_median_s"] == 1.0
    assert result["arms"]["chunk8"]["event_durations"] is None

    text = (plan.output / "ablation.md").read_text()
    assert "| event | event mode (chunks up to 12 steps), event instructions | 57.5 [" in text
    assert "| chunk8 - event | -27.5 [" in text and "Incomplete" not in text
    assert "| event | press_buttons | 1 | 6 | 2.00 | 4 | 33% | 2 | 1.50 |" in text
    assert (plan.output / "ablation.png").stat().st_size > 0
    saved = json.loads((plan.output / "ablation.json").read_text())
    assert saved["arms"]["event"]["scopes"]["reasoning"]["per_seed"] == {"0": 57.5, "1": 57.5}

    # A missing shard and a run trained on evaluation seed 2 are named.
    fake = plan.runs[0].run_dir / "data_report.json"
    fake.write_text(json.dumps({"seeds": {"train": [2, 1000], "val": []}}))
    (all_shards[-1].path / "shard.json").unlink()
    result = report.write(plan, "pytest")
    assert not result["complete"] and result["episodes"]["found"] == 30
    assert "evaluation seeds [2] are in its training data" in result["problems"][0]
    assert "**Incomplete**: 30 of 32 episodes" in (plan.output / "ablation.md").read_text()


# ----------------------------------------------------------------------------------------------
# run decisions
# ----------------------------------------------------------------------------------------------
def test_run_decisions(tmp_path) -> None:
    plan = plan_of(tmp_path)
    run = plan.runs[0]
    assert runs.prepare(run) is False  # missing: start
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "config.yaml").write_text("{}")
    assert runs.prepare(run) is False and not run.run_dir.exists()  # no checkpoint: afresh
    fake_finished_run(run, [1000])
    assert runs.prepare(run) == "done"
    state = run.run_dir / "last" / "training_state" / "state.json"
    state.write_text(json.dumps({"step": 2, "samples_seen": 8}))
    assert runs.prepare(run) is True  # interrupted: resume
    command = runs.train_command(run, resume=True)
    assert command[3:5] == ["--resume", str(run.run_dir)] and command[5] == str(run.config_path)
    saved = train_config_to_dict(run.config)
    saved["optim"]["lr"] = 0.5
    saved["runtime"]["threads"] = 2  # runtime may change between sessions
    (run.run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    refusal = runs.prepare(run)
    assert isinstance(refusal, str) and "optim.lr: run has 0.5" in refusal
    assert "runtime" not in refusal
    lock = try_lock(tmp_path / "x.lock")
    assert lock is not None and try_lock(tmp_path / "x.lock") is None
    lock.close()
    assert try_lock(tmp_path / "x.lock") is not None


# ----------------------------------------------------------------------------------------------
# end to end
# ----------------------------------------------------------------------------------------------
def test_end_to_end_two_arms(tmp_path, monkeypatch) -> None:
    from wallwm_sim.generate_demos import generate

    paths = [str(REPO), str(REPO / "sim"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    written, _ = generate(
        tmp_path / "demos",
        ["press_buttons"],
        [1000, 1001, 1002],
        image_size=(64, 64),
        image_format="raw",
        show_progress=False,
    )
    assert written == 3
    data = smoke_spec(
        tmp_path,
        **{
            "training.seeds": [0],
            "training.steps": 4,
            "training.jobs": 2,
            "training.overrides": [
                "runtime.tensorboard=false",
                "data.codec_steps=10",
                "data.val_fraction=0.4",
                "data.num_clusters=2",
                "train.eval_interval=2",
                "train.checkpoint_interval=2",
                "eval.windows=2",
                "eval.open_loop_windows=1",
            ],
            "eval.variants": ["train"],
            "eval.seeds": "0",
            "eval.max_duration_s": 1.0,
            "eval.jobs": 2,
            "report.groups": {"reasoning": ["train"]},
        },
    )
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    plan = resolve(*load_spec(spec_file))

    # The event arm was stopped at step 2 of 4 (as SIGTERM leaves it): the driver resumes it.
    event = plan.runs[0]
    from wallwm_core.training import train

    assert train.main([str(event.config_path), *event.overrides, "train.steps=2"]) == 0
    saved = yaml.safe_load((event.run_dir / "config.yaml").read_text())
    saved["train"]["steps"] = 4
    (event.run_dir / "config.yaml").write_text(yaml.safe_dump(saved))

    assert main([str(spec_file), "--stage", "all"]) == 0
    for run in plan.runs:
        status = runs.run_status(run)
        assert (status.state, status.step, status.samples_seen) == ("done", 4, 16)
    assert "resumed from" in event.log.read_text() and "--resume" in event.log.read_text()
    assert "resumed from" not in plan.runs[1].log.read_text()
    result = json.loads((plan.output / "ablation.json").read_text())
    assert result["complete"] and result["episodes"] == {"found": 2, "expected": 2}
    for arm, mode in (("event", "event mode"), ("chunk8", "unified mode, 8-step chunks")):
        assert result["arms"][arm]["evaluation"].startswith(mode)
        assert result["arms"][arm]["runs"][0]["data_seeds"] == [1000, 1002]
    chunk_report = json.loads(
        next((plan.output / "eval" / "chunk8").rglob("report.json")).read_text()
    )
    task_text = chunk_report["episodes"][0]["instruction"]
    assert [e[0] for e in chunk_report["episodes"][0]["event_outcomes"]] == [task_text]
    assert (plan.output / "ablation.md").is_file() and (plan.output / "ablation.png").is_file()
    # The event arm's event durations sit beside the 3 generated demonstrations of each event.
    timed = result["arms"]["event"]["event_durations"]
    assert timed and all(row["demonstrations"] == 3 for row in timed)
    assert "## Event durations" in (plan.output / "ablation.md").read_text()

    # Everything done: a second call trains and evaluates nothing.
    before = {p: p.stat().st_mtime_ns for p in (plan.output / "eval").rglob("report.json")}
    logs = {r.log: r.log.read_text() for r in plan.runs}
    assert main([str(spec_file), "--stage", "all"]) == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert {r.log: r.log.read_text() for r in plan.runs} == logs

"""Demonstration recording round trip, the eval harness and the command-line tools."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from wallwm_core.episode_format import (
    TRACKS,
    EpisodeFormatError,
    list_episodes,
    read_episode,
    read_events,
)
from wallwm_sim import evaluate, generate_demos
from wallwm_sim.expert import ScriptedExpert
from wallwm_sim.kinematics import sim_arm_kinematics, tool_pose
from wallwm_sim.policy import DoNothingPolicy
from wallwm_sim.recorder import EpisodeRecorder
from wallwm_sim.rollout import run_episode
from wallwm_sim.sim import SimConfig, TabletopSim

HEIGHT, WIDTH = 48, 64
FRAME_PERIOD = 10


@pytest.fixture(scope="module")
def sim():
    with TabletopSim(SimConfig(image_height=HEIGHT, image_width=WIDTH)) as simulation:
        yield simulation


@pytest.mark.parametrize("image_format", ["png", "raw"])
def test_recorded_episode_reads_back(sim, tmp_path, image_format: str) -> None:
    recorder = EpisodeRecorder(tmp_path, frame_period_steps=FRAME_PERIOD, image_format=image_format)
    result = run_episode(
        sim, ScriptedExpert(), "pick_place", 0, stop_on_success=False, sink=recorder
    )
    assert result.score == 100.0 and result.policy_done
    episode = read_episode(recorder.last_written)
    meta = episode.meta
    instance = sim.instance

    # Index and metadata.
    assert list_episodes(tmp_path)[0]["directory"] == recorder.last_written.name
    assert meta["task"] == "pick_place" and meta["seed"] == 0 and meta["result"]["score"] == 100.0
    assert meta["instruction"] == instance.instruction
    assert sum(m["points"] for m in meta["rubric"]) == 10
    assert meta["camera_info"]["front"]["k"][0] > 0 and meta["image_size"] == [HEIGHT, WIDTH]

    # Low-dimensional streams: one row per step, consistent with each other.
    steps = episode.num_steps
    assert steps == result.steps + 1  # the final (done) step is recorded too
    lowdim = episode.lowdim
    assert np.all(np.diff(lowdim["time_ns"]) == sim.control_period_ns)
    assert lowdim["joint_positions"].shape == (steps, 8)
    kinematics = sim_arm_kinematics()
    for row in (0, steps // 2, steps - 1):
        position, _ = tool_pose(kinematics, lowdim["action_joint_positions"][row])
        np.testing.assert_allclose(lowdim["action_tool_position"][row], position, atol=1e-9)
    assert lowdim["task_progress"][0] == 0.0 and lowdim["task_progress"][-1] == 100.0
    assert lowdim["action_gripper"].max() == 1.0 and lowdim["gripper"].max() > 0.4

    # Frames: every FRAME_PERIOD steps, all cameras, synchronised, matching the frame index.
    for camera, frames in episode.frames.items():
        count = len(range(0, steps, FRAME_PERIOD))
        assert frames.shape == (count, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
        np.testing.assert_array_equal(
            episode.frame_steps[camera], np.arange(0, steps, FRAME_PERIOD)
        )
        np.testing.assert_array_equal(
            episode.frame_time_ns[camera], lowdim["time_ns"][episode.frame_steps[camera]]
        )
    np.testing.assert_array_equal(
        np.flatnonzero(lowdim["frame_index"] >= 0), episode.frame_steps["front"]
    )
    wrist_poses = episode.world_from_camera["wrist"]
    assert np.abs(wrist_poses[0] - wrist_poses[len(wrist_poses) // 2]).max() > 0.01
    sim.reset("pick_place", 0)
    np.testing.assert_array_equal(episode.frames["overhead"][0], sim.render("overhead"))

    # Events: four tracks, subtasks in order with boundaries nested in the task.
    assert set(episode.events) == set(TRACKS)
    raw = json.loads((recorder.last_written / "events.json").read_text())
    read = read_events(recorder.last_written)
    assert {t: [s.to_json() for s in read[t]] for t in TRACKS} == {t: raw[t] for t in TRACKS}
    assert read == episode.events
    (task_caption,) = episode.events["task"]
    assert (task_caption.start_step, task_caption.end_step) == (0, steps)
    subtasks = episode.events["subtask"]
    assert [s.caption for s in subtasks] == [s.caption for s in instance.subtasks]
    assert [s.subtask_index for s in subtasks] == [0, 1]
    assert subtasks[0].start_step == 0 and subtasks[0].end_step == subtasks[1].start_step
    for track in ("action", "segment"):
        segments = episode.events[track]
        assert len(segments) >= len(subtasks)
        assert all(a.end_step <= b.start_step for a, b in itertools.pairwise(segments))
        for segment in segments:
            parent = subtasks[segment.subtask_index]
            assert parent.start_step <= segment.start_step < segment.end_step <= parent.end_step
    assert len(episode.events["segment"]) > len(episode.events["action"]) > len(subtasks)
    assert any("close the gripper" in s.caption for s in episode.events["segment"])
    first = episode.events["segment"][0]
    assert first.start_ns == lowdim["time_ns"][first.start_step]


def test_low_scoring_episodes_are_dropped(sim, tmp_path) -> None:
    recorder = EpisodeRecorder(tmp_path, cameras=("front",), min_score=50.0)
    run_episode(sim, DoNothingPolicy(), "stack", 0, max_duration_s=0.2, sink=recorder)
    assert recorder.last_written is None and recorder.num_dropped == 1
    assert list_episodes(tmp_path) == []


def test_reading_a_non_episode_fails_clearly(tmp_path) -> None:
    with pytest.raises(EpisodeFormatError, match="not an episode directory"):
        read_episode(tmp_path)
    with pytest.raises(EpisodeFormatError, match=r"no events\.json"):
        read_events(tmp_path)
    (tmp_path / "events.json").write_text("[1, 2")
    with pytest.raises(EpisodeFormatError, match="unreadable events"):
        read_events(tmp_path)
    (tmp_path / "events.json").write_text('{"subtask": [{"caption": "x"}]}')
    with pytest.raises(EpisodeFormatError, match=r"malformed events\.json"):
        read_events(tmp_path)


def test_eval_harness_is_deterministic_and_writes_its_report(tmp_path) -> None:
    config = SimConfig(image_height=32, image_width=32)
    runs = [
        evaluate.evaluate_policy(
            ScriptedExpert,
            ["press_buttons"],
            [0],
            policy_name="expert",
            sim_config=config,
            show_progress=False,
        )
        for _ in range(2)
    ]
    assert runs[0].episodes == runs[1].episodes
    assert runs[0].table()["press_buttons"]["mean"] == 100.0
    idle = evaluate.evaluate_policy(
        DoNothingPolicy,
        ["pick_place", "press_buttons"],
        [0, 1],
        ["train", "novel_order"],
        policy_name="do_nothing",
        sim_config=config,
        max_duration_s=0.5,
        video_dir=tmp_path / "videos",
        videos_per_task=1,
        show_progress=False,
    )
    # novel_order exists only for press_buttons: 2 seeds x (1 + 2) task variants.
    assert len(idle.episodes) == 6
    table = idle.table()
    assert table["suite"]["mean"] == 0.0 and table["press_buttons"]["num_episodes"] == 4
    path = evaluate.write_report(idle, tmp_path)
    report = json.loads(path.read_text())
    assert report["table"]["pick_place"]["mean"] == 0.0 and len(report["episodes"]) == 6
    assert (tmp_path / "task_progress.png").stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [
        "pick_place_train_seed0.gif",
        "press_buttons_train_seed0.gif",
    ]


def test_command_line_tools(tmp_path, capsys) -> None:
    assert (
        evaluate.main(
            [
                "--policy",
                "do_nothing",
                "--tasks",
                "stack",
                "--seeds",
                "0",
                "--output",
                str(tmp_path / "eval"),
                "--max-duration",
                "0.2",
                "--image-size",
                "32",
            ]
        )
        == 0
    )
    assert "suite" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["policy"] == "do_nothing"
    assert (
        generate_demos.main(
            [
                "--output",
                str(tmp_path / "demos"),
                "--tasks",
                "press_buttons",
                "--seeds",
                "0",
                "--cameras",
                "front",
                "--image-size",
                "32",
                "--camera-rate",
                "5",
                "--image-format",
                "raw",
            ]
        )
        == 0
    )
    (entry,) = list_episodes(tmp_path / "demos")
    assert entry["task"] == "press_buttons" and entry["score"] == 100.0
    with pytest.raises(SystemExit):
        evaluate.main(["--policy", "nonsense", "--output", str(tmp_path)])
    with pytest.raises(SystemExit):
        generate_demos.main(["--output", str(tmp_path), "--cameras", "side"])
    assert "unknown cameras" in capsys.readouterr().err
    for tool in (evaluate, generate_demos):
        with pytest.raises(SystemExit):
            tool.main(["--output", str(tmp_path), "--variants", "train,novel_gravity"])
        assert "unknown variants ['novel_gravity']" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            tool.main(["--output", str(tmp_path), "--seeds", "4-2"])
        assert "seeds must look like" in capsys.readouterr().err


def test_generating_the_same_seed_again_does_not_duplicate_it(tmp_path, caplog) -> None:
    """Re-running generate_demos with the same seed silently appended the same episode again."""
    generate = generate_demos.generate
    options = {"cameras": (), "min_score": 0.0, "show_progress": False}
    assert generate(tmp_path, ["push_to_target"], [0], **options) == (1, 0)
    with caplog.at_level("WARNING", logger="wallwm_sim.generate_demos"):
        assert generate(tmp_path, ["push_to_target"], [0, 1], **options) == (1, 0)
    assert "1 of 2 episodes are already in" in caplog.text
    assert [(e["task"], e["seed"]) for e in list_episodes(tmp_path)] == [
        ("push_to_target", 0),
        ("push_to_target", 1),
    ]


def test_a_second_generator_on_the_same_folder_is_refused(tmp_path, capsys) -> None:
    """Two generate_demos processes appending to one folder both took the next episode index:
    one crashed (FileExistsError) and its episode was lost (2026-12-02)."""
    from wallwm_core.file_lock import try_lock

    held = try_lock(tmp_path / generate_demos.WRITER_LOCK)  # as another process would hold it
    assert held is not None
    try:
        with pytest.raises(generate_demos.OutputBusyError, match="another generate_demos"):
            generate_demos.generate(tmp_path, ["push_to_target"], [0], cameras=(), show_progress=False)  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            generate_demos.main(["--output", str(tmp_path), "--tasks", "push_to_target", "--seeds", "0"])  # fmt: skip
        assert exit_info.value.code == 2
        assert "folder of its own" in capsys.readouterr().err
        assert list_episodes(tmp_path) == []
    finally:
        held.close()
    options = {"cameras": (), "min_score": 0.0, "show_progress": False}
    assert generate_demos.generate(tmp_path, ["push_to_target"], [0], **options) == (1, 0)
    assert [e["seed"] for e in list_episodes(tmp_path)] == [0]


def test_the_table_says_when_a_task_outcome_and_the_rubric_disagree() -> None:
    """evaluate_ros reported an event SUCCEEDED at Task Progress 30 without saying so."""
    from wallwm_sim.rollout import EpisodeResult

    def episode(seed: int, score: float) -> EpisodeResult:
        return EpisodeResult(
            "pick_place", seed, "train", "put it there", score, {}, 10, 1.0, True, 0,
            outcome="SUCCEEDED",
        )  # fmt: skip

    agreeing = evaluate.EvalReport("p", ("pick_place",), ("train",), (0,), (episode(0, 100.0),))
    assert "DISAGREE" not in evaluate.format_table(agreeing)
    report = evaluate.EvalReport("p", ("pick_place",), ("train",), (0, 1), (episode(0, 100.0), episode(1, 30.0)))  # fmt: skip
    table = evaluate.format_table(report)
    assert "1 episode(s) where the task outcome and the rubric DISAGREE" in table
    assert "pick_place train seed 1: SUCCEEDED at 30" in table

"""The simulator harness for event policies (wallwm_sim.closed_loop_policy): WALL-WM in closed loop
without DDS, with the nodes' planner, event loop and controller core.

No ROS here except where a test checks that the harness's defaults are the nodes'.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from wallwm_core.action_chunk import ActionChunk
from wallwm_core.replay_policy import ReplayPolicy
from wallwm_sim import cameras, description
from wallwm_sim.closed_loop_policy import (
    ClosedLoopPolicy,
    ClosedLoopSettings,
    SimulatedArm,
    wallwm_closed_loop,
)
from wallwm_sim.evaluate import EvalReport, format_table, main
from wallwm_sim.event_rubric import (
    EPISODE_END,
    MilestoneTimeline,
    indices_by_repetition,
    judge,
    verdicts_at_episode_end,
)
from wallwm_sim.sim import HOME_JOINT_POSITIONS, TabletopSim
from wallwm_sim.tasks import TASKS, get_task


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised `tiny` WALL-WM for the simulated arm (fast to build)."""
    from wallwm_core.checkpoint import init_checkpoint, save_checkpoint
    from wallwm_core.model.config import load_model_config

    config = load_model_config("tiny")
    checkpoint = init_checkpoint(
        config,
        cameras=list(cameras.CAMERA_NAMES),
        joint_names=list(description.ALL_JOINT_NAMES[: config.action.state_dim]),
        arm_names=["arm"],
        ee_frames=[description.TOOL_FRAME],
        base_frame=description.BASE_FRAME,
        image_size=(64, 64),
    )
    return save_checkpoint(checkpoint, tmp_path_factory.mktemp("ckpt") / "tiny")


def test_wallwm_episodes_report_event_outcomes_latency_and_chunks(tiny_checkpoint, tmp_path):
    out = tmp_path / "eval"
    code = main(
        [
            "--policy", "wallwm", "--checkpoint", str(tiny_checkpoint), "--tasks", "pick_place",
            "--seeds", "0,1", "--max-duration", "0.8", "--image-size", "64", "--output", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["policy"].startswith("wallwm (tiny")
    assert [e["seed"] for e in report["episodes"]] == [0, 1]
    for episode in report["episodes"]:
        # the task goal ran on simulated time until its limit (random actions do not finish it)
        assert episode["outcome"] == "TIMED_OUT"
        assert 0.8 <= episode["duration_s"] <= 0.81
        events = episode["events"]
        assert events and events[0]["index"] == 0 and events[0]["milestone"] == "lift"
        assert all(e["checked_at"] == "event_end" for e in events)
        # one latency per chunk the events executed
        chunks = sum(e["chunks"] for e in events)
        assert chunks >= 1 and len(episode["chunk_latencies_ms"]) == chunks
        assert all(ms > 0 for ms in episode["chunk_latencies_ms"])
    row = report["table"]["pick_place"]
    latencies = [ms for e in report["episodes"] for ms in e["chunk_latencies_ms"]]
    assert row["inference_latency_ms"]["count"] == len(latencies)
    assert row["inference_latency_ms"]["max"] == pytest.approx(max(latencies))
    assert row["inference_latency_ms"]["p50"] == pytest.approx(np.percentile(latencies, 50))
    attempts = [e for episode in report["episodes"] for e in episode["events"]]
    assert row["events"]["attempts"] == len(attempts)
    assert row["events"]["chunks_per_event"] == pytest.approx(
        np.mean([e["chunks"] for e in attempts])
    )
    assert report["event_milestones"]["pick_place"] == ["lift", "place"]


def test_measured_latency_is_charged_to_simulated_time(tiny_checkpoint, tmp_path):
    """With --latency 300 every chunk reaches the controller 0.3 s after its observation: in 0.8 s
    at most two make it (a third would arrive after the goal's end and is dropped, as the policy
    node drops it), where the instant computer publishes more."""
    counts = {}
    for latency in ("none", "300"):
        out = tmp_path / latency
        code = main(
            [
                "--policy", "wallwm", "--checkpoint", str(tiny_checkpoint), "--tasks",
                "pick_place", "--seeds", "0", "--max-duration", "0.8", "--image-size", "64",
                "--latency", latency, "--output", str(out),
            ]
        )  # fmt: skip
        assert code == 0
        episode = json.loads((out / "report.json").read_text())["episodes"][0]
        counts[latency] = len(episode["chunk_latencies_ms"])
    assert counts["300"] <= 2 < counts["none"]


def test_an_episode_repeats_exactly_without_latency(tiny_checkpoint, tmp_path):
    """Inference on simulated time and event ids per episode: the same episode twice, with
    another episode between, gives the same commands and outcomes. The untrained model's targets
    lie outside the workspace, which the controller rejects by default; this test opts in to
    clamping so that the arm moves."""
    default = ClosedLoopSettings().controller_config_path().read_text()
    clamping = tmp_path / "controller_clamp.yaml"
    clamping.write_text(
        default.replace("workspace_violation: reject", "workspace_violation: clamp", 1)
    )
    settings = ClosedLoopSettings(image_size=64, controller_config=str(clamping))
    policy = wallwm_closed_loop(tiny_checkpoint, settings)
    runs = []
    with TabletopSim(policy.sim_config()) as sim:
        for seed in (0, 1, 0):
            result = policy.run_episode(sim, "push_to_target", seed, max_duration_s=0.6).result
            runs.append((result, sim.joint_command, sim.gripper_command))
    (first, q_first, g_first), _, (again, q_again, g_again) = runs
    np.testing.assert_array_equal(q_first, q_again)
    assert g_first == g_again
    assert (first.score, first.event_outcomes) == (again.score, again.event_outcomes)
    assert [v.chunks for v in first.events] == [v.chunks for v in again.events]
    assert np.max(np.abs(q_first - HOME_JOINT_POSITIONS)) > 0.01  # the arm did move


def _settings() -> ClosedLoopSettings:
    return ClosedLoopSettings()


def test_an_impossible_jump_is_limited_exactly_as_the_controller_core_limits_it():
    settings = _settings()
    with TabletopSim(settings.sim_config()) as sim:
        sim.reset("pick_place", 0, "train")
        arm = SimulatedArm(sim, settings.make_controller(), (), settings.camera_period_ns)
        arm.begin()
        reference = settings.make_controller()  # the controller node's core, fed the same
        position, quaternion = sim.tool_pose()
        far = position + np.array([0.25, 0.3, -0.2])  # 0.45 m away, due at once
        steps = 20
        chunk = ActionChunk(
            stamp_ns=sim.time_ns,
            step_period_ns=50_000_000,
            frame_id=description.BASE_FRAME,
            arm_names=("arm",),
            ee_frames=(description.TOOL_FRAME,),
            positions=np.repeat(far[None, None], steps, axis=0),
            quaternions=np.repeat(quaternion[None, None], steps, axis=0),
            gripper=np.ones((steps, 1)),
        )
        assert arm.submit(chunk).accepted
        assert reference.submit_chunk(chunk, sim.time_ns).accepted
        previous = sim.joint_command
        dt = settings.control_period_ns / 1e9
        steps_moved = 0
        for _ in range(300):
            now = sim.time_ns
            expected = reference.update(now, sim.joint_state().positions[:6], now)
            arm.tick()
            if expected.positions is None:  # no valid joint state yet (the stamp-0 one): hold
                np.testing.assert_array_equal(sim.joint_command, previous)
                continue
            np.testing.assert_array_equal(sim.joint_command, expected.positions)
            assert sim.gripper_command == float(expected.gripper[0])
            step = np.abs(sim.joint_command - previous)
            assert np.all(step <= reference.max_velocity * dt * (1 + 1e-9))
            steps_moved += bool(np.any(step > 0))
            previous = sim.joint_command
        assert steps_moved > 100  # it did move toward the target, gradually
        assert arm.controller.status().ee_speed_limited_ticks > 0


def _hovering_replay(instructions: list[str], path: Path) -> ReplayPolicy:
    """A replay policy that "finishes" every event while the tool hovers at its start pose."""
    with TabletopSim() as sim:
        position, quaternion = sim.tool_pose()
    hover = {
        "position": position.tolist(),
        "quaternion_wxyz": quaternion.tolist(),
        "gripper": 0.0,
    }
    config = {
        "frame_id": "base_link",
        "step_period": 0.05,
        "chunk_steps": 10,
        "arms": [{"name": "arm", "ee_frame": "tool0"}],
        "events": [
            {
                "instruction": instruction,
                "waypoints": [
                    {"time": 0.0, "targets": {"arm": hover}},
                    {"time": 0.5, "targets": {"arm": hover}},
                ],
            }
            for instruction in instructions
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return ReplayPolicy.from_yaml(path)


def test_planner_success_without_the_milestone_is_flagged(tmp_path):
    """The planner says SUCCEEDED for every event of a policy that does nothing useful; the
    rubric does not: succeeded is the rubric's verdict and each disagreement is listed."""
    instance = get_task("pick_place").sample(0, "train")
    policy = ClosedLoopPolicy(
        _hovering_replay([s.caption for s in instance.subtasks], tmp_path / "replay.yaml"), ()
    )
    with TabletopSim(policy.sim_config()) as sim:
        result = policy.run_episode(sim, "pick_place", 0).result
    assert result.outcome == "SUCCEEDED" and result.score == 0.0
    assert [v.planner_outcome for v in result.events] == ["SUCCEEDED", "SUCCEEDED"]
    assert [v.milestone for v in result.events] == ["lift", "place"]
    assert [v.succeeded for v in result.events] == [False, False]
    assert not any(v.agrees for v in result.events)
    report = EvalReport("hover", ("pick_place",), ("train",), (0,), (result,))
    table = report.table()["pick_place"]
    assert table["events"]["planner_succeeded"] == 2 and table["events"]["rubric_succeeded"] == 0
    assert table["events"]["disagreements"] == 2 and table["task_disagreements"] == 1
    flagged = report.to_json()["disagreements"]
    assert [(row["what"], row.get("milestone")) for row in flagged] == [
        ("task", None),
        ("event", "lift"),
        ("event", "place"),
    ]
    assert "disagree" in format_table(report)


def test_rubric_verdicts_at_the_end_of_a_ros_episode():
    """The ROS path knows the milestones only when the episode ends; retries share an index."""
    instance = get_task("put_in_bin").sample(0, "train")
    captions = [s.caption for s in instance.subtasks]
    events = [
        (captions[0], "TIMED_OUT", "event timed out"),
        (captions[0], "SUCCEEDED", ""),
        (captions[1], "SUCCEEDED", ""),
        (captions[2], "TIMED_OUT", "the task timed out"),
    ]
    achieved = {"lift_first": True, "in_bin_first": False, "lift_second": True}
    verdicts = verdicts_at_episode_end(events, instance.subtasks, achieved)
    assert [(v.index, v.attempt) for v in verdicts] == [(0, 1), (0, 2), (1, 1), (2, 1)]
    assert [v.succeeded for v in verdicts] == [True, True, False, True]
    assert [v.agrees for v in verdicts] == [False, True, False, False]
    assert all(v.checked_at == EPISODE_END for v in verdicts)
    assert indices_by_repetition(["a", "b", "b", "a"]) == [(0, 1), (1, 1), (1, 2), (2, 1)]


def test_the_ros_evaluator_flags_a_succeeded_event_the_rubric_does_not_see():
    from wallwm_core.outcome import Outcome
    from wallwm_ros.closed_loop.evaluate_ros import _episode_result
    from wallwm_ros.closed_loop.sim_episode import RosEpisode
    from wallwm_ros.send_goal import TaskResult
    from wallwm_sim.sim_loop import LoopCounters

    instance = get_task("pick_place").sample(0, "train")
    captions = tuple(s.caption for s in instance.subtasks)
    episode = RosEpisode(
        task="pick_place",
        seed=0,
        variant="train",
        task_description=instance.instruction,
        events=captions,
        result=TaskResult(
            True, Outcome.SUCCEEDED, "", 5.0, tuple((c, Outcome.SUCCEEDED, "") for c in captions)
        ),
        progress=30.0,
        points=3,
        max_points=10,
        criteria_met=("reach", "grasp"),
    )
    counters = LoopCounters(0.0, 0, 0, 0, 0, {}, 0.0, 0.0, 0, {}, "", "")
    result = _episode_result(episode, counters, counters, 2_000_000)
    assert [v.agrees for v in result.events] == [False, False]
    report = EvalReport("ros", ("pick_place",), ("train",), (0,), (result,))
    assert report.table()["pick_place"]["events"]["disagreements"] == 2
    assert report.table()["pick_place"]["task_disagreements"] == 1


def test_milestone_timeline_answers_for_a_moment():
    timeline = MilestoneTimeline()
    timeline.record(0, {"lift": False})
    timeline.record(2, {"lift": False})
    timeline.record(4, {"lift": True})
    assert timeline.at(3) == {"lift": False} and timeline.at(4) == {"lift": True}
    assert timeline.at(-1) == {}
    verdict = judge(0, "x", 1, "TIMED_OUT", "", 3, 1.0, "", None, "event_end")
    assert verdict.succeeded is False and verdict.agrees  # no milestone: the planner decides


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_event_names_a_milestone_of_its_rubric(task):
    for variant in get_task(task).variants:
        for seed in range(3):
            instance = get_task(task).sample(seed, variant)
            names = {m.name for m in get_task(task).rubric(instance).milestones}
            for subtask in instance.subtasks:
                assert subtask.milestone in names or (
                    subtask.kind == "approach_push" and subtask.milestone == ""
                ), subtask


def test_a_missing_or_corrupt_checkpoint_exits_2(tmp_path, capsys):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.yaml").write_text("model: [")
    for checkpoint, says in (
        (tmp_path / "missing", "no such checkpoint directory"),
        (corrupt, str(corrupt)),
        ("", "--checkpoint is empty"),
    ):
        code = main(
            ["--policy", "wallwm", "--checkpoint", str(checkpoint), "--output", str(tmp_path)]
        )
        assert code == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


def test_the_harness_defaults_are_the_nodes():
    from wallwm_ros.bringup import DEFAULT_CHECKPOINT, read_params_file
    from wallwm_ros.bringup_paths import bringup_config
    from wallwm_ros.policy_node import PolicyNodeConfig
    from wallwm_ros.robot_config import load_robot_config
    from wallwm_sim.untrained_checkpoint import SHIPPED_CHECKPOINT

    settings = ClosedLoopSettings()
    policy_node = {
        **dataclasses.asdict(PolicyNodeConfig(policy_type="replay", replay_file="x")),
        **read_params_file(bringup_config("policy_node.yaml"), "policy_node"),
    }
    assert settings.replan_fraction == policy_node["replan_fraction"]
    assert settings.stale_hold_timeout_s == policy_node["stale_hold_timeout"]
    assert settings.max_event_duration_s == policy_node["default_max_duration"]
    assert settings.max_retries_per_event == policy_node["max_retries_per_event"]
    assert settings.max_events == policy_node["max_events"]
    sim_node = read_params_file(bringup_config("sim_node.yaml"), "sim_node")
    assert settings.control_rate_hz == sim_node["control_rate_hz"]
    assert settings.camera_rate_hz == sim_node["camera_rate_hz"]
    assert settings.image_size == sim_node["image_height"] == sim_node["image_width"]
    robot = load_robot_config(bringup_config("robots/sim_arm.yaml"))
    assert robot.resolve(robot.controller.config) == settings.controller_config_path()
    assert tuple(c.name for c in robot.cameras) == cameras.CAMERA_NAMES
    assert robot.policy_joint_names == description.ALL_JOINT_NAMES
    assert robot.base_frame == description.BASE_FRAME
    assert DEFAULT_CHECKPOINT == f"python://{'/'.join(SHIPPED_CHECKPOINT)}/metadata.yaml"


def test_the_shipped_checkpoint_is_the_default_else_an_untrained_one_is_written(
    monkeypatch, tmp_path
):
    """Without --checkpoint: the trained checkpoint wallwm_core ships; where none is shipped, an
    untrained `tiny` one, written once under the work directory and reused after that."""
    import wallwm_sim.untrained_checkpoint as untrained

    shipped = untrained.shipped_checkpoint()
    assert shipped is not None and shipped.name == "wallwm-sim-cpu"
    assert untrained.checkpoint_for_sim("", tmp_path) == (str(shipped), False)
    assert untrained.checkpoint_for_sim("/my/ckpt", tmp_path) == ("/my/ckpt", False)

    monkeypatch.setattr(untrained, "shipped_checkpoint", lambda: None)
    path, is_untrained = untrained.checkpoint_for_sim("", tmp_path)
    assert is_untrained and Path(path) == tmp_path / "untrained_checkpoint"
    metadata = yaml.safe_load((Path(path) / "metadata.yaml").read_text())
    assert metadata["status"] == "untrained"
    written = (Path(path) / "model.safetensors").stat().st_mtime_ns
    assert untrained.checkpoint_for_sim("", tmp_path) == (path, True)
    assert (Path(path) / "model.safetensors").stat().st_mtime_ns == written  # reused


def test_replan_fraction_sets_how_often_chunks_are_inferred(tiny_checkpoint, tmp_path, capsys):
    def chunks(fraction: str) -> int:
        out = tmp_path / f"eval_{fraction}"
        code = main(
            [
                "--policy", "wallwm", "--checkpoint", str(tiny_checkpoint), "--tasks",
                "pick_place", "--seeds", "0", "--max-duration", "2.0", "--image-size", "64",
                "--replan-fraction", fraction, "--output", str(out),
            ]
        )  # fmt: skip
        assert code == 0
        report = json.loads((out / "report.json").read_text())
        return len(report["episodes"][0]["chunk_latencies_ms"])

    # The tiny model's chunks last 0.6 s: in 2 s, replanning after 30% asks for more of them.
    assert chunks("0.3") > chunks("1.0")
    code = main(["--policy", "wallwm", "--replan-fraction", "1.5", "--output", str(tmp_path)])
    assert code == 2 and "replan_fraction" in capsys.readouterr().err

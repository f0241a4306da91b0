"""wallwm_core without ROS: action chunk validation, config loading, the replay policy."""

from __future__ import annotations

import numpy as np
import pytest

from wallwm_core.action_chunk import ActionChunk, InvalidChunkError
from wallwm_core.config_loading import ConfigError, load_config
from wallwm_core.policy import Observation, UnknownInstructionError
from wallwm_core.replay_policy import ReplayConfig, ReplayPolicy

IDENTITY = (1.0, 0.0, 0.0, 0.0)


def _chunk(**overrides) -> ActionChunk:
    fields = dict(
        stamp_ns=10,
        step_period_ns=50_000_000,
        frame_id="base_link",
        arm_names=("arm",),
        ee_frames=("tool0",),
        positions=np.zeros((4, 1, 3)),
        quaternions=np.tile(IDENTITY, (4, 1, 1)),
        gripper=np.zeros((4, 1)),
    )
    fields.update(overrides)
    return ActionChunk(**fields)


def test_valid_chunk_step_times() -> None:
    chunk = _chunk()
    assert chunk.num_steps == 4 and chunk.num_arms == 1
    assert chunk.step_times_ns().tolist() == [10, 50_000_010, 100_000_010, 150_000_010]
    assert chunk.duration_ns == 200_000_000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"positions": np.full((4, 1, 3), np.nan)}, "NaN"),
        ({"quaternions": np.tile((1.0, 1.0, 0.0, 0.0), (4, 1, 1))}, "unit length"),
        ({"gripper": np.full((4, 1), 1.5)}, r"\[0, 1\]"),
        ({"positions": np.zeros((4, 2, 3))}, "positions must be"),
        ({"quaternions": np.zeros((3, 1, 4))}, "quaternions must be"),
        ({"gripper": np.zeros((4,))}, "gripper must be"),
        ({"positions": np.zeros((0, 1, 3))}, "at least one step"),
        ({"step_period_ns": 0}, "step period"),
        ({"ee_frames": ()}, "end-effector frames"),
        ({"arm_names": ("a", "a"), "ee_frames": ("x", "y")}, "duplicate"),
    ],
)
def test_invalid_chunks_are_rejected(overrides, message) -> None:
    with pytest.raises(InvalidChunkError, match=message):
        _chunk(**overrides)


REPLAY = """
frame_id: base_link
step_period: 0.1
chunk_steps: 3
arms: [{name: arm, ee_frame: tool0}]
events:
  - instruction: lift
    waypoints:
      - {time: 0.0, targets: {arm: {position: [0.0, 0.0, 0.0], quaternion_wxyz: [1, 0, 0, 0], gripper: 0.0}}}
      - {time: 1.0, targets: {arm: {position: [1.0, 0.0, 0.5], quaternion_wxyz: [0, 0, 0, 1], gripper: 1.0}}}
"""


@pytest.fixture
def replay_policy(tmp_path) -> ReplayPolicy:
    path = tmp_path / "replay.yaml"
    path.write_text(REPLAY)
    return ReplayPolicy.from_yaml(path)


def test_replay_hits_waypoints_and_interpolates(replay_policy) -> None:
    replay_policy.start_event("lift", event_id=5, max_duration_ns=10**10)
    first = replay_policy.next_chunk(Observation(stamp_ns=0))
    np.testing.assert_allclose(
        first.chunk.positions[:, 0], [[0, 0, 0], [0.1, 0, 0.05], [0.2, 0, 0.1]]
    )
    assert first.chunk.gripper[:, 0].tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert first.chunk.event_id == 5 and first.progress == 0.0 and not first.chunk.ends_event
    assert first.predicted_remaining_ns == 11 * 100_000_000
    # slerp from identity to 180 deg about z: halfway is 90 deg about z
    replay_policy.start_event("lift", event_id=6, max_duration_ns=10**10)
    replay_policy.next_chunk(Observation(stamp_ns=0))
    middle = replay_policy.next_chunk(Observation(stamp_ns=500_000_000)).chunk
    np.testing.assert_allclose(
        np.abs(middle.quaternions[0, 0]), [np.sqrt(0.5), 0, 0, np.sqrt(0.5)], atol=1e-9
    )


def test_replay_is_time_indexed_and_ends_on_the_goal(replay_policy) -> None:
    replay_policy.start_event("lift", event_id=1, max_duration_ns=10**10)
    replay_policy.next_chunk(Observation(stamp_ns=1_000))
    late = replay_policy.next_chunk(Observation(stamp_ns=1_000 + 850_000_000))  # 8.5 steps later
    assert late.chunk.chunk_index == 1
    assert late.chunk.positions[0, 0, 0] == pytest.approx(0.8)  # skipped the past steps
    assert late.chunk.ends_event
    assert late.chunk.positions[-1, 0].tolist() == pytest.approx([1.0, 0.0, 0.5])
    after_end = replay_policy.next_chunk(Observation(stamp_ns=10**10))
    assert after_end.chunk.num_steps == 1 and after_end.chunk.ends_event  # holds the final target


def test_replay_unknown_instruction(replay_policy) -> None:
    with pytest.raises(UnknownInstructionError, match="lift"):
        replay_policy.start_event("dance", event_id=1, max_duration_ns=1)
    with pytest.raises(RuntimeError, match="start_event"):
        ReplayPolicy(replay_policy._config).next_chunk(Observation(stamp_ns=0))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("chunk_steps: 3", "chunk_steps: 3\ncolour: red"), "colour"),
        (lambda t: t.replace("step_period: 0.1", "step_period: fast"), "step_period"),
        (lambda t: t.replace("step_period: 0.1", "step_period: -0.1"), "step_period"),
        (lambda t: t.replace("time: 1.0", "time: 0.0"), "increase"),
        (lambda t: t.replace("[0, 0, 0, 1]", "[0, 0, 0, 2]"), "unit length"),
        (lambda t: t.replace("gripper: 1.0", "gripper: 3.0"), "gripper"),
        (lambda t: t.replace("{arm: {position: [1.0", "{other: {position: [1.0"), "expected arms"),
        (lambda t: t.replace("frame_id: base_link\n", ""), "frame_id"),
        (lambda t: "events: [unclosed", "not valid YAML"),
    ],
)
def test_replay_config_errors_name_the_problem(tmp_path, edit, message) -> None:
    path = tmp_path / "replay.yaml"
    path.write_text(edit(REPLAY))
    with pytest.raises(ConfigError, match=message) as error:
        load_config(ReplayConfig, path)
    assert str(path) in str(error.value)


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(ReplayConfig, tmp_path / "nope.yaml")

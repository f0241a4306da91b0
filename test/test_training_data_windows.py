"""Training windows of hand-made episodes: exact boundaries, lengths, masks, remaining times,
rate conversion, oversize events, fixed windows, the split and the dataset errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from training_data_helpers import angle_at, position_at, write_handmade_episode

from wallwm_core.training.data import DataConfig, DatasetError
from wallwm_core.training.data.balance import (
    balance_weights,
    cluster,
    event_features,
)
from wallwm_core.training.data.episodes import load_dataset, split_by_seed
from wallwm_core.training.data.windows import Timing, cut_episode

# The tiny model's clocks: 20 Hz actions, a latent frame every 4 steps (200 ms), 12 steps.
TINY = Timing(
    control_hz=20.0,
    steps_per_latent_frame=4,
    max_action_steps=12,
    max_event_s=10.0,
    context_frames=1,
    window_steps=12,
)


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    root = tmp_path_factory.mktemp("handmade")
    write_handmade_episode(root, seed=0)
    episodes, _ = load_dataset((str(root),))
    return episodes[0]


def cut(episode, timing=TINY, **overrides):
    config = DataConfig(paths=("unused",), **overrides)
    return cut_episode(episode, 0, config, timing)


def rows_by_step(table, episode) -> dict[int, int]:
    steps = episode.frame_steps[table.start_frame]
    return {int(s): row for row, s in enumerate(steps)}


def test_event_windows_exact(episode) -> None:
    table, counts = cut(episode)
    steps = episode.frame_steps[table.start_frame].tolist()
    # Event A [0, 100): a window every 4 model steps (0.2 s = 10 recorded steps) from its start.
    # Event B [103, 300): starts at 2.06 s + 0.2 s i, each on the first frame at or after it.
    assert steps == list(range(0, 100, 10)) + list(range(105, 300, 10))
    assert table.texts[:10] == ["pick up the red cube"] * 10
    assert set(table.texts[10:]) == {"place the red cube on the blue zone"}
    rows = rows_by_step(table, episode)

    # Inside A at step 10 (t0 = 0.2 s): 1.8 s left = 36 steps, capped at 12 (horizon-limited);
    # 3 future frames at 0.4, 0.6, 0.8 s = frames 4, 6, 8 (a frame every 0.1 s).
    row = rows[10]
    assert table.event_length_s[row] == pytest.approx(1.8)
    assert table.num_steps[row] == 12
    assert table.frames[row].tolist() == [2, 4, 6, 8]
    # Near A's end (step 80, 0.4 s left): 8 steps, 2 future frames, one padded frame.
    row = rows[80]
    assert table.num_steps[row] == 8 and table.event_length_s[row] == pytest.approx(0.4)
    assert table.frames[row].tolist() == [16, 18, 20, -1]
    assert np.all(table.tokens[row, 8:] == 0.0)
    # Step 90 (0.2 s left): 4 steps, 1 future frame.
    row = rows[90]
    assert table.num_steps[row] == 4 and table.frames[row].tolist() == [18, 20, -1, -1]
    # B's first window is at step 105 (the first frame after its start at 103): 3.9 s left.
    row = rows[105]
    assert table.event_length_s[row] == pytest.approx(3.9)
    assert table.num_steps[row] == 12
    # B's last window (step 295, 0.1 s left): 2 steps; its future frame (6.1 s) lies past the
    # recording (last frame 5.9 s) and is masked.
    row = rows[295]
    assert table.num_steps[row] == 2 and table.frames[row].tolist() == [59, -1, -1, -1]
    assert counts.missing_future_frames == 3  # steps 275, 285 (one each) and 295
    assert counts.windows == 30 and counts.events == 2
    assert counts.horizon_limited == sum(
        1 for r in range(30) if round(table.event_length_s[r] * 20) > 12
    )


def test_tokens_state_and_time_are_resampled_to_the_model_clock(episode) -> None:
    table, _ = cut(episode)
    row = rows_by_step(table, episode)[10]
    t = 0.2 + 0.05 * np.arange(12)  # model step k is due at t0 + k / 20 Hz
    tokens = table.tokens[row]
    np.testing.assert_allclose(tokens[:, :3], position_at(t), atol=1e-12)
    angle = angle_at(t)
    np.testing.assert_allclose(tokens[:, 3:6], np.stack([np.cos(angle), np.sin(angle), 0 * t], 1))
    np.testing.assert_allclose(tokens[:, 6:9], np.stack([-np.sin(angle), np.cos(angle), 0 * t], 1))
    assert np.all(tokens[:, 9] == 0.0)  # the gripper closes at step 100 = 2.0 s
    np.testing.assert_allclose(table.state[row], np.arange(8) + 0.2)  # joints at t0
    later = rows_by_step(table, episode)[105]
    assert np.all(table.tokens[later, :, 9] == 1.0)


def test_non_integer_rate_ratio(episode) -> None:
    """15 Hz model steps on a 50 Hz recording (3.33 recorded steps each): interpolated."""
    timing = dataclasses.replace(TINY, control_hz=15.0)
    table, _ = cut(episode, timing)
    rows = rows_by_step(table, episode)
    row = rows[min(rows)]
    t0 = episode.frame_time_ns[table.start_frame[row]] / 1e9
    t = t0 + np.arange(table.num_steps[row]) / 15.0
    np.testing.assert_allclose(table.tokens[row, : len(t), :3], position_at(t), atol=1e-12)
    # Latent frames every 4/15 s: the nearest 10 Hz frame (within half a latent period).
    targets = t0 + np.arange(1, 4) * 4 / 15.0
    assert table.frames[row, 1:].tolist() == np.round(targets * 10).astype(int).tolist()


def test_history_frames(episode) -> None:
    timing = dataclasses.replace(TINY, context_frames=2)
    table, _ = cut(episode, timing)
    rows = rows_by_step(table, episode)
    assert table.frames[rows[0], :2].tolist() == [-1, 0]  # nothing before the first frame
    assert table.frames[rows[10], :3].tolist() == [0, 2, 4]  # 0.2 s back, anchor, 0.2 s ahead
    assert table.frames.shape[1] == 5  # 2 context + ceil(12 / 4)


@pytest.mark.parametrize("policy", ["split", "skip"])
def test_oversize_events(episode, policy: str) -> None:
    timing = dataclasses.replace(TINY, max_event_s=2.5)  # B lasts 3.94 s
    table, counts = cut(episode, timing, oversize_events=policy)
    texts = np.array(table.texts)
    b = texts == "place the red cube on the blue zone"
    if policy == "skip":
        assert counts.oversize_skipped == 1 and counts.oversize_split == 0 and not b.any()
        return
    assert counts.oversize_split == 1 and counts.oversize_pieces == 2
    # Two pieces of 1.97 s: [2.06, 4.03) and [4.03, 6.0); remaining time runs to the piece end.
    bounds = {tuple(x) for x in table.event_bounds_ns[b].tolist()}
    assert bounds == {(2_060_000_000, 4_030_000_000), (4_030_000_000, 6_000_000_000)}
    assert np.all(table.event_length_s <= 2.5)
    rows = rows_by_step(table, episode)
    assert table.event_length_s[rows[105]] == pytest.approx(4.03 - 2.1)
    assert table.event_length_s[rows[205]] == pytest.approx(6.0 - 4.1)


def test_fixed_windows(episode) -> None:
    timing = dataclasses.replace(TINY, window_steps=8)
    table, _ = cut(episode, timing, window_mode="fixed", fixed_window_steps=8)
    assert set(table.texts) == {"put the red cube on the blue zone"}
    steps = episode.frame_steps[table.start_frame].tolist()
    assert steps == list(range(0, 300, 10))
    rows = rows_by_step(table, episode)
    assert table.event_length_s[rows[100]] == pytest.approx(4.0)  # the task's remaining time
    assert table.num_steps[rows[100]] == 8
    assert table.num_steps[rows[290]] == 4  # 0.2 s of recording left
    assert table.frames.shape[1] == 3  # 1 context + 8 / 4

    table, _ = cut(
        episode, timing, window_mode="fixed", fixed_window_steps=8, fixed_instruction="event"
    )
    row = rows_by_step(table, episode)[90]
    # The chunk runs on past the event's end (0.2 s left): 8 steps, the gripper closing at 2.0 s.
    assert table.texts[row] == "pick up the red cube" and table.num_steps[row] == 8
    assert table.event_length_s[row] == pytest.approx(0.2)
    assert table.tokens[row, :, 9].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_split_by_seed_is_disjoint(tmp_path) -> None:
    for seed in range(10):
        for task in ("pick_place", "stack"):
            write_handmade_episode(
                tmp_path, seed=seed, num_steps=20, task=task, events=(("wipe", 0, None),)
            )
    episodes, _ = load_dataset((str(tmp_path),))
    train, val, train_seeds, val_seeds = split_by_seed(episodes, 0.2)
    assert len(val_seeds) == 2 and not set(train_seeds) & set(val_seeds)
    assert {episodes[i].seed for i in train}.isdisjoint({episodes[i].seed for i in val})
    assert sorted(train + val) == list(range(20)) and len(val) == 4  # both tasks of a seed
    # The choice depends on the seeds, not the episode order.
    again = split_by_seed(episodes[::-1], 0.2)
    assert again[3] == val_seeds
    with pytest.raises(DatasetError, match="at least 2 seeds"):
        split_by_seed(episodes[:2], 0.2)  # seed 0 only


def test_dataset_errors(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no episodes"):
        load_dataset((str(tmp_path / "empty"),))
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset((str(tmp_path / "nowhere"),))
    path = write_handmade_episode(tmp_path / "png", seed=0, num_steps=40, image_format="png")
    load_dataset((str(tmp_path / "png"),))  # complete: fine
    (path / "frames_overhead" / "000003.png").unlink()
    with pytest.raises(DatasetError, match="missing frame 3 of camera 'overhead'"):
        load_dataset((str(tmp_path / "png"),))


def test_data_config_checks() -> None:
    with pytest.raises(ValueError, match="did you mean 'window_mode'"):
        DataConfig.from_dict({"paths": ["a"], "windw_mode": "event"})
    with pytest.raises(ValueError, match="instruction_track"):
        DataConfig(paths=("a",), instruction_track="subtasks")
    with pytest.raises(ValueError, match="val_fraction"):
        DataConfig(paths=("a",), val_fraction=1.0)
    assert DataConfig.from_dict({"paths": ["a", "b"]}).paths == ("a", "b")


def test_balancing_90_10() -> None:
    """A 90/10 set of two kinds of events comes out 50/50 at alpha 1, unchanged at alpha 0."""
    rng = np.random.default_rng(0)
    texts = ["pick up the red cube"] * 90 + ["press the blue button"] * 10
    stats = np.concatenate(
        [
            rng.normal([0.1, 0.0, 0.05, 0.0, 1.0, 2.0], 0.01, (90, 6)),
            rng.normal([0.0, 0.0, -0.05, 0.0, 0.0, 1.0], 0.01, (10, 6)),
        ]
    )
    labels = cluster(event_features(texts, stats), num_clusters=2)
    rare = np.arange(100) >= 90
    assert len(set(labels[rare])) == 1 and labels[0] != labels[-1]
    weights = balance_weights(labels, alpha=1.0)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[rare].sum() == pytest.approx(0.5, abs=0.02)
    assert balance_weights(labels, alpha=0.0)[rare].sum() == pytest.approx(0.1)
    # In between, the rare kind gains smoothly.
    assert 0.1 < balance_weights(labels, alpha=0.5)[rare].sum() < 0.5

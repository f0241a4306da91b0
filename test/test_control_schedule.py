"""Time-indexed chunk execution: latency skip, interpolation, blending, end hold (no ROS, no IK)."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest
from scipy.spatial.transform import Rotation

from wallwm_core.action_chunk import ActionChunk
from wallwm_core.control.chunk_schedule import (
    MAX_BLEND_DEPTH,
    ChunkSchedule,
    ChunkTrajectory,
    _Blend,
)

MS = 1_000_000
STEP_NS = 50 * MS
DOWN = (0.0, 0.0, 1.0, 0.0)  # (w, x, y, z): tool z pointing down


def _chunk(
    stamp_ns: int, positions: np.ndarray, quaternions: np.ndarray | None = None
) -> ActionChunk:
    positions = np.asarray(positions, dtype=float).reshape(-1, 1, 3)
    steps = positions.shape[0]
    if quaternions is None:
        quaternions = np.tile(DOWN, (steps, 1, 1))
    return ActionChunk(
        stamp_ns=stamp_ns,
        step_period_ns=STEP_NS,
        frame_id="base_link",
        arm_names=("arm",),
        ee_frames=("tool0",),
        positions=positions,
        quaternions=np.asarray(quaternions, dtype=float).reshape(steps, 1, 4),
        gripper=np.linspace(0.0, 1.0, steps).reshape(steps, 1),
    )


def _trajectory(
    chunk: ActionChunk, interpolation: str = "linear", end_hold_ns: int = 100 * MS
) -> ChunkTrajectory:
    return ChunkTrajectory(
        chunk, chunk.positions, chunk.quaternions, chunk.gripper, interpolation, end_hold_ns
    )


def _ramp(stamp_ns: int, steps: int = 10, speed: float = 0.2, start_x: float = 0.4) -> ActionChunk:
    """x moves at ``speed`` m/s measured from the chunk's own stamp."""
    x = start_x + speed * np.arange(steps) * STEP_NS / 1e9
    return _chunk(stamp_ns, np.stack([x, np.zeros(steps), np.full(steps, 0.3)], axis=-1))


def test_latency_part_is_skipped() -> None:
    trajectory = _trajectory(_ramp(stamp_ns=0))
    now = 120 * MS  # steps 0, 1, 2 (due at 0, 50, 100 ms) went by during inference
    assert trajectory.steps_due_before(now) == 3
    assert trajectory.steps_due_before(0) == 0
    sample = trajectory.sample(now)
    assert sample.positions[0, 0] == pytest.approx(0.4 + 0.2 * 0.120)  # not step 0's 0.4
    assert sample.gripper[0] == pytest.approx(2.4 / 9)


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_interpolation_passes_through_steps(interpolation: str) -> None:
    rng = np.random.default_rng(0)
    positions = rng.uniform(0.2, 0.5, size=(6, 3))
    trajectory = _trajectory(_chunk(1000, positions), interpolation)
    for step, expected in enumerate(positions):
        np.testing.assert_allclose(
            trajectory.sample(1000 + step * STEP_NS).positions[0], expected, atol=1e-12
        )
    middle = trajectory.sample(1000 + STEP_NS // 2).positions[0]
    if interpolation == "linear":
        np.testing.assert_allclose(middle, (positions[0] + positions[1]) / 2, atol=1e-12)
    else:
        assert not np.allclose(middle, (positions[0] + positions[1]) / 2, atol=1e-6)


def test_orientation_is_slerped() -> None:
    angles = [[0.0], [np.pi / 2]]
    quaternions = Rotation.from_euler("z", angles).as_quat(scalar_first=True)
    trajectory = _trajectory(_chunk(0, np.zeros((2, 3)), quaternions))
    quarter = trajectory.sample(STEP_NS // 4).rotations[0]
    expected = Rotation.from_euler("z", np.pi / 8).as_matrix()
    np.testing.assert_allclose(quarter, expected, atol=1e-12)


def test_end_hold_then_not_covered() -> None:
    chunk = _ramp(stamp_ns=0, steps=4)
    trajectory = _trajectory(chunk, end_hold_ns=100 * MS)
    last = 3 * STEP_NS
    schedule = ChunkSchedule(blend_window_ns=100 * MS)
    schedule.add(trajectory, now_ns=10 * MS)
    held = schedule.sample(last + 100 * MS)
    assert held is not None
    np.testing.assert_allclose(held.positions[0], chunk.positions[-1, 0])
    assert schedule.sample(last + 100 * MS + 1) is None
    assert schedule.sample(-1) is None  # before the chunk's first step


def _max_jump(schedule: ChunkSchedule, times: np.ndarray) -> tuple[float, np.ndarray]:
    samples = np.array([schedule.sample(int(t)).positions[0] for t in times])
    return float(np.max(np.linalg.norm(np.diff(samples, axis=0), axis=-1))), samples


def test_blend_is_continuous_across_a_switch() -> None:
    window = 100 * MS
    schedule = ChunkSchedule(blend_window_ns=window)
    schedule.add(_trajectory(_chunk(0, np.tile([0.4, 0.0, 0.3], (20, 1)))), now_ns=0)
    switch = 200 * MS
    offset = np.array([0.0, 0.05, 0.0])
    newer = _chunk(150 * MS, np.tile(np.array([0.4, 0.0, 0.3]) + offset, (20, 1)))
    schedule.add(_trajectory(newer), now_ns=switch)
    np.testing.assert_allclose(schedule.sample(switch).positions[0], [0.4, 0.0, 0.3])
    tick = 2 * MS
    jump, samples = _max_jump(
        schedule, np.arange(switch - 20 * MS, switch + window + 20 * MS, tick)
    )
    # Smoothstep's steepest slope is 1.5 / window: the largest step per tick is bounded by it.
    assert jump <= 1.5 * 0.05 * tick / window + 1e-12
    np.testing.assert_allclose(samples[0], [0.4, 0.0, 0.3])  # before the switch: old chunk
    np.testing.assert_allclose(samples[-1], [0.4, 0.05, 0.3])  # after the window: new chunk


def test_newer_chunk_with_latency_never_goes_back() -> None:
    """Both chunks describe the same motion; the newer one arrives 120 ms after its stamp."""
    schedule = ChunkSchedule(blend_window_ns=100 * MS)
    schedule.add(_trajectory(_ramp(stamp_ns=0, steps=20)), now_ns=10 * MS)
    newer_stamp = 400 * MS
    newer = _ramp(stamp_ns=newer_stamp, steps=20, start_x=0.4 + 0.2 * 0.4)
    schedule.add(_trajectory(newer), now_ns=newer_stamp + 120 * MS)
    times = np.arange(newer_stamp, newer_stamp + 400 * MS, 2 * MS)
    x = np.array([schedule.sample(int(t)).positions[0, 0] for t in times])
    assert np.all(np.diff(x) > 0)  # keeps moving forward through the switch
    np.testing.assert_allclose(x, 0.4 + 0.2 * times / 1e9, atol=1e-12)


def test_chunk_stamped_in_the_future_starts_at_its_stamp() -> None:
    schedule = ChunkSchedule(blend_window_ns=50 * MS)
    schedule.add(_trajectory(_chunk(0, np.tile([0.4, 0.0, 0.3], (20, 1)))), now_ns=0)
    schedule.add(_trajectory(_chunk(300 * MS, np.tile([0.5, 0.0, 0.3], (5, 1)))), now_ns=100 * MS)
    assert schedule.sample(299 * MS).positions[0, 0] == pytest.approx(0.4)
    assert schedule.sample(300 * MS + 50 * MS).positions[0, 0] == pytest.approx(0.5)


def test_rapid_chunks_keep_blend_depth_bounded() -> None:
    schedule = ChunkSchedule(blend_window_ns=100 * MS)
    for index in range(12):
        now = index * 2 * MS
        schedule.add(
            _trajectory(_chunk(now, np.tile([0.4, 0.01 * index, 0.3], (20, 1)))), now_ns=now
        )
        source = schedule._source
        assert not isinstance(source, _Blend) or source.depth <= MAX_BLEND_DEPTH
        assert schedule.sample(now) is not None
    late = schedule.sample(24 * MS + 100 * MS)
    np.testing.assert_allclose(late.positions[0], [0.4, 0.11, 0.3])


def test_blended_rotation_stays_a_rotation() -> None:
    schedule = ChunkSchedule(blend_window_ns=100 * MS)
    first = Rotation.from_euler("xyz", [0.1, 0.2, 0.3]).as_quat(scalar_first=True)
    second = Rotation.from_euler("xyz", [-0.4, 0.1, 2.0]).as_quat(scalar_first=True)
    schedule.add(_trajectory(_chunk(0, np.zeros((10, 3)), np.tile(first, (10, 1)))), now_ns=0)
    schedule.add(
        _trajectory(_chunk(10 * MS, np.zeros((10, 3)), np.tile(second, (10, 1)))), now_ns=20 * MS
    )
    rotation = schedule.sample(70 * MS).rotations[0]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    start = Rotation.from_quat(first, scalar_first=True).as_matrix()
    end = Rotation.from_quat(second, scalar_first=True).as_matrix()
    total = np.linalg.norm(pin.log3(start.T @ end))
    partial = np.linalg.norm(pin.log3(start.T @ rotation))
    assert 0.0 < partial < total

"""ROS message conversions, without spinning."""

from __future__ import annotations

import numpy as np
import pytest

from wallwm_core.action_chunk import ActionChunk, InvalidChunkError
from wallwm_ros.conversions import (
    chunk_from_msg,
    chunk_to_msg,
    duration_to_ns,
    ns_to_duration,
    ns_to_time,
    time_to_ns,
)


def test_time_and_duration_round_trip_exactly() -> None:
    for ns in (0, 1, 999_999_999, 1_000_000_000, 1_795_000_000_123_456_789):
        assert time_to_ns(ns_to_time(ns)) == ns
        assert duration_to_ns(ns_to_duration(ns)) == ns
    assert (ns_to_time(2_500_000_000).sec, ns_to_time(2_500_000_000).nanosec) == (2, 500_000_000)


def _chunk() -> ActionChunk:
    half = np.sqrt(0.5)
    return ActionChunk(
        stamp_ns=5,
        step_period_ns=20_000_000,
        frame_id="base_link",
        arm_names=("arm",),
        ee_frames=("tool0",),
        positions=[[[0.1, 0.2, 0.3]], [[0.4, 0.5, 0.6]]],
        quaternions=[[[half, 0.0, 0.0, half]], [[1.0, 0.0, 0.0, 0.0]]],  # (w, x, y, z)
        gripper=[[0.0], [1.0]],
    )


def test_quaternion_order_is_converted() -> None:
    msg = chunk_to_msg(_chunk())
    q = msg.arms[0].poses[0].orientation
    assert (q.x, q.y, q.z, q.w) == pytest.approx((0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)))
    assert msg.num_steps == 2 and list(msg.arms[0].gripper) == [0.0, 1.0]
    back = chunk_from_msg(msg)
    np.testing.assert_array_equal(back.quaternions, _chunk().quaternions)


def test_inconsistent_message_is_rejected() -> None:
    msg = chunk_to_msg(_chunk())
    msg.num_steps = 3
    with pytest.raises(InvalidChunkError, match="num_steps=3"):
        chunk_from_msg(msg)
    msg = chunk_to_msg(_chunk())
    msg.arms[0].poses[1].position.x = float("nan")
    with pytest.raises(InvalidChunkError, match="NaN"):
        chunk_from_msg(msg)
    msg = chunk_to_msg(_chunk())
    msg.arms[0].poses[0].orientation.w = 0.0
    msg.arms[0].poses[0].orientation.z = 0.0
    with pytest.raises(InvalidChunkError, match="unit length"):
        chunk_from_msg(msg)

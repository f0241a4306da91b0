"""Conversions between wallwm_core values and ROS messages. No node logic here.

The one place where quaternion order changes: wallwm_core uses (w, x, y, z), ROS messages
(x, y, z, w).
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Pose

from wallwm_core.action_chunk import NS_PER_S, ActionChunk, InvalidChunkError
from wallwm_msgs.msg import ActionChunk as ActionChunkMsg
from wallwm_msgs.msg import ArmTrajectory


def ns_to_duration(ns: int) -> Duration:
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Duration(sec=sec, nanosec=nanosec)


def duration_to_ns(duration: Duration) -> int:
    return duration.sec * NS_PER_S + duration.nanosec


def ns_to_time(ns: int) -> Time:
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def time_to_ns(stamp: Time) -> int:
    return stamp.sec * NS_PER_S + stamp.nanosec


def chunk_to_msg(chunk: ActionChunk) -> ActionChunkMsg:
    msg = ActionChunkMsg()
    msg.header.stamp = ns_to_time(chunk.stamp_ns)
    msg.header.frame_id = chunk.frame_id
    msg.step_period = ns_to_duration(chunk.step_period_ns)
    msg.num_steps = chunk.num_steps
    for arm, (name, ee_frame) in enumerate(zip(chunk.arm_names, chunk.ee_frames, strict=True)):
        trajectory = ArmTrajectory(arm_name=name, ee_frame=ee_frame)
        for step in range(chunk.num_steps):
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = (
                float(v) for v in chunk.positions[step, arm]
            )
            w, x, y, z = (float(v) for v in chunk.quaternions[step, arm])
            pose.orientation.x, pose.orientation.y, pose.orientation.z = x, y, z
            pose.orientation.w = w
            trajectory.poses.append(pose)
        trajectory.gripper = chunk.gripper[:, arm].astype(np.float64)
        msg.arms.append(trajectory)
    msg.event_id = chunk.event_id
    msg.event_instruction = chunk.event_instruction
    msg.chunk_index = chunk.chunk_index
    msg.ends_event = chunk.ends_event
    return msg


def chunk_from_msg(msg: ActionChunkMsg) -> ActionChunk:
    """Convert and validate; raises InvalidChunkError naming what is wrong with the message."""
    for trajectory in msg.arms:
        if len(trajectory.poses) != msg.num_steps or len(trajectory.gripper) != msg.num_steps:
            raise InvalidChunkError(
                f"arm {trajectory.arm_name!r} has {len(trajectory.poses)} poses and "
                f"{len(trajectory.gripper)} gripper commands, expected num_steps={msg.num_steps}"
            )
    positions = np.array(
        [[(p.position.x, p.position.y, p.position.z) for p in t.poses] for t in msg.arms],
        dtype=np.float64,
    ).reshape(len(msg.arms), msg.num_steps, 3)
    quaternions = np.array(
        [
            [(p.orientation.w, p.orientation.x, p.orientation.y, p.orientation.z) for p in t.poses]
            for t in msg.arms
        ],
        dtype=np.float64,
    ).reshape(len(msg.arms), msg.num_steps, 4)
    gripper = np.array([list(t.gripper) for t in msg.arms], dtype=np.float64).reshape(
        len(msg.arms), msg.num_steps
    )
    return ActionChunk(
        stamp_ns=time_to_ns(msg.header.stamp),
        step_period_ns=duration_to_ns(msg.step_period),
        frame_id=msg.header.frame_id,
        arm_names=tuple(t.arm_name for t in msg.arms),
        ee_frames=tuple(t.ee_frame for t in msg.arms),
        positions=positions.transpose(1, 0, 2),
        quaternions=quaternions.transpose(1, 0, 2),
        gripper=gripper.T,
        event_id=msg.event_id,
        event_instruction=msg.event_instruction,
        chunk_index=msg.chunk_index,
        ends_event=msg.ends_event,
    )

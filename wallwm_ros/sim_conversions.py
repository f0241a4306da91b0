"""Messages of the simulation node <-> wallwm_sim's plain values. No node logic here.

Times are integer nanoseconds (wallwm_ros.conversions turns them into ROS stamps); images are
``[H, W, 3]`` uint8 RGB arrays, published as ``rgb8``.
"""

from __future__ import annotations

import numpy as np
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.msg import JointState as JointStateMsg
from trajectory_msgs.msg import JointTrajectory

from wallwm_ros.conversions import duration_to_ns, ns_to_time, time_to_ns
from wallwm_sim.cameras import CameraInfoData
from wallwm_sim.joint_trajectory import TrajectoryRequest, TrajectoryWaypoint
from wallwm_sim.sim import JointState


def clock_to_msg(time_ns: int) -> Clock:
    return Clock(clock=ns_to_time(time_ns))


def joint_state_to_msg(time_ns: int, state: JointState) -> JointStateMsg:
    msg = JointStateMsg(
        name=list(state.names),
        position=state.positions.tolist(),
        velocity=state.velocities.tolist(),
        effort=state.efforts.tolist(),
    )
    msg.header.stamp = ns_to_time(time_ns)
    return msg


def image_to_msg(time_ns: int, frame_id: str, rgb: np.ndarray) -> Image:
    """An ``rgb8`` image from an ``[H, W, 3]`` uint8 array."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] uint8 image, got {rgb.shape} {rgb.dtype}")
    height, width, _ = rgb.shape
    msg = Image(
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=3 * width,
        data=np.ascontiguousarray(rgb).tobytes(),
    )
    msg.header.stamp = ns_to_time(time_ns)
    msg.header.frame_id = frame_id
    return msg


def camera_info_to_msg(info: CameraInfoData, frame_id: str) -> CameraInfo:
    """CameraInfo without a stamp (set ``msg.header.stamp`` per frame)."""
    msg = CameraInfo(
        width=info.width,
        height=info.height,
        distortion_model=info.distortion_model,
        d=list(info.d),
        k=list(info.k),
        r=list(info.r),
        p=list(info.p),
    )
    msg.header.frame_id = frame_id
    return msg


def trajectory_from_msg(msg: JointTrajectory) -> TrajectoryRequest:
    """The plain request; checks against the arm happen in :func:`plan_trajectory`."""
    return TrajectoryRequest(
        joint_names=tuple(msg.joint_names),
        waypoints=tuple(
            TrajectoryWaypoint(
                time_from_start_ns=duration_to_ns(point.time_from_start),
                positions=tuple(point.positions),
                velocities=tuple(point.velocities),
                accelerations=tuple(point.accelerations),
            )
            for point in msg.points
        ),
        start_ns=time_to_ns(msg.header.stamp),
    )

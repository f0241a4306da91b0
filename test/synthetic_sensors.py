"""Synthetic camera and joint-state streams over real DDS, for the policy node's sensor tests."""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState

from wallwm_ros import qos
from wallwm_ros.conversions import ns_to_time

CAMERAS = ("front", "wrist")
JOINTS = ("j1", "j2", "finger")
# optical frames in the base frame: x y z qw qx qy qz (front looks along +x, wrist straight down)
EXTRINSICS = (-0.5, 0.0, 0.5, 0.5, -0.5, 0.5, -0.5, 0.3, 0.0, 0.6, 0.0, 1.0, 0.0, 0.0)


def sensor_parameters(namespace_free: bool = True) -> dict[str, object]:
    """Policy-node parameters that read these streams."""
    return {
        "camera_names": list(CAMERAS),
        "camera_image_topics": [f"{c}/image" for c in CAMERAS],
        "camera_info_topics": [f"{c}/camera_info" for c in CAMERAS],
        "camera_extrinsics": list(EXTRINSICS),
        "joint_names": list(JOINTS),
        "joint_state_topic": "joint_states",
        "max_camera_skew": 0.02,
        "max_camera_age": 0.3,
        "max_joint_age": 0.2,
    }


class SyntheticSensors:
    """Publishes frames (20 Hz) and joint states (200 Hz) stamped with the node's clock."""

    def __init__(self, node: Node, height: int = 32, width: int = 32) -> None:
        self.node = node
        self.height, self.width = height, width
        self.running_cameras = set(CAMERAS)
        self.malformed = False
        self.image_stamps: list[int] = []
        self._images = {c: node.create_publisher(Image, f"{c}/image", qos.SENSORS) for c in CAMERAS}
        self._infos = {
            c: node.create_publisher(CameraInfo, f"{c}/camera_info", qos.SENSORS) for c in CAMERAS
        }
        self._joints = node.create_publisher(JointState, "joint_states", qos.SENSORS)
        self._frame = 0
        node.create_timer(0.05, self._publish_frames)
        node.create_timer(0.005, self._publish_joints)

    def connected(self) -> bool:
        """Every camera, camera-info and joint-state publisher has a subscriber."""
        publishers = [*self._images.values(), *self._infos.values(), self._joints]
        return all(p.get_subscription_count() > 0 for p in publishers)

    def frames_published(self) -> int:
        return self._frame

    def _publish_frames(self) -> None:
        stamp_ns = self.node.get_clock().now().nanoseconds
        self._frame += 1
        for camera in sorted(self.running_cameras):
            pixels = np.full((self.height, self.width, 3), (self._frame * 7) % 255, np.uint8)
            pixels[: self.height // 2, :, 0] = 200
            msg = Image(
                height=self.height,
                width=self.width,
                encoding="rgb8",
                step=self.width * 3,
                data=pixels.tobytes()[: -5 if self.malformed else None],
            )
            msg.header.stamp = ns_to_time(stamp_ns)
            msg.header.frame_id = f"{camera}_optical_frame"
            self._images[camera].publish(msg)
            f = 0.8 * self.width
            info = CameraInfo(
                height=self.height,
                width=self.width,
                distortion_model="plumb_bob",
                d=[0.0] * 5,
                k=[f, 0.0, self.width / 2 - 0.5, 0.0, f, self.height / 2 - 0.5, 0.0, 0.0, 1.0],
            )
            cx, cy = self.width / 2 - 0.5, self.height / 2 - 0.5
            info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
            info.header = msg.header
            self._infos[camera].publish(info)
        if self.running_cameras and not self.malformed:
            self.image_stamps.append(stamp_ns)

    def _publish_joints(self) -> None:
        stamp_ns = self.node.get_clock().now().nanoseconds
        t = stamp_ns / 1e9
        msg = JointState(name=list(JOINTS), position=[0.1 * np.sin(t), 0.2, 0.01])
        msg.header.stamp = ns_to_time(stamp_ns)
        self._joints.publish(msg)

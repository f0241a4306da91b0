"""The policy node's sensor inputs: camera and joint-state subscriptions feeding the synchroniser.

Per configured camera: an image topic (``sensor_msgs/Image``, or ``CompressedImage`` with
``image_transport: compressed``) and its ``CameraInfo`` topic; plus one ``JointState`` topic.
Messages are decoded here (wallwm_ros.image_decoding, camera_calibration) and handed to the
plain-Python :class:`~wallwm_ros.observation_sync.ObservationSynchroniser`; malformed images are
counted with their reason and never reach the policy. Camera extrinsics come from the
``camera_extrinsics`` parameter (the optical frame's pose in the arm base frame, 7 numbers per
camera: x y z qw qx qy qz).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.config_loading import ConfigError
from wallwm_core.policy import Observation
from wallwm_ros import qos
from wallwm_ros.camera_calibration import (
    CalibrationError,
    CameraExtrinsics,
    camera_geometry,
    intrinsics_from_camera_info,
)
from wallwm_ros.conversions import time_to_ns
from wallwm_ros.image_decoding import (
    ImageDecodeError,
    compressed_image_to_array,
    image_to_array,
)
from wallwm_ros.observation_sync import NotReady, ObservationSynchroniser, SyncConfig

IMAGE_TRANSPORTS = ("raw", "compressed")


@dataclasses.dataclass(frozen=True)
class ObservationInputsConfig:
    """Sensor parameters of the policy node (seconds in parameters, validated here)."""

    camera_names: tuple[str, ...] = ()
    camera_image_topics: tuple[str, ...] = ()
    camera_info_topics: tuple[str, ...] = ()
    camera_extrinsics: tuple[float, ...] = ()
    camera_parent_frames: tuple[str, ...] = ()
    robot_description: str = ""
    image_transport: str = "raw"
    joint_state_topic: str = "joint_states"
    joint_names: tuple[str, ...] = ()
    max_camera_skew: float = 0.02
    max_camera_age: float = 0.25
    max_joint_age: float = 0.1
    max_future_stamp: float = 0.1

    def __post_init__(self) -> None:
        count = len(self.camera_names)
        for name in ("camera_image_topics", "camera_info_topics"):
            if len(getattr(self, name)) != count:
                raise ConfigError(
                    f"parameter '{name}' needs one topic per camera in camera_names "
                    f"({count}), got {len(getattr(self, name))}"
                )
        if len(self.camera_extrinsics) != 7 * count:
            raise ConfigError(
                "parameter 'camera_extrinsics' needs 7 numbers (x y z qw qx qy qz) per camera "
                f"({7 * count} for {count} cameras), got {len(self.camera_extrinsics)}"
            )
        if self.camera_parent_frames and len(self.camera_parent_frames) != count:
            raise ConfigError(
                f"parameter 'camera_parent_frames' needs one entry per camera ({count}; '' for "
                f"the base frame), got {len(self.camera_parent_frames)}"
            )
        if any(self.camera_parent_frames) and not self.robot_description:
            raise ConfigError(
                "parameter 'robot_description' (URDF) is needed for cameras with a parent frame "
                "(their pose follows the arm)"
            )
        if self.image_transport not in IMAGE_TRANSPORTS:
            raise ConfigError(
                f"parameter 'image_transport' is {self.image_transport!r}; "
                f"expected one of {IMAGE_TRANSPORTS}"
            )
        if count and not self.joint_names:
            raise ConfigError("parameter 'joint_names' must list the joints the policy reads")
        for name in ("max_camera_skew", "max_camera_age", "max_joint_age", "max_future_stamp"):
            if not getattr(self, name) >= 0.0:
                raise ConfigError(f"parameter '{name}' must not be negative")

    @property
    def enabled(self) -> bool:
        return bool(self.camera_names)

    def extrinsics(self) -> dict[str, CameraExtrinsics]:
        result = {}
        for index, camera in enumerate(self.camera_names):
            values = self.camera_extrinsics[7 * index : 7 * index + 7]
            try:
                result[camera] = CameraExtrinsics(
                    translation=tuple(values[:3]), quaternion_wxyz=tuple(values[3:])
                )
            except CalibrationError as error:
                raise ConfigError(
                    f"parameter 'camera_extrinsics' for {camera!r}: {error}"
                ) from error
        return result

    def sync_config(self) -> SyncConfig:
        return SyncConfig(
            cameras=self.camera_names,
            joint_names=self.joint_names,
            max_camera_skew_ns=round(self.max_camera_skew * NS_PER_S),
            max_camera_age_ns=round(self.max_camera_age * NS_PER_S),
            max_joint_age_ns=round(self.max_joint_age * NS_PER_S),
            max_future_stamp_ns=round(self.max_future_stamp * NS_PER_S),
        )


OBSERVATION_PARAMETER_DESCRIPTIONS = {
    "camera_names": "Cameras the policy reads, in model view order (empty: no sensors).",
    "camera_image_topics": "Image topic per camera (sensor_msgs/Image, or CompressedImage).",
    "camera_info_topics": "CameraInfo topic per camera.",
    "camera_extrinsics": "Per camera, the optical frame in its parent: x y z qw qx qy qz.",
    "camera_parent_frames": "Per camera, the URDF link it rides on ('' = fixed in the base frame).",
    "robot_description": "URDF text, for the poses of cameras mounted on the arm.",
    "image_transport": "'raw' (sensor_msgs/Image) or 'compressed' (CompressedImage, JPEG/PNG).",
    "joint_state_topic": "sensor_msgs/JointState topic of the arm.",
    "joint_names": "Joints (gripper included) in the order the policy reads them.",
    "max_camera_skew": "Seconds the frames of one observation may be apart.",
    "max_camera_age": "Seconds after which a camera counts as stale.",
    "max_joint_age": "Seconds after which the joint states count as stale.",
    "max_future_stamp": "Frames and joint states stamped further ahead of now are rejected (s).",
}


class SensorObservations:
    """Subscribes to the configured topics; serves synchronised observations to the goal loop."""

    def __init__(
        self, node: Node, config: ObservationInputsConfig, now_ns: Callable[[], int]
    ) -> None:
        self._node = node
        self._now_ns = now_ns
        self._extrinsics = config.extrinsics()
        self.sync = ObservationSynchroniser(config.sync_config())
        self._mounts = _camera_mounts(config)
        self._calibration_errors: dict[str, str] = {}
        self._lock = threading.Lock()
        compressed = config.image_transport == "compressed"
        for camera, image_topic, info_topic in zip(
            config.camera_names, config.camera_image_topics, config.camera_info_topics, strict=True
        ):
            node.create_subscription(
                CompressedImage if compressed else Image,
                image_topic,
                lambda msg, camera=camera: self._on_image(camera, msg),
                qos.SENSORS,
            )
            node.create_subscription(
                CameraInfo,
                info_topic,
                lambda msg, camera=camera: self._on_camera_info(camera, msg),
                qos.SENSORS,
            )
        node.create_subscription(
            JointState, config.joint_state_topic, self._on_joint_state, qos.SENSORS
        )

    def _on_image(self, camera: str, msg: Image | CompressedImage) -> None:
        try:
            if isinstance(msg, CompressedImage):
                array = compressed_image_to_array(msg.format, msg.data)
            else:
                array = image_to_array(
                    msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data
                )
        except ImageDecodeError as error:
            self.sync.note_rejected_image(camera, error.reason)
            self._node.get_logger().warning(
                f"camera {camera!r}: image rejected: {error.reason}", throttle_duration_sec=1.0
            )
            return
        self.sync.add_image(camera, time_to_ns(msg.header.stamp), array, self._now_ns())

    def _on_camera_info(self, camera: str, msg: CameraInfo) -> None:
        try:
            intrinsics = intrinsics_from_camera_info(
                msg.k, msg.height, msg.width, msg.distortion_model, msg.d, msg.p
            )
            geometry = camera_geometry(intrinsics, self._extrinsics[camera])
        except CalibrationError as error:
            with self._lock:
                self._calibration_errors[camera] = str(error)
            self.sync.set_calibration(camera, None)
            self._node.get_logger().error(
                f"camera {camera!r}: bad CameraInfo: {error}", throttle_duration_sec=5.0
            )
            return
        with self._lock:
            self._calibration_errors.pop(camera, None)
        self.sync.set_calibration(camera, geometry)

    def _on_joint_state(self, msg: JointState) -> None:
        self.sync.add_joint_state(
            time_to_ns(msg.header.stamp), msg.name, msg.position, self._now_ns()
        )

    def fresh_observation(self, newer_than_ns: int) -> Observation | str:
        result = self.sync.try_observation(self._now_ns(), newer_than_ns)
        if isinstance(result, NotReady):
            with self._lock:
                errors = dict(self._calibration_errors)
            extra = "".join(f"; camera {c!r} calibration: {e}" for c, e in errors.items())
            return result.reason + extra
        if self._mounts:
            result = self._mounts.apply(result)
        return result

    def diagnostics(self) -> dict[str, str]:
        stats = self.sync.stats(self._now_ns())
        values = {"observations_built": str(stats.observations)}
        for camera, stream in stats.cameras.items():
            age = "none" if stream.age_ns is None else f"{stream.age_ns / 1e6:.0f}"
            values[f"camera {camera} age_ms"] = age
            values[f"camera {camera} received"] = str(stream.received)
            dropped = sum(stream.dropped.values())
            values[f"camera {camera} dropped"] = str(dropped)
            for kind in ("future_stamp", "bad_stamp"):
                values[f"camera {camera} dropped {kind}"] = str(stream.dropped.get(kind, 0))
            if stream.last_rejection:
                values[f"camera {camera} last_rejection"] = stream.last_rejection
        joints_age = stats.joints.age_ns
        values["joint_states age_ms"] = "none" if joints_age is None else f"{joints_age / 1e6:.0f}"
        values["joint_states received"] = str(stats.joints.received)
        values["joint_states dropped"] = str(sum(stats.joints.dropped.values()))
        for kind in ("future_stamp", "bad_stamp"):
            values[f"joint_states dropped {kind}"] = str(stats.joints.dropped.get(kind, 0))
        if stats.joints.last_rejection:
            values["joint_states last_rejection"] = stats.joints.last_rejection
        if stats.last_not_ready is not None:
            values["last_not_ready"] = stats.last_not_ready.reason
        return values


class _CameraMounts:
    """Cameras riding on arm links: their base-frame pose follows the observation's joints."""

    def __init__(self, urdf_xml: str, joint_names: tuple[str, ...], parents: dict[str, str]):
        from wallwm_core.control.kinematics import ArmKinematics

        urdf_joints = _movable_joints(urdf_xml)
        self._joint_slots = [i for i, name in enumerate(joint_names) if name in urdf_joints]
        used = tuple(joint_names[i] for i in self._joint_slots)
        try:
            self._links = {
                camera: ArmKinematics(urdf_xml, used, parent) for camera, parent in parents.items()
            }
        except Exception as error:  # Pinocchio's errors for unknown frames or a broken URDF
            raise ConfigError(f"parameter 'camera_parent_frames': {error}") from error

    def apply(self, observation: Observation) -> Observation:
        q = observation.joint_positions[self._joint_slots]
        cameras = dict(observation.cameras)
        for camera, link in self._links.items():
            if camera not in cameras:
                continue
            pose = link.forward(q)
            base_from_parent = np.eye(4)
            base_from_parent[:3, :3], base_from_parent[:3, 3] = pose.rotation, pose.position
            geometry = cameras[camera]
            cameras[camera] = CameraGeometry(
                K=geometry.K,
                image_size=geometry.image_size,
                world_from_camera=base_from_parent @ geometry.world_from_camera,
            )
        return dataclasses.replace(observation, cameras=cameras)


def _movable_joints(urdf_xml: str) -> set[str]:
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.fromstring(urdf_xml)
    return {
        joint.get("name")
        for joint in root.iter("joint")
        if joint.get("type") not in ("fixed", "floating", "planar") and joint.find("mimic") is None
    }


def _camera_mounts(config: ObservationInputsConfig) -> _CameraMounts | None:
    parents = {
        camera: parent
        for camera, parent in zip(config.camera_names, config.camera_parent_frames, strict=False)
        if parent
    }
    if not parents:
        return None
    return _CameraMounts(config.robot_description, config.joint_names, parents)

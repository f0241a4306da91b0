"""Records demonstrations while a policy runs (a rollout step sink) in the episode format."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from wallwm_core.control.kinematics import ArmKinematics
from wallwm_core.episode_format import (
    append_to_index,
    episode_dir_name,
    list_episodes,
    write_episode,
)
from wallwm_sim import cameras as camera_defs
from wallwm_sim import description
from wallwm_sim.captions import CaptionRecorder
from wallwm_sim.kinematics import sim_arm_kinematics, tool_pose
from wallwm_sim.policy import Action, Observation
from wallwm_sim.rollout import EpisodeResult
from wallwm_sim.sim import TabletopSim
from wallwm_sim.tasks import TaskInstance, get_task


class EpisodeRecorder:
    """Collects every step of an episode and writes it under ``root`` when it ends.

    Frames of ``cameras`` are kept every ``frame_period_steps`` control steps (at the sim's image
    size). Episodes scoring below ``min_score`` are dropped (``last_written`` is then None).
    """

    def __init__(
        self,
        root: str | Path,
        cameras: tuple[str, ...] = camera_defs.CAMERA_NAMES,
        frame_period_steps: int = 5,
        image_format: str = "png",
        min_score: float = 0.0,
        kinematics: ArmKinematics | None = None,
    ) -> None:
        if frame_period_steps < 1:
            raise ValueError(f"frame_period_steps must be >= 1, got {frame_period_steps}")
        unknown = set(cameras) - set(camera_defs.CAMERA_NAMES)
        if unknown:
            raise ValueError(
                f"unknown cameras {sorted(unknown)}; cameras are {camera_defs.CAMERA_NAMES}"
            )
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cameras = tuple(cameras)
        self.frame_period_steps = frame_period_steps
        self.image_format = image_format
        self.min_score = min_score
        self.kinematics = kinematics or sim_arm_kinematics()
        self.last_written: Path | None = None
        self.num_dropped = 0

    def wants_frames(self, step: int) -> bool:
        return bool(self.cameras) and step % self.frame_period_steps == 0

    def begin(self, sim: TabletopSim, instance: TaskInstance) -> None:
        self._sim = sim
        self._instance = instance
        self._rows: dict[str, list] = {}
        self._frames: dict[str, list] = {c: [] for c in self.cameras}
        self._frame_steps: dict[str, list[int]] = {c: [] for c in self.cameras}
        self._frame_times: dict[str, list[int]] = {c: [] for c in self.cameras}
        self._poses: dict[str, list[np.ndarray]] = {c: [] for c in self.cameras}
        self._captions = CaptionRecorder(instance.instruction)
        self._last_time_ns = 0

    def _add(self, key: str, value) -> None:
        self._rows.setdefault(key, []).append(value)

    def record(
        self,
        step: int,
        observation: Observation,
        action: Action | None,
        joint_target: np.ndarray,
        gripper_target: float,
        progress: float,
    ) -> None:
        joints = self._sim.joint_state()
        frame_index = -1
        if self.wants_frames(step):
            for camera in self.cameras:
                self._frames[camera].append(observation.images[camera])
                self._frame_steps[camera].append(step)
                self._frame_times[camera].append(observation.time_ns)
                self._poses[camera].append(
                    np.asarray(self._sim.camera_geometry(camera).world_from_camera)
                )
            frame_index = len(self._frame_steps[self.cameras[0]]) - 1
        position, quaternion = tool_pose(self.kinematics, joint_target)
        self._add("time_ns", observation.time_ns)
        self._add("joint_positions", joints.positions)
        self._add("joint_velocities", joints.velocities)
        self._add("tool_position", observation.tool_position)
        self._add("tool_quaternion", observation.tool_quaternion)
        self._add("gripper", observation.gripper)
        self._add("action_joint_positions", joint_target)
        self._add("action_gripper", gripper_target)
        self._add("action_tool_position", position)
        self._add("action_tool_quaternion", quaternion)
        self._add("task_progress", progress)
        self._add("frame_index", frame_index)
        self._captions.add(step, observation.time_ns, getattr(action, "labels", None))
        self._last_time_ns = observation.time_ns

    def end(self, sim: TabletopSim, result: EpisodeResult) -> None:
        self.last_written = None
        if result.score < self.min_score:
            self.num_dropped += 1
            return
        num_steps = len(self._rows.get("time_ns", []))
        end_ns = self._last_time_ns + sim.control_period_ns
        events = self._captions.finish(num_steps, end_ns)
        lowdim = {
            key: np.asarray(
                values, dtype=np.int64 if key in ("time_ns", "frame_index") else np.float64
            )
            for key, values in self._rows.items()
        }
        index = len(list_episodes(self.root))
        path = self.root / episode_dir_name(index)
        height, width = sim.config.image_height, sim.config.image_width
        task = get_task(self._instance.task)
        meta = {
            "episode_index": index,
            "task": self._instance.task,
            "seed": self._instance.seed,
            "variant": self._instance.variant,
            "instruction": self._instance.instruction,
            "instance": self._instance.to_json(),
            "rubric": [
                {
                    "name": m.name,
                    "points": m.points,
                    "description": m.description,
                    "latched": m.latched,
                }
                for m in task.rubric(self._instance).milestones
            ],
            "result": dataclasses.asdict(result),
            "joint_names": list(description.ALL_JOINT_NAMES),
            "arm_joint_names": list(description.ARM_JOINT_NAMES),
            "base_frame": description.BASE_FRAME,
            "tool_frame": description.TOOL_FRAME,
            "control_period_ns": sim.control_period_ns,
            "frame_period_steps": self.frame_period_steps,
            "cameras": list(self.cameras),
            "image_size": [height, width],
            "camera_info": {
                c: dataclasses.asdict(sim.camera_info(c, height, width)) for c in self.cameras
            },
            "num_steps": num_steps,
        }
        write_episode(
            path,
            meta,
            events,
            lowdim,
            {
                c: np.asarray(f, dtype=np.uint8).reshape(-1, height, width, 3)
                for c, f in self._frames.items()
            },
            {c: np.asarray(v, dtype=np.int64) for c, v in self._frame_steps.items()},
            {c: np.asarray(v, dtype=np.int64) for c, v in self._frame_times.items()},
            {c: np.asarray(v, dtype=np.float64).reshape(-1, 4, 4) for c, v in self._poses.items()},
            self.image_format,
        )
        append_to_index(
            self.root,
            {
                "index": index,
                "directory": path.name,
                "task": self._instance.task,
                "seed": self._instance.seed,
                "variant": self._instance.variant,
                "instruction": self._instance.instruction,
                "score": result.score,
                "num_steps": num_steps,
                "num_frames": len(self._frame_steps[self.cameras[0]]) if self.cameras else 0,
            },
        )
        self.last_written = path

"""Hand-made episodes in the episode format, with trajectories whose every value is known.

The recording runs at 50 Hz (20 ms control period) with a frame every 5 steps (10 Hz), like the
simulator's demos. At time ``t`` seconds the commanded tool position is
``(0.3 + 0.1 t, 0.02 t, 0.2)``, its rotation ``0.1 t`` rad about z, the gripper 0 before
``gripper_step`` and 1 from it; joint ``j`` is at ``j + t``. Frame ``f`` has the uniform colour
``(f, 2f, 3f)`` in every camera (plus the camera index), so frames are told apart by value.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wallwm_core.episode_format import (
    LOWDIM_KEYS,
    CaptionSegment,
    append_to_index,
    episode_dir_name,
    list_episodes,
    write_episode,
)

PERIOD_NS = 20_000_000
FRAME_PERIOD = 5
JOINTS = (*tuple(f"joint{i}" for i in range(1, 7)), "finger_left_joint", "finger_right_joint")
CAMERAS = ("front", "overhead")
IMAGE = 16
POSES = {  # camera centre and look-at point in the base frame
    "front": ((1.0, 0.0, 0.5), (0.4, 0.0, 0.0)),
    "overhead": ((0.45, 0.0, 1.1), (0.5, 0.0, 0.0)),
}
# Two events: [0, 100) and [103, num_steps), a gap of 3 steps between them.
EVENTS = (("pick up the red cube", 0, 100), ("place the red cube on the blue zone", 103, None))


def position_at(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    return np.stack([0.3 + 0.1 * t, 0.02 * t, np.full_like(t, 0.2)], axis=-1)


def angle_at(t: np.ndarray) -> np.ndarray:
    return 0.1 * np.asarray(t, dtype=np.float64)


def _look_at(eye, target) -> np.ndarray:
    forward = np.subtract(target, eye) / np.linalg.norm(np.subtract(target, eye))
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    transform = np.eye(4)
    transform[:3, :3] = np.stack([right, down, forward], axis=1)
    transform[:3, 3] = eye
    return transform


def write_handmade_episode(
    root: Path,
    seed: int,
    num_steps: int = 300,
    events: tuple = EVENTS,
    gripper_step: int = 100,
    task: str = "pick_place",
    image_format: str = "raw",
) -> Path:
    """Write one episode under ``root`` (appended to its index) and return its folder."""
    time_ns = np.arange(num_steps, dtype=np.int64) * PERIOD_NS
    t = time_ns / 1e9
    half = angle_at(t) / 2.0
    quaternion = np.stack([np.cos(half), 0 * half, 0 * half, np.sin(half)], axis=-1)
    steps = np.arange(0, num_steps, FRAME_PERIOD, dtype=np.int64)
    frame_index = np.full(num_steps, -1, dtype=np.int64)
    frame_index[steps] = np.arange(len(steps))
    lowdim = {
        "time_ns": time_ns,
        "joint_positions": np.arange(8)[None, :] + t[:, None],
        "joint_velocities": np.ones((num_steps, 8)),
        "tool_position": position_at(t),
        "tool_quaternion": quaternion,
        "gripper": (np.arange(num_steps) >= gripper_step).astype(np.float64),
        "action_joint_positions": np.arange(6)[None, :] + t[:, None],
        "action_gripper": (np.arange(num_steps) >= gripper_step).astype(np.float64),
        "action_tool_position": position_at(t),
        "action_tool_quaternion": quaternion,
        "task_progress": np.linspace(0.0, 100.0, num_steps),
        "frame_index": frame_index,
    }
    assert set(lowdim) == set(LOWDIM_KEYS)
    end_ns = num_steps * PERIOD_NS
    tracks = {
        "task": [CaptionSegment("put the red cube on the blue zone", 0, num_steps, 0, end_ns)]
    }
    tracks["subtask"] = [
        CaptionSegment(
            text,
            start,
            num_steps if end is None else end,
            start * PERIOD_NS,
            (num_steps if end is None else end) * PERIOD_NS,
            index,
        )
        for index, (text, start, end) in enumerate(events)
    ]
    images, poses = {}, {}
    for c, camera in enumerate(CAMERAS):
        colour = np.stack([steps, 2 * steps, 3 * steps], axis=-1) // FRAME_PERIOD + c
        images[camera] = np.broadcast_to(
            (colour % 256).astype(np.uint8)[:, None, None, :], (len(steps), IMAGE, IMAGE, 3)
        ).copy()
        poses[camera] = np.repeat(_look_at(*POSES[camera])[None], len(steps), axis=0)
    focal = 0.5 * IMAGE / math.tan(math.radians(45.0) / 2.0)
    k = [focal, 0.0, (IMAGE - 1) / 2, 0.0, focal, (IMAGE - 1) / 2, 0.0, 0.0, 1.0]
    index = len(list_episodes(root))
    path = root / episode_dir_name(index)
    meta = {
        "episode_index": index,
        "task": task,
        "seed": seed,
        "variant": "train",
        "instruction": tracks["task"][0].caption,
        "joint_names": list(JOINTS),
        "base_frame": "base_link",
        "tool_frame": "tool0",
        "control_period_ns": PERIOD_NS,
        "frame_period_steps": FRAME_PERIOD,
        "cameras": list(CAMERAS),
        "image_size": [IMAGE, IMAGE],
        "camera_info": {c: {"k": k, "height": IMAGE, "width": IMAGE} for c in CAMERAS},
        "num_steps": num_steps,
    }
    root.mkdir(parents=True, exist_ok=True)
    write_episode(
        path,
        meta,
        tracks,
        lowdim,
        images,
        {c: steps for c in CAMERAS},
        {c: time_ns[steps] for c in CAMERAS},
        poses,
        image_format,
    )
    append_to_index(
        root,
        {
            "index": index,
            "directory": path.name,
            "task": task,
            "seed": seed,
            "variant": "train",
            "instruction": meta["instruction"],
            "score": 100.0,
            "num_steps": num_steps,
            "num_frames": len(steps),
        },
    )
    return path

"""The on-disk demonstration format (version 1): one directory per episode.

::

    <dataset>/
      episodes.jsonl                 one JSON line per episode (index, directory, task, seed,
                                     variant, instruction, score, num_steps, num_frames)
      episode_000000/
        meta.json                    format version, task instance (layout, colours, subtasks),
                                     rubric, result (score, milestones), joint names, rates,
                                     camera calibration (CameraInfo data + world_from_camera)
        events.json                  the four caption tracks {"task"|"subtask"|"action"|"segment":
                                     [{caption, start_step, end_step, start_ns, end_ns,
                                     subtask_index}, ...]}, end exclusive (see TRACKS)
        lowdim.safetensors           per control step, T rows (see LOWDIM_KEYS)
        frames_<camera>.safetensors  per camera frame, F rows: "step" int64 [F], "time_ns" int64
                                     [F], "world_from_camera" float64 [F, 4, 4] and, for
                                     image_format "raw", "rgb" uint8 [F, H, W, 3]
        frames_<camera>/000000.png   image_format "png": one RGB PNG per frame instead of "rgb"

Step ``t`` is the observation at ``time_ns[t]`` and the action applied from then until step
``t + 1`` (one control period). Frames are taken every ``frame_period_steps`` steps: frame ``f``
shows step ``step[f]``. Arrays are little-endian safetensors (memory-mappable, no pickle), so a
loader can read single fields of many episodes cheaply; converting an episode to LeRobot's format
is a per-field copy (lowdim rows -> parquet columns, frames -> videos, events -> annotations).
Quaternions are (w, x, y, z), positions metres in ``base_link``, gripper 0 open .. 1 closed.

The format is a contract between the recorder (``wallwm_sim``) and the readers (the training data
pipeline in ``wallwm_core.training.data``, the expert replay), so it lives here, below both.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from safetensors.numpy import load_file, save_file

FORMAT_VERSION = 1
INDEX_FILE = "episodes.jsonl"
IMAGE_FORMATS = ("png", "raw")

# name -> (dtype, trailing shape) of the per-step arrays in lowdim.safetensors.
LOWDIM_KEYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "time_ns": ("int64", ()),
    "joint_positions": ("float64", (8,)),  # all URDF joints, ALL_JOINT_NAMES order
    "joint_velocities": ("float64", (8,)),
    "tool_position": ("float64", (3,)),  # measured tool0 pose
    "tool_quaternion": ("float64", (4,)),
    "gripper": ("float64", ()),  # measured closure
    "action_joint_positions": ("float64", (6,)),  # commanded arm joints
    "action_gripper": ("float64", ()),
    "action_tool_position": ("float64", (3,)),  # tool0 pose of the commanded joints (FK)
    "action_tool_quaternion": ("float64", (4,)),
    "task_progress": ("float64", ()),
    "frame_index": ("int64", ()),  # frame shown at this step, -1 if none
}


# The caption tracks, coarse to fine:
# - ``task``: the episode's instruction, one caption for the whole episode;
# - ``subtask``: the events of the task decomposition (e.g. "pick up the red cube"); the
#   simulator's task decomposition sends exactly these captions as next-event instructions;
# - ``action``: the motion primitive within an event (reach, grasp, lift, carry, release, ...);
# - ``segment``: the finest level, one straight motion or gripper action, described with its
#   direction and distance (e.g. "lower the gripper 10 cm onto the red cube").
TRACKS: tuple[str, ...] = ("task", "subtask", "action", "segment")


@dataclasses.dataclass(frozen=True)
class CaptionSegment:
    """One caption over steps ``[start_step, end_step)``, times ``[start_ns, end_ns)``."""

    caption: str
    start_step: int
    end_step: int
    start_ns: int
    end_ns: int
    subtask_index: int = -1

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class EpisodeFormatError(ValueError):
    """An episode directory that is missing files or has inconsistent contents."""


def episode_dir_name(index: int) -> str:
    return f"episode_{index:06d}"


@dataclasses.dataclass
class Episode:
    """One episode read back from disk."""

    path: Path
    meta: dict[str, Any]
    events: dict[str, list[CaptionSegment]]
    lowdim: dict[str, np.ndarray]
    frames: dict[str, np.ndarray]  # camera -> uint8 [F, H, W, 3]
    frame_steps: dict[str, np.ndarray]  # camera -> int64 [F]
    frame_time_ns: dict[str, np.ndarray]
    world_from_camera: dict[str, np.ndarray]  # camera -> [F, 4, 4]

    @property
    def num_steps(self) -> int:
        return int(self.lowdim["time_ns"].shape[0])


def write_episode(
    path: Path,
    meta: dict[str, Any],
    events: dict[str, list[CaptionSegment]],
    lowdim: dict[str, np.ndarray],
    frames: dict[str, np.ndarray],
    frame_steps: dict[str, np.ndarray],
    frame_time_ns: dict[str, np.ndarray],
    world_from_camera: dict[str, np.ndarray],
    image_format: str = "png",
) -> None:
    """Write one episode directory (created; must not exist yet)."""
    if image_format not in IMAGE_FORMATS:
        raise EpisodeFormatError(
            f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}"
        )
    _check_lowdim(lowdim, path)
    path.mkdir(parents=True, exist_ok=False)
    meta = {**meta, "format_version": FORMAT_VERSION, "image_format": image_format}
    (path / "meta.json").write_text(json.dumps(meta, indent=1))
    (path / "events.json").write_text(
        json.dumps(
            {track: [s.to_json() for s in events.get(track, [])] for track in TRACKS}, indent=1
        )
    )
    save_file(
        {k: np.ascontiguousarray(v) for k, v in lowdim.items()}, str(path / "lowdim.safetensors")
    )
    for camera, images in frames.items():
        arrays = {
            "step": np.asarray(frame_steps[camera], dtype=np.int64),
            "time_ns": np.asarray(frame_time_ns[camera], dtype=np.int64),
            "world_from_camera": np.asarray(world_from_camera[camera], dtype=np.float64),
        }
        if image_format == "raw":
            arrays["rgb"] = np.ascontiguousarray(images, dtype=np.uint8)
        else:
            folder = path / f"frames_{camera}"
            folder.mkdir()
            for index, image in enumerate(images):
                Image.fromarray(image).save(folder / f"{index:06d}.png", compress_level=1)
        save_file(arrays, str(path / f"frames_{camera}.safetensors"))


def _check_lowdim(lowdim: dict[str, np.ndarray], path: Path) -> None:
    missing = set(LOWDIM_KEYS) - set(lowdim)
    if missing:
        raise EpisodeFormatError(f"{path}: lowdim lacks {sorted(missing)}")
    length = lowdim["time_ns"].shape[0]
    for key, (dtype, shape) in LOWDIM_KEYS.items():
        array = lowdim[key]
        if array.dtype != np.dtype(dtype) or array.shape != (length, *shape):
            raise EpisodeFormatError(
                f"{path}: lowdim[{key!r}] must be {dtype} {(length, *shape)}, "
                f"got {array.dtype} {array.shape}"
            )


def read_episode(path: str | Path, load_frames: bool = True) -> Episode:
    """Read an episode directory written by :func:`write_episode`."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        raw_events = json.loads((path / "events.json").read_text())
        lowdim = load_file(str(path / "lowdim.safetensors"))
    except FileNotFoundError as error:
        raise EpisodeFormatError(
            f"{path}: not an episode directory ({error.filename} missing)"
        ) from error
    if meta.get("format_version") != FORMAT_VERSION:
        raise EpisodeFormatError(
            f"{path}: format version {meta.get('format_version')} != {FORMAT_VERSION}"
        )
    _check_lowdim(lowdim, path)
    events = _caption_tracks(raw_events, path)
    frames, steps, times, poses = {}, {}, {}, {}
    for camera in meta["cameras"]:
        arrays = load_file(str(path / f"frames_{camera}.safetensors"))
        steps[camera], times[camera] = arrays["step"], arrays["time_ns"]
        poses[camera] = arrays["world_from_camera"]
        if not load_frames:
            continue
        if meta["image_format"] == "raw":
            frames[camera] = arrays["rgb"]
        else:
            files = [path / f"frames_{camera}" / f"{i:06d}.png" for i in range(len(steps[camera]))]
            frames[camera] = (
                np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
                if files
                else np.zeros((0, *meta["image_size"], 3), dtype=np.uint8)
            )
    return Episode(path, meta, events, lowdim, frames, steps, times, poses)


def _caption_tracks(raw: Any, path: Path) -> dict[str, list[CaptionSegment]]:
    try:
        return {track: [CaptionSegment(**s) for s in raw.get(track, [])] for track in TRACKS}
    except (AttributeError, TypeError) as error:
        raise EpisodeFormatError(f"{path}: malformed events.json ({error})") from error


def read_events(path: str | Path) -> dict[str, list[CaptionSegment]]:
    """The caption tracks of an episode directory, without reading its arrays."""
    path = Path(path)
    try:
        raw = json.loads((path / "events.json").read_text())
    except FileNotFoundError as error:
        raise EpisodeFormatError(f"{path}: no events.json") from error
    except (OSError, ValueError) as error:  # ValueError: not JSON, or not UTF-8
        raise EpisodeFormatError(f"{path}: unreadable events.json ({error})") from error
    return _caption_tracks(raw, path)


def list_episodes(root: str | Path) -> list[dict[str, Any]]:
    """The dataset index (one dict per episode, in recording order)."""
    index = Path(root) / INDEX_FILE
    if not index.exists():
        return []
    return [json.loads(line) for line in index.read_text().splitlines() if line.strip()]


def append_to_index(root: Path, entry: dict[str, Any]) -> None:
    with (root / INDEX_FILE).open("a") as handle:
        handle.write(json.dumps(entry) + "\n")

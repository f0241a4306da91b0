"""Reading and checking the recorded episodes of one or more dataset folders (no images).

Every episode is read once without its images (:func:`~wallwm_core.episode_format.read_episode`
with ``load_frames=False``) and checked: the frame files exist, all cameras share the frame
steps, the rig, image size and joints agree across the dataset. Images are decoded only by
:meth:`EpisodeData.images` (the codec stage and the latent cache), never by the batch path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wallwm_core.episode_format import (
    INDEX_FILE,
    CaptionSegment,
    EpisodeFormatError,
    list_episodes,
    read_episode,
)
from wallwm_core.model.sight_cone import CameraGeometry


class DatasetError(ValueError):
    """A dataset the pipeline cannot use (no episodes, a missing frame, inconsistent rigs...)."""


@dataclasses.dataclass(frozen=True)
class Rig:
    """What every episode of a dataset must share (it becomes the checkpoint's deployment)."""

    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    joint_names: tuple[str, ...]
    base_frame: str
    tool_frame: str


@dataclasses.dataclass
class EpisodeData:
    """One episode's arrays (no images). Times are integer nanoseconds from the episode start.

    ``lowdim`` holds the recorder's per-step rows (``time_ns`` ``[T]``, ``joint_positions``
    ``[T, J]``, ``action_tool_position`` ``[T, 3]``, ...); ``frame_steps`` / ``frame_time_ns``
    ``[F]`` are shared by all cameras; ``world_from_camera[c]`` is ``[F, 4, 4]``.
    """

    path: Path
    entry: dict[str, Any]
    meta: dict[str, Any]
    events: dict[str, list[CaptionSegment]]
    lowdim: dict[str, np.ndarray]
    frame_steps: np.ndarray
    frame_time_ns: np.ndarray
    world_from_camera: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def seed(self) -> int:
        return int(self.meta["seed"])

    @property
    def task(self) -> str:
        return str(self.meta.get("task", ""))

    @property
    def instruction(self) -> str:
        return str(self.meta.get("instruction", ""))

    @property
    def num_steps(self) -> int:
        return int(self.lowdim["time_ns"].shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.frame_steps.shape[0])

    @property
    def control_period_ns(self) -> int:
        return int(self.meta["control_period_ns"])

    @property
    def frame_period_ns(self) -> int:
        return int(self.meta["frame_period_steps"]) * self.control_period_ns

    @property
    def end_ns(self) -> int:
        """End of the recording: the last step's action runs one control period."""
        return int(self.lowdim["time_ns"][-1]) + self.control_period_ns

    def camera_geometry(self, camera: str, frame: int) -> CameraGeometry:
        """Calibration of ``camera`` at ``frame`` (the wrist camera moves with the arm)."""
        info = self.meta["camera_info"][camera]
        return CameraGeometry(
            K=np.asarray(info["k"], dtype=np.float64).reshape(3, 3),
            image_size=(int(info["height"]), int(info["width"])),
            world_from_camera=self.world_from_camera[camera][frame],
        )

    def images(self, frames: np.ndarray, cameras: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Decoded images ``camera -> uint8 [len(frames), H, W, 3]`` of the given frame indices."""
        out = {}
        for camera in cameras:
            if self.meta["image_format"] == "raw":
                from safetensors import safe_open

                with safe_open(str(self.path / f"frames_{camera}.safetensors"), "np") as f:
                    rgb = f.get_slice("rgb")
                    out[camera] = np.stack([rgb[int(i)] for i in frames])
            else:
                folder = self.path / f"frames_{camera}"
                out[camera] = np.stack(
                    [
                        np.asarray(Image.open(folder / f"{int(i):06d}.png").convert("RGB"))
                        for i in frames
                    ]
                )
        return out


def load_dataset(paths: tuple[str, ...]) -> tuple[list[EpisodeData], Rig]:
    """All episodes of ``paths`` in index order, checked; raises DatasetError naming the problem."""
    episodes: list[EpisodeData] = []
    for root in map(Path, paths):
        if not root.is_dir():
            raise DatasetError(f"dataset folder {root} does not exist")
        try:
            entries = list_episodes(root)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{root / INDEX_FILE}: not valid JSON lines: {error}") from error
        if not entries:
            raise DatasetError(
                f"{root}: no episodes ({INDEX_FILE} missing or empty); record some with "
                f"`python -m wallwm_sim.generate_demos --output {root}`"
            )
        for entry in entries:
            episodes.append(_read(root, entry))
    rig = _common_rig(episodes)
    return episodes, rig


def _read(root: Path, entry: dict[str, Any]) -> EpisodeData:
    if "directory" not in entry:
        raise DatasetError(f"{root / INDEX_FILE}: entry without 'directory': {entry}")
    path = root / entry["directory"]
    try:
        episode = read_episode(path, load_frames=False)
    except EpisodeFormatError as error:
        raise DatasetError(str(error)) from error
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: unreadable episode: {error}") from error
    meta = episode.meta
    for key in ("seed", "cameras", "image_size", "camera_info", "joint_names"):
        if key not in meta:
            raise DatasetError(f"{path}/meta.json lacks {key!r}")
    for key in ("control_period_ns", "frame_period_steps", "image_format"):
        if key not in meta:
            raise DatasetError(f"{path}/meta.json lacks {key!r}")
    cameras = list(meta["cameras"])
    if not cameras:
        raise DatasetError(f"{path}: the episode has no cameras; training needs images")
    steps = episode.frame_steps[cameras[0]]
    for camera in cameras:
        if not np.array_equal(episode.frame_steps[camera], steps):
            raise DatasetError(
                f"{path}: camera {camera!r} has frames at other steps than {cameras[0]!r}"
            )
        _check_frames(path, meta, camera, len(steps))
    if len(steps) == 0:
        raise DatasetError(f"{path}: the episode has no frames")
    num_steps = episode.num_steps
    if np.any(np.diff(steps) <= 0) or steps[0] < 0 or steps[-1] >= num_steps:
        raise DatasetError(f"{path}: frame steps must increase within [0, {num_steps})")
    return EpisodeData(
        path=path,
        entry=entry,
        meta=meta,
        events=episode.events,
        lowdim=episode.lowdim,
        frame_steps=np.asarray(steps, dtype=np.int64),
        frame_time_ns=np.asarray(episode.lowdim["time_ns"][steps], dtype=np.int64),
        world_from_camera=episode.world_from_camera,
    )


def _check_frames(path: Path, meta: dict[str, Any], camera: str, count: int) -> None:
    if meta["image_format"] == "raw":
        from safetensors import safe_open

        with safe_open(str(path / f"frames_{camera}.safetensors"), "np") as f:
            if "rgb" not in f.keys():
                raise DatasetError(f"{path}: frames_{camera}.safetensors has no 'rgb' images")
            shape = f.get_slice("rgb").get_shape()
        if shape[0] != count:
            raise DatasetError(
                f"{path}: camera {camera!r} has {shape[0]} images for {count} frames "
                "(missing frame)"
            )
        return
    folder = path / f"frames_{camera}"
    for index in range(count):
        if not (folder / f"{index:06d}.png").is_file():
            raise DatasetError(
                f"{path}: missing frame {index} of camera {camera!r} "
                f"({folder.name}/{index:06d}.png)"
            )


def _common_rig(episodes: list[EpisodeData]) -> Rig:
    first = episodes[0]
    rig = Rig(
        cameras=tuple(first.meta["cameras"]),
        image_size=tuple(int(n) for n in first.meta["image_size"]),
        joint_names=tuple(first.meta["joint_names"]),
        base_frame=str(first.meta.get("base_frame", "base_link")),
        tool_frame=str(first.meta.get("tool_frame", "tool0")),
    )
    for episode in episodes[1:]:
        other = Rig(
            cameras=tuple(episode.meta["cameras"]),
            image_size=tuple(int(n) for n in episode.meta["image_size"]),
            joint_names=tuple(episode.meta["joint_names"]),
            base_frame=str(episode.meta.get("base_frame", "base_link")),
            tool_frame=str(episode.meta.get("tool_frame", "tool0")),
        )
        if other != rig:
            raise DatasetError(
                f"{episode.name} was recorded with another rig than {first.name}: {other} vs "
                f"{rig}; one training run needs one camera set, image size and joint list"
            )
    return rig


def split_by_seed(
    episodes: list[EpisodeData], val_fraction: float
) -> tuple[list[int], list[int], list[int], list[int]]:
    """(train episode indices, val episode indices, train seeds, val seeds).

    Whole seeds are held out (every task and variant of a seed goes to the same side), so no
    validation layout is seen in training. The held-out seeds are those with the smallest
    SHA-256 of their decimal text: deterministic, independent of the episode order.
    """
    seeds = sorted({e.seed for e in episodes})
    num_val = 0
    if val_fraction > 0.0:
        if len(seeds) < 2:
            raise DatasetError(
                f"val_fraction={val_fraction} needs episodes of at least 2 seeds to hold one "
                f"out; the dataset has seed(s) {seeds} (set data.val_fraction: 0 to train on all)"
            )
        num_val = min(len(seeds) - 1, max(1, round(val_fraction * len(seeds))))
    ranked = sorted(seeds, key=lambda s: hashlib.sha256(str(s).encode()).hexdigest())
    val_seeds = sorted(ranked[:num_val])
    held = set(val_seeds)
    train = [i for i, e in enumerate(episodes) if e.seed not in held]
    val = [i for i, e in enumerate(episodes) if e.seed in held]
    return train, val, sorted(set(seeds) - held), val_seeds


def dataset_fingerprint(episodes: list[EpisodeData]) -> str:
    """SHA-256 over every episode's files: contents of the small ones (index entry, meta,
    events, lowdim, frame tables), size and modification time of the images."""
    digest = hashlib.sha256()
    for episode in episodes:
        digest.update(json.dumps(episode.entry, sort_keys=True).encode())
        for file in sorted(episode.path.rglob("*")):
            if not file.is_file():
                continue
            digest.update(str(file.relative_to(episode.path.parent)).encode())
            if file.suffix == ".png":
                stat = file.stat()
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            else:
                digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()

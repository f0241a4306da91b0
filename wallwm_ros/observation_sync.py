"""Synchronised multi-camera observations with the joint state interpolated at the image time.

Plain Python (no rclpy): the policy node's subscription callbacks feed decoded images and joint
states (stamps as integer nanoseconds), and its inference worker asks for observations. Every
public method takes one lock, so callbacks and the worker may call from different threads.

Rules (the numbers are :class:`SyncConfig` fields):

- **Frame set.** An observation needs one frame per configured camera, all within
  ``max_camera_skew_ns`` of each other. Of all such sets in the buffers, the one whose newest
  frame is latest is chosen; for that newest stamp ``t`` each camera contributes its newest frame
  at or before ``t``.
- **Observation stamp** = ``t``, the newest frame's stamp (the other frames are at most the skew
  bound older). It increases with the selection, so "newer than X" is well defined.
- **Joint state** is interpolated linearly at ``t`` between the two joint states around it. If
  ``t`` is after the newest joint state by at most ``max_joint_hold_ns`` that newest state is used
  (zero-order hold); further after, or before the oldest stored state, or between two states more
  than ``max_joint_gap_ns`` apart, there is no observation: it never extrapolates.
- **Staleness** (relative to the ``now_ns`` the caller passes): a camera whose newest frame, the
  chosen frame set, or the joint stream being older than its bound (``max_camera_age_ns``,
  ``max_joint_age_ns``) means no observation; the reason names the stream and its age. Stamps
  further in the future than those bounds are reported as a clock mismatch.
- **Bad stamps** never enter a buffer: a zero or negative stamp, and (when the caller passes
  the receive time ``now_ns``) a stamp more than ``max_future_stamp_ns`` ahead of it, are
  rejected and counted (``bad_stamp``, ``future_stamp``). A future-stamped message would
  otherwise stay the newest of its sorted buffer, hiding every real one, until the clock passes
  it.
- **Out of order and duplicates**: every stream keeps a bounded buffer sorted by stamp; a late
  message is inserted in its place (counted ``out_of_order``) unless it is older than everything
  in a full buffer (dropped, ``too_old``). A message whose stamp is already stored is ignored
  (the first one is kept; counted ``duplicate``).
- **Joint names**: positions are reordered into ``SyncConfig.joint_names``; extra joints are
  ignored; a message missing a configured joint, with NaN/inf in a configured joint, or with
  mismatched lengths or repeated names is dropped with its reason. One message must carry every
  configured joint (merge split publishers upstream).
- **No repeats**: :meth:`ObservationSynchroniser.try_observation` returns only observations newer
  than ``newer_than_ns``, by default the stamp of the last observation it returned.

Not-ready results carry a :class:`NotReadyCode` (for the node to tell waiting from faults) and a
human-readable reason; :meth:`ObservationSynchroniser.stats` gives counters for diagnostics.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import enum
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.config_loading import ConfigError
from wallwm_core.policy import Observation

MS = 1_000_000  # nanoseconds


@dataclasses.dataclass(frozen=True)
class SyncConfig:
    """What to synchronise and the bounds (integer nanoseconds); see the module doc."""

    cameras: tuple[str, ...]
    joint_names: tuple[str, ...]
    max_camera_skew_ns: int = 20 * MS
    max_camera_age_ns: int = 250 * MS
    max_joint_age_ns: int = 100 * MS
    max_joint_hold_ns: int = 10 * MS
    max_joint_gap_ns: int = 50 * MS
    max_future_stamp_ns: int = 100 * MS  # stamps further ahead of the receive time: rejected
    frame_buffer_size: int = 10  # frames kept per camera
    joint_buffer_size: int = 1000  # joint states kept (2 s at 500 Hz)
    require_calibration: bool = True  # every camera needs a CameraGeometry before observations

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        for name in ("cameras", "joint_names"):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"sync config '{name}' must not be empty")
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ConfigError(f"sync config '{name}' repeats {repeated}")
        for name in ("max_camera_skew_ns", "max_joint_hold_ns", "max_future_stamp_ns"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sync config '{name}' must be >= 0, got {getattr(self, name)}")
        for name in ("max_camera_age_ns", "max_joint_age_ns", "max_joint_gap_ns"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"sync config '{name}' must be > 0, got {getattr(self, name)}")
        for name in ("frame_buffer_size", "joint_buffer_size"):
            if getattr(self, name) < 2:
                raise ConfigError(f"sync config '{name}' must be >= 2, got {getattr(self, name)}")


class NotReadyCode(enum.StrEnum):
    """Why there is no observation. ``NO_NEW_FRAMES`` is normal waiting; the rest are faults or
    start-up conditions the node reports."""

    NO_FRAMES = "no_frames"
    STALE_CAMERA = "stale_camera"
    NO_JOINT_STATES = "no_joint_states"
    STALE_JOINTS = "stale_joints"
    NO_CALIBRATION = "no_calibration"
    CAMERA_SKEW = "camera_skew"
    NO_NEW_FRAMES = "no_new_frames"
    CALIBRATION_MISMATCH = "calibration_mismatch"
    BEFORE_JOINT_HISTORY = "before_joint_history"
    JOINT_LAG = "joint_lag"
    JOINT_GAP = "joint_gap"


@dataclasses.dataclass(frozen=True)
class NotReady:
    """No observation now: ``code`` is the first problem found, ``reason`` lists them all."""

    code: NotReadyCode
    reason: str


@dataclasses.dataclass(frozen=True)
class StreamStats:
    """Counters of one input stream (a camera or the joint states)."""

    received: int
    stored: int  # accepted into the buffer (out-of-order ones included)
    out_of_order: int
    dropped: Mapping[str, int]  # reason -> count
    newest_stamp_ns: int | None
    age_ns: int | None  # now_ns - newest_stamp_ns
    last_rejection: str | None


@dataclasses.dataclass(frozen=True)
class SyncStats:
    """A snapshot for diagnostics."""

    cameras: Mapping[str, StreamStats]
    joints: StreamStats
    observations: int
    not_ready: Mapping[str, int]  # NotReadyCode value -> count
    last_skew_ns: int | None  # newest minus oldest frame stamp of the last observation
    last_observation_stamp_ns: int | None
    last_not_ready: NotReady | None


class _Stream:
    """A bounded buffer of (stamp, value) sorted by stamp, with its counters."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.stamps: list[int] = []
        self.values: list[object] = []
        self.received = 0
        self.stored = 0
        self.out_of_order = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.last_rejection: str | None = None

    def reject(self, kind: str, reason: str) -> str:
        self.dropped[kind] += 1
        self.last_rejection = reason
        return reason

    def insert(self, stamp_ns: int, value: object) -> str | None:
        """Store in stamp order; the reason it was not stored, or None."""
        index = bisect.bisect_left(self.stamps, stamp_ns)
        if index < len(self.stamps) and self.stamps[index] == stamp_ns:
            self.dropped["duplicate"] += 1  # not a fault: last_rejection is left alone
            return f"duplicate stamp {_s(stamp_ns)} (the first message is kept)"
        if index == 0 and len(self.stamps) >= self.capacity:
            return self.reject(
                "too_old", f"stamp {_s(stamp_ns)} is older than the whole buffer (out of order)"
            )
        if index < len(self.stamps):
            self.out_of_order += 1
        self.stamps.insert(index, stamp_ns)
        self.values.insert(index, value)
        if len(self.stamps) > self.capacity:
            del self.stamps[0], self.values[0]
        self.stored += 1
        return None

    def newest(self) -> int | None:
        return self.stamps[-1] if self.stamps else None

    def clear(self) -> None:
        self.stamps.clear()
        self.values.clear()

    def snapshot(self, now_ns: int) -> StreamStats:
        newest = self.newest()
        return StreamStats(
            received=self.received,
            stored=self.stored,
            out_of_order=self.out_of_order,
            dropped=dict(self.dropped),
            newest_stamp_ns=newest,
            age_ns=None if newest is None else now_ns - newest,
            last_rejection=self.last_rejection,
        )


def _s(ns: int) -> str:
    """A time or duration in seconds for messages (ns are unreadable)."""
    return f"{ns / 1e9:.3f} s"


class ObservationSynchroniser:
    """Buffers camera frames and joint states; builds synchronised :class:`Observation` s."""

    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._cameras = {name: _Stream(config.frame_buffer_size) for name in config.cameras}
        self._joints = _Stream(config.joint_buffer_size)
        self._calibration: dict[str, CameraGeometry | None] = dict.fromkeys(config.cameras)
        self._cached_names: tuple[str, ...] | None = None
        self._cached_order: np.ndarray | None = None
        self._observations = 0
        self._not_ready: collections.Counter[str] = collections.Counter()
        self._last_not_ready: NotReady | None = None
        self._last_skew_ns: int | None = None
        self._last_stamp_ns: int | None = None

    # -- inputs ---------------------------------------------------------------------------

    def _camera(self, camera: str) -> _Stream:
        try:
            return self._cameras[camera]
        except KeyError:
            raise KeyError(
                f"unknown camera {camera!r}; configured: {self.config.cameras}"
            ) from None

    def _stamp_problem(self, stream: _Stream, stamp_ns: int, now_ns: int | None) -> str | None:
        """Reject (and count) a zero, negative or future stamp; None when the stamp is usable."""
        if stamp_ns < 0:
            return stream.reject("bad_stamp", f"negative stamp {stamp_ns} ns")
        if stamp_ns == 0:
            return stream.reject("bad_stamp", "zero stamp (stamp messages with their time)")
        if now_ns is not None and stamp_ns - now_ns > self.config.max_future_stamp_ns:
            return stream.reject(
                "future_stamp",
                f"stamp {_s(stamp_ns - now_ns)} ahead of the receive time (more than "
                f"{_s(self.config.max_future_stamp_ns)}): do the clocks agree (use_sim_time)?",
            )
        return None

    def add_image(
        self, camera: str, stamp_ns: int, image: np.ndarray, now_ns: int | None = None
    ) -> str | None:
        """Buffer a decoded ``[H, W, C]`` frame received at ``now_ns`` (None: no future check);
        returns why it was not stored, or None."""
        with self._lock:
            stream = self._camera(camera)
            stream.received += 1
            if (problem := self._stamp_problem(stream, stamp_ns, now_ns)) is not None:
                return problem
            if not isinstance(image, np.ndarray) or image.ndim != 3 or 0 in image.shape:
                shape = getattr(image, "shape", type(image).__name__)
                return stream.reject(
                    "bad_image", f"image must be a non-empty [H, W, C] array, got {shape}"
                )
            return stream.insert(int(stamp_ns), image)

    def note_rejected_image(self, camera: str, reason: str) -> None:
        """Count a frame the node could not decode (so diagnostics and not-ready reasons show it)."""
        with self._lock:
            stream = self._camera(camera)
            stream.received += 1
            stream.reject("undecodable", reason)

    def add_joint_state(
        self,
        stamp_ns: int,
        names: Sequence[str],
        positions: Sequence[float],
        now_ns: int | None = None,
    ) -> str | None:
        """Buffer a ``JointState`` (names, positions) received at ``now_ns`` (None: no future
        check); returns why it was not stored, or None."""
        with self._lock:
            stream = self._joints
            stream.received += 1
            if (problem := self._stamp_problem(stream, stamp_ns, now_ns)) is not None:
                return problem
            values = np.asarray(positions, dtype=np.float64)
            if values.ndim != 1 or len(names) != values.shape[0]:
                return stream.reject(
                    "malformed",
                    f"joint state has {len(names)} names but {values.shape[0] if values.ndim else 0} positions",
                )
            order = self._order_for(tuple(names))
            if isinstance(order, tuple):
                return stream.reject(*order)
            ordered = values[order]
            if not np.all(np.isfinite(ordered)):
                bad = [
                    n
                    for n, v in zip(self.config.joint_names, ordered, strict=True)
                    if not np.isfinite(v)
                ]
                return stream.reject(
                    "non_finite", f"joint state has NaN or infinite positions for {bad}"
                )
            ordered.setflags(write=False)
            return stream.insert(int(stamp_ns), ordered)

    def _order_for(self, names: tuple[str, ...]) -> np.ndarray | tuple[str, str]:
        """Indices into ``names`` giving the configured joint order, or (drop kind, reason)."""
        if names == self._cached_names:
            return self._cached_order
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            return "malformed", f"joint state repeats names {repeated}"
        position = {name: i for i, name in enumerate(names)}
        missing = [n for n in self.config.joint_names if n not in position]
        if missing:
            return "missing_joint", f"joint state lacks configured joints {missing}"
        order = np.array([position[n] for n in self.config.joint_names], dtype=np.intp)
        self._cached_names, self._cached_order = names, order
        return order

    def set_calibration(self, camera: str, geometry: CameraGeometry | None) -> None:
        """Set (or with None, forget) a camera's calibration, carried with its images."""
        with self._lock:
            self._camera(camera)
            self._calibration[camera] = geometry

    def reset(self) -> None:
        """Drop buffered frames and joint states (e.g. after a clock jump); keep calibrations."""
        with self._lock:
            for stream in (*self._cameras.values(), self._joints):
                stream.clear()
            self._last_stamp_ns = None

    # -- output ---------------------------------------------------------------------------

    def try_observation(
        self, now_ns: int, newer_than_ns: int | None = None
    ) -> Observation | NotReady:
        """The latest synchronised observation newer than ``newer_than_ns`` (default: the last
        one returned), or :class:`NotReady` saying why not."""
        with self._lock:
            result = self._build(
                now_ns, self._last_stamp_ns if newer_than_ns is None else newer_than_ns
            )
            if isinstance(result, NotReady):
                self._not_ready[result.code.value] += 1
                self._last_not_ready = result
            else:
                self._observations += 1
                self._last_stamp_ns = result.stamp_ns
            return result

    def _build(self, now_ns: int, newer_than_ns: int | None) -> Observation | NotReady:
        config = self.config
        problems: list[tuple[NotReadyCode, str]] = []
        for camera, stream in self._cameras.items():
            problem = self._stream_problem(
                f"camera {camera!r}",
                stream,
                now_ns,
                config.max_camera_age_ns,
                NotReadyCode.NO_FRAMES,
                NotReadyCode.STALE_CAMERA,
            )
            if problem:
                problems.append(problem)
        problem = self._stream_problem(
            "joint states",
            self._joints,
            now_ns,
            config.max_joint_age_ns,
            NotReadyCode.NO_JOINT_STATES,
            NotReadyCode.STALE_JOINTS,
        )
        if problem:
            problems.append(problem)
        if config.require_calibration:
            missing = [c for c, g in self._calibration.items() if g is None]
            if missing:
                problems.append(
                    (NotReadyCode.NO_CALIBRATION, f"no calibration yet for cameras {missing}")
                )
        if problems:
            return _not_ready(problems)

        chosen = self._latest_frame_set()
        if chosen is None or now_ns - chosen[0] > config.max_camera_age_ns:
            newest = ", ".join(f"{c!r} at {_s(s.stamps[-1])}" for c, s in self._cameras.items())
            when = "in the buffers" if chosen is None else f"for {_s(now_ns - chosen[0])}"
            return NotReady(
                NotReadyCode.CAMERA_SKEW,
                f"no frame set within {_s(config.max_camera_skew_ns)} of each other {when} "
                f"(newest frames: {newest})",
            )
        stamp_ns, indices = chosen
        if newer_than_ns is not None and stamp_ns <= newer_than_ns:
            return NotReady(
                NotReadyCode.NO_NEW_FRAMES,
                f"no frame set newer than {_s(newer_than_ns)} yet (latest is {_s(stamp_ns)})",
            )
        images = {c: self._cameras[c].values[i] for c, i in indices.items()}
        cameras = {c: g for c, g in self._calibration.items() if g is not None}
        mismatched = [
            f"camera {c!r}: image {images[c].shape[0]}x{images[c].shape[1]} but calibration "
            f"{g.image_size[0]}x{g.image_size[1]} (height x width)"
            for c, g in cameras.items()
            if tuple(images[c].shape[:2]) != tuple(g.image_size)
        ]
        if mismatched:
            return NotReady(NotReadyCode.CALIBRATION_MISMATCH, "; ".join(mismatched))

        joints = self._joints_at(stamp_ns)
        if isinstance(joints, NotReady):
            return joints
        frame_stamps = [self._cameras[c].stamps[i] for c, i in indices.items()]
        self._last_skew_ns = max(frame_stamps) - min(frame_stamps)
        return Observation(
            stamp_ns=stamp_ns,
            images=images,
            joint_positions=joints,
            joint_names=config.joint_names,
            cameras=cameras,
        )

    @staticmethod
    def _stream_problem(
        label: str,
        stream: _Stream,
        now_ns: int,
        max_age_ns: int,
        empty_code: NotReadyCode,
        stale_code: NotReadyCode,
    ) -> tuple[NotReadyCode, str] | None:
        newest = stream.newest()
        rejected = f" (last rejected: {stream.last_rejection})" if stream.last_rejection else ""
        if newest is None:
            return empty_code, f"{label}: nothing received yet{rejected}"
        age = now_ns - newest
        if age > max_age_ns:
            return (
                stale_code,
                f"{label} stale: newest is {_s(age)} old (limit {_s(max_age_ns)}){rejected}",
            )
        if age < -max_age_ns:
            return stale_code, f"{label}: newest stamp is {_s(-age)} ahead of now (clock mismatch?)"
        return None

    def _latest_frame_set(self) -> tuple[int, dict[str, int]] | None:
        """(newest stamp, camera -> buffer index) of the consistent set with the latest newest
        frame, or None. Candidate newest stamps are tried from the latest down; for each, every
        camera takes its newest frame at or before it."""
        skew = self.config.max_camera_skew_ns
        candidates = sorted(
            {s for stream in self._cameras.values() for s in stream.stamps}, reverse=True
        )
        for newest in candidates:
            indices: dict[str, int] = {}
            for camera, stream in self._cameras.items():
                index = bisect.bisect_right(stream.stamps, newest) - 1
                if index < 0 or newest - stream.stamps[index] > skew:
                    break
                indices[camera] = index
            else:
                return newest, indices
        return None

    def _joints_at(self, stamp_ns: int) -> np.ndarray | NotReady:
        """Joint positions at ``stamp_ns``, interpolated linearly, never extrapolated."""
        stamps, values = self._joints.stamps, self._joints.values
        index = bisect.bisect_left(stamps, stamp_ns)
        if index < len(stamps) and stamps[index] == stamp_ns:
            return values[index].copy()
        if index == 0:
            return NotReady(
                NotReadyCode.BEFORE_JOINT_HISTORY,
                f"observation at {_s(stamp_ns)} is before the oldest stored joint state "
                f"({_s(stamps[0])}, {_s(stamps[0] - stamp_ns)} later)",
            )
        if index == len(stamps):
            lag = stamp_ns - stamps[-1]
            if lag > self.config.max_joint_hold_ns:
                return NotReady(
                    NotReadyCode.JOINT_LAG,
                    f"newest joint state is {_s(lag)} before the observation "
                    f"(limit {_s(self.config.max_joint_hold_ns)}; no extrapolation)",
                )
            return values[-1].copy()
        before, after = stamps[index - 1], stamps[index]
        if after - before > self.config.max_joint_gap_ns:
            return NotReady(
                NotReadyCode.JOINT_GAP,
                f"joint states around the observation are {_s(after - before)} apart "
                f"(limit {_s(self.config.max_joint_gap_ns)})",
            )
        weight = (stamp_ns - before) / (after - before)
        return (1.0 - weight) * values[index - 1] + weight * values[index]

    def stats(self, now_ns: int) -> SyncStats:
        """Counters and ages (relative to ``now_ns``) for diagnostics."""
        with self._lock:
            return SyncStats(
                cameras={c: s.snapshot(now_ns) for c, s in self._cameras.items()},
                joints=self._joints.snapshot(now_ns),
                observations=self._observations,
                not_ready=dict(self._not_ready),
                last_skew_ns=self._last_skew_ns,
                last_observation_stamp_ns=self._last_stamp_ns,
                last_not_ready=self._last_not_ready,
            )


def _not_ready(problems: list[tuple[NotReadyCode, str]]) -> NotReady:
    return NotReady(problems[0][0], "; ".join(reason for _, reason in problems))

"""Cutting episodes into training windows, with the recording rates converted to the model's.

Two clocks meet here. The recording has its own control period (the simulator: 20 ms, 50 Hz)
and camera period (``frame_period_steps`` control steps, e.g. 100 ms); the model has
``action.control_hz`` (tiny/small: 20 Hz) and a latent frame every ``steps_per_latent_frame``
action steps (K_p = 4 -> 200 ms). Everything is converted through integer nanosecond times:

- **Observation** (window start ``t0``): a recorded camera frame, as at deployment (the policy
  sees the latest images and the joints at their time). Window starts are the first camera frame
  at or after ``event start + i * window_stride_steps`` model steps, inside the event.
- **Action tokens**: model step ``k`` is due at ``t0 + k / control_hz`` (the ActionChunk
  convention). The recorded command (``action_tool_*``, ``action_gripper``, one per control
  step) is interpolated at that time: linearly for position and gripper, by slerp for the
  rotation; past the last recorded step the last command holds. Tokens are laid out by
  :func:`~wallwm_core.action_tokens.poses_to_tokens`, the inverse of what inference decodes.
- **Latent frames**: ``[history (context - 1), anchor = the observation, future 1..Ff]``. Future
  frame ``j`` shows ``t0 + j * K_p / control_hz`` (the end of its K_p action steps); history
  frame ``k`` shows ``t0 - k * K_p / control_hz``; each takes the recorded frame nearest that time
  within half a latent period (the rule of ``WallWMPolicy._context``), else it is masked.
  ``Ff = ceil(T / K_p)`` for ``T`` action steps, as the event-mode sampler builds windows.
- **Event time**: ``event_length_s`` is the remaining time of the event from ``t0`` (event end
  minus ``t0``). Event windows have ``T = round(remaining * control_hz)`` steps (the event-length
  rule of inference) capped at ``limits.max_action_steps``: beyond the cap the window holds the
  first ``max_action_steps`` steps of a longer event, exactly the chunk inference executes before
  it re-plans from a later observation (counted as ``horizon_limited``).
- **Oversize events** (longer than ``limits.max_event_s``, the longest event the model is built
  for): ``split`` into the fewest equal pieces that fit, each its own event with the same text,
  or ``skip``-ped. Both are counted; nothing is truncated silently.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.action_tokens import TOKEN_DIM_PER_ARM, poses_to_tokens
from wallwm_core.inference.event_mode import steps_for_duration
from wallwm_core.model.config import ModelConfig
from wallwm_core.training.data.config import DataConfig
from wallwm_core.training.data.episodes import DatasetError, EpisodeData


@dataclasses.dataclass(frozen=True)
class Timing:
    """The model's clocks and limits that shape a window."""

    control_hz: float
    steps_per_latent_frame: int
    max_action_steps: int
    max_event_s: float
    context_frames: int
    window_steps: int  # T of a batch: max_action_steps (event) or fixed_window_steps (fixed)

    @classmethod
    def of(cls, model: ModelConfig, data: DataConfig) -> Timing:
        limits = model.limits
        steps = limits.max_action_steps
        if data.window_mode == "fixed":
            if data.fixed_window_steps > limits.max_action_steps:
                raise DatasetError(
                    f"data.fixed_window_steps={data.fixed_window_steps} exceeds the model's "
                    f"limits.max_action_steps={limits.max_action_steps}"
                )
            steps = data.fixed_window_steps
        return cls(
            control_hz=model.action.control_hz,
            steps_per_latent_frame=model.action.steps_per_latent_frame,
            max_action_steps=limits.max_action_steps,
            max_event_s=limits.max_event_s,
            context_frames=model.objective.context_latent_frames,
            window_steps=steps,
        )

    @property
    def step_ns(self) -> float:
        return NS_PER_S / self.control_hz

    @property
    def latent_period_ns(self) -> int:
        return round(NS_PER_S * self.steps_per_latent_frame / self.control_hz)

    @property
    def num_frames(self) -> int:
        """Latent frames of a batch: context + ceil(window_steps / K_p)."""
        return self.context_frames + math.ceil(self.window_steps / self.steps_per_latent_frame)


@dataclasses.dataclass(frozen=True)
class Event:
    """One span of the instruction track (or a piece of a split one), times in ns."""

    text: str
    start_ns: int
    end_ns: int
    key: int  # index of the event within its episode (pieces of a split event share it)


@dataclasses.dataclass
class WindowTable:
    """Windows of some episodes, column-wise (``N`` windows, ``F`` frames, ``T`` steps).

    ``frames`` ``[N, F]`` episode-local frame indices (-1 = padding or missing);
    ``tokens`` ``[N, T, D]`` raw (unnormalised) action tokens, zero on padding;
    ``num_steps`` ``[N]`` real steps; ``state`` ``[N, J]`` raw joint positions at ``t0``;
    ``event_length_s`` ``[N]``; ``episode`` ``[N]`` index into the episode list;
    ``start_frame`` ``[N]``; ``event_key`` ``[N]``; ``texts`` the instruction of each window.
    """

    frames: np.ndarray
    tokens: np.ndarray
    num_steps: np.ndarray
    state: np.ndarray
    event_length_s: np.ndarray
    episode: np.ndarray
    start_frame: np.ndarray
    event_key: np.ndarray
    event_bounds_ns: np.ndarray  # [N, 2]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclasses.dataclass
class WindowCounts:
    """What windowing did, for the report."""

    events: int = 0
    windows: int = 0
    oversize_split: int = 0  # events split into pieces
    oversize_pieces: int = 0  # pieces they became
    oversize_skipped: int = 0  # events skipped
    horizon_limited: int = 0  # windows whose event runs past limits.max_action_steps
    missing_future_frames: int = 0  # future frames past the recording (masked)

    def add(self, other: WindowCounts) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def episode_events(
    episode: EpisodeData, data: DataConfig, timing: Timing, counts: WindowCounts
) -> list[Event]:
    """The events windows are cut from, after the oversize rule."""
    if data.window_mode == "fixed" and data.fixed_instruction == "task":
        spans = [(episode.instruction, int(episode.lowdim["time_ns"][0]), episode.end_ns)]
    else:
        spans = [(s.caption, s.start_ns, s.end_ns) for s in episode.events[data.instruction_track]]
    limit_ns = round(timing.max_event_s * NS_PER_S)
    events = []
    for key, (text, start, end) in enumerate(spans):
        if end <= start or not text.strip():
            continue
        counts.events += 1
        duration = end - start
        if duration <= limit_ns:
            events.append(Event(text, start, end, key))
            continue
        if data.oversize_events == "skip":
            counts.oversize_skipped += 1
            continue
        pieces = math.ceil(duration / limit_ns)
        counts.oversize_split += 1
        counts.oversize_pieces += pieces
        bounds = [start + round(i * duration / pieces) for i in range(pieces + 1)]
        events += [Event(text, a, b, key) for a, b in itertools.pairwise(bounds)]
    return events


def nearest_frames(frame_time_ns: np.ndarray, targets_ns: np.ndarray, tolerance_ns: int):
    """Index of the recorded frame nearest each target time, -1 if none within tolerance."""
    right = np.searchsorted(frame_time_ns, targets_ns).clip(0, len(frame_time_ns) - 1)
    left = (right - 1).clip(0)
    pick = np.where(
        np.abs(frame_time_ns[left] - targets_ns) <= np.abs(frame_time_ns[right] - targets_ns),
        left,
        right,
    )
    ok = np.abs(frame_time_ns[pick] - targets_ns) <= tolerance_ns
    return np.where(ok, pick, -1)


def window_starts(episode: EpisodeData, event: Event, stride_ns: float) -> list[int]:
    """Frames where windows of ``event`` start: the first frame at or after each nominal start
    ``event.start + i * stride`` that lies inside the event (duplicates dropped)."""
    times = episode.frame_time_ns
    count = math.ceil((event.end_ns - event.start_ns) / stride_ns)
    nominal = event.start_ns + np.round(np.arange(count) * stride_ns).astype(np.int64)
    frames = np.searchsorted(times, nominal, side="left")
    frames = frames[frames < len(times)]
    frames = frames[times[frames] < event.end_ns]
    return sorted(set(frames.tolist()))


def command_tokens(episode: EpisodeData, query_ns: np.ndarray) -> np.ndarray:
    """Recorded commands interpolated at ``query_ns`` ``[Q]`` -> single-arm tokens ``[Q, 10]``.

    Position and gripper: linear in time; rotation: slerp; clamped to the recorded span.
    """
    lowdim = episode.lowdim
    times = lowdim["time_ns"].astype(np.float64)
    query = np.clip(query_ns.astype(np.float64), times[0], times[-1])
    positions = np.stack(
        [np.interp(query, times, lowdim["action_tool_position"][:, i]) for i in range(3)], -1
    )
    gripper = np.clip(np.interp(query, times, lowdim["action_gripper"]), 0.0, 1.0)
    wxyz = lowdim["action_tool_quaternion"]
    if len(times) > 1:
        rotations = Rotation.from_quat(wxyz, scalar_first=True)
        quaternions = Slerp(times, rotations)(query).as_quat(scalar_first=True)
    else:
        quaternions = np.repeat(wxyz[:1], len(query), axis=0)
    return poses_to_tokens(positions[:, None], quaternions[:, None], gripper[:, None])


def cut_episode(
    episode: EpisodeData, episode_index: int, data: DataConfig, timing: Timing
) -> tuple[WindowTable, WindowCounts]:
    """All windows of one episode (see the module docstring for every rule)."""
    counts = WindowCounts()
    events = episode_events(episode, data, timing, counts)
    times = episode.frame_time_ns
    period = timing.latent_period_ns
    tolerance = period // 2
    steps_per_frame = timing.steps_per_latent_frame
    history = timing.context_frames - 1
    rows: list[tuple[Event, int, int, float]] = []  # event, start frame, steps, remaining s
    for event in events:
        for frame in window_starts(episode, event, data.window_stride_steps * timing.step_ns):
            t0 = int(times[frame])
            remaining_s = (event.end_ns - t0) / NS_PER_S
            if data.window_mode == "event":
                needed = steps_for_duration(remaining_s, timing.control_hz)
                counts.horizon_limited += needed > timing.window_steps
            else:
                needed = steps_for_duration((episode.end_ns - t0) / NS_PER_S, timing.control_hz)
            rows.append((event, frame, min(needed, timing.window_steps), remaining_s))
    num = len(rows)
    counts.windows = num
    frames = np.full((num, timing.num_frames), -1, dtype=np.int64)
    tokens = np.zeros((num, timing.window_steps, TOKEN_DIM_PER_ARM))
    query, owners = [], []
    for row, (_, frame, steps, _) in enumerate(rows):
        t0 = int(times[frame])
        if history:
            past = t0 - period * np.arange(history, 0, -1)
            found = nearest_frames(times, past, tolerance)
            frames[row, :history] = np.where(times[found.clip(0)] < t0, found, -1)
        frames[row, history] = frame
        future = math.ceil(steps / steps_per_frame)
        found = nearest_frames(times, t0 + period * np.arange(1, future + 1), tolerance)
        counts.missing_future_frames += int((found < 0).sum())
        frames[row, history + 1 : history + 1 + future] = found
        query.append(t0 + np.round(np.arange(steps) * timing.step_ns).astype(np.int64))
        owners.append(np.full(steps, row))
    if num:
        flat = command_tokens(episode, np.concatenate(query))
        owner = np.concatenate(owners)
        position = np.concatenate([np.arange(len(q)) for q in query])
        tokens[owner, position] = flat
    start_steps = episode.frame_steps[[frame for _, frame, _, _ in rows]] if num else []
    return (
        WindowTable(
            frames=frames,
            tokens=tokens,
            num_steps=np.array([r[2] for r in rows], dtype=np.int64),
            state=np.asarray(episode.lowdim["joint_positions"][start_steps], dtype=np.float64)
            if num
            else np.zeros((0, episode.lowdim["joint_positions"].shape[1])),
            event_length_s=np.array([r[3] for r in rows], dtype=np.float64),
            episode=np.full(num, episode_index, dtype=np.int64),
            start_frame=np.array([r[1] for r in rows], dtype=np.int64),
            event_key=np.array([r[0].key for r in rows], dtype=np.int64),
            event_bounds_ns=np.array(
                [(r[0].start_ns, r[0].end_ns) for r in rows], dtype=np.int64
            ).reshape(num, 2),
            texts=[r[0].text for r in rows],
        ),
        counts,
    )


def concatenate(tables: list[WindowTable], timing: Timing, state_dim: int) -> WindowTable:
    """One table of several episodes' windows (an empty one if there are none)."""
    if not tables:
        return WindowTable(
            frames=np.zeros((0, timing.num_frames), np.int64),
            tokens=np.zeros((0, timing.window_steps, TOKEN_DIM_PER_ARM)),
            num_steps=np.zeros(0, np.int64),
            state=np.zeros((0, state_dim)),
            event_length_s=np.zeros(0),
            episode=np.zeros(0, np.int64),
            start_frame=np.zeros(0, np.int64),
            event_key=np.zeros(0, np.int64),
            event_bounds_ns=np.zeros((0, 2), np.int64),
            texts=[],
        )
    columns = {}
    for field in dataclasses.fields(WindowTable):
        if field.name == "texts":
            columns["texts"] = [t for table in tables for t in table.texts]
        else:
            columns[field.name] = np.concatenate([getattr(t, field.name) for t in tables])
    return WindowTable(**columns)

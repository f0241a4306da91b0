"""A policy that replays scripted end-effector waypoints: for tests and reference runs only.

It implements :class:`wallwm_core.policy.EventPolicy` exactly like the WALL-WM model, so the
ROS path (policy node -> ActionChunk -> controller) can be exercised and compared against a
known-good motion. It never looks at images. The product's default policy is the model.

Chunks are time-indexed: the chunk for an observation at time ``t`` starts at the scripted step
due at ``t`` (measured from the event's first observation), so late observations skip ahead
instead of replaying the past.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from wallwm_core.action_chunk import NS_PER_S, ActionChunk
from wallwm_core.config_loading import ConfigError, load_config
from wallwm_core.policy import (
    Observation,
    PolicyCapabilities,
    PolicyStep,
    UnknownInstructionError,
)


@dataclasses.dataclass(frozen=True)
class ArmTarget:
    """One arm's target at a waypoint: position (m), orientation (w, x, y, z), gripper 0..1."""

    position: tuple[float, ...]
    quaternion_wxyz: tuple[float, ...]
    gripper: float

    def __post_init__(self) -> None:
        if len(self.position) != 3 or len(self.quaternion_wxyz) != 4:
            raise ConfigError(
                f"a target needs 3 position and 4 quaternion values, got {self.position=} "
                f"{self.quaternion_wxyz=}"
            )
        values = (*self.position, *self.quaternion_wxyz, self.gripper)
        if not all(np.isfinite(values)):
            raise ConfigError(f"non-finite value in target {values}")
        if abs(np.linalg.norm(self.quaternion_wxyz) - 1.0) > 1e-3:
            raise ConfigError(f"quaternion must be unit length: {self.quaternion_wxyz=}")
        if not 0.0 <= self.gripper <= 1.0:
            raise ConfigError(f"gripper must lie in [0, 1]: {self.gripper=}")


@dataclasses.dataclass(frozen=True)
class Waypoint:
    """Targets for every arm (by arm name) at ``time`` seconds after the event starts."""

    time: float
    targets: dict[str, ArmTarget]


@dataclasses.dataclass(frozen=True)
class ScriptedEvent:
    instruction: str
    waypoints: tuple[Waypoint, ...]

    def __post_init__(self) -> None:
        if len(self.waypoints) < 2:
            raise ConfigError(f"event {self.instruction!r} needs at least two waypoints")
        times = [w.time for w in self.waypoints]
        if times[0] != 0.0 or any(b <= a for a, b in itertools.pairwise(times)):
            raise ConfigError(
                f"event {self.instruction!r}: waypoint times must start at 0 and increase, "
                f"got {times}"
            )


@dataclasses.dataclass(frozen=True)
class ArmSpec:
    name: str
    ee_frame: str


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """The scripted events of a replay policy (see wallwm_bringup/config/demo_replay.yaml)."""

    frame_id: str
    step_period: float  # seconds between steps
    chunk_steps: int  # steps per chunk
    arms: tuple[ArmSpec, ...]
    events: tuple[ScriptedEvent, ...]

    def __post_init__(self) -> None:
        if not self.step_period > 0.0:
            raise ConfigError(f"step_period must be positive: {self.step_period=}")
        if self.chunk_steps < 1:
            raise ConfigError(f"chunk_steps must be at least 1: {self.chunk_steps=}")
        if not self.arms:
            raise ConfigError("at least one arm is required")
        names = [arm.name for arm in self.arms]
        for event in self.events:
            for waypoint in event.waypoints:
                if sorted(waypoint.targets) != sorted(names):
                    raise ConfigError(
                        f"event {event.instruction!r}: waypoint at t={waypoint.time} has targets "
                        f"for {sorted(waypoint.targets)}, expected arms {sorted(names)}"
                    )
        instructions = [event.instruction for event in self.events]
        if len(set(instructions)) != len(instructions):
            raise ConfigError(f"duplicate event instructions in {instructions}")


@dataclasses.dataclass(frozen=True)
class _Trajectory:
    positions: np.ndarray  # [T, A, 3]
    quaternions: np.ndarray  # [T, A, 4] (w, x, y, z)
    gripper: np.ndarray  # [T, A]


def densify(event: ScriptedEvent, arm_names: tuple[str, ...], step_period: float) -> _Trajectory:
    """Sample the waypoints every ``step_period``: positions and gripper linearly, rotation slerp."""
    times = np.array([w.time for w in event.waypoints])
    num_steps = int(np.floor(times[-1] / step_period + 1e-9)) + 1
    step_times = np.minimum(np.arange(num_steps) * step_period, times[-1])
    if step_times[-1] < times[-1]:  # always end exactly on the last waypoint
        step_times = np.append(step_times, times[-1])
    positions, quaternions, gripper = [], [], []
    for arm in arm_names:
        targets = [w.targets[arm] for w in event.waypoints]
        xyz = np.array([t.position for t in targets])
        positions.append(np.stack([np.interp(step_times, times, xyz[:, k]) for k in range(3)], -1))
        gripper.append(np.interp(step_times, times, [t.gripper for t in targets]))
        rotations = Rotation.from_quat([t.quaternion_wxyz for t in targets], scalar_first=True)
        quaternions.append(Slerp(times, rotations)(step_times).as_quat(scalar_first=True))
    return _Trajectory(
        positions=np.stack(positions, axis=1),
        quaternions=np.stack(quaternions, axis=1),
        gripper=np.stack(gripper, axis=1),
    )


class ReplayPolicy:
    """Replays scripted end-effector trajectories, one per known instruction."""

    # It proposes no events and reads no sensors (chunks are stamped with the clock).
    capabilities = PolicyCapabilities()

    def __init__(self, config: ReplayConfig) -> None:
        self._config = config
        self._arm_names = tuple(arm.name for arm in config.arms)
        self._ee_frames = tuple(arm.ee_frame for arm in config.arms)
        self._step_period_ns = round(config.step_period * NS_PER_S)
        self._trajectories: Mapping[str, _Trajectory] = {
            event.instruction: densify(event, self._arm_names, config.step_period)
            for event in config.events
        }
        self._current: _Trajectory | None = None
        self._instruction = ""
        self._event_id = 0
        self._event_start_ns: int | None = None
        self._chunk_index = 0

    @classmethod
    def from_yaml(cls, path: str | Path) -> ReplayPolicy:
        return cls(load_config(ReplayConfig, path))

    @property
    def instructions(self) -> tuple[str, ...]:
        return tuple(self._trajectories)

    def start_event(self, instruction: str, event_id: int, max_duration_ns: int) -> None:
        if instruction not in self._trajectories:
            raise UnknownInstructionError(
                f"the replay policy has no script for {instruction!r}; "
                f"known: {sorted(self._trajectories)}"
            )
        self._current = self._trajectories[instruction]
        self._instruction = instruction
        self._event_id = event_id
        self._event_start_ns = None
        self._chunk_index = 0

    def next_chunk(self, observation: Observation) -> PolicyStep:
        if self._current is None:
            raise RuntimeError("next_chunk() called before start_event()")
        if self._event_start_ns is None:
            self._event_start_ns = observation.stamp_ns
        total = self._current.positions.shape[0]
        elapsed_steps = (observation.stamp_ns - self._event_start_ns) // self._step_period_ns
        first = int(min(max(elapsed_steps, 0), total - 1))
        last = min(first + self._config.chunk_steps, total)
        chunk = ActionChunk(
            stamp_ns=observation.stamp_ns,
            step_period_ns=self._step_period_ns,
            frame_id=self._config.frame_id,
            arm_names=self._arm_names,
            ee_frames=self._ee_frames,
            positions=self._current.positions[first:last],
            quaternions=self._current.quaternions[first:last],
            gripper=self._current.gripper[first:last],
            event_id=self._event_id,
            event_instruction=self._instruction,
            chunk_index=self._chunk_index,
            ends_event=last == total,
        )
        self._chunk_index += 1
        return PolicyStep(
            chunk=chunk,
            progress=first / max(total - 1, 1),
            predicted_remaining_ns=(total - first) * self._step_period_ns,
        )

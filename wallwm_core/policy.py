"""The interface every event policy implements, and what it consumes and returns.

A policy serves one event at a time: ``start_event`` with the next-event instruction, then
``next_chunk`` for each fresh observation until a chunk with ``ends_event`` set comes back.
The WALL-WM model and the replay policy implement the same interface, so the ROS nodes run
either unchanged. What a policy offers beyond that (proposing events, the sensors it was trained
on) it declares in :class:`PolicyCapabilities`; callers read that, they never probe the policy.

Numpy only: robot-side code (the ROS nodes, the controller, the simulator) imports these types
without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np

from wallwm_core.action_chunk import ActionChunk
from wallwm_core.camera_geometry import CameraGeometry
from wallwm_core.planner import EventProposer


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the robot saw and felt at ``stamp_ns``.

    images: camera name -> ``[H, W, C]`` array (uint8 colour, or one channel for depth/mono);
    cameras: camera name -> calibration (intrinsics for that image's size + extrinsics in the
    arm's base frame), for the sight-cone mask; joint_positions: ``[J]`` radians/metres in the
    order of ``joint_names`` (gripper joints included). Any may be empty for policies that do not
    read them.
    """

    stamp_ns: int
    images: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    joint_positions: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    joint_names: tuple[str, ...] = ()
    cameras: Mapping[str, CameraGeometry] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PolicyStep:
    """One chunk plus the policy's estimate of where the event stands."""

    chunk: ActionChunk
    progress: float  # 0..1 through the event, after this chunk starts
    predicted_remaining_ns: int  # predicted time until the event ends, from chunk.stamp_ns


class UnknownInstructionError(ValueError):
    """The policy cannot serve this instruction."""


@dataclasses.dataclass(frozen=True)
class SensorRequirements:
    """The cameras and joints (in order) a policy was trained on; the sensors must match."""

    cameras: tuple[str, ...]
    joint_names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PolicyCapabilities:
    """What a policy offers beyond serving events; the defaults are a policy with none.

    proposer: proposes the next event of a task given without events (None: tasks need their
    events); sensors: the inputs it was trained on (None: it reads whatever it gets); untrained:
    its actions are meaningless (tests, demos), worth a warning; warm_up: one throw-away
    inference that a server calls once before it accepts goals, so the first real chunk is not
    slowed by first-call set-up (None: nothing to warm up).
    """

    proposer: EventProposer | None = None
    sensors: SensorRequirements | None = None
    untrained: bool = False
    warm_up: Callable[[], None] | None = None


class EventPolicy(Protocol):
    """A policy that produces action chunks for one semantic event at a time."""

    @property
    def capabilities(self) -> PolicyCapabilities:
        """What the policy offers beyond start_event/next_chunk."""

    def start_event(self, instruction: str, event_id: int, max_duration_ns: int) -> None:
        """Begin a new event; raises UnknownInstructionError if it cannot be served."""

    def next_chunk(self, observation: Observation) -> PolicyStep:
        """The next chunk of the current event, conditioned on ``observation``."""

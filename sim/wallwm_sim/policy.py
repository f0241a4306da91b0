"""The policy interface the rollout, recorder and eval harness drive.

A policy is any object with ``cameras`` (views it needs rendered; empty for none),
``reset(instance)`` and ``__call__(observation) -> action``. It is called once per control
period. An action is either joint position targets (:class:`JointAction`) or a tool pose
(:class:`ToolAction`, converted with IK, like the WALL-WM action chunks), plus a normalised
gripper command. Returning ``None`` keeps the current command: that is how an external
commander (e.g. the ROS policy + controller nodes through the sim node) drives the simulation
while the harness only scores it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from wallwm_sim.captions import EventLabels
from wallwm_sim.state import SceneState
from wallwm_sim.tasks import TaskInstance


@dataclasses.dataclass(frozen=True)
class Observation:
    """What a policy sees at one control step.

    ``state`` is the privileged simulator state (for scripted experts and debugging; learned
    policies must not use it). Images are ``[H, W, 3]`` uint8 for the cameras the policy asked for.
    """

    time_ns: int
    instruction: str
    joint_positions: np.ndarray  # [6] arm joints (rad)
    joint_velocities: np.ndarray  # [6]
    gripper: float  # measured closure, 0 open .. 1 closed
    tool_position: np.ndarray  # [3] base_link
    tool_quaternion: np.ndarray  # [4] (w, x, y, z)
    joint_command: np.ndarray  # [6] the command currently in force
    images: Mapping[str, np.ndarray]
    state: SceneState


@dataclasses.dataclass(frozen=True)
class JointAction:
    """Arm joint position targets ``[6]`` (rad) and gripper command (0 open .. 1 closed)."""

    joint_positions: np.ndarray
    gripper: float
    labels: EventLabels | None = None
    done: bool = False  # the policy has finished the task


@dataclasses.dataclass(frozen=True)
class ToolAction:
    """Tool (``tool0``) pose target in base_link, quaternion (w, x, y, z), and gripper command."""

    position: np.ndarray
    quaternion: np.ndarray
    gripper: float
    labels: EventLabels | None = None
    done: bool = False


Action = JointAction | ToolAction


@runtime_checkable
class Policy(Protocol):
    cameras: tuple[str, ...]

    def reset(self, instance: TaskInstance) -> None: ...

    def __call__(self, observation: Observation) -> Action | None: ...


class DoNothingPolicy:
    """Holds the arm where the episode started with the gripper open (the lower baseline)."""

    cameras: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._hold: np.ndarray | None = None

    def reset(self, instance: TaskInstance) -> None:
        self._hold = None

    def __call__(self, observation: Observation) -> JointAction:
        if self._hold is None:
            self._hold = observation.joint_positions.copy()
        return JointAction(self._hold.copy(), 0.0)

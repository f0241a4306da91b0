"""Normalised gripper commands (0 open .. 1 closed) to gripper joint positions."""

from __future__ import annotations

import numpy as np

from wallwm_core.control.config import ArmControlConfig


class GripperMapping:
    """Maps one command per arm to the positions of every configured gripper joint."""

    def __init__(self, arms: tuple[ArmControlConfig, ...]) -> None:
        self.joint_names = tuple(g.name for arm in arms for g in arm.gripper_joints)
        self._arm_index = np.array(
            [index for index, arm in enumerate(arms) for _ in arm.gripper_joints], dtype=int
        )
        self._open = np.array([g.open for arm in arms for g in arm.gripper_joints], dtype=float)
        self._closed = np.array([g.closed for arm in arms for g in arm.gripper_joints], dtype=float)

    def joint_positions(self, commands: np.ndarray) -> np.ndarray:
        """``commands`` ``[A]`` in [0, 1] -> gripper joint positions ``[G]``."""
        closing = np.clip(commands, 0.0, 1.0)[self._arm_index]
        return self._open + closing * (self._closed - self._open)

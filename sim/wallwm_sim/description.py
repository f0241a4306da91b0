"""The arm description: one URDF for ROS (``robot_description``), Pinocchio and MuJoCo.

The URDF carries a ``<mujoco><compiler .../></mujoco>`` extension so MuJoCo loads it directly;
:mod:`wallwm_sim.scene` adds actuators, cameras and the table scene with ``mujoco.MjSpec``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

URDF_PATH = Path(__file__).resolve().parent / "description" / "wallwm_arm.urdf"

BASE_FRAME = "base_link"
TOOL_FRAME = "tool0"
HAND_LINK = "hand"
ARM_JOINT_NAMES: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 7))
GRIPPER_JOINT = "finger_left_joint"
GRIPPER_MIMIC_JOINT = "finger_right_joint"
# Every joint of the URDF in order (the mimic finger last), as in /joint_states.
ALL_JOINT_NAMES: tuple[str, ...] = (*ARM_JOINT_NAMES, GRIPPER_JOINT, GRIPPER_MIMIC_JOINT)
ARM_LINK_NAMES: tuple[str, ...] = (
    "link1",
    "link2",
    "link3",
    "link4",
    "link5",
    "link6",
    "hand",
    "finger_left",
    "finger_right",
)
# Opening of one finger from the centre line when fully open (metres); closed is 0.
FINGER_OPEN_POSITION = 0.04
# tool0 lies this far above the fingertips along the approach axis (metres).
TOOL_TO_FINGERTIP = 0.015
# Half the width of the closed finger pair, across and along the closing axis (metres).
CLOSED_FINGERS_HALF_WIDTH = 0.012


def urdf_path() -> Path:
    """Path of the arm URDF (installed with the package)."""
    return URDF_PATH


def urdf_string() -> str:
    """The arm URDF as a string: pass it as ``robot_description`` or to Pinocchio."""
    return URDF_PATH.read_text()


def gripper_command_to_finger_position(command: float | np.ndarray) -> float | np.ndarray:
    """Normalised gripper command (0 open, 1 closed) -> ``finger_left_joint`` position (m)."""
    return FINGER_OPEN_POSITION * (1.0 - np.asarray(command, dtype=np.float64))


def finger_position_to_gripper_command(position: float | np.ndarray) -> float | np.ndarray:
    """``finger_left_joint`` position (m) -> normalised gripper state (0 open, 1 closed)."""
    return 1.0 - np.asarray(position, dtype=np.float64) / FINGER_OPEN_POSITION

"""The simulated arm's kinematics: wallwm_core's Pinocchio FK/IK on the arm URDF.

The scripted expert, the recorder and tool-pose actions use the same
:class:`wallwm_core.control.kinematics.ArmKinematics` as the controller node, built here for the
six arm joints and ``tool0`` (the fingers do not move it), with tighter tolerances for offline
motion. Poses are in the ``base_link`` frame; quaternions are (w, x, y, z).
"""

from __future__ import annotations

import numpy as np
import transforms3d

from wallwm_core.control.config import IkConfig
from wallwm_core.control.kinematics import ArmKinematics
from wallwm_sim import description

# Offline motion has time: converge tightly, allow larger steps far from the solution.
SIM_IK = IkConfig(
    max_iterations=200, position_tolerance=1e-5, orientation_tolerance=1e-4, max_step=0.5
)


def sim_arm_kinematics(urdf: str | None = None, ik_config: IkConfig = SIM_IK) -> ArmKinematics:
    """FK/IK of ``tool0`` over the six arm joints (``ARM_JOINT_NAMES`` order)."""
    return ArmKinematics(
        description.urdf_string() if urdf is None else urdf,
        description.ARM_JOINT_NAMES,
        description.TOOL_FRAME,
        ik_config,
    )


def tool_pose(kinematics: ArmKinematics, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tool position ``[3]`` and quaternion ``[4]`` (w, x, y, z) at joint positions ``q``."""
    pose = kinematics.forward(q)
    return pose.position, transforms3d.quaternions.mat2quat(pose.rotation)


def top_down_rotation(yaw: float) -> np.ndarray:
    """Tool rotation ``[3, 3]`` pointing the approach axis (tool z) straight down, turned by yaw.

    ``Rz(yaw) @ Ry(pi)``: with yaw 0 the tool x axis points to world -x (back at the robot) and
    the fingers close along world y, which is the pose the arm reaches with ``joint6 = 0`` when
    ``joint1 = 0``. In general ``joint6 ~ joint1 - yaw``, so pick yaw near ``atan2(y, x)`` of the
    target (the gripper is symmetric under a half turn).
    """
    c, s = np.cos(yaw), np.sin(yaw)
    yaw_matrix = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    flip = np.diag([-1.0, 1.0, -1.0])  # rotation by pi about y: tool z -> world -z
    return yaw_matrix @ flip

"""Arm kinematics with Pinocchio on the arm URDF: forward kinematics and damped least-squares IK.

The IK model is the URDF reduced to the six arm joints (the fingers do not move ``tool0``).
Poses are in the ``base_link`` frame; quaternions are (w, x, y, z).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pinocchio as pin
import transforms3d

from wallwm_sim import description


@dataclasses.dataclass(frozen=True)
class IkResult:
    """``q`` ``[6]`` within the joint limits; errors are metres and radians."""

    q: np.ndarray
    converged: bool
    position_error: float
    rotation_error: float
    iterations: int


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


class ArmKinematics:
    """Forward and inverse kinematics of the six arm joints (``ARM_JOINT_NAMES`` order)."""

    def __init__(self, urdf: str | None = None) -> None:
        full = pin.buildModelFromXML(description.urdf_string() if urdf is None else urdf)
        locked = [
            full.getJointId(name)
            for name in (description.GRIPPER_JOINT, description.GRIPPER_MIMIC_JOINT)
        ]
        self.model = pin.buildReducedModel(full, locked, pin.neutral(full))
        self.data = self.model.createData()
        names = tuple(self.model.names[1:])
        if names != description.ARM_JOINT_NAMES:
            raise RuntimeError(f"URDF arm joints {names} != {description.ARM_JOINT_NAMES}")
        self.tool_frame = self.model.getFrameId(description.TOOL_FRAME)
        self.lower = np.array(self.model.lowerPositionLimit)
        self.upper = np.array(self.model.upperPositionLimit)
        self.velocity_limit = np.array(self.model.velocityLimit)

    @property
    def num_joints(self) -> int:
        return int(self.model.nq)

    def tool_transform(self, q: np.ndarray) -> np.ndarray:
        """``[4, 4]`` base_link-from-tool0 transform at joint positions ``q`` ``[6]``."""
        pin.framesForwardKinematics(self.model, self.data, np.asarray(q, dtype=np.float64))
        return np.array(self.data.oMf[self.tool_frame].homogeneous)

    def tool_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool position ``[3]`` and quaternion ``[4]`` (w, x, y, z)."""
        transform = self.tool_transform(q)
        return transform[:3, 3].copy(), transforms3d.quaternions.mat2quat(transform[:3, :3])

    def solve_ik(
        self,
        position: np.ndarray,
        rotation: np.ndarray,
        q_init: np.ndarray,
        max_iterations: int = 200,
        position_tolerance: float = 1e-5,
        rotation_tolerance: float = 1e-4,
        damping: float = 1e-6,
    ) -> IkResult:
        """Damped least-squares IK for the tool pose, warm-started at ``q_init``, limits enforced.

        The error is the world-aligned 6-D twist (position, rotation log); steps are clamped to
        the joint limits every iteration.
        """
        target_position = np.asarray(position, dtype=np.float64)
        target_rotation = np.asarray(rotation, dtype=np.float64)
        q = np.clip(np.asarray(q_init, dtype=np.float64), self.lower, self.upper)
        position_error = rotation_error = np.inf
        for iteration in range(1, max_iterations + 1):
            pin.framesForwardKinematics(self.model, self.data, q)
            current = self.data.oMf[self.tool_frame]
            error = np.empty(6)
            error[:3] = target_position - current.translation
            error[3:] = pin.log3(target_rotation @ current.rotation.T)
            position_error = float(np.linalg.norm(error[:3]))
            rotation_error = float(np.linalg.norm(error[3:]))
            if position_error < position_tolerance and rotation_error < rotation_tolerance:
                return IkResult(q, True, position_error, rotation_error, iteration)
            jacobian = pin.computeFrameJacobian(
                self.model, self.data, q, self.tool_frame, pin.LOCAL_WORLD_ALIGNED
            )
            step = jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + damping * np.eye(6), error)
            # Large steps far from the solution are cut so the linearisation stays valid.
            largest = float(np.abs(step).max())
            if largest > 0.5:
                step *= 0.5 / largest
            q = np.clip(q + step, self.lower, self.upper)
        return IkResult(q, False, position_error, rotation_error, max_iterations)

"""Forward and inverse kinematics of one arm, from a URDF string, with Pinocchio.

The model is reduced to the arm's joints (every other joint, e.g. the gripper's or another arm's,
is locked at its neutral position), so joint vectors here are exactly ``joint_names`` in the
caller's order. IK is damped least squares on the world-aligned frame error, projected onto the
joint limits after every iteration, seeded by the caller (the current state, or the previous
tick's solution when tracking).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import eigenpy
import numpy as np
import pinocchio as pin

from wallwm_core.config_loading import ConfigError
from wallwm_core.control.config import IkConfig


@dataclasses.dataclass(frozen=True)
class Pose:
    """A frame pose in the base frame: position ``[3]`` metres, rotation matrix ``[3, 3]``."""

    position: np.ndarray
    rotation: np.ndarray


@dataclasses.dataclass(frozen=True)
class IkResult:
    """Outcome of one IK solve. ``q`` is the best configuration found, within joint limits."""

    q: np.ndarray
    success: bool
    position_error: float  # metres, |p_target - p(q)|
    orientation_error: float  # radians, angle of R(q)^T R_target
    iterations: int
    reason: str = ""  # why it failed; empty on success


@dataclasses.dataclass(frozen=True)
class JointLimits:
    """Per-joint limits from the URDF, in ``joint_names`` order."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray


class ArmKinematics:
    """FK and IK of ``ee_frame`` as a function of ``joint_names`` (one arm of a URDF)."""

    def __init__(
        self,
        urdf_xml: str,
        joint_names: Sequence[str],
        ee_frame: str,
        ik_config: IkConfig | None = None,
    ) -> None:
        try:
            full = pin.buildModelFromXML(urdf_xml)
        except (RuntimeError, ValueError) as error:
            raise ConfigError(f"cannot build a kinematic model from the URDF: {error}") from error
        missing = [name for name in joint_names if not full.existJointName(name)]
        if missing:
            raise ConfigError(
                f"joints {missing} are not in the URDF; it has {list(full.names)[1:]}"
            )
        locked = [full.getJointId(name) for name in full.names[1:] if name not in set(joint_names)]
        self.model = pin.buildReducedModel(full, locked, pin.neutral(full))
        self.data = self.model.createData()
        if not self.model.existFrame(ee_frame):
            frames = sorted({frame.name for frame in self.model.frames})
            raise ConfigError(
                f"end-effector frame {ee_frame!r} is not in the URDF; frames: {frames}"
            )
        self.ee_frame = ee_frame
        self.frame_id = self.model.getFrameId(ee_frame)
        self.joint_names = tuple(joint_names)
        self.config = ik_config or IkConfig()

        # Index of each caller-ordered joint in the reduced model's q / v vectors.
        q_index, v_index = [], []
        for name in self.joint_names:
            joint = self.model.joints[self.model.getJointId(name)]
            if joint.nq != 1 or joint.nv != 1:
                raise ConfigError(
                    f"joint {name!r} has {joint.nq} position coordinates: only revolute and "
                    "prismatic joints with limits are supported (not continuous/floating)"
                )
            q_index.append(joint.idx_q)
            v_index.append(joint.idx_v)
        self._q_index = np.array(q_index)
        self._v_index = np.array(v_index)
        lower = self.model.lowerPositionLimit[self._q_index].copy()
        upper = self.model.upperPositionLimit[self._q_index].copy()
        velocity = self.model.velocityLimit[self._v_index].copy()
        bad = [
            name
            for name, lo, hi, v in zip(self.joint_names, lower, upper, velocity, strict=True)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi and np.isfinite(v) and v > 0)
        ]
        if bad:
            raise ConfigError(f"joints {bad} need finite <limit lower upper velocity> in the URDF")
        self.limits = JointLimits(lower=lower, upper=upper, velocity=velocity)
        self._q_model = pin.neutral(self.model)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def _to_model(self, q: np.ndarray) -> np.ndarray:
        self._q_model[self._q_index] = q
        return self._q_model

    def forward(self, q: np.ndarray) -> Pose:
        """Pose of the end-effector frame for joint positions ``q`` (``joint_names`` order)."""
        pin.framesForwardKinematics(self.model, self.data, self._to_model(np.asarray(q, float)))
        placement = self.data.oMf[self.frame_id]
        return Pose(position=placement.translation.copy(), rotation=placement.rotation.copy())

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """World-aligned frame Jacobian ``[6, n]`` (linear rows first) at ``q``."""
        full = pin.computeFrameJacobian(
            self.model,
            self.data,
            self._to_model(np.asarray(q, float)),
            self.frame_id,
            pin.LOCAL_WORLD_ALIGNED,
        )
        return full[:, self._v_index]

    def _pose_and_jacobian(self, q: np.ndarray) -> np.ndarray:
        """Update ``self.data.oMf[frame]`` and return the world-aligned Jacobian ``[6, n]``."""
        full = pin.computeFrameJacobian(
            self.model, self.data, self._to_model(q), self.frame_id, pin.LOCAL_WORLD_ALIGNED
        )
        pin.updateFramePlacement(self.model, self.data, self.frame_id)
        return full[:, self._v_index]

    @staticmethod
    def _dls_step(
        q: np.ndarray,
        jac: np.ndarray,
        error: np.ndarray,
        damping: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> np.ndarray:
        """Damped least-squares step; joints pushing against a limit are taken out and the
        step is recomputed with the rest, so a limit does not stall the others."""
        free = np.ones(len(q), dtype=bool)
        for _ in range(len(q)):
            jac_free = jac * free
            # eigenpy's Cholesky: several times faster than numpy's solve for a 6x6 system.
            step = jac_free.T @ eigenpy.LLT(jac_free @ jac_free.T + damping).solve(error)
            blocked = free & (((q <= lower) & (step < 0)) | ((q >= upper) & (step > 0)))
            if not blocked.any():
                break
            free &= ~blocked
        return step

    def solve(
        self,
        target: Pose,
        seed: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
        max_iterations: int | None = None,
    ) -> IkResult:
        """Joint positions reaching ``target`` from ``seed``, inside ``[lower, upper]``.

        ``lower``/``upper`` default to the URDF limits (callers pass tighter ones to keep a
        margin); ``max_iterations`` to the config's. Never raises for an unreachable target:
        the result says how far off it is.
        """
        cfg = self.config
        max_iterations = cfg.max_iterations if max_iterations is None else max_iterations
        lower = self.limits.lower if lower is None else lower
        upper = self.limits.upper if upper is None else upper
        q = np.clip(np.asarray(seed, dtype=float), lower, upper)
        if not (np.all(np.isfinite(target.position)) and np.all(np.isfinite(target.rotation))):
            return IkResult(q, False, np.inf, np.inf, 0, "target pose is not finite")
        damping = cfg.damping * np.eye(6)
        position_error = orientation_error = np.inf
        placement = self.data.oMf[self.frame_id]
        for iteration in range(max_iterations + 1):
            jac = self._pose_and_jacobian(q)
            dp = target.position - placement.translation
            dr = pin.log3(target.rotation @ placement.rotation.T)
            position_error, orientation_error = float(np.linalg.norm(dp)), float(np.linalg.norm(dr))
            if (
                position_error <= cfg.position_tolerance
                and orientation_error <= cfg.orientation_tolerance
            ):
                return IkResult(q, True, position_error, orientation_error, iteration)
            if iteration == max_iterations:
                break
            step = self._dls_step(q, jac, np.concatenate([dp, dr]), damping, lower, upper)
            largest = np.max(np.abs(step))
            if largest > cfg.max_step:
                step *= cfg.max_step / largest
            q = np.clip(q + step, lower, upper)
        at_limit = [
            name
            for name, value, lo, hi in zip(self.joint_names, q, lower, upper, strict=True)
            if value <= lo + 1e-9 or value >= hi - 1e-9
        ]
        reason = (
            f"IK did not converge in {max_iterations} iterations: position error "
            f"{position_error:.4g} m (tol {cfg.position_tolerance:g}), orientation error "
            f"{orientation_error:.4g} rad (tol {cfg.orientation_tolerance:g})"
        )
        if at_limit:
            reason += f"; joints at their limits: {at_limit}"
        return IkResult(q, False, position_error, orientation_error, max_iterations, reason)

"""The controller's configuration: one frozen dataclass tree loaded from YAML.

Units: seconds, metres, radians (and their rates); the loaders convert to nanoseconds where the
controller works with time. Checks that need only the config live in ``__post_init__``; checks
that need the robot description (joint and frame names, limits) happen when the controller is
built from a URDF (:func:`wallwm_core.control.controller.JointController.from_urdf`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from wallwm_core.config_loading import ConfigError, load_config

POSITION_INTERPOLATIONS = ("linear", "cubic")
WORKSPACE_VIOLATIONS = ("clamp", "reject")


def _require_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0.0):
            raise ConfigError(f"{owner}.{name} must be a positive number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class WorkspaceBox:
    """Axis-aligned box (metres, in the arm's base frame) the end effector must stay inside."""

    min: tuple[float, float, float]
    max: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.min) != 3 or len(self.max) != 3:
            raise ConfigError(f"workspace min/max need 3 values each, got {self.min=} {self.max=}")
        if not all(math.isfinite(v) for v in (*self.min, *self.max)):
            raise ConfigError(f"workspace bounds must be finite, got {self.min=} {self.max=}")
        if any(lo >= hi for lo, hi in zip(self.min, self.max, strict=True)):
            raise ConfigError(
                f"workspace min must be below max on every axis: {self.min=} {self.max=}"
            )


@dataclasses.dataclass(frozen=True)
class GripperJointConfig:
    """How the normalised gripper command (0 open .. 1 closed) maps onto one gripper joint."""

    name: str
    open: float  # joint position when the command is 0.0
    closed: float  # joint position when the command is 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.open) and math.isfinite(self.closed)):
            raise ConfigError(f"gripper joint {self.name!r}: open/closed must be finite")


@dataclasses.dataclass(frozen=True)
class ArmControlConfig:
    """One arm: the chunk's arm name, its end-effector frame, IK joints and gripper joints."""

    name: str
    ee_frame: str
    joint_names: tuple[str, ...]
    workspace: WorkspaceBox
    gripper_joints: tuple[GripperJointConfig, ...] = ()

    def __post_init__(self) -> None:
        if not self.joint_names:
            raise ConfigError(f"arm {self.name!r} needs at least one joint in joint_names")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ConfigError(f"arm {self.name!r}: duplicate joint names {self.joint_names}")
        overlap = set(self.joint_names) & {g.name for g in self.gripper_joints}
        if overlap:
            raise ConfigError(
                f"arm {self.name!r}: joints {sorted(overlap)} are both arm and gripper"
            )


@dataclasses.dataclass(frozen=True)
class IkConfig:
    """Damped least squares IK (see :mod:`wallwm_core.control.kinematics`)."""

    max_iterations: int = 60  # a solve from an arbitrary seed
    max_tracking_iterations: int = 20  # per control tick, seeded by the previous tick's solution
    damping: float = 1e-6  # squared damping added to J J^T (m^2 / rad^2)
    position_tolerance: float = 1e-4  # metres
    orientation_tolerance: float = 1e-3  # radians
    max_step: float = 0.3  # largest joint change per iteration (rad or m)

    def __post_init__(self) -> None:
        if self.max_iterations < 1 or self.max_tracking_iterations < 1:
            raise ConfigError(
                f"ik iteration counts must be at least 1, got {self.max_iterations=} "
                f"{self.max_tracking_iterations=}"
            )
        _require_positive(
            "ik",
            damping=self.damping,
            position_tolerance=self.position_tolerance,
            orientation_tolerance=self.orientation_tolerance,
            max_step=self.max_step,
        )


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """Everything the chunk-to-joint-command controller needs besides the URDF."""

    arms: tuple[ArmControlConfig, ...]
    base_frame: str = "base_link"  # chunks must be expressed in this frame
    control_rate_hz: float = 500.0
    # Chunk execution.
    position_interpolation: str = "cubic"  # between chunk steps: "linear" or "cubic" (spline)
    blend_window: float = 0.1  # seconds to cross-fade from the executing chunk to a newer one
    end_hold: float = 0.25  # seconds the last step is held before "no chunk covers now"
    max_stamp_lead: float = 0.5  # chunks stamped further in the future than this are rejected
    # Chunk bounds, checked before any conversion: longer chunks are rejected.
    max_chunk_steps: int = 1000
    max_chunk_duration: float = 30.0  # seconds, num_steps * step_period
    # Safety.
    # Targets outside the box by more than workspace_margin: "reject" the chunk, or "clamp" them
    # into the box (opt-in). Targets outside by at most the margin are always clamped.
    workspace_violation: str = "reject"
    workspace_margin: float = 0.02  # metres
    max_ee_linear_speed: float = 0.5  # m/s, applied to the end-effector target
    max_ee_angular_speed: float = 2.0  # rad/s, applied to the end-effector target
    # seconds; joint states older than this by stamp or by receive time -> hold
    joint_state_timeout: float = 0.1
    # seconds; joint states stamped further ahead of the controller's clock are rejected
    joint_state_max_lead: float = 0.1
    # rad; a joint state that moved further than the URDF velocity limit x the time since the
    # last accepted one, plus this margin, is physically impossible: rejected as implausible
    joint_state_jump_margin: float = 0.05
    estop_reset_max_speed: float = 1e-3  # rad/s; reset is refused while the arm moves faster
    # rad; a measured joint farther than this from the command means the arm does not follow
    # (a collision, the driver, a wrong reading): the controller holds, and faults when it lasts
    max_following_error: float = 0.25
    # seconds a large following error, or a run of implausible joint states, may last before
    # the controller latches a fault
    joint_fault_after: float = 0.3
    # Joint-space limits: positions and velocities come from the URDF.
    velocity_scale: float = 1.0  # fraction of the URDF velocity limits to use
    position_limit_margin: float = 0.01  # rad (or m) kept away from URDF position limits
    max_acceleration: float = 4.0  # rad/s^2, every arm joint
    max_jerk: float = 80.0  # rad/s^3, every arm joint
    tracking_gain: float = 15.0  # 1/s, joint error feedback while following a moving target
    ik: IkConfig = dataclasses.field(default_factory=IkConfig)

    def __post_init__(self) -> None:
        if not self.arms:
            raise ConfigError("controller config needs at least one arm")
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate arm names {names}")
        joints = [
            j
            for arm in self.arms
            for j in (*arm.joint_names, *(g.name for g in arm.gripper_joints))
        ]
        if len(set(joints)) != len(joints):
            raise ConfigError(f"a joint belongs to more than one arm or gripper: {joints}")
        if self.position_interpolation not in POSITION_INTERPOLATIONS:
            raise ConfigError(
                f"position_interpolation must be one of {POSITION_INTERPOLATIONS}, "
                f"got {self.position_interpolation!r}"
            )
        if self.workspace_violation not in WORKSPACE_VIOLATIONS:
            raise ConfigError(
                f"workspace_violation must be one of {WORKSPACE_VIOLATIONS}, "
                f"got {self.workspace_violation!r}"
            )
        _require_positive(
            "controller",
            control_rate_hz=self.control_rate_hz,
            blend_window=self.blend_window,
            max_ee_linear_speed=self.max_ee_linear_speed,
            max_ee_angular_speed=self.max_ee_angular_speed,
            joint_state_timeout=self.joint_state_timeout,
            estop_reset_max_speed=self.estop_reset_max_speed,
            max_following_error=self.max_following_error,
            joint_fault_after=self.joint_fault_after,
            joint_state_max_lead=self.joint_state_max_lead,
            max_chunk_duration=self.max_chunk_duration,
            velocity_scale=self.velocity_scale,
            max_acceleration=self.max_acceleration,
            max_jerk=self.max_jerk,
            tracking_gain=self.tracking_gain,
        )
        if isinstance(self.max_chunk_steps, bool) or self.max_chunk_steps < 1:
            raise ConfigError(f"max_chunk_steps must be at least 1, got {self.max_chunk_steps!r}")
        for name in (
            "end_hold",
            "max_stamp_lead",
            "position_limit_margin",
            "workspace_margin",
            "joint_state_jump_margin",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ConfigError(f"controller.{name} must be >= 0, got {value!r}")
        if self.velocity_scale > 1.0:
            raise ConfigError(
                f"velocity_scale must not exceed 1 (URDF limit), got {self.velocity_scale}"
            )

    @property
    def period_ns(self) -> int:
        """Control period in integer nanoseconds."""
        return round(1e9 / self.control_rate_hz)

    @property
    def arm_joint_names(self) -> tuple[str, ...]:
        """All IK-controlled joints, arm after arm: the order of every joint vector."""
        return tuple(j for arm in self.arms for j in arm.joint_names)

    @property
    def gripper_joint_names(self) -> tuple[str, ...]:
        return tuple(g.name for arm in self.arms for g in arm.gripper_joints)


def load_controller_config(path: str | Path) -> ControllerConfig:
    """Read a controller YAML file (see wallwm_core/configs/controller_*.yaml)."""
    return load_config(ControllerConfig, path)

"""ROS-free joint control: action chunks (end-effector targets) -> limited joint commands.

Pipeline per tick: chunk -> time index -> blend -> workspace/speed limits -> IK -> ruckig ->
command. :class:`JointController` composes the stages; :class:`ControlLoop` runs it at a fixed
rate on absolute deadlines. The full description is docs/controller.md.
"""

from wallwm_core.control.config import (
    ArmControlConfig,
    ControllerConfig,
    GripperJointConfig,
    IkConfig,
    WorkspaceBox,
    load_controller_config,
)
from wallwm_core.control.controller import (
    ControlCommand,
    ControllerState,
    ControllerStatus,
    JointController,
    ResetResult,
    SubmitResult,
)
from wallwm_core.control.kinematics import ArmKinematics, IkResult, Pose
from wallwm_core.control.loop_runner import ControlLoop, LoopTick
from wallwm_core.control.loop_stats import LoopStats

__all__ = [
    "ArmControlConfig",
    "ArmKinematics",
    "ControlCommand",
    "ControlLoop",
    "ControllerConfig",
    "ControllerState",
    "ControllerStatus",
    "GripperJointConfig",
    "IkConfig",
    "IkResult",
    "JointController",
    "LoopStats",
    "LoopTick",
    "Pose",
    "ResetResult",
    "SubmitResult",
    "WorkspaceBox",
    "load_controller_config",
]

"""A robot's deployment description: one YAML file per arm, read by the launch files and bringup.

It says where the arm's URDF and controller limits are, which joints and cameras the policy
reads (topics + camera poses), and how the controller talks to the arm's driver (a
``forward_command_controller`` position array or a ``joint_trajectory_controller`` trajectory,
plus the gripper). See ``wallwm_bringup/config/robots/`` for the simulated arm and a template
for a real one.

File references in the YAML are absolute paths, paths relative to the robot file, or
``python://<package>/<path>``: a file shipped inside an installed Python package (works the same
from the pip set-up and from a colcon install).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from pathlib import Path

from wallwm_core.config_loading import ConfigError, load_config

CONTROLLER_OUTPUTS = ("forward_position", "joint_trajectory")
PYTHON_RESOURCE_SCHEME = "python://"


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """One camera the policy reads; the pose is of its optical frame (x right, y down, z ahead).

    ``parent_frame`` empty: the pose is in the arm base frame (a fixed camera). Otherwise the
    camera rides on that URDF link and the pose is relative to it (a wrist camera).
    """

    name: str
    image_topic: str
    info_topic: str
    translation: tuple[float, float, float]
    quaternion_wxyz: tuple[float, float, float, float]
    parent_frame: str = ""


@dataclasses.dataclass(frozen=True)
class ControllerOutput:
    """How joint commands reach the arm, and the controller's limits file."""

    config: str  # wallwm_core.control.ControllerConfig YAML
    output: str = "forward_position"
    position_command_topic: str = "forward_position_controller/commands"
    trajectory_topic: str = "joint_trajectory_controller/joint_trajectory"
    gripper_command_topic: str = "gripper_controller/commands"

    def __post_init__(self) -> None:
        if self.output not in CONTROLLER_OUTPUTS:
            raise ConfigError(
                f"controller.output is {self.output!r}; expected one of {CONTROLLER_OUTPUTS}"
            )


@dataclasses.dataclass(frozen=True)
class RobotConfig:
    name: str
    urdf: str
    base_frame: str
    joint_state_topic: str
    policy_joint_names: tuple[str, ...]  # joints the policy reads, gripper included
    cameras: tuple[CameraConfig, ...]
    controller: ControllerOutput
    source: str = ""  # the file it was read from (set by load_robot_config)

    def __post_init__(self) -> None:
        if not self.policy_joint_names:
            raise ConfigError("policy_joint_names must list the joints the policy reads")
        names = [camera.name for camera in self.cameras]
        if len(set(names)) != len(names):
            raise ConfigError(f"camera names repeat: {names}")

    def resolve(self, reference: str) -> Path:
        """The file a reference in this config names (see the module doc)."""
        return resolve_file(reference, Path(self.source).parent if self.source else Path.cwd())

    def urdf_xml(self) -> str:
        return self.resolve(self.urdf).read_text()

    def camera_extrinsics(self) -> tuple[float, ...]:
        """Flattened ``x y z qw qx qy qz`` per camera, the policy node's parameter."""
        return tuple(float(v) for c in self.cameras for v in (*c.translation, *c.quaternion_wxyz))


def resolve_file(reference: str, relative_to: Path) -> Path:
    """An absolute path, a path relative to ``relative_to``, or ``python://package/path``."""
    if reference.startswith(PYTHON_RESOURCE_SCHEME):
        package, _, inner = reference[len(PYTHON_RESOURCE_SCHEME) :].partition("/")
        try:
            path = Path(str(importlib.resources.files(package).joinpath(inner)))
        except ModuleNotFoundError as error:
            raise ConfigError(f"{reference}: no installed Python package {package!r}") from error
    else:
        path = Path(reference)
        if not path.is_absolute():
            path = relative_to / path
    if not path.is_file():
        raise ConfigError(f"{reference}: no such file ({path})")
    return path


def load_robot_config(path: str | Path) -> RobotConfig:
    """Read and check a robot YAML file; its file references must exist."""
    config = load_config(RobotConfig, path)
    config = dataclasses.replace(config, source=str(Path(path).resolve()))
    config.resolve(config.urdf)
    config.resolve(config.controller.config)
    return config

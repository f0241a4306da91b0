"""Which nodes a bringup starts and with which parameters: the one source for launch and in-process.

``sim.launch.py`` / ``robot.launch.py`` turn these :class:`NodeSpec` lists into launch_ros Nodes;
:mod:`wallwm_ros.closed_loop.inprocess_bringup` builds the same nodes in one process. Both read
the node parameter files of wallwm_bringup/config and a robot file (wallwm_bringup/config/robots),
so they cannot drift apart (test_bringup checks that they start the same nodes with the same parameters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from wallwm_core.config_loading import ConfigError
from wallwm_ros.robot_config import RobotConfig, load_robot_config

POLICIES = ("wallwm", "replay")


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node: what ``ros2 run <package> <executable>`` starts, its name and parameters.

    ``params_files`` are ROS parameter files applied first (their ``/**/<name>`` section);
    ``parameters`` override them. ``node_class`` is ``module:Class`` for in-process bringup.
    """

    package: str
    executable: str
    name: str
    node_class: str
    params_files: tuple[Path, ...]
    parameters: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class PolicyChoice:
    """The policy the policy node serves: the WALL-WM checkpoint, or a scripted replay file."""

    policy: str = "wallwm"
    checkpoint: str = ""
    replay_file: str = ""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if self.policy == "replay" and not self.replay_file:
            raise ConfigError("policy 'replay' needs a replay_file")
        if self.policy == "wallwm" and not self.checkpoint:
            raise ConfigError("policy 'wallwm' needs a checkpoint directory")

    def parameters(self) -> dict[str, Any]:
        if self.policy == "replay":
            return {"policy_type": "replay", "replay_file": self.replay_file}
        return {"policy_type": "wallwm", "checkpoint": self.checkpoint}


def policy_node_spec(
    robot: RobotConfig, choice: PolicyChoice, config_dir: Path, use_sim_time: bool
) -> NodeSpec:
    parameters = {
        **choice.parameters(),
        "use_sim_time": use_sim_time,
        "camera_names": [c.name for c in robot.cameras],
        "camera_image_topics": [c.image_topic for c in robot.cameras],
        "camera_info_topics": [c.info_topic for c in robot.cameras],
        "camera_extrinsics": list(robot.camera_extrinsics()),
        "camera_parent_frames": [c.parent_frame for c in robot.cameras],
        "joint_names": list(robot.policy_joint_names),
        "joint_state_topic": robot.joint_state_topic,
    }
    if any(c.parent_frame for c in robot.cameras):
        parameters["robot_description"] = robot.urdf_xml()
    return NodeSpec(
        package="wallwm",
        executable="policy_node",
        name="policy_node",
        node_class="wallwm_ros.policy_node:PolicyNode",
        params_files=(config_dir / "policy_node.yaml",),
        parameters=parameters,
    )


def controller_node_spec(robot: RobotConfig, config_dir: Path, use_sim_time: bool) -> NodeSpec:
    output = robot.controller
    return NodeSpec(
        package="wallwm",
        executable="controller_node",
        name="controller_node",
        node_class="wallwm_ros.controller_node:ControllerNode",
        params_files=(config_dir / "controller_node.yaml",),
        parameters={
            "use_sim_time": use_sim_time,
            "robot_description": robot.urdf_xml(),
            "controller_config": str(robot.resolve(output.config)),
            "output": output.output,
            "joint_state_topic": robot.joint_state_topic,
            "position_command_topic": output.position_command_topic,
            "trajectory_topic": output.trajectory_topic,
            "gripper_command_topic": output.gripper_command_topic,
        },
    )


def sim_node_spec(
    robot: RobotConfig,
    config_dir: Path,
    task: str,
    seed: int,
    variant: str,
    real_time: bool,
    lockstep: bool = False,
) -> NodeSpec:
    return NodeSpec(
        package="wallwm",
        executable="sim_node",
        name="sim_node",
        node_class="wallwm_ros.sim_node:SimNode",
        params_files=(config_dir / "sim_node.yaml",),
        parameters={
            "task": task,
            "seed": seed,
            "variant": variant,
            "real_time": real_time,
            "lockstep": lockstep,
            "cameras": [c.name for c in robot.cameras],
            "joint_states_topic": robot.joint_state_topic,
            "position_command_topic": robot.controller.position_command_topic,
            "trajectory_topic": robot.controller.trajectory_topic,
            "gripper_command_topic": robot.controller.gripper_command_topic,
        },
    )


def sim_bringup(
    config_dir: Path,
    choice: PolicyChoice,
    robot_config: str | Path = "",
    task: str = "pick_place",
    seed: int = 0,
    variant: str = "train",
    real_time: bool = True,
    lockstep: bool = False,
) -> list[NodeSpec]:
    """Simulation + policy + controller, all on simulation time (sim.launch.py).

    ``lockstep``: the simulation waits for the controller every control period (tests and
    evaluation); ``real_time`` paces it to the wall clock (demos; both may be on).
    """
    robot = load_robot_config(robot_config or config_dir / "robots" / "sim_arm.yaml")
    if lockstep and robot.controller.output != "forward_position":
        raise ConfigError(
            "lockstep needs the controller's forward_position output (a command every control "
            f"period); the robot file gives {robot.controller.output!r}"
        )
    return [
        sim_node_spec(robot, config_dir, task, seed, variant, real_time, lockstep),
        policy_node_spec(robot, choice, config_dir, use_sim_time=True),
        controller_node_spec(robot, config_dir, use_sim_time=True),
    ]


def robot_bringup(
    config_dir: Path, choice: PolicyChoice, robot_config: str | Path, use_sim_time: bool = False
) -> list[NodeSpec]:
    """Policy + controller for an arm whose driver already runs (robot.launch.py)."""
    robot = load_robot_config(robot_config)
    return [
        policy_node_spec(robot, choice, config_dir, use_sim_time),
        controller_node_spec(robot, config_dir, use_sim_time),
    ]


def read_params_file(path: Path, node_name: str) -> dict[str, Any]:
    """The parameters a ROS params file gives node ``node_name`` (``/**/name`` or ``name`` keys)."""
    try:
        content = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read parameter file {path}: {error}") from error
    parameters: dict[str, Any] = {}
    for key in ("/**", f"/**/{node_name}", node_name, f"/{node_name}"):
        section = content.get(key)
        if isinstance(section, Mapping):
            parameters.update(section.get("ros__parameters") or {})
    return parameters


def resolved_parameters(spec: NodeSpec) -> dict[str, Any]:
    """What the node ends up with: its params files, then the spec's overrides."""
    parameters: dict[str, Any] = {}
    for path in spec.params_files:
        parameters.update(read_params_file(path, spec.name))
    parameters.update(spec.parameters)
    return parameters


DEFAULT_CHECKPOINT = "python://wallwm_core/checkpoints/wallwm-sim-cpu/metadata.yaml"


def default_checkpoint() -> str:
    """The best WALL-WM checkpoint shipped with wallwm_core (its directory).

    Raises ConfigError when none is shipped: pass an explicit checkpoint then.
    """
    from wallwm_ros.robot_config import resolve_file

    try:
        return str(resolve_file(DEFAULT_CHECKPOINT, Path.cwd()).parent)
    except ConfigError as error:
        raise ConfigError(
            "no WALL-WM checkpoint is shipped (looked for "
            f"{DEFAULT_CHECKPOINT}); pass checkpoint:=DIR, e.g. one written by "
            "`python -m wallwm_core.checkpoint init --config tiny --out DIR` (untrained)"
        ) from error


# --- launch arguments: parsed and checked here, so launch files stay thin and the errors clear ---

LAUNCH_BOOLEANS = ("true", "false")


def launch_bool(name: str, text: str) -> bool:
    """A launch argument that must be ``true`` or ``false`` (``ture`` is an error, not false)."""
    value = text.strip().lower()
    if value not in LAUNCH_BOOLEANS:
        raise ConfigError(f"launch argument '{name}' must be true or false, got {text!r}")
    return value == "true"


def launch_int(name: str, text: str, minimum: int = 0) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"launch argument '{name}' must be an integer, got {text!r}") from None
    if value < minimum:
        raise ConfigError(f"launch argument '{name}' must be >= {minimum}, got {value}")
    return value


def _robot_file(config_dir: Path, robot_config: str) -> Path:
    """The robot file, checked before anything else (a checkpoint error would hide it)."""
    path = Path(robot_config) if robot_config else config_dir / "robots" / "sim_arm.yaml"
    if not path.is_file():
        raise ConfigError(f"launch argument 'robot_config': no robot file at {path}")
    load_robot_config(path)  # its own errors (URDF, controller config) come first too
    return path


def _launch_policy(args: Mapping[str, str]) -> PolicyChoice:
    policy = args["policy"]
    if policy not in POLICIES:
        raise ConfigError(f"launch argument 'policy' must be one of {POLICIES}, got {policy!r}")
    checkpoint = args["checkpoint"]
    if policy == "wallwm" and not checkpoint:
        checkpoint = default_checkpoint()
    if policy == "replay" and not args["replay_file"]:
        raise ConfigError(
            "policy:=replay needs replay_file:=/path/events.yaml (see docs/ros.md, "
            "'Replay files'; python -m wallwm_ros.closed_loop.expert_replay writes one)"
        )
    return PolicyChoice(policy, checkpoint, args["replay_file"])


def sim_launch_specs(config_dir: Path, args: Mapping[str, str]) -> list[NodeSpec]:
    """sim.launch.py's nodes from its (string) launch arguments, checked in the order a user
    needs: the robot file, the episode (task, variant, seed), the flags, then the policy."""
    from wallwm_sim.tasks import get_task

    robot_file = _robot_file(config_dir, args["robot_config"])
    try:
        task = get_task(args["task"])
    except ValueError as error:
        raise ConfigError(f"launch argument 'task': {error}") from None
    if args["variant"] not in task.variants:
        raise ConfigError(
            f"launch argument 'variant': task {args['task']!r} has {list(task.variants)}, "
            f"not {args['variant']!r}"
        )
    seed = launch_int("seed", args["seed"])
    real_time = launch_bool("real_time", args["real_time"])
    lockstep = launch_bool("lockstep", args.get("lockstep", "false"))
    return sim_bringup(
        config_dir,
        _launch_policy(args),
        robot_config=robot_file,
        task=args["task"],
        seed=seed,
        variant=args["variant"],
        real_time=real_time,
        lockstep=lockstep,
    )


def robot_launch_specs(config_dir: Path, args: Mapping[str, str]) -> list[NodeSpec]:
    """robot.launch.py's nodes from its launch arguments (robot file first, then flags, policy)."""
    if not args["robot_config"]:
        raise ConfigError("robot.launch.py needs robot_config:=/path/to/robot.yaml")
    robot_file = _robot_file(config_dir, args["robot_config"])
    use_sim_time = launch_bool("use_sim_time", args["use_sim_time"])
    return robot_bringup(config_dir, _launch_policy(args), robot_file, use_sim_time=use_sim_time)

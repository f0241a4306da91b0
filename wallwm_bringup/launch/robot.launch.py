"""WALL-WM on a real arm: policy + controller, wired to the arm's driver by a robot file.

    ros2 launch wallwm_bringup robot.launch.py robot_config:=/path/my_arm.yaml
        checkpoint:=/path/ckpt [namespace:=arm1] [use_sim_time:=false]
        [policy:=replay replay_file:=/path/events.yaml]

The arm's driver (ros2_control with a forward_command_controller or joint_trajectory_controller,
a gripper controller) and its cameras must already run; the robot file
(config/robots/robot_template.yaml) names their topics, the URDF and the controller limits.
The nodes and their parameters come from wallwm_ros.bringup.robot_bringup.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGUMENTS = {
    "robot_config": ("", "The arm's robot file (required; see config/robots/robot_template.yaml)."),
    "policy": ("wallwm", "wallwm (a checkpoint) or replay (a scripted events file)."),
    "checkpoint": ("", "WALL-WM checkpoint directory ('' = the best one shipped)."),
    "replay_file": ("", "Scripted events YAML for policy:=replay."),
    "namespace": ("", "Namespace of both nodes."),
    "use_sim_time": ("false", "Follow /clock (a simulator) instead of the system clock."),
}


def _nodes(context, *_, **__):
    from pathlib import Path

    from ament_index_python.packages import get_package_share_directory

    from wallwm_ros.bringup import PolicyChoice, default_checkpoint, robot_bringup

    args = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    if not args["robot_config"]:
        raise RuntimeError("robot.launch.py needs robot_config:=/path/to/robot.yaml")
    config_dir = Path(get_package_share_directory("wallwm_bringup")) / "config"
    checkpoint = args["checkpoint"]
    if args["policy"] == "wallwm" and not checkpoint:
        checkpoint = default_checkpoint()
    specs = robot_bringup(
        config_dir,
        PolicyChoice(args["policy"], checkpoint, args["replay_file"]),
        robot_config=args["robot_config"],
        use_sim_time=args["use_sim_time"].lower() in ("true", "1", "yes"),
    )
    return [
        Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=args["namespace"],
            output="screen",
            parameters=[*(str(path) for path in spec.params_files), dict(spec.parameters)],
        )
        for spec in specs
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=default, description=description)
                for name, (default, description) in ARGUMENTS.items()
            ),
            OpaqueFunction(function=_nodes),
        ]
    )

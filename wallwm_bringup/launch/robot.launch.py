"""WALL-WM on a real arm: policy + controller, wired to the arm's driver by a robot file.

    ros2 launch wallwm_bringup robot.launch.py robot_config:=/path/my_arm.yaml
        checkpoint:=/path/ckpt [namespace:=arm1] [use_sim_time:=false]
        [policy:=replay replay_file:=/path/events.yaml]

The arm's driver (ros2_control with a forward_command_controller or joint_trajectory_controller,
a gripper controller) and its cameras must already run; the robot file
(config/robots/robot_template.yaml) names their topics, the URDF and the controller limits.
The nodes and their parameters come from wallwm_ros.bringup.robot_bringup; the arguments are
checked there (true/false only, the robot file first). Both nodes are required: when one exits,
the launch stops with its message.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
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


def _stop_launch(event, _context):
    """Every node is required: one that exits stops the launch, naming it (its own message,
    e.g. an invalid parameter, is printed just above)."""
    return [Shutdown(reason=f"{event.process_name} exited with code {event.returncode}")]


def _nodes(context, *_, **__):
    from pathlib import Path

    from ament_index_python.packages import get_package_share_directory

    from wallwm_ros.bringup import robot_launch_specs

    args = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    config_dir = Path(get_package_share_directory("wallwm_bringup")) / "config"
    entities = []
    for spec in robot_launch_specs(config_dir, args):
        node = Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=args["namespace"],
            output="screen",
            parameters=[*(str(path) for path in spec.params_files), dict(spec.parameters)],
        )
        entities += [
            node,
            RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_stop_launch)),
        ]
    return entities


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

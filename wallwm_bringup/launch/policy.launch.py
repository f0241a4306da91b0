"""Start wallwm's policy node alone (sim.launch.py / robot.launch.py start the whole loop).

    ros2 launch wallwm_bringup policy.launch.py checkpoint:=/path/ckpt [namespace:=arm1]
        [use_sim_time:=true] [params_file:=/path/policy_node.yaml]
    ros2 launch wallwm_bringup policy.launch.py policy_type:=replay [replay_file:=/path/events.yaml]

Then send a goal:  ros2 run wallwm send_goal "press the red button"
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushROSNamespace, SetParameter
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    config_dir = PathJoinSubstitution([FindPackageShare("wallwm_bringup"), "config"])
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    params_file = LaunchConfiguration("params_file")
    replay_file = LaunchConfiguration("replay_file")
    policy_type = LaunchConfiguration("policy_type")
    checkpoint = LaunchConfiguration("checkpoint")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "namespace", default_value="", description="Namespace of the nodes."
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="Use /clock (simulation time)."
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([config_dir, "policy_node.yaml"]),
                description="Parameter file of the policy node.",
            ),
            DeclareLaunchArgument(
                "policy_type", default_value="wallwm", description="wallwm or replay."
            ),
            DeclareLaunchArgument(
                "checkpoint", default_value="", description="WALL-WM checkpoint directory."
            ),
            DeclareLaunchArgument(
                "replay_file",
                default_value=PathJoinSubstitution([config_dir, "demo_replay.yaml"]),
                description="Scripted events for policy_type 'replay'.",
            ),
            GroupAction(
                [
                    PushROSNamespace(namespace),
                    SetParameter("use_sim_time", use_sim_time),
                    Node(
                        package="wallwm",
                        executable="policy_node",
                        name="policy_node",
                        output="screen",
                        parameters=[
                            params_file,
                            {
                                "policy_type": policy_type,
                                "checkpoint": checkpoint,
                                "replay_file": replay_file,
                            },
                        ],
                    ),
                ]
            ),
        ]
    )

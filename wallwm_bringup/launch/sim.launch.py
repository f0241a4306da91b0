"""The simulated closed loop: simulation + policy + controller, all on simulation time.

    ros2 launch wallwm_bringup sim.launch.py [task:=press_buttons] [seed:=3] [variant:=train]
        [policy:=wallwm checkpoint:=/path/ckpt | policy:=replay replay_file:=/path/events.yaml]
        [real_time:=true] [namespace:=sim1] [robot_config:=/path/robot.yaml]

Then send the task:  ros2 run wallwm send_goal --task "..." --event "..." --event "..."
The nodes and their parameters come from wallwm_ros.bringup.sim_bringup, the same function the
in-process bringup (python -m wallwm_ros.closed_loop.run_sim) uses.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGUMENTS = {
    "task": ("pick_place", "Task of the first episode (see wallwm_sim.tasks)."),
    "seed": ("0", "Randomiser seed of the first episode."),
    "variant": ("train", "train, or a generalisation variant (novel_layout, novel_colours, ...)."),
    "policy": ("wallwm", "wallwm (a checkpoint) or replay (a scripted events file)."),
    "checkpoint": ("", "WALL-WM checkpoint directory ('' = the best one shipped)."),
    "replay_file": ("", "Scripted events YAML for policy:=replay."),
    "real_time": ("true", "Pace the simulation to the wall clock (false: as fast as possible)."),
    "namespace": ("", "Namespace of all three nodes."),
    "robot_config": ("", "Robot file ('' = config/robots/sim_arm.yaml)."),
}


def _nodes(context, *_, **__):
    from pathlib import Path

    from ament_index_python.packages import get_package_share_directory

    from wallwm_ros.bringup import PolicyChoice, default_checkpoint, sim_bringup

    args = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    config_dir = Path(get_package_share_directory("wallwm_bringup")) / "config"
    checkpoint = args["checkpoint"]
    if args["policy"] == "wallwm" and not checkpoint:
        checkpoint = default_checkpoint()
    specs = sim_bringup(
        config_dir,
        PolicyChoice(args["policy"], checkpoint, args["replay_file"]),
        robot_config=args["robot_config"],
        task=args["task"],
        seed=int(args["seed"]),
        variant=args["variant"],
        real_time=args["real_time"].lower() in ("true", "1", "yes"),
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

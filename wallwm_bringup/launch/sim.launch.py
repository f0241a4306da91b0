"""The simulated closed loop: simulation + policy + controller, all on simulation time.

    ros2 launch wallwm_bringup sim.launch.py [task:=press_buttons] [seed:=3] [variant:=train]
        [policy:=wallwm checkpoint:=/path/ckpt | policy:=replay replay_file:=/path/events.yaml]
        [real_time:=true] [lockstep:=false] [namespace:=sim1] [robot_config:=/path/robot.yaml]

Then send the task:  ros2 run wallwm send_goal --task "..." --event "..." --event "..."
The nodes and their parameters come from wallwm_ros.bringup.sim_bringup, the same function the
in-process bringup (python -m wallwm_ros.closed_loop.run_sim) uses; the arguments are checked
there (true/false only, integers named, the robot file first). Every node is required: when one
exits (e.g. task:=no_such_task) the launch stops with its message.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGUMENTS = {
    "task": ("pick_place", "Task of the first episode (see wallwm_sim.tasks)."),
    "seed": ("0", "Randomiser seed of the first episode."),
    "variant": ("train", "train, or a generalisation variant (novel_layout, novel_colours, ...)."),
    "policy": ("wallwm", "wallwm (a checkpoint) or replay (a scripted events file)."),
    "checkpoint": ("", "WALL-WM checkpoint directory ('' = the best one shipped)."),
    "replay_file": ("", "Scripted events YAML for policy:=replay."),
    "real_time": ("true", "true: pace the simulation to the wall clock; false: as fast as it can."),
    "lockstep": ("false", "true: simulated time waits for the controller every control period."),
    "namespace": ("", "Namespace of all three nodes."),
    "robot_config": ("", "Robot file ('' = config/robots/sim_arm.yaml)."),
}


def _stop_launch(event, _context):
    """Every node is required: one that exits stops the launch, naming it (its own message,
    e.g. an invalid parameter, is printed just above)."""
    return [Shutdown(reason=f"{event.process_name} exited with code {event.returncode}")]


def _nodes(context, *_, **__):
    from pathlib import Path

    from ament_index_python.packages import get_package_share_directory

    from wallwm_ros.bringup import sim_launch_specs

    args = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    config_dir = Path(get_package_share_directory("wallwm_bringup")) / "config"
    entities = []
    for spec in sim_launch_specs(config_dir, args):
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

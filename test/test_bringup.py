"""Launch files and the in-process bringup start the same nodes with the same parameters.

launch/launch_ros are not installable here, so the launch files run against small stand-ins
that record what they are asked to start; on a ROS install they run under ``ros2 launch``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

from wallwm_core.config_loading import ConfigError
from wallwm_ros.bringup import (
    PolicyChoice,
    read_params_file,
    resolved_parameters,
    robot_bringup,
    sim_bringup,
)

BRINGUP = Path(__file__).resolve().parents[1] / "wallwm_bringup"
CONFIG = BRINGUP / "config"


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _Node(_Recorder):
    pass


class _Shutdown:
    def __init__(self, *, reason="reason not given"):
        self.reason = reason


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


@pytest.fixture
def fake_launch(monkeypatch):
    """Minimal stand-ins for launch / launch_ros that record the launch description."""
    modules = {
        "launch": types.ModuleType("launch"),
        "launch.actions": types.ModuleType("launch.actions"),
        "launch.substitutions": types.ModuleType("launch.substitutions"),
        "launch.event_handlers": types.ModuleType("launch.event_handlers"),
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.ModuleType("launch_ros.actions"),
    }
    modules["launch"].LaunchDescription = lambda entities: list(entities)
    modules["launch.actions"].DeclareLaunchArgument = _Recorder
    modules["launch.actions"].OpaqueFunction = _Recorder
    modules["launch.actions"].RegisterEventHandler = _Recorder
    modules["launch.actions"].Shutdown = _Shutdown
    modules["launch.event_handlers"].OnProcessExit = _Recorder
    modules["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    modules["launch_ros.actions"].Node = _Node
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(
        "ament_index_python.packages.get_package_share_directory", lambda _: str(BRINGUP)
    )


def _launch_entities(name: str, overrides: dict[str, str]) -> list:
    """What the launch file's OpaqueFunction returns for these launch arguments."""
    spec = importlib.util.spec_from_file_location(name, BRINGUP / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = module.generate_launch_description()
    arguments = {e.args[0]: e.kwargs["default_value"] for e in entities if e.args}
    opaque = [e for e in entities if "function" in e.kwargs]
    assert len(opaque) == 1
    context = {**arguments, **overrides}
    return list(opaque[0].kwargs["function"](context))


def _run_launch_file(name: str, overrides: dict[str, str]) -> list[dict]:
    return [e.kwargs for e in _launch_entities(name, overrides) if isinstance(e, _Node)]


def _as_launched(node_kwargs: dict) -> dict:
    """What the launched node receives: its params files, then the dict."""
    *files, overrides = node_kwargs["parameters"]
    values = {}
    for path in files:
        values.update(read_params_file(Path(path), node_kwargs["name"]))
    values.update(overrides)
    return values


def test_sim_launch_starts_what_the_inprocess_bringup_starts(fake_launch, tmp_path):
    replay = tmp_path / "events.yaml"
    replay.write_text("{}")
    launched = _run_launch_file(
        "sim.launch.py",
        {"policy": "replay", "replay_file": str(replay), "task": "stack", "seed": "4"},
    )
    specs = sim_bringup(
        CONFIG, PolicyChoice("replay", replay_file=str(replay)), task="stack", seed=4
    )
    assert [(n["package"], n["executable"], n["name"]) for n in launched] == [
        (s.package, s.executable, s.name) for s in specs
    ]
    for node, spec in zip(launched, specs, strict=True):
        assert _as_launched(node) == resolved_parameters(spec), spec.name
    parameters = {s.name: resolved_parameters(s) for s in specs}
    # the simulation is the clock source; the others follow /clock
    assert parameters["policy_node"]["use_sim_time"] is True
    assert parameters["controller_node"]["use_sim_time"] is True
    assert "use_sim_time" not in parameters["sim_node"]
    assert parameters["sim_node"]["task"] == "stack" and parameters["sim_node"]["seed"] == 4
    assert parameters["policy_node"]["camera_names"] == ["front", "overhead", "wrist"]
    assert parameters["policy_node"]["camera_parent_frames"] == ["", "", "hand"]
    # the node files' own defaults are kept where the robot file says nothing
    assert parameters["policy_node"]["goal_conflict"] == "reject"
    assert parameters["controller_node"]["trajectory_lead"] == 0.05


def test_robot_launch_uses_the_robot_file(fake_launch, tmp_path):
    robot = (
        (CONFIG / "robots" / "sim_arm.yaml")
        .read_text()
        .replace("output: forward_position", "output: joint_trajectory")
    )
    robot = robot.replace(
        "python://wallwm_core/configs/",
        str(Path(__file__).resolve().parents[1] / "wallwm_core" / "configs") + "/",
    )
    (tmp_path / "arm.yaml").write_text(robot)
    launched = _run_launch_file(
        "robot.launch.py",
        {"robot_config": str(tmp_path / "arm.yaml"), "checkpoint": str(tmp_path)},
    )
    specs = robot_bringup(
        CONFIG, PolicyChoice("wallwm", checkpoint=str(tmp_path)), tmp_path / "arm.yaml"
    )
    assert [n["name"] for n in launched] == ["policy_node", "controller_node"]
    for node, spec in zip(launched, specs, strict=True):
        assert _as_launched(node) == resolved_parameters(spec)
    controller = resolved_parameters(specs[1])
    assert controller["output"] == "joint_trajectory" and controller["use_sim_time"] is False
    assert resolved_parameters(specs[0])["checkpoint"] == str(tmp_path)


def test_robot_launch_without_a_robot_file_says_so(fake_launch):
    with pytest.raises(ConfigError, match="robot_config"):
        _run_launch_file("robot.launch.py", {})


@pytest.mark.parametrize("launch_file", ["sim.launch.py", "robot.launch.py"])
def test_a_node_that_exits_stops_the_launch(fake_launch, tmp_path, launch_file):
    """With task:=no_such_task the sim node exited and the other nodes kept running."""
    replay = tmp_path / "events.yaml"
    replay.write_text("{}")
    overrides = {"policy": "replay", "replay_file": str(replay)}
    if launch_file == "robot.launch.py":
        overrides["robot_config"] = str(CONFIG / "robots" / "sim_arm.yaml")
    entities = _launch_entities(launch_file, overrides)
    nodes = [e for e in entities if isinstance(e, _Node)]
    handlers = [e.args[0] for e in entities if not isinstance(e, _Node)]
    assert len(nodes) >= 2 and len(handlers) == len(nodes)
    for node, handler in zip(nodes, handlers, strict=True):
        assert handler.kwargs["target_action"] is node  # an OnProcessExit per node
        exited = types.SimpleNamespace(process_name=f"{node.kwargs['name']}-1", returncode=2)
        (action,) = handler.kwargs["on_exit"](exited, None)
        assert isinstance(action, _Shutdown)
        assert action.reason == f"{node.kwargs['name']}-1 exited with code 2"


@pytest.mark.parametrize(
    ("launch_file", "overrides", "message"),
    [
        ("sim.launch.py", {"real_time": "ture"}, "'real_time' must be true or false, got 'ture'"),
        ("sim.launch.py", {"lockstep": "yes"}, "'lockstep' must be true or false"),
        ("sim.launch.py", {"seed": "abc"}, "'seed' must be an integer, got 'abc'"),
        ("sim.launch.py", {"task": "pick_plce"}, "did you mean 'pick_place'"),
        ("sim.launch.py", {"robot_config": "/no/such/robot.yaml"}, "'robot_config': no robot"),
        (
            "robot.launch.py",
            {"use_sim_time": "ture", "robot_config": str(CONFIG / "robots" / "sim_arm.yaml")},
            "'use_sim_time' must be true or false",
        ),
        ("robot.launch.py", {"robot_config": "/no/such/robot.yaml"}, "'robot_config': no robot"),
    ],
)
def test_launch_arguments_are_checked_with_clear_errors(
    fake_launch, monkeypatch, launch_file, overrides, message
):
    """``ture`` read as false, ``seed:=abc`` said only "invalid literal for int()", and a
    missing robot file was hidden by the default policy's "no checkpoint is shipped" error."""

    def no_checkpoint() -> str:
        raise ConfigError("no WALL-WM checkpoint is shipped")

    monkeypatch.setattr("wallwm_ros.bringup.default_checkpoint", no_checkpoint)
    with pytest.raises(ConfigError, match=re.escape(message)):
        _run_launch_file(launch_file, {**overrides, "policy": "wallwm", "checkpoint": ""})


def test_a_node_process_that_exits_at_start_is_named(ros_context, tmp_path):
    """A node the bringup runs in a child process (the main job's policy node) and that exits
    while starting (here: no checkpoint at the path) fails the bringup with its exit code."""
    from wallwm_ros.bringup import PolicyChoice, sim_bringup
    from wallwm_ros.closed_loop.inprocess_bringup import InProcessBringup

    missing = PolicyChoice("wallwm", checkpoint=str(tmp_path / "no_checkpoint"))
    (policy_spec,) = [s for s in sim_bringup(CONFIG, missing) if s.name == "policy_node"]
    with pytest.raises(ConfigError, match="the policy_node process exited with code 2 while"):
        InProcessBringup([policy_spec], context=ros_context, processes=("policy_node",))


PARENT_SCRIPT = """
import sys, time, rclpy
from pathlib import Path
from wallwm_ros.bringup import PolicyChoice, sim_bringup
from wallwm_ros.closed_loop.inprocess_bringup import InProcessBringup

rclpy.init()
choice = PolicyChoice("replay", replay_file=sys.argv[2])
(spec,) = [s for s in sim_bringup(Path(sys.argv[1]), choice) if s.name == "policy_node"]
bringup = InProcessBringup([spec], processes=("policy_node",))
print(bringup.processes["policy_node"].pid, flush=True)
time.sleep(600)
"""


def test_a_node_process_ends_when_its_parent_is_killed(replay_file):
    """SIGKILL on the main job must not leave its policy node process running."""
    import os
    import subprocess

    from conftest import child_env, wait_for

    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(CONFIG), str(replay_file)],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        child = int(parent.stdout.readline())  # printed once the node serves
        os.kill(child, 0)  # it runs
    finally:
        parent.kill()
        parent.wait()

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        # a zombie (exited, not yet reaped by init) counts as gone
        with open(f"/proc/{child}/stat") as stat:
            return stat.read().split(") ")[1].startswith("Z")

    assert wait_for(gone, timeout_s=20.0)

"""Launch files and the in-process bringup start the same nodes with the same parameters.

launch/launch_ros are not installable here, so the launch files run against small stand-ins
that record what they are asked to start; on a ROS install they run under ``ros2 launch``.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

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
        "launch_ros": types.ModuleType("launch_ros"),
        "launch_ros.actions": types.ModuleType("launch_ros.actions"),
    }
    modules["launch"].LaunchDescription = lambda entities: list(entities)
    modules["launch.actions"].DeclareLaunchArgument = _Recorder
    modules["launch.actions"].OpaqueFunction = _Recorder
    modules["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    modules["launch_ros.actions"].Node = _Recorder
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(
        "ament_index_python.packages.get_package_share_directory", lambda _: str(BRINGUP)
    )


def _run_launch_file(name: str, overrides: dict[str, str]) -> list[dict]:
    spec = importlib.util.spec_from_file_location(name, BRINGUP / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = module.generate_launch_description()
    arguments = {e.args[0]: e.kwargs["default_value"] for e in entities if e.args}
    opaque = [e for e in entities if "function" in e.kwargs]
    assert len(opaque) == 1
    context = {**arguments, **overrides}
    return [node.kwargs for node in opaque[0].kwargs["function"](context)]


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
    with pytest.raises(RuntimeError, match="robot_config"):
        _run_launch_file("robot.launch.py", {})

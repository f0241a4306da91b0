"""declare_config: ROS parameters <-> a config dataclass, with conversions and named errors."""

from __future__ import annotations

import dataclasses

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from wallwm_core.config_loading import ConfigError
from wallwm_ros.parameters import declare_config


@dataclasses.dataclass(frozen=True)
class Example:
    rate: float = 10.0
    count: int = 2
    name: str = "x"
    enabled: bool = True
    topics: tuple[str, ...] = ()
    gains: tuple[float, ...] = (1.0, 2.0)


DESCRIPTIONS = {f.name: f"the {f.name}" for f in dataclasses.fields(Example)}


def _declare(ros_context, **overrides) -> Example:
    node = Node(
        "example",
        context=ros_context,
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
    )
    try:
        return declare_config(node, Example, DESCRIPTIONS)
    finally:
        node.destroy_node()


def test_defaults_and_conversions(ros_context):
    assert _declare(ros_context) == Example()
    config = _declare(ros_context, rate=500, topics=["a", "b"], gains=[3, 4])
    assert config.rate == 500.0 and isinstance(config.rate, float)
    assert config.topics == ("a", "b") and config.gains == (3.0, 4.0)
    assert _declare(ros_context, gains=[]).gains == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [("rate", "fast"), ("count", 2.5), ("count", True), ("name", 3), ("topics", [1, 2])],
)
def test_wrong_types_are_named(ros_context, name, value):
    with pytest.raises(ConfigError, match=f"parameter '{name}'"):
        _declare(ros_context, **{name: value})


def test_every_field_needs_a_description(ros_context):
    node = Node("example", context=ros_context)
    with pytest.raises(TypeError, match="rate"):
        declare_config(node, Example, {})
    node.destroy_node()

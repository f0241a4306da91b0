"""Declare a node's parameters from a config dataclass, with descriptors, and read them back.

Each field of the (frozen) dataclass becomes one ROS parameter of the matching type, described by
``descriptions[name]``; the values (defaults, overrides from a params file or the command line)
build the dataclass, whose own validation then runs. Any problem raises ConfigError naming the
parameter, so a node with bad parameters fails at start-up with a message saying which one.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from wallwm_core.config_loading import ConfigError

ConfigT = TypeVar("ConfigT")

_SCALAR_TYPES = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
}
_ARRAY_TYPES = {
    bool: Parameter.Type.BOOL_ARRAY,
    int: Parameter.Type.INTEGER_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY,
    str: Parameter.Type.STRING_ARRAY,
}


def _parameter_type(annotation: Any) -> tuple[Parameter.Type, bool]:
    """The ROS parameter type of a field annotation, and whether it is an array (tuple)."""
    if annotation in _SCALAR_TYPES:
        return _SCALAR_TYPES[annotation], False
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in _ARRAY_TYPES:
            return _ARRAY_TYPES[args[0]], True
    raise TypeError(f"no ROS parameter type for {annotation!r}")


def declare_config(
    node: Node, config_type: type[ConfigT], descriptions: Mapping[str, str]
) -> ConfigT:
    """Declare one parameter per field of ``config_type`` and build the config from them."""
    hints = typing.get_type_hints(config_type)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config_type):
        if field.name not in descriptions:
            raise TypeError(f"{config_type.__name__}.{field.name} has no parameter description")
        ros_type, is_array = _parameter_type(hints[field.name])
        default = (
            field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        )
        descriptor = ParameterDescriptor(description=descriptions[field.name])
        try:
            if is_array and len(default) == 0:
                # An empty list would be declared as a byte array: declare the type instead.
                value = node.declare_parameter(field.name, ros_type, descriptor).value
            else:
                value = node.declare_parameter(
                    field.name, list(default) if is_array else default, descriptor
                ).value
        except Exception as error:  # rclpy raises several types for overrides of the wrong type
            raise ConfigError(f"parameter '{field.name}': {error}") from error
        if is_array:
            value = tuple(value) if value is not None else ()
        elif ros_type == Parameter.Type.DOUBLE and isinstance(value, int):
            value = float(value)
        values[field.name] = value
    try:
        return config_type(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from error

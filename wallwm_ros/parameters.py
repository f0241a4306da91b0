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


_PYTHON_TYPES = {
    Parameter.Type.BOOL: (bool,),
    Parameter.Type.INTEGER: (int,),
    Parameter.Type.DOUBLE: (float, int),
    Parameter.Type.STRING: (str,),
    Parameter.Type.BOOL_ARRAY: (bool,),
    Parameter.Type.INTEGER_ARRAY: (int,),
    Parameter.Type.DOUBLE_ARRAY: (float, int),
    Parameter.Type.STRING_ARRAY: (str,),
}


def _checked(name: str, value: Any, ros_type: Parameter.Type, is_array: bool) -> Any:
    """``value`` converted to the field's type (ints to floats), or ConfigError naming ``name``."""
    allowed = _PYTHON_TYPES[ros_type]

    def ok(item: Any) -> bool:  # bool is an int in Python, but not a valid int/double here
        return isinstance(item, allowed) and (bool in allowed or not isinstance(item, bool))

    def convert(item: Any) -> Any:
        return float(item) if float in allowed else item

    expected = ros_type.name.lower().replace("_", " ")
    if is_array:
        if value is None or (hasattr(value, "__len__") and len(value) == 0):
            return ()
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"parameter '{name}' must be a {expected}, got {value!r}")
        items = list(value)
        if not all(ok(item) for item in items):
            raise ConfigError(f"parameter '{name}' must be a {expected}, got {items!r}")
        return tuple(convert(item) for item in items)
    if not ok(value):
        raise ConfigError(f"parameter '{name}' must be a {expected}, got {value!r}")
    return convert(value)


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
        # Dynamic typing so that 500 for a double, or [] for a list, is not refused by rclpy
        # with an unhelpful message: the value is checked and converted below.
        descriptor = ParameterDescriptor(description=descriptions[field.name], dynamic_typing=True)
        try:
            value = node.declare_parameter(
                field.name, list(default) if is_array else default, descriptor
            ).value
        except Exception as error:  # rclpy raises several types for malformed overrides
            raise ConfigError(f"parameter '{field.name}': {error}") from error
        values[field.name] = _checked(field.name, value, ros_type, is_array)
    try:
        return config_type(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from error

"""The one ``main()`` body every wallwm node shares: init, spin, exit 2 on bad parameters."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from wallwm_core.config_loading import ConfigError


def spin_node(make_node: Callable[[], Node], name: str, args: list[str] | None = None) -> int:
    """Run one node until Ctrl-C; 2 (with the reason) when its configuration is invalid.

    A single-threaded executor: rclpy's multi-threaded one busy-waits on the interpreter lock
    under high-rate topics (see README, "The controller node").
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except ConfigError as error:
        print(f"{name}: invalid configuration: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0

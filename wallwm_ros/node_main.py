"""The one ``main()`` body every wallwm node shares: init, spin, stop on a signal, exit 2 on bad
parameters."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from wallwm_core.config_loading import ConfigError

# How often the spin loop checks for a stop request (seconds); bounds the reaction to Ctrl-C.
STOP_POLL_S = 0.1
# How long a stopping node may take to end its work and tell its clients; a second signal cuts it
# short. With the teardown after it, a node stops within 2 s of a signal.
DRAIN_TIMEOUT_S = 1.5
# Executor turns after the work has ended, so that its last result reaches the client (at most
# FLUSH_SPINS * 0.05 s when there is nothing left to send).
FLUSH_SPINS = 5


@runtime_checkable
class GracefulShutdown(Protocol):
    """A node with work in flight (e.g. a running goal) to end before it is destroyed."""

    def begin_shutdown(self) -> None: ...

    @property
    def shutdown_ready(self) -> bool: ...


def drain(
    node: Node,
    executor: SingleThreadedExecutor,
    timeout_s: float = DRAIN_TIMEOUT_S,
    hurry: Callable[[], bool] = lambda: False,
) -> None:
    """Let ``node`` end its work while the executor still spins (results reach the clients);
    stop waiting after ``timeout_s`` or once ``hurry()`` says so (a repeated signal)."""
    if not isinstance(node, GracefulShutdown) or not rclpy.ok():
        return
    node.begin_shutdown()
    deadline = time.monotonic() + timeout_s
    while not node.shutdown_ready and time.monotonic() < deadline and rclpy.ok() and not hurry():
        executor.spin_once(timeout_sec=0.05)
    # The last result or status goes out: ending a goal takes several executor turns (the execute
    # callback returns, the result future resolves, the client's pending result request is
    # answered), and on a loaded machine one turn was not always enough.
    for _ in range(FLUSH_SPINS):
        executor.spin_once(timeout_sec=0.05)


def spin_node(make_node: Callable[[], Node], name: str, args: list[str] | None = None) -> int:
    """Run one node until SIGINT/SIGTERM; 2 (with the reason) when its configuration is invalid.

    On a signal, a :class:`GracefulShutdown` node first ends its work (see :func:`drain`); a
    second signal cuts that short.

    A single-threaded executor: rclpy's multi-threaded one busy-waits on the interpreter lock
    under high-rate topics (see docs/ros.md). The signals only set a flag that the spin loop
    checks: a KeyboardInterrupt raised inside rclpy's message conversion would otherwise surface
    as a RuntimeError traceback at shutdown. ``ros2 launch`` re-sends SIGINT (and then SIGTERM)
    to a node that is stopping: during the teardown the handlers stay installed, and after it
    both signals are ignored (Python resets its own handlers to the default, fatal action while
    the interpreter finalises). Meant for a node process's ``main()``.
    """
    stop = threading.Event()
    signals_received = [0]

    def on_signal(*_: object) -> None:
        signals_received[0] += 1
        stop.set()

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    node = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=STOP_POLL_S)
        drain(node, executor, hurry=lambda: signals_received[0] > 1)
    except ConfigError as error:
        print(f"{name}: invalid configuration: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # stopped already: a late signal changes nothing
    return 0

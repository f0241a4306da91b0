"""Spin an executor in a background thread, and stop it in the order rclpy needs."""

from __future__ import annotations

import collections
import logging
import threading
import time

from rclpy.exceptions import InvalidHandle
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node

_LOG = logging.getLogger(__name__)
# This many entities found destroyed within a second is a handle that stays invalid, not a race.
STALE_HANDLES_IN_A_ROW = 20


class BackgroundSpinner:
    """Spins ``executor`` in a daemon thread; ``close()`` stops it, then destroys the nodes.

    The order matters: destroying a node while the spinning thread still uses it aborts the
    process inside rclpy ("terminate called without an active exception").
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.nodes: list[Node] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        recent: collections.deque[float] = collections.deque(maxlen=STALE_HANDLES_IN_A_ROW)
        while True:
            try:
                self.executor.spin()
                return
            except ExternalShutdownException:  # Ctrl-C / SIGTERM: the main thread notices
                return
            except Exception as error:
                if self._closing.is_set():
                    # rclpy's Executor.shutdown() destroys the executor's guard condition while
                    # this thread may be between its shutdown check and building a handler; the
                    # handler then fails on the destroyed guard (AttributeError: 'NoneType' ...
                    # 'trigger'). Seen under load; the executor is stopping anyway.
                    _LOG.debug("executor stopped while closing: %r", error)
                    return
                if not isinstance(error, InvalidHandle):
                    raise
                # rclpy's executor lists each node's waitables (a subscription's QoS event
                # handlers, action clients) and then adds each to its wait set; one destroyed in
                # between (rclpy frees it before it leaves the node) raises here, and killed this
                # thread (a client's goal then never got its answer). The next turn lists afresh.
                # A handle that stays invalid is no such race: it ends the thread as before.
                recent.append(time.monotonic())
                if len(recent) == recent.maxlen and recent[-1] - recent[0] < 1.0:
                    raise
                _LOG.warning("an entity was destroyed under the executor (%s): next turn", error)
                time.sleep(0.01)

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def close(self) -> None:
        self._closing.set()
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        for node in self.nodes:
            node.destroy_node()

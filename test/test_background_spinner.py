"""BackgroundSpinner over real rclpy: it survives an entity destroyed under its executor, and\ncloses quietly through rclpy's shutdown race."""

from __future__ import annotations

import threading

from conftest import wait_for
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.waitable import NumberOfEntities, Waitable
from std_msgs.msg import String

from wallwm_ros.background_spinner import BackgroundSpinner


class _DestroyedUnderTheExecutor(Waitable):
    """A waitable whose handle is gone when the executor adds it to its wait set, as a
    subscription's QoS event handler is when the subscription is destroyed in between."""

    def __init__(self) -> None:
        super().__init__(MutuallyExclusiveCallbackGroup())
        self.raised = 0

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc) -> None:
        return None

    def get_num_entities(self) -> NumberOfEntities:
        return NumberOfEntities()

    def add_to_wait_set(self, wait_set) -> None:
        if not self.raised:
            self.raised += 1
            raise InvalidHandle("cannot use Destroyable because destruction was requested")

    def is_ready(self, wait_set) -> bool:
        return False

    def take_data(self):
        return None

    async def execute(self, taken_data) -> None:
        return None


def test_the_spinner_survives_an_entity_destroyed_under_its_executor(ros_context, namespace):
    spinner = BackgroundSpinner(SingleThreadedExecutor(context=ros_context))
    try:
        node = spinner.add(Node("spun", namespace=namespace, context=ros_context))
        received: list[str] = []
        node.create_subscription(String, "chatter", lambda m: received.append(m.data), 10)
        destroyed = _DestroyedUnderTheExecutor()
        node.add_waitable(destroyed)
        assert wait_for(lambda: destroyed.raised == 1)
        publisher = node.create_publisher(String, "chatter", 10)
        assert wait_for(lambda: publisher.get_subscription_count() == 1)
        publisher.publish(String(data="still spinning"))
        assert wait_for(lambda: received == ["still spinning"])  # the spinning thread lives
    finally:
        spinner.close()


class _ShutDownWhileBuildingAHandler(SingleThreadedExecutor):
    """Lets ``shutdown()`` run between the executor's shutdown check and building the next
    handler, the window in which rclpy's handler meets the destroyed guard condition."""

    def __init__(self, *, context) -> None:
        super().__init__(context=context)
        self.armed = threading.Event()
        self.building = threading.Event()
        self.shut_down = threading.Event()
        self.handlers_after_shutdown = 0

    def _make_handler(self, entity, node, take_from_wait_list):
        if self.armed.is_set() and not self.shut_down.is_set():
            self.building.set()
            self.shut_down.wait(timeout=10.0)
            self.handlers_after_shutdown += 1
        return super()._make_handler(entity, node, take_from_wait_list)

    def shutdown(self, timeout_sec=None) -> bool:
        done = super().shutdown(timeout_sec)
        self.shut_down.set()
        return done


def test_closing_during_the_executors_shutdown_race_is_not_an_error(ros_context, namespace):
    thread_errors: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: thread_errors.append(args.exc_value)
    try:
        executor = _ShutDownWhileBuildingAHandler(context=ros_context)
        spinner = BackgroundSpinner(executor)
        node = spinner.add(Node("closing", namespace=namespace, context=ros_context))
        node.create_subscription(String, "chatter", lambda m: None, 10)
        publisher = node.create_publisher(String, "chatter", 10)
        assert wait_for(lambda: publisher.get_subscription_count() == 1)
        executor.armed.set()
        publisher.publish(String(data="arrives as the spinner closes"))
        assert wait_for(executor.building.is_set)
        spinner.close()
        assert not spinner._thread.is_alive()
    finally:
        threading.excepthook = previous_hook
    assert executor.handlers_after_shutdown == 1  # the race was reproduced
    assert thread_errors == []

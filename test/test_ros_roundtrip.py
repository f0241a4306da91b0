"""Real rclpy + DDS round trips of the wallwm_msgs interfaces in one process."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import wait_for
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node

from wallwm_core.action_chunk import ActionChunk
from wallwm_msgs.action import ExecuteEvent
from wallwm_msgs.msg import ActionChunk as ActionChunkMsg
from wallwm_ros import qos
from wallwm_ros.conversions import chunk_from_msg, chunk_to_msg, duration_to_ns, ns_to_duration
from wallwm_ros.send_goal import SpinSafeActionClient


def _random_chunk(rng: np.random.Generator) -> ActionChunk:
    steps, arms = 7, 2
    quaternions = rng.normal(size=(steps, arms, 4))
    quaternions /= np.linalg.norm(quaternions, axis=-1, keepdims=True)
    return ActionChunk(
        stamp_ns=1_700_000_000_123_456_789,
        step_period_ns=50_000_000,
        frame_id="base_link",
        arm_names=("left", "right"),
        ee_frames=("left_tool0", "right_tool0"),
        positions=rng.uniform(-1, 1, size=(steps, arms, 3)),
        quaternions=quaternions,
        gripper=rng.uniform(0, 1, size=(steps, arms)),
        event_id=42,
        event_instruction="press the red button",
        chunk_index=3,
        ends_event=True,
    )


class _EventServer:
    """A plain ExecuteEvent server: feedback ``steps`` times, then a result; honours cancel."""

    def __init__(self, node: Node, steps: int, period_s: float) -> None:
        self.steps = steps
        self.period_s = period_s
        self.received: list[ExecuteEvent.Goal] = []
        self.server = ActionServer(
            node,
            ExecuteEvent,
            "execute_event",
            execute_callback=self.execute,
            goal_callback=lambda goal: GoalResponse.ACCEPT,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )

    def execute(self, handle):
        self.received.append(handle.request)
        for i in range(self.steps):
            if handle.is_cancel_requested:
                handle.canceled()
                return ExecuteEvent.Result(
                    outcome=ExecuteEvent.Result.CANCELED, message="canceled", chunks_executed=i
                )
            handle.publish_feedback(
                ExecuteEvent.Feedback(
                    event_id=7, progress=(i + 1) / self.steps, chunks_executed=i + 1
                )
            )
            time.sleep(self.period_s)
        handle.succeed()
        return ExecuteEvent.Result(
            outcome=ExecuteEvent.Result.SUCCEEDED,
            message="done",
            duration=ns_to_duration(123_000_000),
            chunks_executed=self.steps,
        )


def _send(
    client: ActionClient,
    goal: ExecuteEvent.Goal,
    feedback: list,
    cancel_after_feedback: int | None = None,
):
    assert client.wait_for_server(timeout_sec=10.0)
    accepted = threading.Event()
    goal_future = client.send_goal_async(
        goal, feedback_callback=lambda m: feedback.append(m.feedback)
    )
    goal_future.add_done_callback(lambda _: accepted.set())
    assert accepted.wait(10.0)
    handle = goal_future.result()
    assert handle.accepted
    if cancel_after_feedback is not None:
        assert wait_for(lambda: len(feedback) >= cancel_after_feedback)
        cancel_done = threading.Event()
        handle.cancel_goal_async().add_done_callback(lambda _: cancel_done.set())
        assert cancel_done.wait(10.0)
    result_future = handle.get_result_async()
    assert wait_for(result_future.done, timeout_s=20.0)
    return result_future.result()


def test_execute_event_goal_feedback_result(ros_context, spinner, namespace) -> None:
    server_node = spinner.add(Node("event_server", namespace=namespace, context=ros_context))
    client_node = spinner.add(Node("event_client", namespace=namespace, context=ros_context))
    server = _EventServer(server_node, steps=3, period_s=0.02)
    client = SpinSafeActionClient(client_node, ExecuteEvent, "execute_event")
    feedback: list = []
    goal = ExecuteEvent.Goal(
        instruction="press the red button",
        timeout=ns_to_duration(5_500_000_000),
        max_duration=ns_to_duration(2_000_000_000),
    )
    response = _send(client, goal, feedback)

    assert server.received[0].instruction == "press the red button"
    assert duration_to_ns(server.received[0].timeout) == 5_500_000_000
    assert duration_to_ns(server.received[0].max_duration) == 2_000_000_000
    assert [f.chunks_executed for f in feedback] == [1, 2, 3]
    assert feedback[-1].progress == 1.0
    assert response.result.outcome == ExecuteEvent.Result.SUCCEEDED
    assert response.result.message == "done"
    assert duration_to_ns(response.result.duration) == 123_000_000


@pytest.fixture
def threaded_spinner(ros_context):
    """This toy server blocks in its execute callback, so it needs a multi-threaded executor."""
    from rclpy.executors import MultiThreadedExecutor

    from wallwm_ros.background_spinner import BackgroundSpinner

    spinner = BackgroundSpinner(MultiThreadedExecutor(num_threads=3, context=ros_context))
    yield spinner
    spinner.close()


def test_execute_event_cancel(ros_context, threaded_spinner, namespace) -> None:
    spinner = threaded_spinner
    server_node = spinner.add(Node("event_server", namespace=namespace, context=ros_context))
    client_node = spinner.add(Node("event_client", namespace=namespace, context=ros_context))
    _EventServer(server_node, steps=1000, period_s=0.01)
    client = SpinSafeActionClient(client_node, ExecuteEvent, "execute_event")
    feedback: list = []
    response = _send(
        client, ExecuteEvent.Goal(instruction="wipe"), feedback, cancel_after_feedback=2
    )

    assert response.result.outcome == ExecuteEvent.Result.CANCELED
    assert 2 <= response.result.chunks_executed < 1000


def test_action_chunk_pub_sub_fields_intact(ros_context, spinner, namespace) -> None:
    publisher_node = spinner.add(Node("chunk_pub", namespace=namespace, context=ros_context))
    subscriber_node = spinner.add(Node("chunk_sub", namespace=namespace, context=ros_context))
    received: list[ActionChunkMsg] = []
    subscriber_node.create_subscription(
        ActionChunkMsg, "action_chunk", received.append, qos.COMMANDS
    )
    publisher = publisher_node.create_publisher(ActionChunkMsg, "action_chunk", qos.COMMANDS)
    sent = _random_chunk(np.random.default_rng(0))

    assert wait_for(lambda: publisher.get_subscription_count() > 0)
    publisher.publish(chunk_to_msg(sent))
    assert wait_for(lambda: len(received) == 1)

    got = chunk_from_msg(received[0])
    assert got.stamp_ns == sent.stamp_ns
    assert got.step_period_ns == sent.step_period_ns
    assert (got.frame_id, got.arm_names, got.ee_frames) == (
        sent.frame_id,
        sent.arm_names,
        sent.ee_frames,
    )
    np.testing.assert_array_equal(got.positions, sent.positions)
    np.testing.assert_array_equal(got.quaternions, sent.quaternions)
    np.testing.assert_array_equal(got.gripper, sent.gripper)
    assert (got.event_id, got.event_instruction, got.chunk_index, got.ends_event) == (
        42,
        "press the red button",
        3,
        True,
    )


class _EagerNode(Node):
    """Asks a waitable for its entities the moment it is added, as an executor spinning in
    another thread may do."""

    def add_waitable(self, waitable) -> None:
        super().add_waitable(waitable)
        waitable.get_num_entities()


def test_action_client_can_be_created_while_its_node_spins(ros_context, namespace) -> None:
    node = _EagerNode("eager", namespace=namespace, context=ros_context)
    try:
        with pytest.raises(AttributeError, match="_lock"):  # the rclpy race this guards against
            ActionClient(node, ExecuteEvent, "execute_event")
        client = SpinSafeActionClient(node, ExecuteEvent, "execute_event")
        assert client.get_num_entities() is not None
        client.destroy()
    finally:
        node.destroy_node()


def _wait_set_for(client: ActionClient, context) -> _rclpy.WaitSet:
    counts = client.get_num_entities()
    return _rclpy.WaitSet(
        counts.num_subscriptions,
        counts.num_guard_conditions,
        counts.num_timers,
        counts.num_clients,
        counts.num_services,
        0,
        context.handle,
    )


def test_action_client_can_be_destroyed_while_its_node_spins(ros_context, namespace) -> None:
    """The executor lists a node's waitables, skips entering a freed one but keeps it, then adds
    each to its wait set: an ActionClient destroyed in between killed the spinning thread."""
    node = Node("destroyer", namespace=namespace, context=ros_context)
    try:
        plain = ActionClient(node, ExecuteEvent, "execute_event")
        wait_set = _wait_set_for(plain, ros_context)
        plain.destroy()
        with pytest.raises(_rclpy.RCLError, match="action client pointer is invalid"):
            # the rclpy race this guards against (this line fails once rclpy fixes it upstream)
            plain.add_to_wait_set(wait_set)

        client = SpinSafeActionClient(node, ExecuteEvent, "execute_event")
        wait_set = _wait_set_for(client, ros_context)
        client.destroy()
        client.add_to_wait_set(wait_set)
        assert not client.is_ready(wait_set)
    finally:
        node.destroy_node()

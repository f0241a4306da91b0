"""Send an ExecuteEvent goal and print its feedback and result (``ros2 action send_goal``-like).

    send_goal "press the red button" [--timeout S] [--max-duration S] [--cancel-after S]

Exit status: 0 when the event succeeded, 1 for any other outcome, 3 when no server answered.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from collections.abc import Callable

import rclpy
from rclpy.action import ActionClient
from rclpy.node import Node

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.outcome import Outcome
from wallwm_msgs.action import ExecuteEvent
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.conversions import duration_to_ns, ns_to_duration

# A running goal whose server is gone this long has no result coming.
SERVER_LOST_S = 3.0


class NoServerError(RuntimeError):
    """No action server answered in time."""


@dataclasses.dataclass(frozen=True)
class EventResult:
    accepted: bool
    outcome: Outcome | None
    message: str
    duration_s: float
    chunks_executed: int


def format_feedback(feedback: ExecuteEvent.Feedback) -> str:
    return (
        f"event {feedback.event_id}: progress {feedback.progress:5.1%}, "
        f"remaining {duration_to_ns(feedback.predicted_remaining) / NS_PER_S:6.2f} s, "
        f"chunks {feedback.chunks_executed}, "
        f"inference {duration_to_ns(feedback.last_inference_latency) / 1e6:.1f} ms"
    )


def execute_event(
    node: Node,
    instruction: str,
    *,
    timeout_s: float = 0.0,
    max_duration_s: float = 0.0,
    cancel_after_s: float | None = None,
    server_wait_s: float = 10.0,
    on_feedback: Callable[[ExecuteEvent.Feedback], None] | None = None,
    action_name: str = "execute_event",
) -> EventResult:
    """Send one goal and block until its result. ``node`` must be spun by another thread."""
    client = ActionClient(node, ExecuteEvent, action_name)
    try:
        if not client.wait_for_server(timeout_sec=server_wait_s):
            raise NoServerError(
                f"no ExecuteEvent server on '{action_name}' after {server_wait_s} s"
            )
        goal = ExecuteEvent.Goal(
            instruction=instruction,
            timeout=ns_to_duration(round(timeout_s * NS_PER_S)),
            max_duration=ns_to_duration(round(max_duration_s * NS_PER_S)),
        )
        done = threading.Event()
        goal_future = client.send_goal_async(
            goal, feedback_callback=(lambda m: on_feedback(m.feedback)) if on_feedback else None
        )
        goal_future.add_done_callback(lambda _: done.set())
        if not done.wait(server_wait_s):
            raise NoServerError("the server did not answer the goal request")
        handle = goal_future.result()
        if not handle.accepted:
            return EventResult(False, None, "goal rejected", 0.0, 0)
        result_future = handle.get_result_async()
        finished = threading.Event()
        result_future.add_done_callback(lambda _: finished.set())
        if cancel_after_s is not None and not finished.wait(cancel_after_s):
            handle.cancel_goal_async()
        server_last_seen = time.monotonic()
        while not finished.wait(0.1):
            if not node.context.ok():
                raise NoServerError("ROS shut down before the result arrived")
            if client.server_is_ready():
                server_last_seen = time.monotonic()
            elif time.monotonic() - server_last_seen > SERVER_LOST_S:
                raise NoServerError(
                    f"the ExecuteEvent server on '{action_name}' went away before the result"
                )
        result = result_future.result().result
        return EventResult(
            accepted=True,
            outcome=Outcome(result.outcome),
            message=result.message,
            duration_s=duration_to_ns(result.duration) / NS_PER_S,
            chunks_executed=result.chunks_executed,
        )
    finally:
        client.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("instruction", help="the next-event instruction")
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="goal time limit, s (0 = node default)"
    )
    parser.add_argument("--max-duration", type=float, default=0.0, help="event duration cap, s")
    parser.add_argument("--cancel-after", type=float, default=None, help="cancel after this many s")
    parser.add_argument("--action", default="execute_event", help="action name (relative)")
    parser.add_argument(
        "--server-wait", type=float, default=10.0, help="seconds to wait for the action server"
    )
    args, ros_args = parser.parse_known_args(argv)

    rclpy.init(args=ros_args)
    spinner = BackgroundSpinner(rclpy.executors.SingleThreadedExecutor())
    node = spinner.add(rclpy.create_node("send_goal"))
    try:
        result = execute_event(
            node,
            args.instruction,
            timeout_s=args.timeout,
            max_duration_s=args.max_duration,
            cancel_after_s=args.cancel_after,
            on_feedback=lambda f: print(format_feedback(f), flush=True),
            action_name=args.action,
            server_wait_s=args.server_wait,
        )
    except NoServerError as error:
        print(f"send_goal: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    finally:
        spinner.close()
        rclpy.try_shutdown()
    if not result.accepted:
        print("goal rejected")
        return 1
    print(
        f"result: {result.outcome.name} after {result.duration_s:.2f} s, "
        f"{result.chunks_executed} chunks: {result.message}"
    )
    return 0 if result.outcome == Outcome.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())

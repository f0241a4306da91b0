"""Send an ExecuteEvent or ExecuteTask goal, print feedback and result (``ros2 action send_goal``).

    send_goal "press the red button" [--timeout S] [--max-duration S] [--cancel-after S]
    send_goal --task "press the buttons red then blue" [--event "press the red button" ...]

Without ``--event`` a task's events are proposed by the node's planner. Exit status: 0 when the
event (task) succeeded, 1 for any other outcome, 3 when no server answered.
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
from rclpy.exceptions import InvalidHandle
from rclpy.node import Node
from rclpy.utilities import remove_ros_args

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.outcome import Outcome
from wallwm_msgs.action import ExecuteEvent, ExecuteTask
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.conversions import duration_to_ns, ns_to_duration

# A running goal whose server is gone this long has no result coming.
SERVER_LOST_S = 3.0


class NoServerError(RuntimeError):
    """No action server answered in time."""


class SpinSafeActionClient(ActionClient):
    """An ActionClient that may be created while another thread spins its node.

    rclpy's ActionClient adds itself to the node before it creates its lock; an executor spinning
    in another thread can call ``get_num_entities`` in between and dies with an AttributeError
    (seen in CI). Until ``__init__`` sets the instance lock, this class-level one serves.
    """

    _lock = threading.Lock()


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


def _run_goal(
    node: Node,
    action_type: type,
    action_name: str,
    goal: object,
    *,
    cancel_after_s: float | None,
    server_wait_s: float,
    on_feedback: Callable[[object], None] | None,
) -> object | None:
    """Send one goal, block until its result; None when rejected. Spin ``node`` elsewhere."""
    client = SpinSafeActionClient(node, action_type, action_name)
    kind = action_type.__name__
    try:
        if not client.wait_for_server(timeout_sec=server_wait_s):
            raise NoServerError(f"no {kind} server on '{action_name}' after {server_wait_s} s")
        done = threading.Event()
        goal_future = client.send_goal_async(
            goal, feedback_callback=(lambda m: on_feedback(m.feedback)) if on_feedback else None
        )
        goal_future.add_done_callback(lambda _: done.set())
        if not done.wait(server_wait_s):
            raise NoServerError("the server did not answer the goal request")
        handle = goal_future.result()
        if not handle.accepted:
            return None
        result_future = handle.get_result_async()
        finished = threading.Event()
        result_future.add_done_callback(lambda _: finished.set())
        if cancel_after_s is not None and not finished.wait(cancel_after_s):
            handle.cancel_goal_async()
        server_last_seen = time.monotonic()
        while not finished.wait(0.1):
            if not node.context.ok():
                raise NoServerError("ROS shut down before the result arrived")
            try:
                server_ready = client.server_is_ready()
            except InvalidHandle:  # the node was destroyed under this wait
                raise NoServerError("the client node was destroyed before the result") from None
            if server_ready:
                server_last_seen = time.monotonic()
            elif time.monotonic() - server_last_seen > SERVER_LOST_S:
                raise NoServerError(
                    f"the {kind} server on '{action_name}' went away before the result"
                )
        return result_future.result().result
    finally:
        try:
            client.destroy()
        except InvalidHandle:
            pass  # destroyed with its node


def _duration(seconds: float):
    return ns_to_duration(round(seconds * NS_PER_S))


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
    """Send one ExecuteEvent goal and block until its result. Spin ``node`` in another thread."""
    goal = ExecuteEvent.Goal(
        instruction=instruction,
        timeout=_duration(timeout_s),
        max_duration=_duration(max_duration_s),
    )
    result = _run_goal(
        node,
        ExecuteEvent,
        action_name,
        goal,
        cancel_after_s=cancel_after_s,
        server_wait_s=server_wait_s,
        on_feedback=on_feedback,
    )
    if result is None:
        return EventResult(False, None, "goal rejected", 0.0, 0)
    return EventResult(
        accepted=True,
        outcome=Outcome(result.outcome),
        message=result.message,
        duration_s=duration_to_ns(result.duration) / NS_PER_S,
        chunks_executed=result.chunks_executed,
    )


@dataclasses.dataclass(frozen=True)
class TaskResult:
    accepted: bool
    outcome: Outcome | None
    message: str
    duration_s: float
    events: tuple[tuple[str, Outcome, str], ...]  # (instruction, outcome, message) per attempt


def format_task_feedback(feedback: ExecuteTask.Feedback) -> str:
    total = str(feedback.events_total) if feedback.events_total else "?"
    return (
        f"event {feedback.event_index + 1}/{total} {feedback.event_instruction!r}: "
        f"event {feedback.event_progress:5.1%}, task {feedback.progress:5.1%}, "
        f"inference {duration_to_ns(feedback.last_inference_latency) / 1e6:.1f} ms"
    )


def execute_task(
    node: Node,
    task: str,
    events: list[str] | tuple[str, ...] = (),
    *,
    timeout_s: float = 0.0,
    max_event_duration_s: float = 0.0,
    max_events: int = 0,
    cancel_after_s: float | None = None,
    server_wait_s: float = 10.0,
    on_feedback: Callable[[ExecuteTask.Feedback], None] | None = None,
    action_name: str = "execute_task",
) -> TaskResult:
    """Send one ExecuteTask goal (events in order, or none: the planner proposes them)."""
    goal = ExecuteTask.Goal(
        task=task,
        events=list(events),
        timeout=_duration(timeout_s),
        max_event_duration=_duration(max_event_duration_s),
        max_events=max_events,
    )
    result = _run_goal(
        node,
        ExecuteTask,
        action_name,
        goal,
        cancel_after_s=cancel_after_s,
        server_wait_s=server_wait_s,
        on_feedback=on_feedback,
    )
    if result is None:
        return TaskResult(False, None, "goal rejected", 0.0, ())
    return TaskResult(
        accepted=True,
        outcome=Outcome(result.outcome),
        message=result.message,
        duration_s=duration_to_ns(result.duration) / NS_PER_S,
        events=tuple((e.instruction, Outcome(e.outcome), e.message) for e in result.event_outcomes),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("instruction", nargs="?", help="the next-event instruction")
    parser.add_argument("--task", help="send an ExecuteTask goal with this task text instead")
    parser.add_argument(
        "--event", action="append", default=[], help="a task's event, in order (repeatable)"
    )
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="goal time limit, s (0 = node default)"
    )
    parser.add_argument(
        "--max-duration", type=float, default=0.0, help="(per-)event duration cap, s"
    )
    parser.add_argument("--cancel-after", type=float, default=None, help="cancel after this many s")
    parser.add_argument("--action", default=None, help="action name (relative)")
    parser.add_argument(
        "--server-wait", type=float, default=10.0, help="seconds to wait for the action server"
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    # The --ros-args section goes to rclpy only: argparse would take a value such as
    # `-r __ns:=/arm1` for the positional instruction.
    args = parser.parse_args(remove_ros_args(["send_goal", *argv])[1:])
    if (args.instruction is None) == (args.task is None):
        parser.error("give either an instruction or --task")

    rclpy.init(args=["send_goal", *argv])
    spinner = BackgroundSpinner(rclpy.executors.SingleThreadedExecutor())
    node = spinner.add(rclpy.create_node("send_goal"))
    common = {
        "timeout_s": args.timeout,
        "cancel_after_s": args.cancel_after,
        "server_wait_s": args.server_wait,
    }
    try:
        if args.task is not None:
            result = execute_task(
                node,
                args.task,
                args.event,
                max_event_duration_s=args.max_duration,
                on_feedback=lambda f: print(format_task_feedback(f), flush=True),
                action_name=args.action or "execute_task",
                **common,
            )
        else:
            result = execute_event(
                node,
                args.instruction,
                max_duration_s=args.max_duration,
                on_feedback=lambda f: print(format_feedback(f), flush=True),
                action_name=args.action or "execute_event",
                **common,
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
    if isinstance(result, TaskResult):
        for index, (instruction, outcome, message) in enumerate(result.events):
            print(f"  event {index + 1} {instruction!r}: {outcome.name} ({message})")
        print(f"result: {result.outcome.name} after {result.duration_s:.2f} s: {result.message}")
    else:
        print(
            f"result: {result.outcome.name} after {result.duration_s:.2f} s, "
            f"{result.chunks_executed} chunks: {result.message}"
        )
    return 0 if result.outcome == Outcome.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())

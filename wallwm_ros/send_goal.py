"""Send an ExecuteEvent or ExecuteTask goal, print feedback and result (``ros2 action send_goal``).

    send_goal "press the red button" [--timeout S] [--max-duration S] [--cancel-after S]
    send_goal --task "press the buttons red then blue" [--event "press the red button" ...]

Without ``--event`` a task's events are proposed by the node's planner. Exit status: 0 when the
event (task) succeeded, 1 for any other outcome (UNKNOWN included: a result with no outcome set),
3 when no server answered or the server went away.

A server that dies mid-goal (``kill -9``) is noticed within ``HEARTBEAT_LOST_S`` (5) seconds:
the policy node re-sends its ``policy_status`` every 0.5 s, and a goal whose server's status
stops for that long ends with :class:`NoServerError` (exit status 3). Without such a status
topic the client relies on DDS discovery, which notices a killed process only when its lease
runs out (about 20 s). A rejected goal's reason is read from the server's ``/rosout`` line
("rejecting ..."; transient local, so it is there when the rejection arrives).

A service response can be lost: Fast DDS drops it when the server has not yet discovered the
client's response reader within 100 ms ("failed to send response (timeout)" in the server's
log; seen on a loaded machine right after ``wait_for_server``). The client therefore also reads
the action's goal status topic (transient local): a goal listed there as accepted whose response
has not come within ``RESPONSE_LOST_S`` is followed without it, and a finished goal whose result
has not come within that time is asked for its result again. A goal that neither answers nor
shows up gets a cancel request for its id (its answer waited for 1 s) before the client
gives up, so an accepted goal whose answers were all lost does not run on unwatched.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
import uuid
from collections.abc import Callable

import rclpy
from action_msgs.msg import GoalStatus, GoalStatusArray
from rcl_interfaces.msg import Log
from rclpy.action import ActionClient
from rclpy.action.client import ClientGoalHandle
from rclpy.exceptions import InvalidHandle
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_action_status_default,
)
from rclpy.utilities import remove_ros_args
from unique_identifier_msgs.msg import UUID

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.outcome import Outcome
from wallwm_msgs.action import ExecuteEvent, ExecuteTask
from wallwm_msgs.msg import PolicyStatus
from wallwm_ros import qos
from wallwm_ros.background_spinner import BackgroundSpinner
from wallwm_ros.conversions import duration_to_ns, ns_to_duration

# A running goal whose server is no longer discovered this long has no result coming.
SERVER_LOST_S = 3.0
# Nor one whose server's policy_status heartbeat (every 0.5 s) stopped this long: ten missed
# heartbeats, so a busy machine does not end a goal that still runs.
HEARTBEAT_LOST_S = 5.0
# A goal the status topic shows accepted (finished) whose response (result) has not come this
# long after is taken as a lost response (see the module docstring).
RESPONSE_LOST_S = 2.0
TERMINAL_STATES = (
    GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_CANCELED, GoalStatus.STATUS_ABORTED
)  # fmt: skip
# How long an unanswered goal's cancel request waits for its answer before the client gives up.
CANCEL_ANSWER_WAIT_S = 1.0
# How long to wait for the server's "rejecting ..." log line after a rejection.
REJECTION_REASON_WAIT_S = 1.0
ROSOUT_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class NoServerError(RuntimeError):
    """No action server answered in time."""


class SpinSafeActionClient(ActionClient):
    """An ActionClient that may be created and destroyed while another thread spins its node.

    rclpy's ActionClient adds itself to the node before it creates its lock; an executor spinning
    in another thread can call ``get_num_entities`` in between and dies with an AttributeError
    (seen in CI). Until ``__init__`` sets the instance lock, this class-level one serves.

    ``destroy`` frees the handle before it leaves the node's waitables, and the executor adds a
    waitable it listed to its wait set even when the handle was freed in between: the spinning
    thread died with "action client pointer is invalid" (1 test run in 3 beside two training
    processes). A destroyed client here adds nothing, is never ready and takes no data.
    """

    _lock = threading.Lock()
    _destroyed = False

    def destroy(self) -> None:
        with self._lock:
            self._destroyed = True
            super().destroy()

    def add_to_wait_set(self, wait_set) -> None:
        with self._lock:
            if not self._destroyed:
                self._client_handle.add_to_waitset(wait_set)

    def is_ready(self, wait_set) -> bool:
        with self._lock:
            return not self._destroyed and super().is_ready(wait_set)

    def take_data(self):
        # A multi-threaded executor takes the data in a worker, after it let go of the handle.
        try:
            with self._client_handle:
                return super().take_data()
        except InvalidHandle:
            return {}


class GoalRejectedError(Exception):
    """The server rejected the goal; ``reason`` is what its log said, if it said anything."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def outcome_of(code: int, status: int = GoalStatus.STATUS_SUCCEEDED) -> tuple[Outcome, str]:
    """The outcome a result reports, and a note when it cannot be trusted.

    A code that is no Outcome reads UNKNOWN; so does SUCCEEDED in a goal that the action layer
    reports as anything but succeeded (e.g. rclpy's empty result after its result time-out).
    """
    try:
        outcome = Outcome(code)
    except ValueError:
        return Outcome.UNKNOWN, f"unknown outcome code {code}"
    if outcome == Outcome.SUCCEEDED and status != GoalStatus.STATUS_SUCCEEDED:
        return Outcome.UNKNOWN, f"outcome SUCCEEDED but goal status {status}"
    return outcome, ""


def _sibling(action_name: str, topic: str) -> str:
    """``topic`` in the namespace of ``action_name`` (``arm1/execute_event`` -> ``arm1/topic``)."""
    head, _, _ = action_name.rpartition("/")
    return f"{head}/{topic}" if head else topic


class _ServerWatch:
    """Watches a server for one goal: its policy_status heartbeat, the goal's entry on the
    action's status topic, and after a rejection its ``/rosout`` for the reason."""

    def __init__(self, node: Node, action_name: str, goal_id: UUID) -> None:
        self._node = node
        self.goal_id = goal_id
        self._goal_uuid = bytes(goal_id.uuid)
        self._lock = threading.Lock()
        self._status_seen: float | None = None
        self._goal_entry: GoalStatus | None = None  # the goal's latest entry on the status topic
        self._goal_listed_at = 0.0
        self._goal_changed_at = 0.0
        self._since_wall_ns = time.time_ns()
        self._rejections: list[str] = []
        self._subscriptions = [
            node.create_subscription(
                PolicyStatus, _sibling(action_name, "policy_status"), self._on_status, qos.LATCHED
            ),
            node.create_subscription(
                GoalStatusArray,
                f"{action_name}/_action/status",
                self._on_goal_status,
                qos_profile_action_status_default,
            ),
        ]

    def _on_status(self, _msg: PolicyStatus) -> None:
        with self._lock:
            self._status_seen = time.monotonic()

    def _on_goal_status(self, msg: GoalStatusArray) -> None:
        for entry in msg.status_list:
            if bytes(entry.goal_info.goal_id.uuid) != self._goal_uuid:
                continue
            with self._lock:
                now = time.monotonic()
                if self._goal_entry is None:
                    self._goal_listed_at = now
                if self._goal_entry is None or self._goal_entry.status != entry.status:
                    self._goal_changed_at = now
                self._goal_entry = entry

    def goal_entry(self) -> tuple[GoalStatus, float, float] | None:
        """The goal's latest status entry, seconds since the status topic first listed the goal
        and seconds since its status last changed; None while the topic has not listed it (not
        accepted, or not yet heard)."""
        with self._lock:
            if self._goal_entry is None:
                return None
            now = time.monotonic()
            return self._goal_entry, now - self._goal_listed_at, now - self._goal_changed_at

    def _on_log(self, msg: Log) -> None:
        stamp_ns = msg.stamp.sec * 1_000_000_000 + msg.stamp.nanosec
        if msg.msg.startswith("rejecting") and stamp_ns >= self._since_wall_ns - 1_000_000_000:
            with self._lock:
                self._rejections.append(f"{msg.name}: {msg.msg}")

    def heartbeat_age(self) -> float | None:
        """Seconds since the last status message; None while none has arrived."""
        with self._lock:
            return None if self._status_seen is None else time.monotonic() - self._status_seen

    def rejection_reason(self, wait_s: float = REJECTION_REASON_WAIT_S) -> str:
        """The server's latest "rejecting ..." log line since this goal was sent."""
        self._subscriptions.append(
            self._node.create_subscription(Log, "/rosout", self._on_log, ROSOUT_QOS)
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._rejections:
                    return self._rejections[-1]
            time.sleep(0.02)
        return "the server gave no reason (see its log)"

    def close(self) -> None:
        for subscription in self._subscriptions:
            try:
                self._node.destroy_subscription(subscription)
            except InvalidHandle:
                pass


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
    give_up: Callable[[], str] | None = None,
) -> tuple[object, int]:
    """Send one goal, block until its result and the goal status. Spin ``node`` elsewhere.

    Raises :class:`GoalRejectedError` (with the server's logged reason) or :class:`NoServerError`
    (also when ``give_up()`` returns a reason, e.g. the simulation stopped: the goal is canceled).
    """
    client = SpinSafeActionClient(node, action_type, action_name)
    goal_id = UUID(uuid=list(uuid.uuid4().bytes))
    watch = _ServerWatch(node, action_name, goal_id)
    kind = action_type.__name__
    try:
        if not client.wait_for_server(timeout_sec=server_wait_s):
            raise NoServerError(f"no {kind} server on '{action_name}' after {server_wait_s} s")
        goal_future = client.send_goal_async(
            goal,
            feedback_callback=(lambda m: on_feedback(m.feedback)) if on_feedback else None,
            goal_uuid=goal_id,
        )
        handle = _goal_handle(node, action_type, client, watch, goal_future, server_wait_s)
        if not handle.accepted:
            raise GoalRejectedError(watch.rejection_reason())
        finished = threading.Event()
        result_futures = [handle.get_result_async()]  # more when a result response was lost
        result_futures[0].add_done_callback(lambda _: finished.set())
        if cancel_after_s is not None and not finished.wait(cancel_after_s):
            handle.cancel_goal_async()
        server_last_seen = time.monotonic()
        result_asked = time.monotonic()
        while not finished.wait(0.1):
            listed = watch.goal_entry()
            if (
                listed is not None
                and listed[0].status in TERMINAL_STATES
                and min(listed[2], time.monotonic() - result_asked) > RESPONSE_LOST_S
            ):
                node.get_logger().warning(
                    f"the {kind} goal ended {RESPONSE_LOST_S} s ago and its result has not come "
                    "(a lost response?): asking again"
                )
                result_futures.append(handle.get_result_async())
                result_futures[-1].add_done_callback(lambda _: finished.set())
                result_asked = time.monotonic()
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
            reason = give_up() if give_up is not None else ""
            if reason:
                handle.cancel_goal_async()
                raise NoServerError(f"gave up on the {kind} goal: {reason}")
            heartbeat_age = watch.heartbeat_age()
            if heartbeat_age is not None and heartbeat_age > HEARTBEAT_LOST_S:
                raise NoServerError(
                    f"the {kind} server on '{action_name}' went away before the result (its "
                    f"policy_status stopped {heartbeat_age:.1f} s ago)"
                )
        response = next(future.result() for future in result_futures if future.done())
        return response.result, response.status
    finally:
        watch.close()
        try:
            client.destroy()
        except InvalidHandle:
            pass  # destroyed with its node


def _goal_handle(
    node: Node,
    action_type: type,
    client: ActionClient,
    watch: _ServerWatch,
    goal_future,
    server_wait_s: float,
) -> ClientGoalHandle:
    """The goal's handle from the server's answer, or from the goal status topic when that lists
    the goal as accepted and the answer has not come within ``RESPONSE_LOST_S`` (a lost response).

    No answer and no status within ``server_wait_s``: the goal is canceled by its id (in case the
    server accepted it; the cancel's answer is waited for ``CANCEL_ANSWER_WAIT_S``) and
    :class:`NoServerError` raised. A goal rejected and its answer lost ends here too: rejected
    goals are never listed."""
    done = threading.Event()
    goal_future.add_done_callback(lambda _: done.set())
    deadline = time.monotonic() + server_wait_s
    while not done.wait(0.05):
        listed = watch.goal_entry()
        if listed is not None and listed[1] > RESPONSE_LOST_S:
            entry = listed[0]
            node.get_logger().warning(
                f"no answer to the goal request, but the goal status lists it (status "
                f"{entry.status}) for {RESPONSE_LOST_S} s: a lost response; following the goal"
            )
            response = action_type.Impl.SendGoalService.Response(
                accepted=True, stamp=entry.goal_info.stamp
            )
            return ClientGoalHandle(client, entry.goal_info.goal_id, response)
        if listed is None and time.monotonic() > deadline:  # a listed goal is followed
            raise NoServerError(
                "the server did not answer the goal request nor list the goal; a cancel for "
                f"the goal's id was sent in case it runs: {_cancel_by_id(action_type, client, watch.goal_id)}"
            )
    return goal_future.result()


def _cancel_by_id(action_type: type, client: ActionClient, goal_id: UUID) -> str:
    """Cancel a goal this client has no answer for; say whether the server answered."""
    unanswered = action_type.Impl.SendGoalService.Response(accepted=False)
    cancel = ClientGoalHandle(client, goal_id, unanswered).cancel_goal_async()
    answered = threading.Event()
    cancel.add_done_callback(lambda _: answered.set())
    if answered.wait(CANCEL_ANSWER_WAIT_S):
        return f"the server answered the cancel (code {cancel.result().return_code})"
    return "the cancel was not answered either"


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
    try:
        result, status = _run_goal(
            node,
            ExecuteEvent,
            action_name,
            goal,
            cancel_after_s=cancel_after_s,
            server_wait_s=server_wait_s,
            on_feedback=on_feedback,
        )
    except GoalRejectedError as rejected:
        return EventResult(False, None, f"goal rejected: {rejected.reason}", 0.0, 0)
    outcome, note = outcome_of(result.outcome, status)
    return EventResult(
        accepted=True,
        outcome=outcome,
        message=f"{result.message} ({note})" if note else result.message,
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
    give_up: Callable[[], str] | None = None,
) -> TaskResult:
    """Send one ExecuteTask goal (events in order, or none: the planner proposes them).

    ``give_up()`` is polled while the goal runs; a non-empty reason cancels the goal and raises
    :class:`NoServerError` with it."""
    goal = ExecuteTask.Goal(
        task=task,
        events=list(events),
        timeout=_duration(timeout_s),
        max_event_duration=_duration(max_event_duration_s),
        max_events=max_events,
    )
    try:
        result, status = _run_goal(
            node,
            ExecuteTask,
            action_name,
            goal,
            cancel_after_s=cancel_after_s,
            server_wait_s=server_wait_s,
            on_feedback=on_feedback,
            give_up=give_up,
        )
    except GoalRejectedError as rejected:
        return TaskResult(False, None, f"goal rejected: {rejected.reason}", 0.0, ())
    outcome, note = outcome_of(result.outcome, status)
    events = []
    for record in result.event_outcomes:
        event_outcome, event_note = outcome_of(record.outcome)
        message = f"{record.message} ({event_note})" if event_note else record.message
        events.append((record.instruction, event_outcome, message))
    return TaskResult(
        accepted=True,
        outcome=outcome,
        message=f"{result.message} ({note})" if note else result.message,
        duration_s=duration_to_ns(result.duration) / NS_PER_S,
        events=tuple(events),
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
        print(result.message)
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

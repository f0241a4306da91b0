"""The policy node: serves next-event instructions as ``ExecuteEvent`` goals, publishes chunks.

Interfaces (relative names, so namespaces work):
- action server ``execute_event`` (wallwm_msgs/action/ExecuteEvent);
- publishes ``action_chunk`` (wallwm_msgs/msg/ActionChunk, reliable) and ``policy_status``
  (wallwm_msgs/msg/PolicyStatus, transient local: latest state for late subscribers).

One goal runs at a time; a second goal is rejected or preempts the running one, as the
``goal_conflict`` parameter says. The policy itself is a wallwm_core ``EventPolicy``.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import threading
import time
from collections.abc import Callable

import rclpy
from builtin_interfaces.msg import Duration
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from wallwm_core.action_chunk import NS_PER_S, InvalidChunkError
from wallwm_core.config_loading import ConfigError
from wallwm_core.outcome import Outcome, PolicyState
from wallwm_core.policy import EventPolicy, Observation, UnknownInstructionError
from wallwm_core.replay_policy import ReplayPolicy
from wallwm_msgs.action import ExecuteEvent
from wallwm_msgs.msg import ActionChunk as ActionChunkMsg
from wallwm_msgs.msg import PolicyStatus
from wallwm_ros import qos
from wallwm_ros.conversions import chunk_to_msg, duration_to_ns, ns_to_duration

POLICY_TYPES = ("replay",)
GOAL_CONFLICT_POLICIES = ("reject", "preempt")
WAIT_POLL_S = 0.005


@dataclasses.dataclass(frozen=True)
class PolicyNodeConfig:
    """The policy node's parameters, validated; errors name the parameter."""

    policy_type: str = "replay"
    replay_file: str = ""
    goal_conflict: str = "reject"
    default_timeout: float = 60.0
    default_max_duration: float = 30.0
    replan_fraction: float = 0.8

    def __post_init__(self) -> None:
        if self.policy_type not in POLICY_TYPES:
            raise ConfigError(
                f"parameter 'policy_type' is {self.policy_type!r}; supported: {POLICY_TYPES} "
                "(the WALL-WM model policy is served once wallwm_core's model lands)"
            )
        if self.policy_type == "replay" and not self.replay_file:
            raise ConfigError(
                "parameter 'replay_file' must name a YAML file when policy_type is 'replay'"
            )
        if self.goal_conflict not in GOAL_CONFLICT_POLICIES:
            raise ConfigError(
                f"parameter 'goal_conflict' is {self.goal_conflict!r}; expected one of {GOAL_CONFLICT_POLICIES}"
            )
        for name in ("default_timeout", "default_max_duration"):
            if not getattr(self, name) > 0.0:
                raise ConfigError(f"parameter '{name}' must be positive, got {getattr(self, name)}")
        if not 0.0 < self.replan_fraction <= 1.0:
            raise ConfigError(
                f"parameter 'replan_fraction' must lie in (0, 1], got {self.replan_fraction}"
            )


_DESCRIPTIONS = {
    "policy_type": "Which EventPolicy serves goals: 'replay' (scripted reference motions).",
    "replay_file": "YAML file of scripted events for policy_type 'replay'.",
    "goal_conflict": "What a new goal does while one runs: 'reject' it, or 'preempt' the old one.",
    "default_timeout": "Goal time limit in seconds when the goal gives none.",
    "default_max_duration": "Event duration cap in seconds when the goal gives none.",
    "replan_fraction": "Fraction of a chunk's duration after which the next chunk is inferred.",
}


def make_policy(config: PolicyNodeConfig) -> EventPolicy:
    if config.policy_type == "replay":
        return ReplayPolicy.from_yaml(config.replay_file)
    raise ConfigError(f"parameter 'policy_type': no policy named {config.policy_type!r}")


class _GoalRun:
    """Book-keeping of one accepted goal."""

    def __init__(self, handle: ServerGoalHandle, previous: _GoalRun | None, conflict: bool) -> None:
        self.handle = handle
        self.previous = previous
        self.conflict = conflict
        self.stop_reason: str | None = None
        self.finished = threading.Event()


class PolicyNode(Node):
    """Runs an EventPolicy for each accepted ExecuteEvent goal."""

    def __init__(self, policy: EventPolicy | None = None, **node_kwargs) -> None:
        super().__init__(node_kwargs.pop("node_name", "policy_node"), **node_kwargs)
        self.config = self._declare_and_read_parameters()
        self._policy = policy if policy is not None else make_policy(self.config)
        self._lock = threading.Lock()
        self._active: _GoalRun | None = None
        self._runs: dict[bytes, _GoalRun] = {}
        self._event_ids = itertools.count(1)
        self._last_latency_ns = 0

        self._chunk_pub = self.create_publisher(ActionChunkMsg, "action_chunk", qos.COMMANDS)
        self._status_pub = self.create_publisher(PolicyStatus, "policy_status", qos.LATCHED)
        self._event_server = ActionServer(
            self,
            ExecuteEvent,
            "execute_event",
            execute_callback=self._execute_event,
            goal_callback=self._on_goal,
            handle_accepted_callback=self._on_goal_accepted,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )
        self._publish_status(PolicyState.IDLE)
        self.get_logger().info(
            f"ready: policy={self.config.policy_type} goal_conflict={self.config.goal_conflict}"
        )

    def _declare_and_read_parameters(self) -> PolicyNodeConfig:
        defaults = PolicyNodeConfig.__dataclass_fields__
        values = {}
        for name, description in _DESCRIPTIONS.items():
            default = defaults[name].default
            descriptor = ParameterDescriptor(description=description)
            if isinstance(default, float):
                descriptor.floating_point_range = [
                    FloatingPointRange(from_value=0.0, to_value=3600.0, step=0.0)
                ]
            try:
                values[name] = self.declare_parameter(name, default, descriptor).value
            except Exception as error:  # rclpy raises several types for bad overrides
                raise ConfigError(f"parameter '{name}': {error}") from error
        return PolicyNodeConfig(**values)

    # --- action server callbacks -----------------------------------------------------------

    def _on_goal(self, goal: ExecuteEvent.Goal) -> GoalResponse:
        if not goal.instruction.strip():
            self.get_logger().warning("rejecting goal: empty instruction")
            return GoalResponse.REJECT
        if goal.timeout.sec < 0 or goal.max_duration.sec < 0:
            self.get_logger().warning("rejecting goal: negative timeout or max_duration")
            return GoalResponse.REJECT
        if self.config.goal_conflict == "reject" and self._active is not None:
            self.get_logger().warning(
                f"rejecting goal {goal.instruction!r}: another goal is running"
            )
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_goal_accepted(self, handle: ServerGoalHandle) -> None:
        with self._lock:
            previous = self._active
            conflict = previous is not None and self.config.goal_conflict == "reject"
            if previous is not None and not conflict:
                previous.stop_reason = "preempted by a newer goal"
            run = _GoalRun(handle, previous, conflict)
            if not conflict:
                self._active = run
            self._runs[bytes(handle.goal_id.uuid)] = run
        handle.execute()

    def _execute_event(self, handle: ServerGoalHandle) -> ExecuteEvent.Result:
        with self._lock:
            run = self._runs.pop(bytes(handle.goal_id.uuid))
        if run.conflict:  # two goals raced past _on_goal
            handle.abort()
            return ExecuteEvent.Result(outcome=Outcome.ABORTED, message="another goal is running")
        if run.previous is not None:
            run.previous.finished.wait()
        result = None
        try:
            result = self._run_event(run)
        except Exception as error:  # a bug here must end this goal, never the executor
            fault = f"internal error: {type(error).__name__}: {error}"
            self.get_logger().error(fault)
            if handle.is_active:
                self._unless_shut_down(handle.abort)
            self._publish_status(PolicyState.FAULT, handle.request.instruction, 0, fault)
            result = ExecuteEvent.Result(outcome=int(Outcome.FAULT), message=fault)
        finally:
            with self._lock:
                if self._active is run:
                    self._active = None
                    # A fault stays visible in the latched status until the next goal starts.
                    if result is None or result.outcome != Outcome.FAULT:
                        self._publish_status(PolicyState.IDLE)
            run.finished.set()
        return result

    # --- event execution -------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _run_event(self, run: _GoalRun) -> ExecuteEvent.Result:
        goal = run.handle.request
        timeout_ns = _duration_or(goal.timeout, self.config.default_timeout)
        max_duration_ns = _duration_or(goal.max_duration, self.config.default_max_duration)
        event_id = next(self._event_ids)
        start_ns = self._now_ns()
        chunks = 0

        def finish(outcome: Outcome, message: str) -> ExecuteEvent.Result:
            if outcome == Outcome.SUCCEEDED:
                self._unless_shut_down(run.handle.succeed)
            elif outcome == Outcome.CANCELED and run.handle.is_cancel_requested:
                self._unless_shut_down(run.handle.canceled)
            else:
                self._unless_shut_down(run.handle.abort)
            summary = f"event {event_id} {goal.instruction!r}: {outcome.name} ({message})"
            if outcome == Outcome.SUCCEEDED:
                self.get_logger().info(summary)
            else:  # rclpy requires one severity per call site
                self.get_logger().warning(summary)
            return ExecuteEvent.Result(
                outcome=int(outcome),
                message=message,
                duration=ns_to_duration(self._now_ns() - start_ns),
                chunks_executed=chunks,
            )

        def interruption() -> tuple[Outcome, str] | None:
            if run.handle.is_cancel_requested:
                return Outcome.CANCELED, "canceled by the client"
            if run.stop_reason is not None:
                return Outcome.CANCELED, run.stop_reason
            if not rclpy.ok(context=self.context):
                return Outcome.ABORTED, "node is shutting down"
            elapsed = self._now_ns() - start_ns
            if elapsed >= timeout_ns:
                return Outcome.TIMED_OUT, f"goal timeout of {timeout_ns / NS_PER_S:.3f} s reached"
            if elapsed >= max_duration_ns:
                return (
                    Outcome.TIMED_OUT,
                    f"event exceeded max duration {max_duration_ns / NS_PER_S:.3f} s",
                )
            return None

        def wait_until(deadline_ns: int) -> tuple[Outcome, str] | None:
            while self._now_ns() < deadline_ns:
                if (reason := interruption()) is not None:
                    return reason
                time.sleep(WAIT_POLL_S)
            return interruption()

        try:
            self._policy.start_event(goal.instruction, event_id, max_duration_ns)
        except UnknownInstructionError as error:
            return finish(Outcome.ABORTED, str(error))
        except Exception as error:  # a policy failure must end the goal, not the node
            self._publish_status(
                PolicyState.FAULT, goal.instruction, event_id, f"start failed: {error}"
            )
            return finish(Outcome.FAULT, f"policy failed to start the event: {error}")
        self._publish_status(PolicyState.RUNNING, goal.instruction, event_id)

        while True:
            if (reason := interruption()) is not None:
                return finish(*reason)
            observation = Observation(stamp_ns=self._now_ns())
            started = time.perf_counter_ns()
            try:
                step = self._policy.next_chunk(observation)
            except InvalidChunkError as error:
                fault = f"policy produced an invalid chunk: {error}"
                self._publish_status(PolicyState.FAULT, goal.instruction, event_id, fault)
                return finish(Outcome.FAULT, fault)
            except Exception as error:
                fault = f"inference failed: {type(error).__name__}: {error}"
                self._publish_status(PolicyState.FAULT, goal.instruction, event_id, fault)
                return finish(Outcome.FAULT, fault)
            self._last_latency_ns = time.perf_counter_ns() - started
            chunk = step.chunk
            self._chunk_pub.publish(chunk_to_msg(chunk))
            chunks += 1
            run.handle.publish_feedback(
                ExecuteEvent.Feedback(
                    event_id=event_id,
                    progress=float(min(max(step.progress, 0.0), 1.0)),
                    predicted_remaining=ns_to_duration(max(step.predicted_remaining_ns, 0)),
                    chunks_executed=chunks,
                    last_inference_latency=ns_to_duration(self._last_latency_ns),
                )
            )
            if chunk.ends_event:
                reason = wait_until(chunk.stamp_ns + chunk.duration_ns)
                if reason is not None:
                    return finish(*reason)
                return finish(Outcome.SUCCEEDED, f"event finished after {chunks} chunks")
            replan_at = chunk.stamp_ns + int(self.config.replan_fraction * chunk.duration_ns)
            if (reason := wait_until(replan_at)) is not None:
                return finish(*reason)

    def _publish_status(
        self, state: PolicyState, instruction: str = "", event_id: int = 0, fault: str = ""
    ) -> None:
        msg = PolicyStatus(
            state=int(state),
            event_instruction=instruction,
            event_id=event_id,
            last_inference_latency=ns_to_duration(self._last_latency_ns),
            fault=fault,
        )
        msg.header.stamp = self.get_clock().now().to_msg()
        self._unless_shut_down(lambda: self._status_pub.publish(msg))

    def _unless_shut_down(self, send: Callable[[], object]) -> None:
        """Send a goal transition or status; when the node is shut down mid-goal, drop it.

        Stopping the node while a goal runs destroys the action server and publishers under the
        execute thread; nothing can be sent any more then, and that is not an error.
        """
        try:
            send()
        except Exception:
            if self.context.ok():
                raise


def _duration_or(duration: Duration, default_s: float) -> int:
    """The duration in ns, or ``default_s`` when it is zero (the goal's "use the default")."""
    ns = duration_to_ns(duration)
    return ns if ns > 0 else round(default_s * NS_PER_S)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = PolicyNode()
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except ConfigError as error:
        print(f"policy_node: invalid configuration: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

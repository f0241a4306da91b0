"""The policy node: serves next-event instructions and tasks as ROS 2 actions, publishes chunks.

Interfaces (relative names, so namespaces work):
- action servers ``execute_event`` (wallwm_msgs/action/ExecuteEvent) and ``execute_task``
  (wallwm_msgs/action/ExecuteTask, events from the goal or proposed by the policy's planner);
- publishes ``action_chunk`` (reliable), ``cancel_chunks`` (the chunks of an event that ended
  early: canceled, preempted, timed out, faulted), ``policy_status`` (transient local: the latest
  state for late subscribers; also re-sent every ``STATUS_HEARTBEAT_S`` of wall time, so a client
  notices within seconds that the node died, see send_goal) and ``/diagnostics``;
- subscribes to the configured camera and joint-state topics (see observation_inputs) and to
  the controller's ``controller_state``: while the controller is latched (ESTOP) or faulted no
  chunk is published, a running goal ends with the ESTOP or FAULT outcome, and
  ``policy_status`` shows ESTOP (or FAULT) also while no goal runs.

One goal runs at a time, across both servers; a second goal is rejected or preempts the running
one, as ``goal_conflict`` says. Goals run on a dedicated worker thread (wallwm_core's
event_execution loop), so the executor keeps serving subscriptions, cancels and status while the
model infers. The node is a thin ROS layer: the loop, the planner and the observation
synchronisation are plain Python in wallwm_core / wallwm_ros.observation_sync.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.node import Node
from rclpy.task import Future as RosFuture

from wallwm_core.action_chunk import NS_PER_S, ActionChunk
from wallwm_core.config_loading import ConfigError
from wallwm_core.event_execution import (
    EventIdSource,
    EventProgress,
    EventResult,
    ExecutionLimits,
    Interruption,
    TaskProgress,
    TaskResult,
    run_event,
    run_task,
)
from wallwm_core.outcome import Outcome, PolicyState
from wallwm_core.planner import EventPlanner, PlannerConfig
from wallwm_core.policy import EventPolicy, Observation
from wallwm_core.replay_policy import ReplayPolicy
from wallwm_msgs.action import ExecuteEvent, ExecuteTask
from wallwm_msgs.msg import ActionChunk as ActionChunkMsg
from wallwm_msgs.msg import CancelChunks, ControllerState, EventOutcome, PolicyStatus
from wallwm_ros import qos
from wallwm_ros.conversions import chunk_to_msg, duration_to_ns, ns_to_duration
from wallwm_ros.node_main import spin_node
from wallwm_ros.observation_inputs import (
    OBSERVATION_PARAMETER_DESCRIPTIONS,
    ObservationInputsConfig,
    SensorObservations,
)
from wallwm_ros.parameters import declare_config

POLICY_TYPES = ("wallwm", "replay")
# Wall-clock seconds between re-sent policy_status messages: send_goal gives up on a goal when
# the status stops for wallwm_ros.send_goal.HEARTBEAT_LOST_S (a killed node sends nothing; DDS
# itself would notice only when its lease runs out, about 20 s).
STATUS_HEARTBEAT_S = 0.5
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
GOAL_CONFLICT_POLICIES = ("reject", "preempt")


@dataclasses.dataclass(frozen=True)
class PolicyNodeConfig:
    """The policy node's parameters, validated; errors name the parameter."""

    policy_type: str = "wallwm"
    checkpoint: str = ""
    device: str = "auto"
    dtype: str = "auto"
    replay_file: str = ""
    goal_conflict: str = "reject"
    default_timeout: float = 60.0
    default_max_duration: float = 30.0
    default_task_timeout: float = 300.0
    max_events: int = 16
    max_retries_per_event: int = 1
    replan_fraction: float = 0.8
    stale_hold_timeout: float = 0.5
    diagnostics_period: float = 1.0
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.policy_type not in POLICY_TYPES:
            raise ConfigError(
                f"parameter 'policy_type' is {self.policy_type!r}; supported: {POLICY_TYPES}"
            )
        if self.policy_type == "wallwm" and not self.checkpoint:
            raise ConfigError(
                "parameter 'checkpoint' must name a WALL-WM checkpoint directory when "
                "policy_type is 'wallwm' (the default); or serve scripted events with "
                "-p policy_type:=replay -p replay_file:=FILE (e.g. wallwm_bringup's "
                "config/demo_replay.yaml, or one written by "
                "`python -m wallwm_ros.closed_loop.expert_replay`)"
            )
        if self.device not in DEVICES:
            raise ConfigError(f"parameter 'device' is {self.device!r}; expected one of {DEVICES}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"parameter 'dtype' is {self.dtype!r}; expected one of {DTYPES}")
        if self.policy_type == "replay" and not self.replay_file:
            raise ConfigError(
                "parameter 'replay_file' must name a YAML file when policy_type is 'replay'"
            )
        if self.goal_conflict not in GOAL_CONFLICT_POLICIES:
            raise ConfigError(
                f"parameter 'goal_conflict' is {self.goal_conflict!r}; "
                f"expected one of {GOAL_CONFLICT_POLICIES}"
            )
        for name in (
            "default_timeout",
            "default_max_duration",
            "default_task_timeout",
            "diagnostics_period",
        ):
            if not getattr(self, name) > 0.0:
                raise ConfigError(f"parameter '{name}' must be positive, got {getattr(self, name)}")
        if self.stale_hold_timeout < 0.0:
            raise ConfigError(
                f"parameter 'stale_hold_timeout' must not be negative, got {self.stale_hold_timeout}"
            )
        if self.torch_threads < 0:
            raise ConfigError(
                f"parameter 'torch_threads' must be 0 (torch's default) or a positive thread "
                f"count, got {self.torch_threads}"
            )
        if self.max_events < 1:
            raise ConfigError(f"parameter 'max_events' must be at least 1, got {self.max_events}")
        if self.max_retries_per_event < 0:
            raise ConfigError(
                "parameter 'max_retries_per_event' must not be negative, "
                f"got {self.max_retries_per_event}"
            )
        if not 0.0 < self.replan_fraction <= 1.0:
            raise ConfigError(
                f"parameter 'replan_fraction' must lie in (0, 1], got {self.replan_fraction}"
            )


PARAMETER_DESCRIPTIONS = {
    "policy_type": "Which EventPolicy serves goals: 'wallwm' (a checkpoint) or 'replay' (scripts).",
    "checkpoint": "WALL-WM checkpoint directory for policy_type 'wallwm'.",
    "device": "Where the model runs: 'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'.",
    "dtype": "Model precision: 'auto' (bf16 on CUDA, fp32 on CPU), 'float32', 'bfloat16', ...",
    "replay_file": "YAML file of scripted events for policy_type 'replay'.",
    "goal_conflict": "What a new goal does while one runs: 'reject' it, or 'preempt' the old one.",
    "default_timeout": "ExecuteEvent time limit in seconds when the goal gives none.",
    "default_max_duration": "Event duration cap in seconds when the goal gives none.",
    "default_task_timeout": "ExecuteTask time limit in seconds when the goal gives none.",
    "max_events": "Bound on planner-proposed events per task when the goal gives none.",
    "max_retries_per_event": "Retries of an event that timed out or faulted within a task.",
    "replan_fraction": "Fraction of a chunk's duration after which the next chunk is inferred.",
    "stale_hold_timeout": "Seconds to hold without a fresh observation before the goal faults.",
    "diagnostics_period": "Seconds between /diagnostics messages.",
    "torch_threads": "Torch intra-op threads for the model (set once at load); 0 keeps torch's "
    "default (one per core). 1 by default: the node shares the cores with the simulation and "
    "controller loops, and more threads than free cores make each chunk slower "
    "(docs/inference.md, 'Latency in the policy node').",
}


GoalResult = TypeVar("GoalResult", EventResult, TaskResult)


def make_policy(config: PolicyNodeConfig) -> EventPolicy:
    if config.policy_type == "replay":
        return ReplayPolicy.from_yaml(config.replay_file)
    import torch

    from wallwm_core.checkpoint import CheckpointError
    from wallwm_core.wallwm_policy import WallWMPolicy

    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)  # process-wide; before the first inference
    try:
        return WallWMPolicy.from_pretrained(
            config.checkpoint,
            device=None if config.device == "auto" else config.device,
            dtype=None if config.dtype == "auto" else config.dtype,
        )
    except (CheckpointError, OSError, ValueError) as error:
        raise ConfigError(f"parameter 'checkpoint': {error}") from error


class ClockObservations:
    """Observations carrying only a time stamp, for policies that read no sensors."""

    def __init__(self, now_ns: Callable[[], int]) -> None:
        self._now_ns = now_ns

    def fresh_observation(self, newer_than_ns: int) -> Observation | str:
        now = self._now_ns()
        if now <= newer_than_ns:
            return "the clock has not advanced since the last observation"
        return Observation(stamp_ns=now)

    def diagnostics(self) -> dict[str, str]:
        return {"observations": "clock only (no sensors configured)"}


class _GoalRun:
    """Book-keeping of one accepted goal (event or task)."""

    def __init__(self, handle: ServerGoalHandle, previous: _GoalRun | None, conflict: bool) -> None:
        self.handle = handle
        self.previous = previous
        self.conflict = conflict
        self.stop_reason: str | None = None
        self.finished = threading.Event()


@dataclasses.dataclass(frozen=True)
class _NodeIO:
    """What a goal uses of the node, handed over explicitly (see :class:`_GoalIO`)."""

    now_ns: Callable[[], int]
    fresh_observation: Callable[[int], Observation | str]
    shutting_down: Callable[[], bool]
    publish_chunk: Callable[[ActionChunk], None]
    cancel_chunks: Callable[[int], None]
    controller_interruption: Callable[[], Interruption | None]
    record_latency: Callable[[int], None]
    publish_status: Callable[[PolicyState, str, int, str], None]
    send: Callable[[Callable[[], object]], None]  # a transition or message, dropped after shutdown
    logger: RcutilsLogger


@dataclasses.dataclass
class _Counters:
    chunks: int = 0
    goals_succeeded: int = 0
    goals_failed: int = 0
    last_latency_ns: int = 0
    latency_sum_ns: int = 0
    warm_up_ns: int | None = None  # the warm-up inference at start, None when there was none
    state: PolicyState = PolicyState.IDLE
    instruction: str = ""
    fault: str = ""


class PolicyNode(Node):
    """Runs an EventPolicy for each accepted ExecuteEvent or ExecuteTask goal."""

    def __init__(self, policy: EventPolicy | None = None, **node_kwargs) -> None:
        super().__init__(node_kwargs.pop("node_name", "policy_node"), **node_kwargs)
        self.config = declare_config(self, PolicyNodeConfig, PARAMETER_DESCRIPTIONS)
        self.sensor_config = declare_config(
            self, ObservationInputsConfig, OBSERVATION_PARAMETER_DESCRIPTIONS
        )
        self._policy = policy if policy is not None else make_policy(self.config)
        self._check_policy_matches_sensors()
        self._counters = _Counters()
        self._warm_up()  # before the action servers exist: no goal waits for it
        if self.sensor_config.enabled:
            self._observations = SensorObservations(self, self.sensor_config, self._now_ns)
        else:
            self._observations = ClockObservations(self._now_ns)
        self._lock = threading.Lock()
        self._active: _GoalRun | None = None
        self._runs: dict[bytes, _GoalRun] = {}
        self._event_ids = EventIdSource()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inference")
        self._closing = threading.Event()
        self._io = _NodeIO(
            now_ns=self._now_ns,
            fresh_observation=self._observations.fresh_observation,
            shutting_down=lambda: self._closing.is_set() or not rclpy.ok(context=self.context),
            publish_chunk=self._publish_chunk,
            cancel_chunks=self._publish_cancel,
            controller_interruption=self.controller_interruption,
            record_latency=self._record_latency,
            publish_status=self._publish_status,
            send=self._unless_shut_down,
            logger=self.get_logger(),
        )

        self._controller: tuple[int, str] | None = None  # latest ControllerState (state, reason)
        self._chunk_pub = self.create_publisher(ActionChunkMsg, "action_chunk", qos.COMMANDS)
        self._cancel_pub = self.create_publisher(CancelChunks, "cancel_chunks", qos.COMMANDS)
        self.create_subscription(
            ControllerState, "controller_state", self._on_controller_state, qos.LATCHED
        )
        self._status_pub = self.create_publisher(PolicyStatus, "policy_status", qos.LATCHED)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        group = ReentrantCallbackGroup()
        self._servers = [
            ActionServer(
                self,
                action_type,
                name,
                execute_callback=execute,
                goal_callback=self._on_goal,
                handle_accepted_callback=self._on_goal_accepted,
                cancel_callback=lambda _: CancelResponse.ACCEPT,
                callback_group=group,
            )
            for action_type, name, execute in (
                (ExecuteEvent, "execute_event", self._execute_event),
                (ExecuteTask, "execute_task", self._execute_task),
            )
        ]
        self._diagnostics_timer = self.create_timer(
            self.config.diagnostics_period, self._publish_diagnostics
        )
        self._last_status: PolicyStatus | None = None
        self._publish_status(PolicyState.IDLE)
        # Steady time: a paused simulation clock must not look like a dead node.
        self._heartbeat_timer = self.create_timer(
            STATUS_HEARTBEAT_S,
            self._resend_status,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        warm_up = self._counters.warm_up_ns
        self.get_logger().info(
            f"ready: policy={self.config.policy_type} goal_conflict={self.config.goal_conflict}"
            + (f" warm-up inference {warm_up / 1e6:.0f} ms" if warm_up is not None else "")
        )

    def _warm_up(self) -> None:
        """The policy's warm-up inference, timed (the first chunk costs more without it)."""
        warm_up = self._policy.capabilities.warm_up
        if warm_up is None:
            return
        started = time.perf_counter_ns()
        try:
            warm_up()
        except Exception as error:  # the model cannot infer: it must not start serving goals
            raise ConfigError(
                f"the policy's warm-up inference failed: {type(error).__name__}: {error}"
            ) from error
        self._counters.warm_up_ns = time.perf_counter_ns() - started

    def _check_policy_matches_sensors(self) -> None:
        """A checkpoint trained on other cameras or joints must not start (clear error now)."""
        capabilities = self._policy.capabilities
        if capabilities.untrained:
            self.get_logger().warning(
                "the WALL-WM checkpoint is UNTRAINED: its actions are meaningless (tests, demos)"
            )
        required = capabilities.sensors
        if required is None:
            return
        sensors = self.sensor_config
        if tuple(sensors.camera_names) != tuple(required.cameras):
            raise ConfigError(
                f"parameter 'camera_names' {list(sensors.camera_names)} does not match the "
                f"checkpoint's cameras {list(required.cameras)}"
            )
        if tuple(sensors.joint_names) != tuple(required.joint_names):
            raise ConfigError(
                f"parameter 'joint_names' {list(sensors.joint_names)} does not match the "
                f"checkpoint's joints {list(required.joint_names)}"
            )

    def begin_shutdown(self) -> None:
        """Refuse new goals and end the running one ABORTED ("node is shutting down"). Keep the
        executor spinning until :attr:`shutdown_ready` so that its client receives the result."""
        self._closing.set()

    @property
    def shutdown_ready(self) -> bool:
        """No goal is running or waiting to start."""
        with self._lock:
            return self._active is None and not self._runs

    def destroy_node(self) -> None:
        # A running goal sees _closing and ends ABORTED; waiting for it here means no thread is
        # left blocked on it (which would keep the process from exiting).
        if hasattr(self, "_worker"):  # absent when __init__ failed
            self._closing.set()
            self._worker.shutdown(wait=True, cancel_futures=True)
        super().destroy_node()

    # --- goal admission ---------------------------------------------------------------------

    def _on_goal(self, goal: ExecuteEvent.Goal | ExecuteTask.Goal) -> GoalResponse:
        if self._closing.is_set():
            self.get_logger().warning("rejecting goal: the node is shutting down")
            return GoalResponse.REJECT
        if isinstance(goal, ExecuteEvent.Goal):
            if not goal.instruction.strip():
                self.get_logger().warning("rejecting goal: empty instruction")
                return GoalResponse.REJECT
            limits = (goal.timeout, goal.max_duration)
        else:
            if any(not event.strip() for event in goal.events):
                self.get_logger().warning("rejecting task: an event instruction is empty")
                return GoalResponse.REJECT
            if not goal.events and self._policy.capabilities.proposer is None:
                self.get_logger().warning(
                    "rejecting task: no events given and the policy cannot propose any"
                )
                return GoalResponse.REJECT
            limits = (goal.timeout, goal.max_event_duration)
        if any(limit.sec < 0 for limit in limits):
            self.get_logger().warning("rejecting goal: negative time limit")
            return GoalResponse.REJECT
        if self.config.goal_conflict == "reject" and self._active is not None:
            self.get_logger().warning("rejecting goal: another goal is running")
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

    # --- execute callbacks: hand the goal to the worker thread and wait --------------------

    async def _execute_event(self, handle: ServerGoalHandle) -> ExecuteEvent.Result:
        instruction = handle.request.instruction

        def not_run(outcome: Outcome, message: str) -> EventResult:
            return EventResult(
                instruction=instruction,
                event_id=0,
                outcome=outcome,
                message=message,
                chunks=0,
                duration_ns=0,
                last_inference_latency_ns=0,
            )

        result = await self._execute(handle, self._run_event_goal, not_run)
        return ExecuteEvent.Result(
            outcome=int(result.outcome),
            message=result.message,
            duration=ns_to_duration(result.duration_ns),
            chunks_executed=result.chunks,
        )

    async def _execute_task(self, handle: ServerGoalHandle) -> ExecuteTask.Result:
        def not_run(outcome: Outcome, message: str) -> TaskResult:
            return TaskResult(outcome=outcome, message=message, duration_ns=0, events=())

        result = await self._execute(handle, self._run_task_goal, not_run)
        return ExecuteTask.Result(
            outcome=int(result.outcome),
            message=result.message,
            duration=ns_to_duration(result.duration_ns),
            event_outcomes=[
                EventOutcome(
                    instruction=record.instruction,
                    outcome=int(record.outcome),
                    message=record.message,
                    duration=ns_to_duration(record.duration_ns),
                    chunks_executed=record.chunks,
                )
                for record in result.events
            ],
        )

    async def _execute(
        self,
        handle: ServerGoalHandle,
        body: Callable[[_GoalRun], GoalResult],
        not_run: Callable[[Outcome, str], GoalResult],
    ) -> GoalResult:
        """Run ``body`` on the inference worker and await it without blocking the executor.

        The worker is one thread, so a preempting goal's body starts only after the preempted
        one has ended. A goal that ends without its body's result (a conflict, shutdown, an
        internal error) gets ``not_run(outcome, message)``: one result type either way.
        """
        with self._lock:
            run = self._runs.pop(bytes(handle.goal_id.uuid))
        if run.conflict:  # two goals raced past _on_goal
            handle.abort()
            return not_run(Outcome.ABORTED, "another goal is running")
        result = not_run(Outcome.ABORTED, "node is shutting down")
        try:
            done = RosFuture()
            work = self._worker.submit(body, run)
            work.add_done_callback(lambda _: done.set_result(True))
            await done
            result = work.result()
        except (concurrent.futures.CancelledError, RuntimeError):  # worker shut down: closing
            pass
        except Exception as error:  # a bug here must end this goal, never the executor
            fault = f"internal error: {type(error).__name__}: {error}"
            self.get_logger().error(fault)
            self._publish_status(PolicyState.FAULT, "", 0, fault)
            result = not_run(Outcome.FAULT, fault)
        finally:
            self._finish_goal(run, result.outcome)
        return result

    def _finish_goal(self, run: _GoalRun, outcome: Outcome) -> None:
        handle = run.handle
        if handle.is_active:
            if outcome == Outcome.SUCCEEDED:
                self._unless_shut_down(handle.succeed)
            elif outcome == Outcome.CANCELED and handle.is_cancel_requested:
                self._unless_shut_down(handle.canceled)
            else:
                self._unless_shut_down(handle.abort)
        with self._lock:
            if outcome == Outcome.SUCCEEDED:
                self._counters.goals_succeeded += 1
            else:
                self._counters.goals_failed += 1
            if self._active is run:
                self._active = None
                # A fault stays visible in the latched status until the next goal starts.
                if self._counters.state not in (PolicyState.FAULT, PolicyState.ESTOP):
                    self._publish_status(PolicyState.IDLE)
        run.finished.set()

    # --- the controller's state ----------------------------------------------------------

    def _on_controller_state(self, msg: ControllerState) -> None:
        with self._lock:
            self._controller = (msg.state, msg.reason)
            if self._active is not None:
                return  # the running goal's loop sees it (interruption) and ends
            if msg.state == ControllerState.ESTOP:
                self._publish_status(PolicyState.ESTOP, fault=f"controller e-stop: {msg.reason}")
            elif msg.state == ControllerState.FAULT:
                self._publish_status(PolicyState.FAULT, fault=f"controller fault: {msg.reason}")
            elif self._counters.fault.startswith(("controller e-stop", "controller fault")):
                self._publish_status(PolicyState.IDLE)  # the controller was reset

    def controller_interruption(self) -> Interruption | None:
        """ESTOP or FAULT while the controller is latched or faulted, else None."""
        with self._lock:
            controller = self._controller
        if controller is None:
            return None
        state, reason = controller
        if state == ControllerState.ESTOP:
            return Outcome.ESTOP, f"controller e-stop: {reason}"
        if state == ControllerState.FAULT:
            return Outcome.FAULT, f"controller fault: {reason}"
        return None

    # --- goal bodies (worker thread) -------------------------------------------------------

    def _limits(self, timeout: Duration, max_duration: Duration) -> ExecutionLimits:
        return ExecutionLimits(
            timeout_ns=_duration_or(timeout, self.config.default_timeout),
            max_duration_ns=_duration_or(max_duration, self.config.default_max_duration),
            replan_fraction=self.config.replan_fraction,
            stale_hold_timeout_ns=round(self.config.stale_hold_timeout * NS_PER_S),
        )

    def _run_event_goal(self, run: _GoalRun) -> EventResult:
        goal = run.handle.request
        io = _GoalIO(self._io, run)
        result = run_event(
            self._policy,
            goal.instruction,
            self._event_ids.next(),
            self._limits(goal.timeout, goal.max_duration),
            io,
        )
        self._log_result(
            f"event {result.event_id} {goal.instruction!r}", result.outcome, result.message
        )
        return result

    def _run_task_goal(self, run: _GoalRun) -> TaskResult:
        goal = run.handle.request
        limits = self._limits(goal.timeout, goal.max_event_duration)
        task_timeout_ns = _duration_or(goal.timeout, self.config.default_task_timeout)
        planner_config = PlannerConfig(
            task_timeout_ns=task_timeout_ns,
            event_timeout_ns=limits.max_duration_ns,
            max_retries_per_event=self.config.max_retries_per_event,
            max_events=goal.max_events or self.config.max_events,
        )
        if goal.events:
            planner = EventPlanner(planner_config, events=list(goal.events), task=goal.task)
        else:
            planner = EventPlanner(
                planner_config, task=goal.task, proposer=self._policy.capabilities.proposer
            )
        io = _GoalIO(self._io, run)
        result = run_task(
            self._policy,
            planner,
            self._event_ids,
            dataclasses.replace(limits, timeout_ns=task_timeout_ns),
            io,
            on_progress=io.task_feedback,
        )
        self._log_result(f"task {goal.task!r}", result.outcome, result.message)
        return result

    def _log_result(self, what: str, outcome: Outcome, message: str) -> None:
        summary = f"{what}: {outcome.name} ({message})"
        if outcome == Outcome.SUCCEEDED:
            self.get_logger().info(summary)
        else:  # rclpy requires one severity per call site
            self.get_logger().warning(summary)

    # --- outputs ---------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _publish_chunk(self, chunk: ActionChunk) -> None:
        self._unless_shut_down(lambda: self._chunk_pub.publish(chunk_to_msg(chunk)))
        with self._lock:
            self._counters.chunks += 1

    def _publish_cancel(self, event_id: int) -> None:
        msg = CancelChunks(event_id=event_id)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._unless_shut_down(lambda: self._cancel_pub.publish(msg))

    def _record_latency(self, latency_ns: int) -> None:
        with self._lock:
            self._counters.last_latency_ns = latency_ns
            self._counters.latency_sum_ns += latency_ns

    def _publish_status(
        self, state: PolicyState, instruction: str = "", event_id: int = 0, fault: str = ""
    ) -> None:
        self._counters.state, self._counters.instruction, self._counters.fault = (
            state,
            instruction,
            fault,
        )
        msg = PolicyStatus(
            state=int(state),
            event_instruction=instruction,
            event_id=event_id,
            last_inference_latency=ns_to_duration(self._counters.last_latency_ns),
            fault=fault,
        )
        msg.header.stamp = self.get_clock().now().to_msg()
        self._last_status = msg
        self._unless_shut_down(lambda: self._status_pub.publish(msg))

    def _resend_status(self) -> None:
        """The heartbeat: the latest status again (a new message, so the stamp is fresh)."""
        last = self._last_status
        if last is None:
            return
        msg = PolicyStatus(
            state=last.state,
            event_instruction=last.event_instruction,
            event_id=last.event_id,
            last_inference_latency=last.last_inference_latency,
            fault=last.fault,
        )
        msg.header.stamp = self.get_clock().now().to_msg()
        self._unless_shut_down(lambda: self._status_pub.publish(msg))

    def _publish_diagnostics(self) -> None:
        with self._lock:
            counters = dataclasses.replace(self._counters)
        level = {
            PolicyState.IDLE: DiagnosticStatus.OK,
            PolicyState.RUNNING: DiagnosticStatus.OK,
            PolicyState.HOLDING: DiagnosticStatus.WARN,
        }.get(counters.state, DiagnosticStatus.ERROR)
        mean_latency_ms = counters.latency_sum_ns / max(counters.chunks, 1) / 1e6
        values = {
            "state": counters.state.name,
            "event": counters.instruction,
            "fault": counters.fault,
            "chunks_published": str(counters.chunks),
            "last_inference_latency_ms": f"{counters.last_latency_ns / 1e6:.2f}",
            "mean_inference_latency_ms": f"{mean_latency_ms:.2f}",
            "warm_up_ms": (
                "none" if counters.warm_up_ns is None else f"{counters.warm_up_ns / 1e6:.2f}"
            ),
            "goals_succeeded": str(counters.goals_succeeded),
            "goals_failed": str(counters.goals_failed),
            **self._observations.diagnostics(),
        }
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_fully_qualified_name()}: policy",
            hardware_id="wallwm",
            message=counters.fault or counters.state.name,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._unless_shut_down(lambda: self._diagnostics_pub.publish(array))

    def _unless_shut_down(self, send: Callable[[], object]) -> None:
        """Send a goal transition or message; when the node is shut down mid-goal, drop it.

        Stopping the node while a goal runs destroys the action servers and publishers under the
        worker thread; nothing can be sent any more then, and that is not an error.
        """
        try:
            send()
        except Exception:
            if self.context.ok():
                raise


class _GoalIO:
    """The event loop's view of the node, for one goal (see wallwm_core.event_execution)."""

    def __init__(self, node: _NodeIO, run: _GoalRun) -> None:
        self._node = node
        self._run = run
        self._last_latency_ns = 0

    def now_ns(self) -> int:
        return self._node.now_ns()

    def fresh_observation(self, newer_than_ns: int) -> Observation | str:
        return self._node.fresh_observation(newer_than_ns)

    def interruption(self) -> Interruption | None:
        if (latched := self._node.controller_interruption()) is not None:
            return latched
        if self._run.handle.is_cancel_requested:
            return Outcome.CANCELED, "canceled by the client"
        if self._run.stop_reason is not None:
            return Outcome.CANCELED, self._run.stop_reason
        if self._node.shutting_down():
            return Outcome.ABORTED, "node is shutting down"
        return None

    def publish_chunk(self, chunk: ActionChunk) -> None:
        self._node.publish_chunk(chunk)

    def cancel_chunks(self, event_id: int) -> None:
        self._node.cancel_chunks(event_id)

    def report(self, progress: EventProgress) -> None:
        self._last_latency_ns = progress.inference_latency_ns
        self._node.record_latency(progress.inference_latency_ns)
        if isinstance(self._run.handle.request, ExecuteEvent.Goal):
            feedback = ExecuteEvent.Feedback(
                event_id=progress.event_id,
                progress=progress.progress,
                predicted_remaining=ns_to_duration(progress.predicted_remaining_ns),
                chunks_executed=progress.chunks,
                last_inference_latency=ns_to_duration(progress.inference_latency_ns),
            )
            self._node.send(lambda: self._run.handle.publish_feedback(feedback))

    def task_feedback(self, progress: TaskProgress) -> None:
        feedback = ExecuteTask.Feedback(
            event_index=progress.event_index,
            event_instruction=progress.instruction,
            events_total=progress.events_total,
            event_progress=progress.event_progress,
            progress=progress.task_progress,
            last_inference_latency=ns_to_duration(self._last_latency_ns),
        )
        self._node.send(lambda: self._run.handle.publish_feedback(feedback))

    def set_state(self, state: PolicyState, instruction: str, event_id: int, fault: str) -> None:
        if state in (PolicyState.FAULT, PolicyState.ESTOP):
            self._node.logger.error(f"event {event_id} {instruction!r}: {fault}")
        self._node.publish_status(state, instruction, event_id, fault)


def _duration_or(duration: Duration, default_s: float) -> int:
    """The duration in ns, or ``default_s`` when it is zero (the goal's "use the default")."""
    ns = duration_to_ns(duration)
    return ns if ns > 0 else round(default_s * NS_PER_S)


def main(args: list[str] | None = None) -> int:
    return spin_node(PolicyNode, "policy_node", args)


if __name__ == "__main__":
    sys.exit(main())

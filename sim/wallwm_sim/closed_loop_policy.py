"""An event policy (WALL-WM) in closed loop in the simulator: the ROS nodes' semantics, no DDS.

The ROS path runs three nodes: the sim node steps :class:`~wallwm_sim.sim.TabletopSim` at
500 Hz and renders the cameras at 10 Hz; the policy node runs a task with
:func:`wallwm_core.event_execution.run_task` and an :class:`~wallwm_core.planner.EventPlanner`
(next-event instructions, retries, time-outs) and publishes each chunk; the controller node
feeds every chunk to a :class:`~wallwm_core.control.JointController` (time-indexed execution,
blending, IK, workspace/speed/joint limits) and sends its command to the sim every tick. This
module composes the *same* core objects on one simulated clock, in one thread:

- :class:`SimulatedArm` is the sim node plus the controller node's loop: per control period it
  calls ``JointController.update(now, measured joints)`` (what the controller node's 500 Hz
  ``ControlLoop`` tick does), applies the command to the simulator and steps it; at the camera
  rate it renders the policy's cameras into a :class:`wallwm_core.policy.Observation` stamped
  with the frame time (joints at that time, calibration from the simulator).
- The policy node's goal loop runs unchanged: ``run_task`` with an ``ExecutionIO`` on simulated
  time whose ``sleep`` advances the simulation by one control period, so replanning at
  ``replan_fraction`` of a chunk, holding for a fresh observation, the stale-hold fault and the
  planner's time-outs all happen on simulated time. Chunks go to ``submit_chunk`` as the
  controller node's subscription does.

**Inference time.** The simulation does not advance while the policy infers: with
``latency="none"`` (the default) every chunk reaches the controller at its stamp, the closed
loop of an *infinitely fast computer*. The measured latency of every chunk is still reported.
``latency="measured"`` charges each chunk's measured inference time to simulated time (the arm
keeps executing the previous chunk meanwhile, and the controller's time indexing skips the steps
that became due), which is what the ROS path sees on this machine; ``latency="fixed"`` charges
``fixed_latency_s`` to every chunk (deterministic, for "what if inference took X").

Defaults are the nodes' (sim_node.yaml, policy_node.yaml / PolicyNodeConfig,
controller_sim_arm.yaml); a test keeps them in step. Event ids restart at 1 every episode, so an
episode's sampling noise does not depend on which episodes ran before it.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wallwm_core.action_chunk import NS_PER_S, ActionChunk
from wallwm_core.control import JointController, SubmitResult, load_controller_config
from wallwm_core.event_execution import (
    EventIdSource,
    EventProgress,
    ExecutionLimits,
    Interruption,
    TaskResult,
    run_task,
)
from wallwm_core.outcome import Outcome, PolicyState
from wallwm_core.planner import EventPlanner, EventRecord, PlannerConfig
from wallwm_core.policy import EventPolicy, Observation, PolicyStep
from wallwm_sim import description
from wallwm_sim.cameras import CAMERA_NAMES
from wallwm_sim.event_rubric import EVENT_END, EventVerdict, MilestoneTimeline, judge, milestone_of
from wallwm_sim.rollout import EpisodeResult
from wallwm_sim.sim import InvalidCommandError, SimConfig, TabletopSim
from wallwm_sim.tasks import Subtask, get_task

if TYPE_CHECKING:
    from wallwm_core.inference.config import InferenceConfig

logger = logging.getLogger(__name__)

# The controller configuration of the simulated arm, inside wallwm_core (the sim robot file,
# wallwm_bringup/config/robots/sim_arm.yaml, names the same file).
CONTROLLER_CONFIG = ("wallwm_core", "configs/controller_sim_arm.yaml")
LATENCY_MODES = ("none", "measured", "fixed")


@dataclasses.dataclass(frozen=True)
class ClosedLoopSettings:
    """How the closed loop runs; the defaults are those of the sim, policy and controller nodes.

    Sim node: ``control_rate_hz``, ``camera_rate_hz``, ``image_size`` (square images). Policy
    node: ``replan_fraction``, ``stale_hold_timeout_s``, ``max_event_duration_s``
    (``default_max_duration``), ``max_retries_per_event``, ``max_events``. ``latency``: see the
    module doc. ``controller_config``: a ControllerConfig YAML; empty for the simulated arm's.
    """

    control_rate_hz: float = 500.0
    camera_rate_hz: float = 10.0
    image_size: int = 224
    replan_fraction: float = 0.8
    stale_hold_timeout_s: float = 0.5
    max_event_duration_s: float = 30.0
    max_retries_per_event: int = 1
    max_events: int = 16
    latency: str = "none"
    fixed_latency_s: float = 0.0
    controller_config: str = ""

    def __post_init__(self) -> None:
        if not 0.0 < self.replan_fraction <= 1.0:
            raise ValueError(f"replan_fraction must lie in (0, 1], got {self.replan_fraction}")
        if self.latency not in LATENCY_MODES:
            raise ValueError(f"latency must be one of {LATENCY_MODES}, got {self.latency!r}")
        if self.fixed_latency_s < 0.0 or (self.latency == "fixed") != (self.fixed_latency_s > 0):
            raise ValueError(
                "fixed_latency_s must be positive with latency='fixed' and 0 otherwise, got "
                f"{self.latency=} {self.fixed_latency_s=}"
            )
        if not self.camera_rate_hz > 0 or self.camera_rate_hz > self.control_rate_hz:
            raise ValueError(
                f"need 0 < camera_rate_hz <= control_rate_hz, got {self.camera_rate_hz=} "
                f"{self.control_rate_hz=}"
            )
        if not 0 < self.image_size <= SimConfig.max_image_height:
            raise ValueError(f"image_size must lie in 1..{SimConfig.max_image_height}")
        SimConfig(control_period_s=1.0 / self.control_rate_hz)  # a whole number of physics steps

    @property
    def control_period_ns(self) -> int:
        return round(NS_PER_S / self.control_rate_hz)

    @property
    def camera_period_ns(self) -> int:
        return round(NS_PER_S / self.camera_rate_hz)

    def sim_config(self) -> SimConfig:
        return SimConfig(
            control_period_s=1.0 / self.control_rate_hz,
            image_height=self.image_size,
            image_width=self.image_size,
        )

    def controller_config_path(self) -> Path:
        if self.controller_config:
            return Path(self.controller_config)
        package, inner = CONTROLLER_CONFIG
        return Path(str(importlib.resources.files(package).joinpath(inner)))

    def make_controller(self) -> JointController:
        """A fresh controller for the simulated arm, as the controller node builds it."""
        config = load_controller_config(self.controller_config_path())
        if config.period_ns != self.control_period_ns:
            raise ValueError(
                f"the controller runs at {config.control_rate_hz} Hz but the simulation at "
                f"{self.control_rate_hz} Hz: one tick per control period needs the same rate"
            )
        return JointController.from_urdf(description.urdf_string(), config)


class SimulatedArm:
    """The sim node and the controller node's loop on one simulated clock (see the module doc).

    Call :meth:`begin` after ``sim.reset``; then every :meth:`tick` is one control period.
    """

    def __init__(
        self,
        sim: TabletopSim,
        controller: JointController,
        cameras: Sequence[str],
        camera_period_ns: int,
        on_frame: Callable[[Observation], None] | None = None,
    ) -> None:
        missing = [n for n in controller.joint_names if n not in sim.arm_joint_names]
        if missing:
            raise ValueError(f"the controller drives joints the simulator lacks: {missing}")
        if sim.control_period_ns != controller.config.period_ns:
            raise ValueError(
                f"simulator period {sim.control_period_ns} ns != controller period "
                f"{controller.config.period_ns} ns"
            )
        self.sim = sim
        self.controller = controller
        self.cameras = tuple(cameras)
        self.camera_period_ns = int(camera_period_ns)
        self.timeline = MilestoneTimeline()
        self._on_frame = on_frame
        self._arm_slots = [sim.joint_names.index(n) for n in controller.joint_names]
        self._latest: Observation | None = None
        self._next_frame_ns = 0
        self.ticks = 0
        self.rejected_commands = 0

    @property
    def time_ns(self) -> int:
        return self.sim.time_ns

    @property
    def latest_observation(self) -> Observation | None:
        return self._latest

    def begin(self) -> None:
        """Start of an episode: the first camera frame, at the simulator's present."""
        self.timeline.record(self.sim.time_ns, self.sim.progress_breakdown())
        self._next_frame_ns = self.sim.time_ns
        self._capture_if_due()

    def submit(self, chunk: ActionChunk) -> SubmitResult:
        """A chunk arrives at the controller now (its subscription callback)."""
        return self.controller.submit_chunk(chunk, self.sim.time_ns)

    def tick(self) -> None:
        """One control period: controller update on the measured joints, command, physics."""
        now = self.sim.time_ns
        measured = self.sim.joint_state().positions[self._arm_slots]
        command = self.controller.update(now, measured, now)
        if command.positions is not None:
            self._apply(self.sim.set_joint_command, command.positions)
        if command.gripper is not None:
            self._apply(self.sim.set_gripper_command, float(command.gripper[0]))
        self.sim.step()
        self.ticks += 1
        self.timeline.record(self.sim.time_ns, self.sim.progress_breakdown())
        self._capture_if_due()

    def _apply(self, set_command: Callable[[object], None], value: object) -> None:
        """A command the simulator rejects is counted and the previous one stays (as in the
        sim node)."""
        try:
            set_command(value)
        except InvalidCommandError as error:
            self.rejected_commands += 1
            logger.warning("simulator rejected a controller command: %s", error)

    def advance_to(self, time_ns: int) -> None:
        while self.sim.time_ns < time_ns:
            self.tick()

    def _capture_if_due(self) -> None:
        now = self.sim.time_ns
        if now < self._next_frame_ns:
            return
        self._next_frame_ns = (now // self.camera_period_ns + 1) * self.camera_period_ns
        joints = self.sim.joint_state()
        observation = Observation(
            stamp_ns=now,
            images=self.sim.render_all(self.cameras) if self.cameras else {},
            joint_positions=joints.positions.copy(),
            joint_names=tuple(joints.names),
            cameras={name: self.sim.camera_geometry(name) for name in self.cameras},
        )
        self._latest = observation
        if self._on_frame is not None:
            self._on_frame(observation)


class _TimedPolicy:
    """Forwards to an EventPolicy; keeps the wall time of the last ``next_chunk`` until taken."""

    def __init__(self, policy: EventPolicy) -> None:
        self.policy = policy
        self.last_latency_ns = 0
        self.uncharged = False  # a chunk was inferred and its time not yet charged

    def start_event(self, instruction: str, event_id: int, max_duration_ns: int) -> None:
        self.policy.start_event(instruction, event_id, max_duration_ns)

    def next_chunk(self, observation: Observation) -> PolicyStep:
        started = time.perf_counter_ns()
        try:
            return self.policy.next_chunk(observation)
        finally:
            self.last_latency_ns = time.perf_counter_ns() - started
            self.uncharged = True


class _SimulatedTimeIO:
    """The policy node's ``ExecutionIO`` on simulated time (see the module doc)."""

    def __init__(
        self, arm: SimulatedArm, policy: _TimedPolicy, settings: ClosedLoopSettings
    ) -> None:
        self.arm = arm
        self._policy = policy
        self._settings = settings
        self.latencies_ns: list[int] = []
        self.charged_ns: list[int] = []
        self.rejected_chunks: list[str] = []
        self.faults: list[str] = []

    def now_ns(self) -> int:
        return self.arm.time_ns

    def sleep(self, _seconds: float) -> None:
        """The loop waits: simulated time moves on by one control period."""
        self.arm.tick()

    def fresh_observation(self, newer_than_ns: int) -> Observation | str:
        observation = self.arm.latest_observation
        if observation is None or observation.stamp_ns <= newer_than_ns:
            return "no camera frame newer than the last observation used"
        return observation

    def interruption(self) -> Interruption | None:
        """Nobody cancels or preempts a goal here. The event loop asks right after inference
        (before it publishes the chunk): that is where the inference time is charged, so a
        chunk finished after the goal's deadline is dropped as the policy node drops it."""
        if self._policy.uncharged:
            self._policy.uncharged = False
            self._charge_inference_time()
        return None

    def _charge_inference_time(self) -> None:
        if self._settings.latency == "measured":
            delay_ns = self._policy.last_latency_ns
        else:
            delay_ns = round(self._settings.fixed_latency_s * NS_PER_S)
        self.charged_ns.append(delay_ns)
        self.arm.advance_to(self.arm.time_ns + delay_ns)

    def publish_chunk(self, chunk: ActionChunk) -> None:
        result = self.arm.submit(chunk)
        if not result.accepted:
            self.rejected_chunks.append(result.reason)

    def cancel_chunks(self, event_id: int) -> None:
        self.arm.controller.cancel_event(event_id, self.arm.time_ns)

    def report(self, progress: EventProgress) -> None:
        self.latencies_ns.append(progress.inference_latency_ns)

    def set_state(self, state: PolicyState, instruction: str, event_id: int, fault: str) -> None:
        if state == PolicyState.FAULT:
            self.faults.append(f"event {event_id} {instruction!r}: {fault}")


@dataclasses.dataclass
class EpisodeRun:
    """One closed-loop episode: the result for the report, plus the task result and frames."""

    result: EpisodeResult
    task_result: TaskResult
    frames: list[np.ndarray]


def event_verdicts(
    records: Sequence[EventRecord], subtasks: Sequence[Subtask], timeline: MilestoneTimeline
) -> tuple[EventVerdict, ...]:
    """Each attempt judged by the planner and by its milestone at the attempt's end."""
    verdicts = []
    for record in records:
        milestone = milestone_of(subtasks, record.index)
        achieved = timeline.at(record.end_ns)
        verdicts.append(
            judge(
                record.index,
                record.instruction,
                record.attempt,
                Outcome(record.outcome).name,
                record.message,
                record.chunks,
                record.duration_ns / NS_PER_S,
                milestone,
                bool(achieved.get(milestone, False)) if milestone else None,
                EVENT_END,
            )
        )
    return tuple(verdicts)


EpisodePolicy = Callable[[str, int, str], tuple[EventPolicy, Sequence[str] | None]]


class ClosedLoopPolicy:
    """An :class:`~wallwm_core.policy.EventPolicy` plus how to run it in closed loop.

    ``cameras``: the views the policy reads (rendered at the camera rate); observations come at
    the camera rate either way, as the policy node's synchroniser gives them. ``per_episode``
    instead of ``policy``: ``(task, seed, variant) -> (policy, events or None)`` for policies
    made for one episode (the scripted expert's replay).
    """

    def __init__(
        self,
        policy: EventPolicy | None,
        cameras: Sequence[str],
        settings: ClosedLoopSettings | None = None,
        per_episode: EpisodePolicy | None = None,
    ) -> None:
        if (policy is None) == (per_episode is None):
            raise ValueError("give exactly one of policy and per_episode")
        self.policy = policy
        self.per_episode = per_episode
        self.cameras = tuple(cameras)
        self.settings = settings or ClosedLoopSettings()

    def sim_config(self) -> SimConfig:
        return self.settings.sim_config()

    def run_episode(
        self,
        sim: TabletopSim,
        task: str,
        seed: int,
        variant: str = "train",
        max_duration_s: float | None = None,
        events: Sequence[str] | None = None,
        video_cameras: Sequence[str] = (),
    ) -> EpisodeRun:
        """Reset to ``(task, seed, variant)`` and run the task's events (``events``, default the
        task's subtask captions, as the ROS harness sends them) until the task goal ends: done,
        given up, or ``max_duration_s`` (default: the task's time limit) of simulated time.

        ``video_cameras``: keep a frame of these views (side by side) per camera frame.
        """
        settings = self.settings
        if sim.control_period_ns != settings.control_period_ns:
            raise ValueError(
                f"the simulator steps every {sim.control_period_ns} ns; the closed loop needs "
                f"{settings.control_period_ns} ns (ClosedLoopPolicy.sim_config())"
            )
        limit_s = get_task(task).time_limit_s if max_duration_s is None else max_duration_s
        policy = self.policy
        if self.per_episode is not None:
            policy, episode_events = self.per_episode(task, seed, variant)
            events = episode_events if events is None else events
        assert policy is not None
        instance = sim.reset(task, seed, variant)
        assert instance is not None
        frames: list[np.ndarray] = []
        video_cameras = tuple(video_cameras)

        def keep_frame(observation: Observation) -> None:
            if video_cameras:
                frames.append(np.concatenate([observation.images[c] for c in video_cameras], 1))

        cameras = tuple(dict.fromkeys(self.cameras + video_cameras))
        arm = SimulatedArm(
            sim, settings.make_controller(), cameras, settings.camera_period_ns, keep_frame
        )
        arm.begin()
        timed = _TimedPolicy(policy)
        io = _SimulatedTimeIO(arm, timed, settings)
        task_timeout_ns = round(limit_s * NS_PER_S)
        event_ns = round(settings.max_event_duration_s * NS_PER_S)
        instructions = (
            list(events) if events is not None else [s.caption for s in instance.subtasks]
        )
        planner = EventPlanner(
            PlannerConfig(
                task_timeout_ns=task_timeout_ns,
                event_timeout_ns=event_ns,
                max_retries_per_event=settings.max_retries_per_event,
                max_events=settings.max_events,
            ),
            events=instructions,
            task=instance.instruction,
        )
        limits = ExecutionLimits(
            timeout_ns=task_timeout_ns,
            max_duration_ns=event_ns,
            replan_fraction=settings.replan_fraction,
            stale_hold_timeout_ns=round(settings.stale_hold_timeout_s * NS_PER_S),
        )
        started = time.perf_counter()
        task_result = run_task(timed, planner, EventIdSource(), limits, io, sleep=io.sleep)
        wall_s = time.perf_counter() - started
        verdicts = event_verdicts(task_result.events, instance.subtasks, arm.timeline)
        status = arm.controller.status()
        result = EpisodeResult(
            task=task,
            seed=seed,
            variant=variant,
            instruction=instance.instruction,
            score=sim.task_progress(),
            milestones=sim.progress_breakdown(),
            steps=arm.ticks,
            duration_s=sim.time_ns / NS_PER_S,
            policy_done=task_result.outcome == Outcome.SUCCEEDED,
            rejected_commands=arm.rejected_commands,
            outcome=task_result.outcome.name,
            event_outcomes=tuple(
                (r.instruction, Outcome(r.outcome).name, r.message) for r in task_result.events
            ),
            events=verdicts,
            chunk_latencies_ms=tuple(ns / 1e6 for ns in io.latencies_ns),
            rejected_chunks=status.chunks_rejected,
            wall_s=wall_s,
        )
        for fault in io.faults:
            logger.warning("%s seed %d: %s", task, seed, fault)
        return EpisodeRun(result, task_result, frames)


def wallwm_closed_loop(
    checkpoint: str | Path,
    settings: ClosedLoopSettings | None = None,
    device: str | None = None,
    inference: InferenceConfig | None = None,
) -> ClosedLoopPolicy:
    """A WALL-WM checkpoint as a closed-loop policy for the simulated arm; ``inference``
    replaces the checkpoint's inference settings (e.g. unified mode for a checkpoint trained on
    fixed windows).

    Raises :class:`~wallwm_core.checkpoint.CheckpointError` (a ValueError) for a missing or
    corrupt checkpoint, and ValueError when it was made for other cameras, joints or frames
    (the check the policy node makes against its sensors).
    """
    from wallwm_core.wallwm_policy import WallWMPolicy

    policy = WallWMPolicy.from_pretrained(checkpoint, device=device, inference=inference)
    deployment = policy.deployment
    problems = []
    unknown_cameras = [c for c in deployment.cameras if c not in CAMERA_NAMES]
    if unknown_cameras:
        problems.append(f"cameras {unknown_cameras} (the simulator has {CAMERA_NAMES})")
    unknown_joints = [j for j in deployment.joint_names if j not in description.ALL_JOINT_NAMES]
    if unknown_joints:
        problems.append(f"joints {unknown_joints} (the arm has {description.ALL_JOINT_NAMES})")
    if deployment.base_frame != description.BASE_FRAME:
        problems.append(f"base frame {deployment.base_frame!r}")
    if tuple(deployment.ee_frames) != (description.TOOL_FRAME,):
        problems.append(f"end-effector frames {list(deployment.ee_frames)}")
    if problems:
        raise ValueError(
            f"checkpoint {checkpoint} does not fit the simulated arm: " + "; ".join(problems)
        )
    return ClosedLoopPolicy(policy, deployment.cameras, settings)

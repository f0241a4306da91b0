"""Run one policy episode in the simulation (shared by the recorder CLI and the eval harness)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Protocol

import numpy as np

from wallwm_core.control.kinematics import ArmKinematics, Pose
from wallwm_sim.event_rubric import EventVerdict
from wallwm_sim.kinematics import sim_arm_kinematics
from wallwm_sim.policy import Action, JointAction, Observation, Policy, ToolAction
from wallwm_sim.sim import InvalidCommandError, TabletopSim
from wallwm_sim.tasks import TaskInstance, get_task

logger = logging.getLogger(__name__)


class StepSink(Protocol):
    """Receives every step of an episode (e.g. the demonstration recorder)."""

    cameras: tuple[str, ...]

    def wants_frames(self, step: int) -> bool: ...

    def begin(self, sim: TabletopSim, instance: TaskInstance) -> None: ...

    def record(
        self,
        step: int,
        observation: Observation,
        action: Action | None,
        joint_target: np.ndarray,
        gripper_target: float,
        progress: float,
    ) -> None: ...

    def end(self, sim: TabletopSim, result: EpisodeResult) -> None: ...


@dataclasses.dataclass(frozen=True)
class EpisodeResult:
    """Outcome of one episode; ``score`` is the final Task Progress (0-100).

    Episodes of an event policy (through the ROS nodes, or wallwm_sim.closed_loop_policy) also
    have: ``outcome`` and ``event_outcomes`` (instruction, outcome, message), the policy's task
    and per-event outcomes; ``events``, every event attempt judged by the planner and by the
    rubric (wallwm_sim.event_rubric); ``chunk_latencies_ms``, the inference time of every chunk
    (closed loop only); ``rejected_chunks`` by the controller; ``wall_s``, wall-clock seconds.
    Empty otherwise.
    """

    task: str
    seed: int
    variant: str
    instruction: str
    score: float
    milestones: dict[str, bool]
    steps: int
    duration_s: float
    policy_done: bool
    rejected_commands: int
    outcome: str = ""
    event_outcomes: tuple[tuple[str, str, str], ...] = ()
    events: tuple[EventVerdict, ...] = ()
    chunk_latencies_ms: tuple[float, ...] = ()
    rejected_chunks: int = 0
    wall_s: float = 0.0


def _tool_action_to_joints(
    kinematics: ArmKinematics, action: ToolAction, q_init: np.ndarray
) -> np.ndarray:
    import transforms3d

    rotation = transforms3d.quaternions.quat2mat(np.asarray(action.quaternion, dtype=np.float64))
    return kinematics.solve(
        Pose(np.asarray(action.position), rotation), q_init, max_iterations=50
    ).q


def make_observation(sim: TabletopSim, cameras: tuple[str, ...]) -> Observation:
    joints = sim.joint_state()
    position, quaternion = sim.tool_pose()
    instruction = sim.instance.instruction if sim.instance is not None else ""
    return Observation(
        time_ns=sim.time_ns,
        instruction=instruction,
        joint_positions=joints.positions[:6].copy(),
        joint_velocities=joints.velocities[:6].copy(),
        gripper=sim.gripper_state(),
        tool_position=position,
        tool_quaternion=quaternion,
        joint_command=sim.joint_command,
        images=sim.render_all(cameras) if cameras else {},
        state=sim.scene_state(),
    )


def run_episode(
    sim: TabletopSim,
    policy: Policy,
    task: str,
    seed: int,
    variant: str = "train",
    max_duration_s: float | None = None,
    stop_on_success: bool = True,
    sink: StepSink | None = None,
    kinematics: ArmKinematics | None = None,
) -> EpisodeResult:
    """Reset ``sim`` to ``(task, seed, variant)`` and run ``policy`` once per control period.

    Ends when the policy reports ``done``, at ``max_duration_s`` (default: the task's time
    limit), or, with ``stop_on_success``, at Task Progress 100. Rejected commands are logged and
    counted; the previous command stays in force.
    """
    limit_s = get_task(task).time_limit_s if max_duration_s is None else max_duration_s
    max_steps = round(limit_s / sim.config.control_period_s)
    instance = sim.reset(task, seed, variant)
    assert instance is not None
    policy.reset(instance)
    if sink is not None:
        sink.begin(sim, instance)
    rejected = 0
    policy_done = False
    step = 0
    for step in range(max_steps):
        cameras = tuple(policy.cameras)
        if sink is not None and sink.wants_frames(step):
            cameras = tuple(dict.fromkeys(cameras + tuple(sink.cameras)))
        observation = make_observation(sim, cameras)
        action = policy(observation)
        try:
            if isinstance(action, JointAction):
                sim.set_command(action.joint_positions, action.gripper)
            elif isinstance(action, ToolAction):
                if kinematics is None:
                    kinematics = sim_arm_kinematics()
                sim.set_command(
                    _tool_action_to_joints(kinematics, action, sim.joint_command), action.gripper
                )
            elif action is not None:
                raise InvalidCommandError(f"policy returned {type(action).__name__}, not an action")
        except InvalidCommandError as error:
            rejected += 1
            logger.warning("%s seed %d step %d: rejected command: %s", task, seed, step, error)
        if sink is not None:
            sink.record(
                step,
                observation,
                action,
                sim.joint_command,
                sim.gripper_command,
                sim.task_progress(),
            )
        if action is not None and action.done:
            policy_done = True
            break
        sim.step()
        if stop_on_success and sim.task_progress() >= 100.0:
            step += 1
            break
    else:
        step = max_steps
    result = EpisodeResult(
        task=task,
        seed=seed,
        variant=variant,
        instruction=instance.instruction,
        score=sim.task_progress(),
        milestones=sim.progress_breakdown(),
        steps=step,
        duration_s=sim.time_ns / 1e9,
        policy_done=policy_done,
        rejected_commands=rejected,
    )
    if sink is not None:
        sink.end(sim, result)
    return result

"""The scripted expert solves every task; idle and malformed policies score (near) zero."""

from __future__ import annotations

import numpy as np
import pytest

from wallwm_sim.expert import ScriptedExpert, describe_motion
from wallwm_sim.kinematics import top_down_rotation
from wallwm_sim.policy import DoNothingPolicy, JointAction, Observation, ToolAction
from wallwm_sim.rollout import run_episode
from wallwm_sim.sim import SimConfig, TabletopSim
from wallwm_sim.tasks import TASK_NAMES, TaskInstance

SEEDS = range(5)


@pytest.fixture(scope="module")
def sim():
    with TabletopSim(SimConfig(image_height=32, image_width=32)) as simulation:
        yield simulation


@pytest.fixture(scope="module")
def expert() -> ScriptedExpert:
    return ScriptedExpert()


@pytest.mark.parametrize("task", TASK_NAMES)
def test_expert_scores_at_least_90_on_every_task(sim, expert, task: str) -> None:
    results = [run_episode(sim, expert, task, seed) for seed in SEEDS]
    mean = float(np.mean([r.score for r in results]))
    assert mean >= 90.0, [(r.seed, r.score, r.milestones) for r in results]
    assert all(r.rejected_commands == 0 for r in results)


def test_do_nothing_scores_zero(sim) -> None:
    policy = DoNothingPolicy()
    scores = [
        run_episode(sim, policy, task, seed, max_duration_s=2.0).score
        for task in TASK_NAMES
        for seed in (0, 1)
    ]
    assert max(scores) == 0.0


class _Malformed:
    """Every other action is NaN; the others hold the start pose."""

    cameras: tuple[str, ...] = ()

    def reset(self, instance: TaskInstance) -> None:
        self.calls = 0

    def __call__(self, observation: Observation) -> JointAction:
        self.calls += 1
        joints = np.full(6, np.nan) if self.calls % 2 else observation.joint_command
        return JointAction(joints, 0.0)


def test_malformed_actions_are_rejected_and_the_episode_runs_on(sim) -> None:
    result = run_episode(sim, _Malformed(), "pick_place", 0, max_duration_s=1.0)
    assert result.steps == 50 and result.rejected_commands == 25
    assert np.all(np.isfinite(sim.joint_state().positions))


class _ToolTarget:
    """Sends one tool pose (the ToolAction path, as the WALL-WM action chunks do)."""

    cameras: tuple[str, ...] = ()

    def __init__(self, position: np.ndarray) -> None:
        import transforms3d

        self.position = position
        self.quaternion = transforms3d.quaternions.mat2quat(top_down_rotation(0.2))

    def reset(self, instance: TaskInstance) -> None:
        pass

    def __call__(self, observation: Observation) -> ToolAction:
        return ToolAction(self.position, self.quaternion, 1.0)


def test_tool_pose_actions_move_the_tool_there(sim) -> None:
    target = np.array([0.45, -0.1, 0.2])
    run_episode(sim, _ToolTarget(target), "press_buttons", 0, max_duration_s=2.0)
    position, _ = sim.tool_pose()
    np.testing.assert_allclose(position, target, atol=5e-3)


def test_motion_words() -> None:
    assert describe_motion(np.array([0.12, -0.05, 0.0])) == "12 cm forward and 5 cm right"
    assert describe_motion(np.array([0.0, 0.0, -0.081])) == "8 cm down"
    assert describe_motion(np.zeros(3)) == "in place"

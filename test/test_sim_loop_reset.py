"""After a reset, commands still in flight from the old episode must not move the arm back."""

from __future__ import annotations

import numpy as np
import pytest

from wallwm_sim.joint_trajectory import TrajectoryRequest, TrajectoryWaypoint
from wallwm_sim.sim import HOME_JOINT_POSITIONS, InvalidCommandError, SimConfig, TabletopSim
from wallwm_sim.sim_loop import (
    NS_PER_S,
    RESET_COMMAND_HOLD_S,
    RESET_COMMAND_MATCH_RAD,
    LoopConfig,
    SimulationLoop,
)

PERIOD_NS = 2_000_000
HOME = np.array(HOME_JOINT_POSITIONS)
OLD_POSE = HOME + np.array([0.4, 0.3, -0.3, 0.0, 0.2, 0.5])


class _Outputs:
    def clock(self, time_ns: int) -> None: ...

    def joint_state(self, time_ns: int, state) -> None: ...

    def images(self, time_ns: int, images) -> None: ...

    def fault(self, message: str) -> None:
        raise AssertionError(message)


@pytest.fixture
def sim():
    with TabletopSim(SimConfig(control_period_s=PERIOD_NS / NS_PER_S)) as sim:
        yield sim


@pytest.fixture
def loop(sim):
    return SimulationLoop(sim, LoopConfig(PERIOD_NS, 0, (), real_time=False), _Outputs())


def _steps(loop: SimulationLoop, seconds: float) -> None:
    for _ in range(round(seconds * NS_PER_S / PERIOD_NS)):
        loop.step_once()


def test_old_commands_are_ignored_until_one_matches_the_start_pose(sim, loop) -> None:
    loop.command_positions(OLD_POSE)  # no reset yet: any valid command applies
    _steps(loop, 0.2)
    np.testing.assert_allclose(loop.joint_command()[0], OLD_POSE)

    loop.reset("pick_place", 0, "train")
    reset_ns = loop.clock_ns
    loop.command_positions(OLD_POSE)  # the old episode's command, still in flight
    old_trajectory = TrajectoryRequest(
        tuple(f"joint{i}" for i in range(1, 7)),
        (TrajectoryWaypoint(NS_PER_S, tuple(OLD_POSE)),),
        start_ns=reset_ns - 10 * PERIOD_NS,
    )
    loop.command_trajectory(old_trajectory)
    _steps(loop, 0.1)
    np.testing.assert_allclose(loop.joint_command()[0], HOME)
    assert np.max(np.abs(sim.joint_state().positions[:6] - HOME)) < 1e-2
    assert loop.counters().ignored_after_reset == 2

    with pytest.raises(InvalidCommandError):  # malformed input is still rejected, not ignored
        loop.command_positions(np.full(6, np.nan))
    near = HOME + 0.5 * RESET_COMMAND_MATCH_RAD
    loop.command_positions(near)  # a controller that has seen the reset: the hold ends
    np.testing.assert_allclose(loop.joint_command()[0], near)
    loop.command_positions(OLD_POSE)
    np.testing.assert_allclose(loop.joint_command()[0], OLD_POSE)
    assert loop.counters().ignored_after_reset == 2


def test_the_hold_ends_after_its_time_limit(loop) -> None:
    loop.reset("pick_place", 0, "train")
    loop.command_positions(OLD_POSE)
    np.testing.assert_allclose(loop.joint_command()[0], HOME)
    _steps(loop, RESET_COMMAND_HOLD_S + 0.01)
    loop.command_positions(OLD_POSE)
    np.testing.assert_allclose(loop.joint_command()[0], OLD_POSE)
    assert loop.counters().ignored_after_reset == 1

"""JointController on the simulated arm: tracking, latency skip, blending, limits and safety.

The "arm" here is ideal: its measured joint positions are the last command. Every test checks
behaviour, never timing.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pinocchio as pin
import pytest

import wallwm_core
from wallwm_core.action_chunk import ActionChunk
from wallwm_core.config_loading import ConfigError, config_from_dict, load_config
from wallwm_core.control import (
    ControllerConfig,
    ControllerState,
    JointController,
    Pose,
    load_controller_config,
)
from wallwm_core.control.demo_arm import (
    DEMO_ARM_HOME,
    demo_arm_finger_joint,
    demo_arm_joints,
    demo_arm_tool_frame,
    demo_arm_urdf,
)
from wallwm_sim.description import urdf_string

CONFIG_PATH = Path(wallwm_core.__file__).parent / "configs" / "controller_sim_arm.yaml"
URDF = urdf_string()
MS = 1_000_000
STEP_NS = 50 * MS
T0 = 10_000 * MS
DOWN = (0.0, 0.0, 1.0, 0.0)  # (w, x, y, z): tool z pointing down (Ry(pi))
HOME = np.array([0.4, 0.0, 0.3])
HOME_SEED = np.array([0.0, 0.18, 1.74, 0.0, 1.22, 0.0])


def make_controller(**overrides) -> JointController:
    config = dataclasses.replace(load_controller_config(CONFIG_PATH), **overrides)
    return JointController.from_urdf(URDF, config)


def home_q(controller: JointController) -> np.ndarray:
    rotation = pin.Quaternion(*DOWN).toRotationMatrix()  # Quaternion(w, x, y, z)
    result = controller.kinematics[0].solve(Pose(HOME, rotation), HOME_SEED)
    assert result.success, result.reason
    return result.q


def make_chunk(
    stamp_ns: int,
    positions: np.ndarray,
    quaternions: np.ndarray | None = None,
    gripper: np.ndarray | None = None,
    **fields,
) -> ActionChunk:
    positions = np.asarray(positions, dtype=float).reshape(-1, 1, 3)
    steps = positions.shape[0]
    values = dict(
        stamp_ns=stamp_ns,
        step_period_ns=STEP_NS,
        frame_id="base_link",
        arm_names=("arm",),
        ee_frames=("tool0",),
        positions=positions,
        quaternions=np.tile(DOWN, (steps, 1, 1)) if quaternions is None else quaternions,
        gripper=np.zeros((steps, 1)) if gripper is None else gripper,
    )
    values.update(fields)
    return ActionChunk(**values)


def line(start, end, steps: int) -> np.ndarray:
    s = np.linspace(0.0, 1.0, steps)[:, None]
    return np.asarray(start) * (1 - s) + np.asarray(end) * s


@dataclasses.dataclass
class Log:
    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    states: list[ControllerState]
    reasons: list[tuple[str, ...]]
    ee: np.ndarray  # [N, 3] forward kinematics of the commands
    ee_rotations: np.ndarray
    gripper: list


class IdealArm:
    """Measured joint positions = last command; drives the controller tick by tick."""

    def __init__(self, controller: JointController, q: np.ndarray, now_ns: int = T0) -> None:
        self.controller = controller
        self.q = np.array(q, dtype=float)
        self.now_ns = now_ns
        self.period_ns = controller.config.period_ns
        command = controller.update(now_ns, self.q)
        assert command.positions is not None

    def run(self, ticks: int, submit: dict | None = None, measure: bool = True) -> Log:
        submit = submit or {}
        rows = []
        for tick in range(ticks):
            self.now_ns += self.period_ns
            if tick in submit:
                result = self.controller.submit_chunk(submit[tick], self.now_ns)
                assert result.accepted, result.reason
            command = self.controller.update(self.now_ns, self.q if measure else None)
            self.q = command.positions
            rows.append(command)
        kin = self.controller.kinematics[0]
        poses = [kin.forward(c.positions[: kin.num_joints]) for c in rows]
        return Log(
            positions=np.array([c.positions for c in rows]),
            velocities=np.array([c.velocities for c in rows]),
            accelerations=np.array([c.accelerations for c in rows]),
            states=[c.state for c in rows],
            reasons=[c.reasons for c in rows],
            ee=np.array([p.position for p in poses]),
            ee_rotations=np.array([p.rotation for p in poses]),
            gripper=[c.gripper for c in rows],
        )


def log_of(commands: list) -> Log:
    """A Log of commands produced outside IdealArm.run (no forward kinematics)."""
    return Log(
        positions=np.array([c.positions for c in commands]),
        velocities=np.array([c.velocities for c in commands]),
        accelerations=np.array([c.accelerations for c in commands]),
        states=[c.state for c in commands],
        reasons=[c.reasons for c in commands],
        ee=np.zeros((0, 3)),
        ee_rotations=np.zeros((0, 3, 3)),
        gripper=[],
    )


def assert_within_limits(controller: JointController, log: Log, previous_q: np.ndarray) -> None:
    config = controller.config
    dt = config.period_ns / 1e9
    vmax = controller.max_velocity
    assert np.all(np.abs(log.velocities) <= vmax * (1 + 1e-9))
    assert np.all(np.abs(log.accelerations) <= config.max_acceleration * (1 + 1e-9))
    jerk = np.diff(log.accelerations, axis=0) / dt
    assert np.all(np.abs(jerk) <= config.max_jerk * (1 + 1e-6))
    steps = np.diff(np.vstack([previous_q, log.positions]), axis=0)
    assert np.all(np.abs(steps) <= vmax * dt * (1 + 1e-9) + 1e-12)
    kin = controller.kinematics[0]
    assert np.all(log.positions >= kin.limits.lower) and np.all(log.positions <= kin.limits.upper)


def ee_speeds(log: Log, dt: float) -> tuple[np.ndarray, np.ndarray]:
    linear = np.linalg.norm(np.diff(log.ee, axis=0), axis=-1) / dt
    rotations = log.ee_rotations
    angular = (
        np.array([np.linalg.norm(pin.log3(a.T @ b)) for a, b in itertools.pairwise(rotations)]) / dt
    )
    return linear, angular


# ------------------------------------------------------------------------------ configuration


def test_sim_config_loads_and_matches_the_urdf() -> None:
    config = load_controller_config(CONFIG_PATH)
    assert config.control_rate_hz == 500.0 and config.period_ns == 2 * MS
    controller = JointController.from_urdf(URDF, config)
    assert controller.joint_names == tuple(f"joint{i}" for i in range(1, 7))
    assert controller.gripper_joint_names == ("finger_left_joint",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"blend_window": -0.1}, "blend_window"),
        ({"position_interpolation": "quintic"}, "position_interpolation"),
        ({"workspace_violation": "ignore"}, "workspace_violation"),
        ({"velocity_scale": 1.5}, "velocity_scale"),
        ({"max_following_error": 0.0}, "max_following_error"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"arms": []}, "at least one arm"),
    ],
)
def test_bad_config_values_are_named(tmp_path, change, message) -> None:
    import yaml

    data = yaml.safe_load(CONFIG_PATH.read_text())
    data.update(change)
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_config(ControllerConfig, path)


def test_bad_workspace_and_unknown_joint_are_config_errors() -> None:
    import yaml

    data = yaml.safe_load(CONFIG_PATH.read_text())
    data["arms"][0]["workspace"]["min"] = [0.5, 0.0, 0.0]
    data["arms"][0]["workspace"]["max"] = [0.4, 1.0, 1.0]
    with pytest.raises(ConfigError, match="workspace min must be below max"):
        config_from_dict(ControllerConfig, data)
    data = yaml.safe_load(CONFIG_PATH.read_text())
    data["arms"][0]["joint_names"] = ["joint1", "joint9"]
    with pytest.raises(ConfigError, match="joint9"):
        JointController.from_urdf(URDF, config_from_dict(ControllerConfig, data))


# ------------------------------------------------------------------------------ tracking


def test_idle_until_the_first_joint_state() -> None:
    controller = make_controller()
    command = controller.update(T0)
    assert command.state is ControllerState.IDLE and command.positions is None
    assert "waiting for joint states" in command.reasons
    command = controller.update(T0 + 2 * MS, home_q(controller))
    assert command.state is ControllerState.IDLE
    np.testing.assert_allclose(command.positions, home_q(controller))
    assert command.gripper is None  # never command the gripper before a chunk did


def test_tracks_a_chunk_to_its_final_target() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    end = np.array([0.5, 0.15, 0.15])
    chunk = make_chunk(arm.now_ns, line(HOME, end, 21), gripper=np.linspace(0, 1, 21)[:, None])
    previous = arm.q.copy()
    log = arm.run(900, submit={0: chunk})
    assert_within_limits(controller, log, previous)
    assert ControllerState.TRACKING in log.states
    # After the chunk's last step (1 s) the arm settles on it during the end hold.
    settled = int(1.25e9 / controller.config.period_ns)
    assert np.linalg.norm(log.ee[settled] - end) < 1e-3
    assert log.states[-1] is ControllerState.HOLDING  # then the watchdog holds
    assert np.linalg.norm(log.ee[-1] - end) < 1e-3
    command = controller.update(arm.now_ns + 2 * MS, arm.q)
    assert command.gripper[0] == pytest.approx(1.0)
    assert command.gripper_positions[0] == pytest.approx(0.0)  # closed finger


def test_latency_is_skipped_and_the_arm_never_goes_back() -> None:
    """Chunk B continues chunk A's motion; it arrives 100 ms after its stamp."""
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    speed = 0.1  # m/s along +y
    start = arm.now_ns

    def motion_chunk(stamp_ns: int) -> ActionChunk:
        seconds = (stamp_ns - start) / 1e9 + np.arange(16) * STEP_NS / 1e9
        positions = HOME + np.outer(np.clip(seconds - 0.2, 0.0, None) * speed, [0.0, 1.0, 0.0])
        return make_chunk(stamp_ns, positions)

    first = motion_chunk(start)
    log_a = arm.run(300, submit={0: first})
    second = motion_chunk(start + 500 * MS)
    result = controller.submit_chunk(second, start + 600 * MS)
    assert result.accepted and result.skipped_steps == 2  # due at +0 and +50 ms, now +100 ms
    log_b = arm.run(200)
    y = np.concatenate([log_a.ee[:, 1], log_b.ee[:, 1]])
    assert np.all(np.diff(y[150:]) > -1e-6)  # moving on +y, never back
    assert y[-1] > 0.05


def test_blending_between_conflicting_chunks_stays_within_limits() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    first = make_chunk(arm.now_ns, line(HOME, HOME + np.array([0.1, 0.0, 0.0]), 30))
    previous = arm.q.copy()
    log_a = arm.run(250, submit={0: first})
    # The newer plan disagrees by 4 cm sideways; it was conditioned on an observation 80 ms ago.
    second = make_chunk(
        arm.now_ns - 80 * MS,
        line(HOME + np.array([0.05, 0.04, 0.0]), HOME + np.array([0.05, 0.04, -0.1]), 30),
    )
    log_b = arm.run(300, submit={0: second})
    log = Log(
        *(
            np.concatenate([getattr(log_a, f), getattr(log_b, f)])
            for f in ("positions", "velocities", "accelerations")
        ),
        log_a.states + log_b.states,
        log_a.reasons + log_b.reasons,
        np.concatenate([log_a.ee, log_b.ee]),
        np.concatenate([log_a.ee_rotations, log_b.ee_rotations]),
        log_a.gripper + log_b.gripper,
    )
    assert_within_limits(controller, log, previous)
    linear, _ = ee_speeds(log, 0.002)
    assert np.max(linear) <= controller.config.max_ee_linear_speed * 1.02
    # Across the switch the end effector keeps moving smoothly: no jump between two ticks.
    switch = len(log_a.states)
    assert (
        np.max(np.linalg.norm(np.diff(log.ee[switch - 5 : switch + 60], axis=0), axis=-1)) < 1.5e-3
    )
    assert all(state is ControllerState.TRACKING for state in log_b.states[:200])


# ------------------------------------------------------------------------------ safety


def test_workspace_clamp_keeps_targets_in_the_box() -> None:
    controller = make_controller(workspace_violation="clamp")  # opt-in
    arm = IdealArm(controller, home_q(controller))
    below_table = make_chunk(arm.now_ns, line(HOME, [0.45, 0.0, -0.05], 10))
    result = controller.submit_chunk(below_table, arm.now_ns)
    assert result.accepted and result.clamped_steps > 0
    assert "outside the workspace box" in result.reason and "clamped" in result.reason
    log = arm.run(700)
    box_min = controller.config.arms[0].workspace.min
    assert np.min(log.ee[:, 2]) >= box_min[2] - 1e-3
    assert abs(log.ee[-1, 2] - box_min[2]) < 1e-3
    assert controller.status().workspace_clamped_steps == result.clamped_steps


def test_workspace_violation_beyond_the_margin_is_rejected_by_default() -> None:
    controller = make_controller()
    assert controller.config.workspace_violation == "reject"
    arm = IdealArm(controller, home_q(controller))
    result = controller.submit_chunk(
        make_chunk(arm.now_ns, line(HOME, [0.9, 0.0, 0.3], 10)), arm.now_ns
    )
    assert not result.accepted
    assert "outside the workspace box" in result.reason and "step 9" in result.reason
    status = controller.status()
    assert status.chunks_rejected == 1 and status.last_rejection == result.reason


def test_workspace_violation_within_the_margin_is_clamped() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    box_max_x = controller.config.arms[0].workspace.max[0]
    slightly_out = [box_max_x + 0.5 * controller.config.workspace_margin, 0.0, 0.3]
    result = controller.submit_chunk(
        make_chunk(arm.now_ns, line(HOME, slightly_out, 10)), arm.now_ns
    )
    assert result.accepted and result.clamped_steps > 0, result.reason
    log = arm.run(800)
    assert np.max(log.ee[:, 0]) <= box_max_x + 1e-3


def test_chunk_size_bounds_are_checked_first() -> None:
    controller = make_controller(max_chunk_steps=50, max_chunk_duration=2.0)
    arm = IdealArm(controller, home_q(controller))
    too_many = controller.submit_chunk(make_chunk(arm.now_ns, np.tile(HOME, (51, 1))), arm.now_ns)
    assert not too_many.accepted and "max_chunk_steps 50" in too_many.reason
    assert controller.status().last_rejection == too_many.reason
    too_long = make_chunk(arm.now_ns, np.tile(HOME, (40, 1)), step_period_ns=100 * MS)
    result = controller.submit_chunk(too_long, arm.now_ns)
    assert not result.accepted and "max_chunk_duration 2.0" in result.reason
    assert controller.check_chunk_size(100_000, STEP_NS).startswith("chunk has 100000 steps")
    assert controller.check_chunk_size(40, STEP_NS) == ""
    controller.note_rejected_chunk("malformed message: no poses")
    status = controller.status()
    assert status.chunks_rejected == 3 and status.last_rejection == "malformed message: no poses"


def test_end_effector_speed_is_limited_not_jumped() -> None:
    controller = make_controller(max_ee_linear_speed=0.2, max_ee_angular_speed=1.0)
    arm = IdealArm(controller, home_q(controller))
    target = HOME + np.array([0.15, 0.1, -0.1])
    turned = pin.Quaternion(
        pin.Quaternion(*DOWN).toRotationMatrix() @ pin.rpy.rpyToMatrix(0, 0, 1.2)
    )
    quaternions = np.tile(DOWN, (20, 1, 1))
    quaternions[1:, 0] = [turned.w, turned.x, turned.y, turned.z]
    positions = np.tile(target, (20, 1))
    positions[0] = HOME
    # One step asks for 21 cm and 1.2 rad in 50 ms (4.2 m/s, 24 rad/s).
    previous = arm.q.copy()
    log = arm.run(1200, submit={0: make_chunk(arm.now_ns, positions, quaternions)})
    assert_within_limits(controller, log, previous)
    linear, angular = ee_speeds(log, 0.002)
    assert np.max(linear) <= 0.2 * 1.02 and np.max(angular) <= 1.0 * 1.02
    assert any("speed limited" in reason for reasons in log.reasons for reason in reasons)
    assert np.linalg.norm(log.ee[-1] - target) < 1e-3  # reached, later than asked


def test_watchdog_holds_and_decelerates_within_limits() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    # A fast motion that is cut off: the chunk's last step is due at 0.25 s, mid-motion.
    chunk = make_chunk(arm.now_ns, line(HOME, HOME + np.array([0.0, 0.1, 0.0]), 6))
    previous = arm.q.copy()
    log = arm.run(600, submit={0: chunk})
    assert_within_limits(controller, log, previous)
    holding = [i for i, s in enumerate(log.states) if s is ControllerState.HOLDING]
    cover_end = (5 * STEP_NS + int(controller.config.end_hold * 1e9)) // controller.config.period_ns
    assert holding and holding[0] == cover_end  # first tick past the end hold
    assert any("no valid chunk covers" in r for r in log.reasons[holding[0]])
    np.testing.assert_allclose(log.velocities[-1], 0.0, atol=1e-9)
    np.testing.assert_allclose(log.positions[-1], log.positions[-50])  # at rest


def test_stale_joint_states_hold_then_resume() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    chunk = make_chunk(arm.now_ns, line(HOME, HOME + np.array([0.1, 0.0, -0.1]), 60))
    arm.run(100, submit={0: chunk})
    previous = arm.q.copy()
    blind = arm.run(200, measure=False)  # the driver stops publishing joint states
    assert_within_limits(controller, blind, previous)
    timeout_ticks = int(controller.config.joint_state_timeout * 1e9) // controller.config.period_ns
    assert blind.states[timeout_ticks - 1] is ControllerState.TRACKING
    assert blind.states[timeout_ticks + 1] is ControllerState.HOLDING
    assert any("stale" in r for r in blind.reasons[-1])
    np.testing.assert_allclose(blind.velocities[-1], 0.0, atol=1e-9)
    resumed = arm.run(100)
    assert resumed.states[-1] is ControllerState.TRACKING


def test_estop_latches_until_an_explicit_reset() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    chunk = make_chunk(arm.now_ns, line(HOME, HOME + np.array([0.1, 0.1, -0.1]), 40))
    arm.run(150, submit={0: chunk})
    controller.engage_estop("operator button")
    refused = controller.reset_estop(arm.now_ns)
    assert not refused.ok and "decelerating" in refused.reason  # still moving
    previous = arm.q.copy()
    log = arm.run(300)
    assert_within_limits(controller, log, previous)
    assert all(state is ControllerState.ESTOP for state in log.states)
    assert "e-stop engaged: operator button" in log.reasons[-1]
    np.testing.assert_allclose(log.velocities[-1], 0.0, atol=1e-9)
    late_chunk = make_chunk(arm.now_ns, line(HOME, HOME + np.array([0.1, 0.0, 0.0]), 10))
    rejected = controller.submit_chunk(late_chunk, arm.now_ns)
    assert not rejected.accepted and "e-stop" in rejected.reason
    assert arm.run(50).states[-1] is ControllerState.ESTOP  # still latched, no reset yet

    stale = controller.reset_estop(arm.now_ns + 10**9)  # no joint state for a second
    assert not stale.ok and "stale" in stale.reason
    reset = controller.reset_estop(arm.now_ns)
    assert reset.ok
    assert arm.run(5).states[-1] is ControllerState.IDLE
    before_reset = make_chunk(arm.now_ns - 50 * MS, line(HOME, HOME, 10))
    assert (
        "before the last e-stop/fault reset"
        in controller.submit_chunk(before_reset, arm.now_ns).reason
    )
    after = make_chunk(arm.now_ns, line(arm.run(1).ee[-1], HOME, 20))
    assert controller.submit_chunk(after, arm.now_ns).accepted
    assert arm.run(700).states[300] is ControllerState.TRACKING


def _with_nan(chunk: ActionChunk) -> ActionChunk:
    # ActionChunk refuses NaN on construction; a controller must not rely on that alone.
    positions = chunk.positions.copy()
    positions[3, 0, 1] = np.nan
    object.__setattr__(chunk, "positions", positions)
    return chunk


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda now: _with_nan(make_chunk(now, line(HOME, HOME, 5))), "NaN"),
        (lambda now: make_chunk(now, line(HOME, HOME, 5), frame_id="world"), "base frame"),
        (lambda now: make_chunk(now, line(HOME, HOME, 5), arm_names=("left",)), "do not match"),
        (lambda now: make_chunk(now, line(HOME, HOME, 5), ee_frames=("hand",)), "drives 'tool0'"),
        (lambda now: make_chunk(now + 2 * 10**9, line(HOME, HOME, 5)), "in the future"),
        (lambda now: make_chunk(now - 5 * 10**9, line(HOME, HOME, 5)), "nothing left to execute"),
    ],
)
def test_invalid_chunks_are_rejected_and_the_arm_holds(build, message) -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    start_q = arm.q.copy()
    result = controller.submit_chunk(build(arm.now_ns), arm.now_ns)
    assert not result.accepted and message in result.reason
    assert controller.status().last_rejection == result.reason
    log = arm.run(20)
    assert all(state is ControllerState.IDLE for state in log.states)
    np.testing.assert_allclose(log.positions[-1], start_q)


def test_older_chunks_are_rejected() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    assert controller.submit_chunk(
        make_chunk(arm.now_ns, line(HOME, HOME, 10)), arm.now_ns
    ).accepted
    for stamp in (arm.now_ns, arm.now_ns - 10 * MS):
        result = controller.submit_chunk(make_chunk(stamp, line(HOME, HOME, 10)), arm.now_ns)
        assert not result.accepted and "not newer" in result.reason


def test_clock_jumping_back_clears_chunks() -> None:
    """A restarted simulation clock must not lock newer-by-content chunks out forever."""
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    arm.run(50, submit={0: make_chunk(arm.now_ns, line(HOME, HOME, 40))})
    arm.now_ns = 5 * MS  # the clock restarted
    command = controller.update(arm.now_ns, arm.q)
    assert any("clock jumped back" in r for r in command.reasons)
    assert command.state is ControllerState.HOLDING  # the old chunks are gone
    result = controller.submit_chunk(make_chunk(arm.now_ns, line(HOME, HOME, 40)), arm.now_ns)
    assert result.accepted, result.reason
    assert arm.run(10).states[-1] is ControllerState.TRACKING


def test_arm_far_from_the_command_holds_then_faults_and_never_jumps() -> None:
    """An arm that does not follow (blocked, or a plausible but wrong reading that drifted away)
    must not pull the command after it: hold, then fault; the command never jumps."""
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    old_stamp = arm.now_ns
    arm.run(
        100, submit={0: make_chunk(old_stamp, line(HOME, HOME + np.array([0.1, 0.0, 0.0]), 40))}
    )
    previous = arm.q.copy()
    # the reading drifts away at half the velocity limit: each step is plausible
    drift = 0.5 * controller.max_velocity * arm.period_ns / 1e9
    reading = arm.q.copy()
    commands = []
    for _ in range(500):
        arm.now_ns += arm.period_ns
        reading = reading + drift * np.array([1, 0, 0, 0, 0, 0])
        commands.append(controller.update(arm.now_ns, reading))
    log = log_of(commands)
    assert_within_limits(controller, log, previous)
    holding = log.states.index(ControllerState.HOLDING)
    assert any("following error: joint1" in r for r in log.reasons[holding])
    faulted = log.states.index(ControllerState.FAULT)
    fault_ticks = controller.config.joint_fault_after * 1e9 / arm.period_ns
    assert faulted - holding >= fault_ticks - 1
    assert set(log.states[faulted:]) == {ControllerState.FAULT}
    # the command stayed where the arm was told to be, not where the reading went
    assert np.max(np.abs(log.positions[-1] - arm.q)) < 0.05
    assert abs(reading[0] - log.positions[-1][0]) > 0.5
    status = controller.status()
    assert status.following_error_holds >= 1 and "following error" in status.fault_reason
    refused = controller.submit_chunk(make_chunk(arm.now_ns, line(HOME, HOME, 40)), arm.now_ns)
    assert not refused.accepted and "fault" in refused.reason


def test_implausible_joint_jumps_are_rejected_counted_and_never_move_the_command() -> None:
    """A reading 0.4 rad off for 0.2 s, and a stray all-zero reading among the real ones: the
    command keeps within its limits and goes nowhere near them."""
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    arm.run(50, submit={0: make_chunk(arm.now_ns, line(HOME, HOME + np.array([0.05, 0, 0]), 20))})
    previous = arm.q.copy()
    commands = []
    for tick in range(300):
        arm.now_ns += arm.period_ns
        wrong = 50 <= tick < 150  # 0.2 s of an offset reading
        reading = arm.q + np.array([0.4, 0, 0, 0, 0, 0]) if wrong else arm.q
        if tick % 50 == 25:
            controller.submit_joint_state(np.zeros(6), arm.now_ns, arm.now_ns)  # stray zero
        command = controller.update(arm.now_ns, reading)
        arm.q = command.positions
        commands.append(command)
    log = log_of(commands)
    assert_within_limits(controller, log, previous)
    # the chunk (straight out along x) never turns joint1; the wrong readings did not either
    assert np.max(np.abs(log.positions[:, 0] - previous[0])) < 1e-6
    status = controller.status()
    assert status.joint_states_implausible >= 100 + 5
    assert "implausible jump: joint1 moved 0.400 rad" in "; ".join(
        r for c in commands for r in c.reasons
    )
    assert ControllerState.FAULT not in log.states  # 0.2 s < joint_fault_after
    assert ControllerState.HOLDING in log.states  # stale while every reading was rejected
    assert log.states[-1] is ControllerState.TRACKING  # resumed on the real readings


def test_a_lasting_jump_faults_and_a_reset_resynchronises_at_rest() -> None:
    """The arm moved by hand (or a simulator reset nobody announced): the jumped joint states are
    implausible, so the controller holds, then faults; reset_estop restarts at the new pose."""
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    arm.run(20)
    moved = arm.q + np.array([0.6, -0.3, 0.2, 0.0, 0.1, 0.0])
    held = arm.q.copy()
    commands = []
    for _ in range(300):
        arm.now_ns += arm.period_ns
        commands.append(controller.update(arm.now_ns, moved))
    assert all(np.max(np.abs(c.positions - held)) < 1e-9 for c in commands)
    assert commands[-1].state is ControllerState.FAULT
    assert "joint states implausible" in controller.status().fault_reason
    result = controller.reset_estop(arm.now_ns)
    assert result.ok, result.reason
    assert "fault reset" in result.reason
    arm.q = moved
    log = arm.run(20)
    np.testing.assert_allclose(log.positions[-1], moved, atol=1e-9)
    assert log.states[-1] is ControllerState.IDLE


def test_an_announced_arm_reset_resynchronises_without_a_fault() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    old_stamp = arm.now_ns
    arm.run(50, submit={0: make_chunk(old_stamp, line(HOME, HOME + np.array([0.1, 0, 0]), 40))})
    moved = arm.q + np.array([0.6, -0.3, 0.2, 0.0, 0.1, 0.0])
    controller.resync(arm.now_ns + 1)
    arm.now_ns += arm.period_ns
    command = controller.update(arm.now_ns, moved)
    np.testing.assert_allclose(command.positions, moved, atol=1e-9)
    np.testing.assert_allclose(command.velocities, 0.0, atol=1e-12)
    assert command.state is ControllerState.IDLE
    stale = controller.submit_chunk(make_chunk(old_stamp + MS, line(HOME, HOME, 40)), arm.now_ns)
    assert not stale.accepted and "arm reset" in stale.reason
    arm.q = moved
    fresh = controller.submit_chunk(make_chunk(arm.now_ns, line(HOME, HOME, 40)), arm.now_ns)
    assert fresh.accepted, fresh.reason
    log = arm.run(1500)
    assert np.linalg.norm(log.ee[-1] - HOME) < 1e-3  # tracked from the new pose
    assert controller.status().resyncs == 1 and ControllerState.FAULT not in log.states


def test_joint_state_stamps_zero_future_and_receive_time() -> None:
    controller = make_controller()
    q = home_q(controller)
    assert controller.update(T0, q).positions is not None
    assert "zero stamp" in controller.submit_joint_state(q, 0, T0 + MS)
    lead = int(controller.config.joint_state_max_lead * 1e9)
    future = controller.submit_joint_state(q, T0 + MS + lead + 100 * MS, T0 + MS)
    assert "ahead of the controller's clock" in future
    assert controller.status().joint_states_rejected == 2
    # a stamp inside the lead is accepted, but it cannot keep the state fresh: receive time counts
    assert controller.submit_joint_state(q, T0 + MS + lead, T0 + MS) == ""
    timeout = int(controller.config.joint_state_timeout * 1e9)
    command = controller.update(T0 + MS + timeout + 10 * MS)
    assert command.state is ControllerState.HOLDING
    assert any("receive time" in r for r in command.reasons)


def test_canceled_event_holds_within_limits_and_its_late_chunks_are_rejected() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    far = HOME + np.array([0.0, 0.2, 0.0])
    chunk = make_chunk(arm.now_ns, line(HOME, far, 20), event_id=3)
    previous = arm.q.copy()
    moving = arm.run(100, submit={0: chunk})
    assert moving.states[-1] is ControllerState.TRACKING
    canceled_ns = arm.now_ns
    assert controller.cancel_event(3, canceled_ns)
    stopping = arm.run(300)
    both = dataclasses.replace(
        stopping,
        positions=np.vstack([moving.positions, stopping.positions]),
        velocities=np.vstack([moving.velocities, stopping.velocities]),
        accelerations=np.vstack([moving.accelerations, stopping.accelerations]),
    )
    assert_within_limits(controller, both, previous)
    assert stopping.states[0] is ControllerState.HOLDING
    assert any("event 3 were canceled" in r for r in stopping.reasons[0])
    np.testing.assert_allclose(stopping.velocities[-1], 0.0, atol=1e-9)
    assert np.linalg.norm(stopping.ee[-1] - far) > 0.1  # stopped, not run to the end
    late_chunk = make_chunk(canceled_ns - MS, line(HOME, far, 20), event_id=3)
    late = controller.submit_chunk(late_chunk, arm.now_ns)
    assert not late.accepted and "event 3 was canceled" in late.reason
    assert controller.status().chunks_canceled == 1


def test_a_delayed_joint_state_is_compared_with_the_command_of_its_time() -> None:
    """Under load joint states arrive late: 60 ms behind a fast motion they differ from the
    newest command by more than the limit, yet they are where the arm was told to be then."""
    controller = make_controller(max_following_error=0.02)
    arm = IdealArm(controller, home_q(controller))
    far = HOME + np.array([0.0, 0.25, -0.1])
    log = arm.run(400, submit={0: make_chunk(arm.now_ns, line(HOME, far, 20))})
    delay_ticks = 30  # 60 ms, inside the 100 ms joint-state time-out
    moving = np.max(np.abs(np.diff(log.positions, axis=0)), axis=1) > 1e-4
    tick = int(np.flatnonzero(moving)[len(np.flatnonzero(moving)) // 2])  # mid-motion
    stale_q = log.positions[tick - delay_ticks]
    assert np.max(np.abs(stale_q - log.positions[tick])) > 0.02  # would trip a naive check

    controller = make_controller(max_following_error=0.02)
    arm = IdealArm(controller, home_q(controller))
    arm.run(tick, submit={0: make_chunk(arm.now_ns, line(HOME, far, 20))})
    arm.now_ns += arm.period_ns
    stamp = arm.now_ns - delay_ticks * arm.period_ns
    command = controller.update(arm.now_ns, stale_q, measured_stamp_ns=stamp)
    assert not any("following error" in r for r in command.reasons), command.reasons
    assert command.state is ControllerState.TRACKING
    assert controller.status().following_error_holds == 0


def test_servo_lag_below_max_following_error_is_not_reanchored() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    arm.run(
        10, submit={0: make_chunk(arm.now_ns, line(HOME, HOME + np.array([0.1, 0.0, 0.0]), 40))}
    )
    arm.now_ns += arm.period_ns
    lagging = arm.q + 0.9 * controller.config.max_following_error
    command = controller.update(arm.now_ns, lagging)
    assert command.state is ControllerState.TRACKING
    assert not any("following error" in r for r in command.reasons)
    assert controller.status().following_error_holds == 0


def test_bad_joint_states_are_ignored_with_a_reason() -> None:
    controller = make_controller()
    q = home_q(controller)
    controller.update(T0, q)
    command = controller.update(T0 + 2 * MS, np.full(6, np.nan))
    assert any("NaN" in r for r in command.reasons)
    command = controller.update(T0 + 4 * MS, np.zeros(3))
    assert any("expected 6 positions" in r for r in command.reasons)
    np.testing.assert_allclose(command.positions, q)


def test_ik_failure_holds_with_a_reason_and_recovers() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    # Inside the box but out of reach for this arm with the tool pointing down; then back.
    far = np.array([0.68, 0.4, 0.02])
    positions = np.concatenate(
        [line(HOME, far, 10), np.tile(far, (30, 1)), line(far, HOME, 10), np.tile(HOME, (30, 1))]
    )
    previous = arm.q.copy()
    log = arm.run(2000, submit={0: make_chunk(arm.now_ns, positions)})
    assert_within_limits(controller, log, previous)
    failures = [
        i
        for i, reasons in enumerate(log.reasons)
        if any("IK did not converge" in r for r in reasons)
    ]
    assert failures and log.states[failures[0]] is ControllerState.HOLDING
    assert controller.status().ik_failures == len(failures)
    assert np.all(np.isfinite(log.positions))
    assert log.states[failures[-1] + 1] is ControllerState.TRACKING  # resumed
    assert np.linalg.norm(log.ee[-1] - HOME) < 1e-3


def test_target_beyond_a_joint_limit_stops_at_the_limit_margin() -> None:
    """Tool yaw pi (w, x, y, z = 0, 1, 0, 0) needs joint6 beyond its 2.9 rad limit on this arm."""
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    unreachable_yaw = np.tile([0.0, 1.0, 0.0, 0.0], (60, 1, 1))
    chunk = make_chunk(arm.now_ns, np.tile([0.45, -0.1, 0.15], (60, 1)), unreachable_yaw)
    previous = arm.q.copy()
    log = arm.run(1100, submit={0: chunk})
    assert_within_limits(controller, log, previous)
    status = controller.status()
    assert status.ik_failures > 0 and "joint6" in status.reasons[-1]
    assert status.joint_limit_clips == 0  # braked before the limit, no clamping needed
    upper = controller.kinematics[0].limits.upper[5] - controller.config.position_limit_margin
    assert np.max(log.positions[:, 5]) <= upper + 1e-9
    np.testing.assert_allclose(log.velocities[-1], 0.0, atol=1e-9)


def test_status_counts() -> None:
    controller = make_controller()
    arm = IdealArm(controller, home_q(controller))
    arm.run(
        10,
        submit={
            0: make_chunk(arm.now_ns, line(HOME, HOME + np.array([0.02, 0, 0]), 10), event_id=7)
        },
    )
    controller.submit_chunk(make_chunk(0, line(HOME, HOME, 3)), arm.now_ns)
    status = controller.status()
    assert status.state is ControllerState.TRACKING
    assert (status.chunks_accepted, status.chunks_rejected) == (1, 1)
    assert status.active_event_id == 7 and status.joint_state_age_ns == 0
    assert status.updates == 11 and not status.estop_engaged
    assert status.fault_reason == "" and status.joint_states_rejected == 0


# ------------------------------------------------------------------------------ two arms


def test_two_arms_in_one_chunk() -> None:
    prefixes = ("left_", "right_")
    arms = [
        dict(
            name=prefix.rstrip("_"),
            ee_frame=demo_arm_tool_frame(prefix),
            joint_names=list(demo_arm_joints(prefix)),
            gripper_joints=[dict(name=demo_arm_finger_joint(prefix), open=0.04, closed=0.0)],
            workspace=dict(min=[0.1, -1.5, 0.05], max=[0.7, 0.5, 0.7]),
        )
        for prefix in prefixes
    ]
    config = config_from_dict(
        ControllerConfig, {"arms": arms, "max_acceleration": 15.0, "max_jerk": 600.0}
    )
    controller = JointController.from_urdf(demo_arm_urdf(prefixes, spacing=0.8), config)
    assert controller.joint_names == demo_arm_joints("left_") + demo_arm_joints("right_")
    q = np.concatenate([DEMO_ARM_HOME, DEMO_ARM_HOME])
    controller.update(T0, q)
    homes = [kin.forward(q[:7]) for kin in controller.kinematics]
    # The chunk lists the arms in the other order; each gets its own target and gripper.
    goals = {
        "left": homes[0].position + np.array([0.05, 0.05, -0.05]),
        "right": homes[1].position + np.array([-0.05, 0.0, 0.05]),
    }
    quaternion = pin.Quaternion(homes[0].rotation)
    positions = np.stack(
        [line(homes[1].position, goals["right"], 10), line(homes[0].position, goals["left"], 10)],
        axis=1,
    )
    chunk = ActionChunk(
        stamp_ns=T0,
        step_period_ns=STEP_NS,
        frame_id="base_link",
        arm_names=("right", "left"),
        ee_frames=(demo_arm_tool_frame("right_"), demo_arm_tool_frame("left_")),
        positions=positions,
        quaternions=np.tile([quaternion.w, quaternion.x, quaternion.y, quaternion.z], (10, 2, 1)),
        gripper=np.tile([1.0, 0.0], (10, 1)),
    )
    assert controller.submit_chunk(chunk, T0 + 2 * MS).accepted
    now = T0
    for _ in range(400):
        now += 2 * MS
        command = controller.update(now, q)
        q = command.positions
    for index, (kin, name) in enumerate(zip(controller.kinematics, ("left", "right"), strict=True)):
        reached = kin.forward(q[7 * index : 7 * index + 7]).position
        assert np.linalg.norm(reached - goals[name]) < 1e-3
    np.testing.assert_allclose(command.gripper, [0.0, 1.0])  # config order: left, right
    np.testing.assert_allclose(command.gripper_positions, [0.04, 0.0])

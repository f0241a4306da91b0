"""The scripted expert: solves every task with IK-based motion primitives, with event labels.

It reads the privileged :class:`~wallwm_sim.state.SceneState` (object poses, grasp contacts) at
the start of every primitive, so it corrects for objects that moved (closed loop at primitive
level), and retries a failed grasp or an unfinished push. Motions are straight, jerk-limited tool
moves (:mod:`wallwm_sim.motion`); every action carries :class:`EventLabels` for the four caption
tracks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from wallwm_core.control.kinematics import ArmKinematics
from wallwm_sim import description, scene
from wallwm_sim.captions import EventLabels
from wallwm_sim.kinematics import sim_arm_kinematics
from wallwm_sim.motion import FAST, SLOW, MotionLimits, ToolMotionTracker
from wallwm_sim.policy import JointAction, Observation
from wallwm_sim.tasks import TaskInstance

TRAVEL_Z = 0.15  # tool height for carrying
APPROACH_Z = 0.1  # tool height above a cube before descending
PLACE_CLEARANCE = 0.003  # drop height of a placed cube's bottom
BIN_RELEASE_Z = 0.12  # cube centre height when released over the bin
BIN_SPOT_OFFSET = 0.03  # release points: the bin centre +- this in x and y
PUSH_Z = 0.025  # tool height while pushing (fingertips 1 cm above the table)
PUSH_BACKOFF = 0.03
PUSH_STANDOFF = 0.03  # gap between fingers and cube before a push
PUSH_TOLERANCE = 0.012  # cube centre to zone centre, metres
PRESS_Z = scene.BUTTON_TOP_Z - 0.0125 + description.TOOL_TO_FINGERTIP
BUTTON_APPROACH_Z = 0.1
MEDIUM = FAST.scaled(0.6)
PUSH = FAST.scaled(0.3)
MAX_ATTEMPTS = 3

Step = tuple[np.ndarray, EventLabels]


def _yaw_of(quaternion: np.ndarray) -> float:
    w, x, y, z = quaternion
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def _nearest_equivalent(angle: float, reference: float, period: float) -> float:
    """``angle + k * period`` closest to ``reference``."""
    return angle + period * round((reference - angle) / period)


def describe_motion(delta: np.ndarray) -> str:
    """Words for a tool displacement ``[3]`` in base_link (x forward, y left, z up)."""
    words = []
    for value, positive, negative in zip(
        delta, ("forward", "left", "up"), ("back", "right", "down"), strict=True
    ):
        centimetres = round(abs(float(value)) * 100)
        if centimetres >= 1:
            words.append(f"{centimetres} cm {positive if value > 0 else negative}")
    if not words:
        return "in place"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" and {words[-1]}"


class ScriptedExpert:
    """A policy (see :mod:`wallwm_sim.policy`) that solves every task of the suite."""

    cameras: tuple[str, ...] = ()

    def __init__(
        self, control_period_s: float = 0.02, kinematics: ArmKinematics | None = None
    ) -> None:
        self.kinematics = kinematics or sim_arm_kinematics()
        self.tracker = ToolMotionTracker(self.kinematics, control_period_s)
        self.control_period_s = control_period_s
        self._instance: TaskInstance | None = None
        self._plan: Iterator[Step] | None = None
        self._observation: Observation | None = None
        self._gripper = 0.0
        self._subtask = (-1, "")
        self._action = ""

    def reset(self, instance: TaskInstance) -> None:
        self._instance = instance
        self._plan = None
        self._observation = None
        self._gripper = 0.0
        self._subtask = (-1, "")
        self._action = ""

    def __call__(self, observation: Observation) -> JointAction:
        if self._instance is None:
            raise RuntimeError("ScriptedExpert.reset(instance) must be called before use")
        self._observation = observation
        if self._plan is None:
            self.tracker.start_at(observation.joint_command)
            self._plan = self._run()
        try:
            q, labels = next(self._plan)
        except StopIteration:
            return JointAction(self.tracker.q.copy(), self._gripper, None, done=True)
        return JointAction(q, self._gripper, labels)

    # ------------------------------------------------------------------ plumbing

    @property
    def _state(self):
        assert self._observation is not None
        return self._observation.state

    def _colour(self, kind: str, index: int) -> str:
        assert self._instance is not None
        return self._instance.colour_of(kind, index)

    def _labels(self, segment: str) -> EventLabels:
        index, caption = self._subtask
        return EventLabels(index, caption, self._action, segment)

    def _run(self) -> Iterator[Step]:
        assert self._instance is not None
        for index, subtask in enumerate(self._instance.subtasks):
            self._subtask = (index, subtask.caption)
            yield from getattr(self, f"_{subtask.kind}")(**subtask.args)
        self._subtask, self._action = (-1, ""), ""
        yield from self._wait(0.3, "")  # let the scene settle before reporting done

    def _move(
        self, xyz: np.ndarray, caption: str, yaw: float | None = None, limits: MotionLimits = FAST
    ) -> Iterator[Step]:
        """Straight tool move; in ``caption``, ``{motion}`` becomes the displacement in words and
        ``{distance}`` its length (e.g. "8 cm")."""
        goal = np.array(
            [*np.asarray(xyz, dtype=np.float64)[:3], self.tracker.pose[3] if yaw is None else yaw]
        )
        delta = goal[:3] - self.tracker.pose[:3]
        distance = f"{round(float(np.linalg.norm(delta)) * 100)} cm"
        labels = self._labels(caption.format(motion=describe_motion(delta), distance=distance))
        for q in self.tracker.move(goal, limits):
            yield q, labels

    def _set_gripper(self, value: float, duration_s: float, caption: str) -> Iterator[Step]:
        self._gripper = value
        yield from self._wait(duration_s, caption)

    def _wait(self, duration_s: float, caption: str) -> Iterator[Step]:
        labels = self._labels(caption)
        for _ in range(max(1, round(duration_s / self.control_period_s))):
            yield self.tracker.q.copy(), labels

    def _grasp_yaw(self, cube: int) -> float:
        position = self._state.cube_positions[cube]
        natural = float(np.arctan2(position[1], position[0]))
        return _nearest_equivalent(_yaw_of(self._state.cube_quaternions[cube]), natural, np.pi / 2)

    def _held_offset(self, cube: int) -> np.ndarray:
        """Tool position minus held cube position, ``[3]`` (corrects placements for grasp slip)."""
        return self._state.tool_position - self._state.cube_positions[cube]

    # ------------------------------------------------------------------ subtasks

    def _pick(self, cube: int) -> Iterator[Step]:
        colour = self._colour("cube", cube)
        for attempt in range(MAX_ATTEMPTS):
            self._action = (
                f"reach the {colour} cube" if attempt == 0 else f"reach the {colour} cube again"
            )
            if self._gripper > 0.0:
                yield from self._set_gripper(0.0, 0.3, "open the gripper")
            if self.tracker.pose[2] < APPROACH_Z - 1e-3:
                yield from self._move(
                    [*self.tracker.pose[:2], APPROACH_Z], "raise the gripper {distance}"
                )
            position = self._state.cube_positions[cube]
            yaw = self._grasp_yaw(cube)
            yield from self._move(
                [position[0], position[1], APPROACH_Z],
                f"move the gripper {{motion}} above the {colour} cube",
                yaw,
            )
            position = self._state.cube_positions[cube]
            yield from self._move(
                position,
                f"lower the gripper {{distance}} around the {colour} cube",
                self._grasp_yaw(cube),
                SLOW,
            )
            self._action = f"grasp the {colour} cube"
            yield from self._set_gripper(1.0, 0.5, f"close the gripper on the {colour} cube")
            self._action = f"lift the {colour} cube"
            yield from self._move(
                [*self.tracker.pose[:2], TRAVEL_Z],
                f"lift the {colour} cube {{distance}}",
                limits=MEDIUM,
            )
            if self._state.cube_grasped[cube]:
                return

    def _carry_and_lower(
        self,
        cube: int,
        target_xy: np.ndarray,
        cube_z: float,
        target_name: str,
        yaw: float | None = None,
    ) -> Iterator[Step]:
        colour = self._colour("cube", cube)
        self._action = f"carry the {colour} cube to the {target_name}"
        offset = self._held_offset(cube)
        yield from self._move(
            [target_xy[0] + offset[0], target_xy[1] + offset[1], TRAVEL_Z],
            f"carry the {colour} cube {{motion}} above the {target_name}",
            yaw,
        )
        self._action = f"put down the {colour} cube"
        offset = self._held_offset(cube)
        yield from self._move(
            [target_xy[0] + offset[0], target_xy[1] + offset[1], cube_z + offset[2]],
            f"lower the {colour} cube {{distance}} onto the {target_name}",
            limits=SLOW,
        )

    def _release_and_retreat(self, cube: int) -> Iterator[Step]:
        colour = self._colour("cube", cube)
        yield from self._set_gripper(0.0, 0.4, f"open the gripper to release the {colour} cube")
        self._action = "move away"
        yield from self._move(
            [*self.tracker.pose[:2], TRAVEL_Z], "raise the gripper {distance}", limits=MEDIUM
        )

    def _place_on_zone(self, cube: int, zone: int) -> Iterator[Step]:
        target = self._state.zone_positions[zone][:2]
        name = f"{self._colour('zone', zone)} zone"
        yield from self._carry_and_lower(cube, target, scene.CUBE_HALF_SIZE + PLACE_CLEARANCE, name)
        yield from self._release_and_retreat(cube)

    def _place_on_cube(self, cube: int, base: int) -> Iterator[Step]:
        base_position = self._state.cube_positions[base]
        yaw = _nearest_equivalent(
            _yaw_of(self._state.cube_quaternions[base]), self.tracker.pose[3], np.pi / 2
        )
        cube_z = base_position[2] + 2 * scene.CUBE_HALF_SIZE + PLACE_CLEARANCE
        name = f"{self._colour('cube', base)} cube"
        yield from self._carry_and_lower(cube, base_position[:2], cube_z, name, yaw)
        yield from self._release_and_retreat(cube)

    def _drop_in_bin(self, cube: int) -> Iterator[Step]:
        # Aim at the bin quadrant farthest from cubes already there, so cubes do not pile up.
        centre = self._state.bin_position[:2]
        spots = [
            centre + BIN_SPOT_OFFSET * np.array(corner)
            for corner in ((1, 1), (1, -1), (-1, 1), (-1, -1))
        ]
        others = [
            p[:2]
            for i, p in enumerate(self._state.cube_positions)
            if i != cube and np.all(np.abs(p[:2] - centre) < scene.BIN_INNER_HALF)
        ]
        target = max(
            spots, key=lambda spot: min((np.linalg.norm(spot - o) for o in others), default=0.0)
        )
        yield from self._carry_and_lower(cube, target, BIN_RELEASE_Z, "bin")
        yield from self._release_and_retreat(cube)

    def _push_geometry(self, cube: int, zone: int) -> tuple[np.ndarray, np.ndarray, float]:
        cube_xy = self._state.cube_positions[cube][:2]
        zone_xy = self._state.zone_positions[zone][:2]
        direction = zone_xy - cube_xy
        distance = float(np.linalg.norm(direction))
        return cube_xy, direction / max(distance, 1e-9), distance

    def _approach_push(self, cube: int, zone: int) -> Iterator[Step]:
        colour = self._colour("cube", cube)
        self._action = f"get behind the {colour} cube"
        if self._gripper < 1.0:
            yield from self._set_gripper(1.0, 0.3, "close the gripper")
        if self.tracker.pose[2] < APPROACH_Z - 1e-3:
            yield from self._move(
                [*self.tracker.pose[:2], APPROACH_Z], "raise the gripper {distance}"
            )
        cube_xy, direction, _ = self._push_geometry(cube, zone)
        behind = cube_xy - direction * (
            scene.CUBE_HALF_SIZE + description.CLOSED_FINGERS_HALF_WIDTH + PUSH_STANDOFF
        )
        yaw = float(np.arctan2(behind[1], behind[0]))
        yield from self._move(
            [*behind, APPROACH_Z], f"move the gripper {{motion}} behind the {colour} cube", yaw
        )
        yield from self._move(
            [*behind, PUSH_Z], "lower the gripper {distance} to the table", limits=SLOW
        )

    def _push_to_zone(self, cube: int, zone: int) -> Iterator[Step]:
        colour, zone_colour = self._colour("cube", cube), self._colour("zone", zone)
        for attempt in range(MAX_ATTEMPTS):
            cube_xy, direction, distance = self._push_geometry(cube, zone)
            if distance < PUSH_TOLERANCE:
                break
            if attempt > 0:
                yield from self._approach_push(cube, zone)
                cube_xy, direction, distance = self._push_geometry(cube, zone)
            self._action = f"push the {colour} cube"
            zone_xy = cube_xy + direction * distance
            goal = zone_xy - direction * (
                scene.CUBE_HALF_SIZE + description.CLOSED_FINGERS_HALF_WIDTH
            )
            yield from self._move(
                [*goal, PUSH_Z],
                f"push the {colour} cube {{motion}} onto the {zone_colour} zone",
                limits=PUSH,
            )
            self._action = f"back away from the {colour} cube"
            back = goal - direction * PUSH_BACKOFF
            yield from self._move(
                [*back, PUSH_Z], "pull the gripper back {distance}", limits=MEDIUM
            )
        self._action = "move away"
        yield from self._move(
            [*self.tracker.pose[:2], TRAVEL_Z], "raise the gripper {distance}", limits=MEDIUM
        )

    def _press(self, button: int) -> Iterator[Step]:
        colour = self._colour("button", button)
        position = self._state.button_positions[button]
        self._action = f"reach the {colour} button"
        if self._gripper < 1.0:
            yield from self._set_gripper(1.0, 0.2, "close the gripper")
        yaw = float(np.arctan2(position[1], position[0]))
        yield from self._move(
            [position[0], position[1], BUTTON_APPROACH_Z],
            f"move the gripper {{motion}} above the {colour} button",
            yaw,
        )
        self._action = f"press the {colour} button"
        yield from self._move(
            [position[0], position[1], PRESS_Z],
            f"push the {colour} button down {{distance}}",
            limits=SLOW,
        )
        yield from self._wait(0.1, f"hold the {colour} button down")
        self._action = "move away"
        yield from self._move(
            [position[0], position[1], BUTTON_APPROACH_Z],
            "raise the gripper {distance}",
            limits=MEDIUM,
        )

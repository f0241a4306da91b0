"""TabletopSim: the simulation API the ROS node, the recorder and the eval harness drive.

One ``step()`` is one control period (``SimConfig.control_period_s``, default 20 ms = 10 physics
steps of 2 ms): the arm's position servos track the last joint command, the gripper servo the
last gripper command. Times are integer nanoseconds of simulation time (``time_ns``), poses are in
the world frame = the arm's ``base_link`` frame, quaternions (w, x, y, z), gripper commands
normalised (0 open, 1 closed). Bad commands raise :class:`InvalidCommandError` and leave the
previous command in force; the simulation keeps running.
"""

from __future__ import annotations

import dataclasses
import math

import mujoco
import numpy as np

from wallwm_core.action_chunk import NS_PER_S
from wallwm_core.camera_geometry import CameraGeometry
from wallwm_sim import cameras, description, scene
from wallwm_sim.rendering import CameraRenderer
from wallwm_sim.state import SceneState, read_scene_state
from wallwm_sim.tasks import ProgressTracker, TaskInstance, get_task

# Tool at (0.35, 0, 0.30) pointing down, yaw 0 (solved with wallwm_sim.kinematics).
HOME_JOINT_POSITIONS = (0.0, 0.0571, 1.8769, 0.0, 1.2076, 0.0)
LIMIT_TOLERANCE = 1e-6
PARKED_CUBE_POSITIONS = tuple(
    (-0.6, -0.3 + 0.2 * i, scene.PARKING_Z) for i in range(scene.NUM_CUBES)
)
LATCHED_HOUSING_RGBA = (0.95, 0.95, 0.9, 1.0)
IDLE_HOUSING_RGBA = (0.15, 0.15, 0.17, 1.0)


class InvalidCommandError(ValueError):
    """A joint or gripper command that was rejected (wrong length, NaN, beyond limits)."""


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Simulation settings. ``control_period_s`` must be a whole number of physics steps."""

    control_period_s: float = 0.02
    image_height: int = 224
    image_width: int = 224
    max_image_height: int = 720
    max_image_width: int = 1280

    def __post_init__(self) -> None:
        substeps = self.control_period_s / scene.TIMESTEP_S
        if self.control_period_s <= 0 or abs(substeps - round(substeps)) > 1e-9:
            raise ValueError(
                f"control_period_s must be a positive multiple of {scene.TIMESTEP_S} s, "
                f"got {self.control_period_s=}"
            )
        if not (0 < self.image_height <= self.max_image_height):
            raise ValueError(
                f"need 0 < image_height <= {self.max_image_height}, got {self.image_height=}"
            )
        if not (0 < self.image_width <= self.max_image_width):
            raise ValueError(
                f"need 0 < image_width <= {self.max_image_width}, got {self.image_width=}"
            )

    @property
    def substeps(self) -> int:
        return round(self.control_period_s / scene.TIMESTEP_S)


@dataclasses.dataclass(frozen=True)
class JointState:
    """All URDF joints (``description.ALL_JOINT_NAMES`` order): rad or m, per s, N m or N."""

    names: tuple[str, ...]
    positions: np.ndarray
    velocities: np.ndarray
    efforts: np.ndarray


class TabletopSim:
    """The MuJoCo tabletop: arm, scene objects, cameras, current task and its Task Progress."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.model = scene.build_model(self.config.max_image_height, self.config.max_image_width)
        self.data = mujoco.MjData(self.model)
        self.ids = scene.resolve_ids(self.model)
        self._initial_geom_rgba = self.model.geom_rgba.copy()
        self._initial_qpos_spring = self.model.qpos_spring.copy()
        self._renderers: dict[tuple[int, int], CameraRenderer] = {}
        self._physics_steps = 0
        self._joint_command = np.array(HOME_JOINT_POSITIONS)
        self._gripper_command = 0.0
        self._latched = np.zeros(scene.NUM_BUTTONS, dtype=bool)
        self._press_order: list[int] = []
        self._instance: TaskInstance | None = None
        self._tracker: ProgressTracker | None = None
        self._episode = 0  # bumped by reset() and set_marker(), keys the scene-state cache
        self._state_cache: tuple[tuple[int, int], SceneState] | None = None
        self._lower = self.model.jnt_range[self._arm_joint_ids, 0].copy()
        self._upper = self.model.jnt_range[self._arm_joint_ids, 1].copy()
        self.reset()

    # ------------------------------------------------------------------ description

    @property
    def arm_joint_names(self) -> tuple[str, ...]:
        """The six commanded arm joints, in command order."""
        return description.ARM_JOINT_NAMES

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Every URDF joint (arm, then the two fingers), as in :meth:`joint_state`."""
        return description.ALL_JOINT_NAMES

    @property
    def joint_lower_limits(self) -> np.ndarray:
        """Lower position limits of the six arm joints (rad)."""
        return self._lower.copy()

    @property
    def joint_upper_limits(self) -> np.ndarray:
        return self._upper.copy()

    @property
    def _arm_joint_ids(self) -> list[int]:
        return [self.model.joint(n).id for n in description.ARM_JOINT_NAMES]

    @property
    def camera_names(self) -> tuple[str, ...]:
        return cameras.CAMERA_NAMES

    @property
    def control_period_ns(self) -> int:
        return round(self.config.control_period_s * NS_PER_S)

    @property
    def time_ns(self) -> int:
        """Simulation time, integer nanoseconds since the last reset."""
        return self._physics_steps * round(scene.TIMESTEP_S * NS_PER_S)

    @property
    def instance(self) -> TaskInstance | None:
        """The current task instance (None after a reset without a task)."""
        return self._instance

    # ------------------------------------------------------------------ episode control

    def reset(
        self, task: str | None = None, seed: int = 0, variant: str = "train"
    ) -> TaskInstance | None:
        """Start an episode: arm at home, gripper open, objects laid out for ``task`` and ``seed``.

        ``task=None`` gives an empty table (everything parked). Raises
        :class:`~wallwm_sim.tasks.TaskError` for an unknown task or variant.
        """
        instance = get_task(task).sample(seed, variant) if task is not None else None
        self._episode += 1
        mujoco.mj_resetData(self.model, self.data)
        self.model.geom_rgba[:] = self._initial_geom_rgba
        self.model.qpos_spring[:] = self._initial_qpos_spring
        self._physics_steps = 0
        self._latched[:] = False
        self._press_order = []
        self.data.qpos[self.ids.arm_qpos] = HOME_JOINT_POSITIONS
        self.data.qpos[self.ids.finger_qpos] = description.FINGER_OPEN_POSITION
        self._joint_command = np.array(HOME_JOINT_POSITIONS)
        self._gripper_command = 0.0
        self._layout(instance)
        self._apply_controls()
        mujoco.mj_forward(self.model, self.data)
        self._instance = instance
        self._tracker = None
        if instance is not None:
            self._tracker = ProgressTracker(get_task(instance.task).rubric(instance))
            self._tracker.update(self.scene_state())
        return instance

    def _layout(self, instance: TaskInstance | None) -> None:
        ids, data, model = self.ids, self.data, self.model
        for index, position in enumerate(PARKED_CUBE_POSITIONS):
            address = ids.cube_qpos[index]
            data.qpos[address : address + 3] = position
            data.qpos[address + 3 : address + 7] = (1.0, 0.0, 0.0, 0.0)
        data.mocap_pos[ids.bin_mocap] = (-0.45, -0.45, scene.FLOOR_Z)
        for index in range(scene.NUM_ZONES):
            data.mocap_pos[ids.zone_mocap[index]] = (-0.6, 0.4 + 0.12 * index, scene.FLOOR_Z)
        for index in range(scene.NUM_BUTTONS):
            data.mocap_pos[ids.button_mocap[index]] = (-0.45, 0.2 + 0.1 * index, scene.FLOOR_Z)
        if instance is None:
            return
        for cube in instance.cubes:
            address = ids.cube_qpos[cube.index]
            data.qpos[address : address + 3] = cube.position
            half = cube.yaw / 2.0
            data.qpos[address + 3 : address + 7] = (math.cos(half), 0.0, 0.0, math.sin(half))
            model.geom_rgba[ids.cube_geoms[cube.index]] = cube.rgba
        for zone in instance.zones:
            data.mocap_pos[ids.zone_mocap[zone.index]] = zone.position
            model.geom_rgba[ids.zone_geoms[zone.index]] = (*zone.rgba[:3], 0.75)
        for button in instance.buttons:
            data.mocap_pos[ids.button_mocap[button.index]] = button.position
            model.geom_rgba[ids.button_cap_geoms[button.index]] = button.rgba
        if instance.bin_position is not None:
            data.mocap_pos[ids.bin_mocap] = instance.bin_position

    # ------------------------------------------------------------------ commands

    def set_joint_command(self, positions: np.ndarray | list[float]) -> None:
        """Position targets for the six arm joints (rad). Raises :class:`InvalidCommandError`."""
        try:
            command = np.asarray(positions, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidCommandError(f"joint command is not numeric: {error}") from error
        expected = len(description.ARM_JOINT_NAMES)
        if command.shape != (expected,):
            raise InvalidCommandError(
                f"joint command must have {expected} values {description.ARM_JOINT_NAMES}, "
                f"got shape {command.shape}"
            )
        bad = ~np.isfinite(command)
        if bad.any():
            names = [description.ARM_JOINT_NAMES[i] for i in np.flatnonzero(bad)]
            raise InvalidCommandError(f"joint command has NaN/inf values for {names}")
        lower, upper = self._lower, self._upper
        outside = (command < lower - LIMIT_TOLERANCE) | (command > upper + LIMIT_TOLERANCE)
        if outside.any():
            details = ", ".join(
                f"{description.ARM_JOINT_NAMES[i]}={command[i]:.4f} not in "
                f"[{lower[i]:.4f}, {upper[i]:.4f}]"
                for i in np.flatnonzero(outside)
            )
            raise InvalidCommandError(f"joint command beyond limits: {details}")
        self._joint_command = np.clip(command, lower, upper)

    def set_gripper_command(self, command: float) -> None:
        """Normalised gripper command, 0 (open) .. 1 (closed). Raises :class:`InvalidCommandError`."""
        try:
            value = float(command)
        except (TypeError, ValueError) as error:
            raise InvalidCommandError(
                f"gripper command must be a number, got {command!r}"
            ) from error
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise InvalidCommandError(f"gripper command must be finite and in [0, 1], got {value}")
        self._gripper_command = value

    def set_command(self, joint_positions: np.ndarray | list[float], gripper: float) -> None:
        """Both commands at once; nothing changes unless both are valid."""
        previous = self._joint_command
        self.set_joint_command(joint_positions)
        try:
            self.set_gripper_command(gripper)
        except InvalidCommandError:
            self._joint_command = previous
            raise

    @property
    def joint_command(self) -> np.ndarray:
        return self._joint_command.copy()

    @property
    def gripper_command(self) -> float:
        return self._gripper_command

    def _apply_controls(self) -> None:
        self.data.ctrl[self.ids.arm_actuators] = self._joint_command
        self.data.ctrl[self.ids.gripper_actuator] = description.gripper_command_to_finger_position(
            self._gripper_command
        )

    # ------------------------------------------------------------------ stepping

    def step(self, num_control_steps: int = 1) -> None:
        """Advance ``num_control_steps`` control periods under the current commands."""
        if num_control_steps < 0:
            raise ValueError(f"num_control_steps must be >= 0, got {num_control_steps}")
        for _ in range(num_control_steps):
            self._apply_controls()
            mujoco.mj_step(self.model, self.data, nstep=self.config.substeps)
            self._physics_steps += self.config.substeps
            self._update_buttons()
            if self._tracker is not None:
                self._tracker.update(self.scene_state())

    def advance(self, duration_s: float) -> int:
        """Step for ``duration_s`` seconds (rounded to control periods); returns the steps run."""
        steps = max(0, round(duration_s / self.config.control_period_s))
        self.step(steps)
        return steps

    def _update_buttons(self) -> None:
        depths = -self.data.qpos[self.ids.button_qpos]
        for index in np.flatnonzero((depths > scene.BUTTON_LATCH_DEPTH) & ~self._latched):
            self._latched[index] = True
            self._press_order.append(int(index))
            # A latched button lights up and stays down.
            self.model.geom_rgba[self.ids.button_housing_geoms[index]] = LATCHED_HOUSING_RGBA
            cap = self.model.geom_rgba[self.ids.button_cap_geoms[index]]
            cap[:3] = 0.5 + 0.5 * cap[:3]
            self.model.qpos_spring[self.ids.button_qpos[index]] = -scene.BUTTON_TRAVEL

    # ------------------------------------------------------------------ state

    def joint_state(self) -> JointState:
        qpos = np.concatenate(
            [self.data.qpos[self.ids.arm_qpos], self.data.qpos[self.ids.finger_qpos]]
        )
        qvel = np.concatenate(
            [self.data.qvel[self.ids.arm_dof], self.data.qvel[self.ids.finger_dof]]
        )
        dofs = np.concatenate([self.ids.arm_dof, self.ids.finger_dof])
        return JointState(
            names=description.ALL_JOINT_NAMES,
            positions=qpos,
            velocities=qvel,
            efforts=self.data.qfrc_actuator[dofs].copy(),
        )

    def tool_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``tool0`` position ``[3]`` and quaternion ``[4]`` (w, x, y, z) in base_link."""
        quaternion = np.empty(4)
        mujoco.mju_mat2Quat(quaternion, self.data.xmat[self.ids.tool_body])
        return self.data.xpos[self.ids.tool_body].copy(), quaternion

    def gripper_state(self) -> float:
        """Measured gripper closure, normalised like the command (0 open, 1 closed)."""
        opening = self.data.qpos[self.ids.finger_qpos[0]]
        return float(np.clip(description.finger_position_to_gripper_command(opening), 0.0, 1.0))

    def scene_state(self) -> SceneState:
        """Snapshot for rubrics and experts (cached until the simulation changes)."""
        key = (self._physics_steps, self._episode)
        if self._state_cache is None or self._state_cache[0] != key:
            state = read_scene_state(
                self.model,
                self.data,
                self.ids,
                self._latched,
                tuple(self._press_order),
                self.time_ns,
            )
            self._state_cache = (key, state)
        return self._state_cache[1]

    def task_progress(self) -> float:
        """Task Progress 0-100 of the current episode (0 without a task)."""
        return 0.0 if self._tracker is None else self._tracker.score()

    def progress_breakdown(self) -> dict[str, bool]:
        """Which rubric milestones currently earn their points."""
        return {} if self._tracker is None else self._tracker.achieved()

    # ------------------------------------------------------------------ cameras

    def _renderer(self, height: int, width: int) -> CameraRenderer:
        key = (height, width)
        if key not in self._renderers:
            self._renderers[key] = CameraRenderer(self.model, height, width)
        return self._renderers[key]

    def _size(self, height: int | None, width: int | None) -> tuple[int, int]:
        return (height or self.config.image_height, width or self.config.image_width)

    def render(
        self, camera: str, height: int | None = None, width: int | None = None
    ) -> np.ndarray:
        """RGB ``[H, W, 3]`` uint8 from ``camera`` (default size from the config)."""
        if camera not in self.ids.cameras:
            raise KeyError(f"unknown camera {camera!r}; cameras are {self.camera_names}")
        return self._renderer(*self._size(height, width)).render(self.data, camera)

    def render_depth(
        self, camera: str, height: int | None = None, width: int | None = None
    ) -> np.ndarray:
        if camera not in self.ids.cameras:
            raise KeyError(f"unknown camera {camera!r}; cameras are {self.camera_names}")
        return self._renderer(*self._size(height, width)).render_depth(self.data, camera)

    def render_all(
        self,
        camera_names: tuple[str, ...] | None = None,
        height: int | None = None,
        width: int | None = None,
    ) -> dict[str, np.ndarray]:
        return {
            name: self.render(name, height, width) for name in camera_names or self.camera_names
        }

    def camera_geometry(
        self, camera: str, height: int | None = None, width: int | None = None
    ) -> CameraGeometry:
        """Intrinsics and extrinsics (world = base_link) of ``camera`` at the current state.

        Fixed cameras never move; the wrist camera's extrinsics follow the arm.
        """
        spec = cameras.camera_spec(camera)
        camera_id = self.ids.cameras[camera]
        return cameras.camera_geometry_from_pose(
            self.data.cam_xpos[camera_id],
            self.data.cam_xmat[camera_id],
            spec.fovy_deg,
            *self._size(height, width),
        )

    def camera_info(
        self, camera: str, height: int | None = None, width: int | None = None
    ) -> cameras.CameraInfoData:
        """Plain data for ``sensor_msgs/CameraInfo`` plus the optical frame's static TF."""
        return cameras.camera_info_data(
            cameras.camera_spec(camera), *self._size(height, width), description.BASE_FRAME
        )

    def set_marker(self, position: np.ndarray | None) -> None:
        """Show the magenta calibration sphere (8 mm radius) at ``position`` (None hides it)."""
        hidden = (0.0, 0.0, scene.FLOOR_Z - 1.0)
        self.data.mocap_pos[self.ids.marker_mocap] = hidden if position is None else position
        mujoco.mj_forward(self.model, self.data)
        self._episode += 1

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self) -> TabletopSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

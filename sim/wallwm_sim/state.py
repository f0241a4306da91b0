"""A snapshot of everything the task rubrics and the scripted expert look at.

:class:`SceneState` is plain numpy data, so rubrics are pure functions of it and can be tested on
hand-made states without a simulator. Positions are metres in the world (= ``base_link``) frame,
quaternions (w, x, y, z), times integer nanoseconds.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from wallwm_sim import scene

# Objects below this height are parked under the table (not part of the episode).
ACTIVE_MIN_Z = -0.1


@dataclasses.dataclass(frozen=True)
class SceneState:
    """Object and arm state at one instant (arrays indexed by scene object index)."""

    time_ns: int
    tool_position: np.ndarray  # [3]
    tool_quaternion: np.ndarray  # [4] (w, x, y, z)
    finger_opening: float  # finger_left_joint, metres (0 closed .. 0.04 open)
    cube_positions: np.ndarray  # [NUM_CUBES, 3]
    cube_quaternions: np.ndarray  # [NUM_CUBES, 4]
    cube_grasped: np.ndarray  # [NUM_CUBES] bool: both finger pads touch the cube
    bin_position: np.ndarray  # [3] (parked under the table when unused)
    zone_positions: np.ndarray  # [NUM_ZONES, 3]
    button_positions: np.ndarray  # [NUM_BUTTONS, 3] housing base centres
    button_depths: np.ndarray  # [NUM_BUTTONS] press depth, metres, >= 0
    buttons_latched: np.ndarray  # [NUM_BUTTONS] bool
    press_order: tuple[int, ...]  # button indices in the order they latched

    @property
    def cube_active(self) -> np.ndarray:
        return self.cube_positions[:, 2] > ACTIVE_MIN_Z


def grasped_cubes(model: mujoco.MjModel, data: mujoco.MjData, ids: scene.SceneIds) -> np.ndarray:
    """Which cubes touch both finger pads, ``[NUM_CUBES]`` bool."""
    grasped = np.zeros(scene.NUM_CUBES, dtype=bool)
    if data.ncon == 0:
        return grasped
    pairs = data.contact.geom[: data.ncon]  # [ncon, 2] geom ids
    for index, cube_geom in enumerate(ids.cube_geoms):
        with_cube = pairs[(pairs == cube_geom).any(axis=1)]
        grasped[index] = bool(
            (with_cube == ids.left_finger_geom).any() and (with_cube == ids.right_finger_geom).any()
        )
    return grasped


def read_scene_state(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    ids: scene.SceneIds,
    buttons_latched: np.ndarray,
    press_order: tuple[int, ...],
    time_ns: int,
) -> SceneState:
    """Snapshot the simulation (after ``mj_forward``/``mj_step``: uses ``xpos``, contacts)."""
    cube_qpos = np.stack([data.qpos[a : a + 7] for a in ids.cube_qpos])
    tool_quaternion = np.empty(4)
    mujoco.mju_mat2Quat(tool_quaternion, data.xmat[ids.tool_body])
    return SceneState(
        time_ns=int(time_ns),
        tool_position=data.xpos[ids.tool_body].copy(),
        tool_quaternion=tool_quaternion,
        finger_opening=float(data.qpos[ids.finger_qpos[0]]),
        cube_positions=cube_qpos[:, :3].copy(),
        cube_quaternions=cube_qpos[:, 3:].copy(),
        cube_grasped=grasped_cubes(model, data, ids),
        bin_position=data.mocap_pos[ids.bin_mocap].copy(),
        zone_positions=data.mocap_pos[ids.zone_mocap].copy(),
        button_positions=data.mocap_pos[ids.button_mocap].copy(),
        button_depths=np.maximum(-data.qpos[ids.button_qpos], 0.0),
        buttons_latched=np.array(buttons_latched, dtype=bool),
        press_order=tuple(press_order),
    )

"""State predicates the rubrics are built from (pure functions of a SceneState)."""

from __future__ import annotations

import numpy as np

from wallwm_sim import scene
from wallwm_sim.state import SceneState

REACH_DISTANCE = 0.03  # tool centre to cube centre
LIFT_HEIGHT = 0.03  # cube bottom above the table
REST_TOLERANCE = 0.006  # |z - expected resting height|
STACK_XY_TOLERANCE = scene.CUBE_HALF_SIZE
BIN_MARGIN = 0.005


def _xy_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a)[:2] - np.asarray(b)[:2]))


def tool_near_cube(state: SceneState, cube: int, distance: float = REACH_DISTANCE) -> bool:
    return float(np.linalg.norm(state.tool_position - state.cube_positions[cube])) < distance


def grasped(state: SceneState, cube: int) -> bool:
    return bool(state.cube_grasped[cube])


def lifted(state: SceneState, cube: int) -> bool:
    """Held in the gripper with its bottom at least LIFT_HEIGHT above the table."""
    height = state.cube_positions[cube, 2] - scene.CUBE_HALF_SIZE
    return grasped(state, cube) and height > LIFT_HEIGHT


def rests_on_table(state: SceneState, cube: int) -> bool:
    z = state.cube_positions[cube, 2]
    return abs(z - scene.CUBE_HALF_SIZE) < REST_TOLERANCE and not grasped(state, cube)


def over_zone(state: SceneState, cube: int, zone: int) -> bool:
    """Cube centre within the zone's radius (any height)."""
    return _xy_distance(state.cube_positions[cube], state.zone_positions[zone]) < scene.ZONE_RADIUS


def on_zone(state: SceneState, cube: int, zone: int) -> bool:
    """Released and resting on the table with its centre inside the zone."""
    return over_zone(state, cube, zone) and rests_on_table(state, cube)


def above_cube(state: SceneState, cube: int, base: int) -> bool:
    """Cube centred over ``base`` (xy) and higher than it."""
    top, bottom = state.cube_positions[cube], state.cube_positions[base]
    return (
        _xy_distance(top, bottom) < STACK_XY_TOLERANCE and top[2] > bottom[2] + scene.CUBE_HALF_SIZE
    )


def stacked_on(state: SceneState, cube: int, base: int) -> bool:
    """Released, resting on ``base``, which rests on the table."""
    top, bottom = state.cube_positions[cube], state.cube_positions[base]
    resting_height = abs(top[2] - bottom[2] - 2 * scene.CUBE_HALF_SIZE) < REST_TOLERANCE
    return (
        above_cube(state, cube, base)
        and resting_height
        and not grasped(state, cube)
        and rests_on_table(state, base)
    )


def in_bin(state: SceneState, cube: int) -> bool:
    """Released with its centre inside the bin's walls, low enough to rest in the bin (on its
    floor or on another cube in it)."""
    offset = np.abs(state.cube_positions[cube, :2] - state.bin_position[:2])
    inside = bool(np.all(offset < scene.BIN_INNER_HALF - BIN_MARGIN))
    top = state.bin_position[2] + scene.BIN_WALL_HEIGHT + scene.CUBE_HALF_SIZE
    low = state.cube_positions[cube, 2] < top
    return inside and low and not grasped(state, cube)


def distance_to_zone(state: SceneState, cube: int, zone: int) -> float:
    return _xy_distance(state.cube_positions[cube], state.zone_positions[zone])


def pressed(state: SceneState, button: int) -> bool:
    return bool(state.buttons_latched[button])


def pressed_prefix(state: SceneState, order: tuple[int, ...], count: int) -> bool:
    """The first ``count`` presses of the episode are exactly ``order[:count]``."""
    return len(state.press_order) >= count and state.press_order[:count] == tuple(order[:count])

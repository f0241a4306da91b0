"""Task suite: seeded instances, generalisation variants kept apart, rubrics on hand-made states."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wallwm_sim import scene
from wallwm_sim.state import SceneState
from wallwm_sim.tasks import (
    TASK_NAMES,
    TASKS,
    ProgressTracker,
    Rubric,
    TaskError,
    TaskInstance,
    episode_jobs,
    get_task,
)
from wallwm_sim.tasks.base import NOVEL_PALETTE, TRAIN_PALETTE, Milestone
from wallwm_sim.tasks.press_buttons import requested_order

HALF = scene.CUBE_HALF_SIZE
PARKED = np.array([-0.6, 0.0, scene.PARKING_Z])


def initial_state(instance: TaskInstance) -> SceneState:
    """The state right after reset: objects where the instance puts them, tool high up."""
    cubes = np.tile(PARKED, (scene.NUM_CUBES, 1))
    for cube in instance.cubes:
        cubes[cube.index] = cube.position
    zones = np.tile(PARKED, (scene.NUM_ZONES, 1))
    for zone in instance.zones:
        zones[zone.index] = zone.position
    buttons = np.tile(PARKED, (scene.NUM_BUTTONS, 1))
    for button in instance.buttons:
        buttons[button.index] = button.position
    bin_position = np.array(instance.bin_position if instance.bin_position else PARKED)
    return SceneState(
        time_ns=0,
        tool_position=np.array([0.35, 0.0, 0.3]),
        tool_quaternion=np.array([0.0, 0.0, 1.0, 0.0]),
        finger_opening=0.04,
        cube_positions=cubes,
        cube_quaternions=np.tile([1.0, 0.0, 0.0, 0.0], (scene.NUM_CUBES, 1)),
        cube_grasped=np.zeros(scene.NUM_CUBES, dtype=bool),
        bin_position=bin_position,
        zone_positions=zones,
        button_positions=buttons,
        button_depths=np.zeros(scene.NUM_BUTTONS),
        buttons_latched=np.zeros(scene.NUM_BUTTONS, dtype=bool),
        press_order=(),
    )


def moved(
    state: SceneState, cube: int, position, grasped: bool | None = None, tool=None
) -> SceneState:
    cubes = state.cube_positions.copy()
    cubes[cube] = position
    grasp = state.cube_grasped.copy()
    if grasped is not None:
        grasp[cube] = grasped
    return dataclasses.replace(
        state,
        cube_positions=cubes,
        cube_grasped=grasp,
        tool_position=np.asarray(position if tool is None else tool, dtype=float),
    )


def pressed(state: SceneState, *buttons: int) -> SceneState:
    latched = state.buttons_latched.copy()
    latched[list(buttons)] = True
    return dataclasses.replace(
        state, buttons_latched=latched, press_order=state.press_order + buttons
    )


def scores(instance: TaskInstance, states: list[SceneState]) -> list[float]:
    """Task Progress after each state of the sequence (one tracker over the whole sequence)."""
    tracker = ProgressTracker(get_task(instance.task).rubric(instance))
    result = []
    for state in states:
        tracker.update(state)
        result.append(tracker.score())
    return result


def xy(position) -> np.ndarray:
    return np.asarray(position, dtype=float)[:2]


def test_every_task_samples_deterministically_with_a_ten_point_rubric() -> None:
    assert len(TASK_NAMES) >= 6
    for name, task in TASKS.items():
        for variant in task.variants:
            first = task.sample(7, variant)
            assert first == task.sample(7, variant)
            assert first != task.sample(8, variant)
            assert first.subtasks and first.instruction
            rubric = task.rubric(first)
            assert sum(m.points for m in rubric.milestones) == 10, name
            assert scores(first, [initial_state(first)]) == [0.0], (name, variant)
    assert len(get_task("build_and_signal").sample(0).subtasks) >= 4


def test_generalisation_variants_are_kept_apart_from_training() -> None:
    for name, task in TASKS.items():
        for seed in range(20):
            train = task.sample(seed, "train")
            objects = train.cubes + train.zones + train.buttons
            assert {o.colour for o in objects} <= set(TRAIN_PALETTE), name
            novel = task.sample(seed, "novel_colours")
            assert {o.colour for o in novel.cubes + novel.zones + novel.buttons} <= set(
                NOVEL_PALETTE
            )
            if name != "press_buttons":
                # Receptacles (zones, bin) sit on the left (y > 0) in training, right when novel.
                layout = task.sample(seed, "novel_layout")
                for instance, sign in ((train, 1.0), (layout, -1.0)):
                    targets = [instance.zones[0].position] if instance.zones else []
                    if instance.bin_position is not None:
                        targets.append(instance.bin_position)
                    assert all(sign * p[1] > 0.05 for p in targets), (name, seed)
    train_orders = {requested_order(np.random.default_rng(s), "train", 3) for s in range(50)}
    novel_orders = {requested_order(np.random.default_rng(s), "novel_order", 3) for s in range(50)}
    assert len(train_orders) == 3 and len(novel_orders) == 3
    assert not train_orders & novel_orders
    with pytest.raises(TaskError, match="no variant"):
        get_task("pick_place").sample(0, "novel_order")
    with pytest.raises(TaskError, match="non-negative"):
        get_task("pick_place").sample(-1)


def test_episode_jobs_skip_variants_a_task_lacks() -> None:
    jobs = episode_jobs(["pick_place", "press_buttons"], ["train", "novel_order"], iter([3, 4]))
    assert jobs == [
        ("pick_place", "train", 3),
        ("pick_place", "train", 4),
        ("press_buttons", "train", 3),
        ("press_buttons", "train", 4),
        ("press_buttons", "novel_order", 3),
        ("press_buttons", "novel_order", 4),
    ]
    assert episode_jobs(["pick_place"], ["novel_order"], [0]) == []
    with pytest.raises(TaskError, match="did you mean 'pick_place'"):
        episode_jobs(["pick_plase"], ["train"], [0])


def test_rubric_must_add_up_to_ten_points() -> None:
    with pytest.raises(TaskError, match="add up to 9"):
        Rubric((Milestone("a", 9, "a", lambda s: True),))


def test_pick_place_rubric() -> None:
    instance = get_task("pick_place").sample(0)
    cube, zone = instance.params["cube"], instance.params["zone"]
    start = initial_state(instance)
    cube_position = np.array(instance.cubes[cube].position)
    zone_xy = xy(instance.zones[zone].position)
    reach = dataclasses.replace(start, tool_position=cube_position + np.array([0, 0, 0.01]))
    grasp = moved(start, cube, cube_position, grasped=True)
    lift = moved(start, cube, cube_position + np.array([0, 0, 0.1]), grasped=True)
    carry = moved(start, cube, [*zone_xy, 0.12], grasped=True)
    placed = moved(start, cube, [*(zone_xy + 0.02), HALF], grasped=False, tool=[*zone_xy, 0.2])
    knocked_off = moved(start, cube, [*(zone_xy + 0.2), HALF], grasped=False)
    assert scores(instance, [reach, grasp, lift, carry, placed, knocked_off]) == [
        10.0,
        30.0,
        50.0,
        60.0,
        100.0,
        60.0,
    ]
    # Placing the cube without ever lifting it (e.g. pushing it there) earns only the place points.
    assert scores(instance, [moved(start, cube, [*zone_xy, HALF], tool=[0.3, 0, 0.3])]) == [40.0]
    # A cube dropped on the wrong zone earns nothing for placing.
    other = xy(instance.zones[1].position)
    assert scores(instance, [moved(start, cube, [*other, HALF], tool=[0.3, 0, 0.3])]) == [0.0]


def test_stack_rubric() -> None:
    instance = get_task("stack").sample(1)
    top, base = instance.params["cube"], instance.params["base"]
    start = initial_state(instance)
    base_position = np.array(instance.cubes[base].position)
    above = moved(start, top, base_position + np.array([0.005, 0, 0.06]), grasped=True)
    stacked = moved(
        start,
        top,
        base_position + np.array([0.005, 0, 2 * HALF]),
        grasped=False,
        tool=[0.3, 0, 0.3],
    )
    still_held = moved(start, top, base_position + np.array([0.005, 0, 2 * HALF]), grasped=True)
    off_centre = moved(
        start, top, base_position + np.array([0.03, 0, 2 * HALF]), grasped=False, tool=[0.3, 0, 0.3]
    )
    assert scores(instance, [above, stacked]) == [60.0, 100.0]
    assert scores(instance, [still_held]) == [60.0]  # grasp, lift, align; not released
    assert scores(instance, [off_centre]) == [0.0]


def test_put_in_bin_rubric() -> None:
    instance = get_task("put_in_bin").sample(2)
    first, second = instance.params["cubes"]
    start = initial_state(instance)
    bin_xy = xy(instance.bin_position)
    lifted_first = moved(start, first, [0.4, 0.0, 0.1], grasped=True)
    first_in = moved(lifted_first, first, [*(bin_xy + 0.03), HALF + 0.003], grasped=False)
    lifted_second = moved(first_in, second, [0.4, 0.0, 0.1], grasped=True)
    # The second cube lands on the first, inside the bin walls: still in the bin.
    both_in = moved(lifted_second, second, [*(bin_xy + 0.03), 3 * HALF + 0.003], grasped=False)
    outside = moved(both_in, second, [*(bin_xy + 0.12), HALF], grasped=False)
    assert scores(instance, [lifted_first, first_in, lifted_second, both_in, outside]) == [
        20.0,
        50.0,
        70.0,
        100.0,
        70.0,
    ]
    # The distractor in the bin earns nothing.
    distractor = 2
    assert scores(instance, [moved(start, distractor, [*bin_xy, HALF], grasped=False)]) == [0.0]


def test_push_to_target_rubric() -> None:
    instance = get_task("push_to_target").sample(3)
    cube, zone = instance.params["cube"], instance.params["zone"]
    start = initial_state(instance)
    cube_xy = xy(instance.cubes[cube].position)
    zone_xy = xy(instance.zones[zone].position)

    def at(fraction: float) -> SceneState:
        return moved(
            start, cube, [*(cube_xy + fraction * (zone_xy - cube_xy)), HALF], tool=[0.3, 0, 0.3]
        )

    assert scores(instance, [at(0.05)]) == [0.0]
    assert scores(instance, [at(0.2), at(0.4), at(0.7), at(1.0)]) == [20.0, 40.0, 60.0, 100.0]
    assert scores(instance, [at(1.0), at(0.2)]) == [100.0, 60.0]  # pushed out again


def test_press_buttons_rubric() -> None:
    instance = get_task("press_buttons").sample(4, "novel_order")
    order = instance.params["order"]
    start = initial_state(instance)
    one = pressed(start, order[0])
    two = pressed(one, order[1])
    three = pressed(two, order[2])
    assert scores(instance, [one, two, three]) == [30.0, 60.0, 100.0]
    wrong_first = pressed(start, order[1])
    assert scores(instance, [wrong_first, pressed(wrong_first, order[0], order[2])]) == [0.0, 0.0]
    assert scores(instance, [pressed(start, order[0], order[2], order[1])]) == [30.0]


def test_build_and_signal_rubric() -> None:
    instance = get_task("build_and_signal").sample(5)
    params = instance.params
    base, top, button = params["base_cube"], params["top_cube"], params["button"]
    start = initial_state(instance)
    zone_xy = xy(instance.zones[0].position)
    held_base = moved(start, base, [0.4, 0.0, 0.1], grasped=True)
    base_on_zone = moved(held_base, base, [*zone_xy, HALF], grasped=False)
    held_top = moved(base_on_zone, top, [0.4, 0.1, 0.1], grasped=True)
    stacked = moved(held_top, top, [*zone_xy, 3 * HALF], grasped=False)
    signalled = pressed(stacked, button)
    assert scores(instance, [held_base, base_on_zone, held_top, stacked, signalled]) == [
        10.0,
        30.0,
        40.0,
        70.0,
        100.0,
    ]
    # Pressing the other button first forfeits the signal points (a fresh episode, so the
    # latched grasp points were never earned: 2 + 3 points of the final arrangement).
    wrong_button = pressed(stacked, params["other_button"], button)
    assert scores(instance, [wrong_button]) == [50.0]

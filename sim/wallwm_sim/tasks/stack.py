"""Stacking: put one cube on top of another (a distractor cube is present)."""

from __future__ import annotations

import numpy as np

from wallwm_sim.tasks import predicates as p
from wallwm_sim.tasks.base import (
    Milestone,
    Rubric,
    Subtask,
    Task,
    TaskInstance,
    cube_placement,
    layout_side,
    object_region,
    pick_colours,
    pick_up_milestones,
    receptacle_region,
    sample_points,
)


class StackTask(Task):
    name = "stack"
    summary = "stack one cube on another"
    time_limit_s = 16.0

    def _sample(self, rng: np.random.Generator, seed: int, variant: str) -> TaskInstance:
        side = layout_side(variant)
        regions = [object_region(side), receptacle_region(side), object_region(side)]
        xy = sample_points(rng, regions, [0.09, 0.09, 0.09])
        colours = pick_colours(rng, variant, 3)
        cubes = tuple(cube_placement(i, colours[i], variant, xy[i], rng) for i in range(3))
        top, base = colours[0], colours[1]
        return TaskInstance(
            task=self.name,
            seed=seed,
            variant=variant,
            instruction=f"stack the {top} cube on the {base} cube",
            cubes=cubes,
            subtasks=(
                Subtask("pick", f"pick up the {top} cube", {"cube": 0}, "lift"),
                Subtask(
                    "place_on_cube",
                    f"put the {top} cube on the {base} cube",
                    {"cube": 0, "base": 1},
                    "stack",
                ),
            ),
            params={"cube": 0, "base": 1},
        )

    def rubric(self, instance: TaskInstance) -> Rubric:
        cube, base = instance.params["cube"], instance.params["base"]
        c, b = instance.colour_of("cube", cube), instance.colour_of("cube", base)
        return Rubric(
            (
                *pick_up_milestones(cube, c),
                Milestone(
                    "align",
                    1,
                    f"{c} cube held centred above the {b} cube",
                    lambda s: p.grasped(s, cube) and p.above_cube(s, cube, base),
                ),
                Milestone(
                    "stack",
                    4,
                    f"{c} cube released, resting on the {b} cube (must hold at the end)",
                    lambda s: p.stacked_on(s, cube, base),
                    latched=False,
                ),
            )
        )

"""Pick-and-place: put one cube on a coloured target zone (a distractor zone is present)."""

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
    flat_placement,
    layout_side,
    object_region,
    pick_colours,
    pick_up_milestones,
    receptacle_region,
    sample_points,
)


class PickPlaceTask(Task):
    name = "pick_place"
    summary = "pick up a cube and place it on a coloured target zone"
    time_limit_s = 16.0

    def _sample(self, rng: np.random.Generator, seed: int, variant: str) -> TaskInstance:
        side = layout_side(variant)
        num_cubes = int(rng.integers(2, 4))  # target + 1-2 distractors
        cube_xy = sample_points(rng, [object_region(side)] * num_cubes, [0.08] * num_cubes)
        zone_xy = sample_points(
            rng, [receptacle_region(side)] * 2, [0.13, 0.13], avoid=[(c, 0.09) for c in cube_xy]
        )
        cube_colours = pick_colours(rng, variant, num_cubes)
        zone_colours = pick_colours(rng, variant, 2)
        cubes = tuple(
            cube_placement(i, cube_colours[i], variant, cube_xy[i], rng) for i in range(num_cubes)
        )
        zones = tuple(flat_placement(i, zone_colours[i], variant, zone_xy[i]) for i in range(2))
        cube, zone = cube_colours[0], zone_colours[0]
        return TaskInstance(
            task=self.name,
            seed=seed,
            variant=variant,
            instruction=f"put the {cube} cube on the {zone} zone",
            cubes=cubes,
            zones=zones,
            subtasks=(
                Subtask("pick", f"pick up the {cube} cube", {"cube": 0}, "lift"),
                Subtask(
                    "place_on_zone",
                    f"place the {cube} cube on the {zone} zone",
                    {"cube": 0, "zone": 0},
                    "place",
                ),
            ),
            params={"cube": 0, "zone": 0},
        )

    def rubric(self, instance: TaskInstance) -> Rubric:
        cube, zone = instance.params["cube"], instance.params["zone"]
        c, z = instance.colour_of("cube", cube), instance.colour_of("zone", zone)
        return Rubric(
            (
                *pick_up_milestones(cube, c),
                Milestone(
                    "carry",
                    1,
                    f"{c} cube held above the {z} zone",
                    lambda s: p.lifted(s, cube) and p.over_zone(s, cube, zone),
                ),
                Milestone(
                    "place",
                    4,
                    f"{c} cube released, resting inside the {z} zone (must hold at the end)",
                    lambda s: p.on_zone(s, cube, zone),
                    latched=False,
                ),
            )
        )

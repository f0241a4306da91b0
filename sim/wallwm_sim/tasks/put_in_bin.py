"""Put-in-bin: put two named cubes into the bin, leaving a distractor cube out."""

from __future__ import annotations

import numpy as np

from wallwm_sim import scene
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
    sample_points,
)

BIN_CLEARANCE = scene.BIN_INNER_HALF + 0.05


class PutInBinTask(Task):
    name = "put_in_bin"
    summary = "put two named cubes into the bin"
    time_limit_s = 24.0

    def _sample(self, rng: np.random.Generator, seed: int, variant: str) -> TaskInstance:
        side = layout_side(variant)
        bin_y = (0.17, 0.22) if side > 0 else (-0.22, -0.17)
        bin_xy = sample_points(rng, [((0.42, 0.52), bin_y)], [0.0])[0]
        cube_xy = sample_points(
            rng, [object_region(side)] * 3, [0.08] * 3, avoid=[(bin_xy, BIN_CLEARANCE)]
        )
        colours = pick_colours(rng, variant, 3)
        cubes = tuple(cube_placement(i, colours[i], variant, cube_xy[i], rng) for i in range(3))
        first, second = colours[0], colours[1]
        return TaskInstance(
            task=self.name,
            seed=seed,
            variant=variant,
            instruction=f"put the {first} and {second} cubes in the bin",
            cubes=cubes,
            bin_position=(float(bin_xy[0]), float(bin_xy[1]), 0.0),
            subtasks=(
                Subtask("pick", f"pick up the {first} cube", {"cube": 0}, "lift_first"),
                Subtask(
                    "drop_in_bin", f"drop the {first} cube in the bin", {"cube": 0}, "in_bin_first"
                ),
                Subtask("pick", f"pick up the {second} cube", {"cube": 1}, "lift_second"),
                Subtask(
                    "drop_in_bin",
                    f"drop the {second} cube in the bin",
                    {"cube": 1},
                    "in_bin_second",
                ),
            ),
            params={"cubes": (0, 1)},
        )

    def rubric(self, instance: TaskInstance) -> Rubric:
        first, second = instance.params["cubes"]
        milestones = []
        for key, cube in (("first", first), ("second", second)):
            colour = instance.colour_of("cube", cube)
            milestones += [
                Milestone(
                    f"lift_{key}",
                    2,
                    f"{colour} cube held 3 cm above the table",
                    lambda s, cube=cube: p.lifted(s, cube),
                ),
                Milestone(
                    f"in_bin_{key}",
                    3,
                    f"{colour} cube released inside the bin (must hold at the end)",
                    lambda s, cube=cube: p.in_bin(s, cube),
                    latched=False,
                ),
            ]
        return Rubric(tuple(milestones))

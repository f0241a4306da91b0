"""The multi-stage task (5 events): place a cube on a zone, stack another on it, press a button."""

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
    pick_colours,
    sample_points,
)


class BuildAndSignalTask(Task):
    name = "build_and_signal"
    summary = "put a cube on a zone, stack a second cube on it, then press a button"
    time_limit_s = 34.0

    def _sample(self, rng: np.random.Generator, seed: int, variant: str) -> TaskInstance:
        side = layout_side(variant)

        def y_range(lo: float, hi: float) -> tuple[float, float]:
            return (lo, hi) if side > 0 else (-hi, -lo)

        # Buttons in a row at the far edge; the zone on the receptacle side; cubes nearer.
        x_buttons = rng.uniform(0.57, 0.6)
        y_centre = side * rng.uniform(-0.16, -0.06)
        button_xy = [np.array([x_buttons, y_centre + d]) for d in (0.06, -0.06)]
        zone_xy = sample_points(rng, [((0.38, 0.46), y_range(0.14, 0.24))], [0.0])[0]
        cube_xy = sample_points(
            rng,
            [((0.34, 0.47), y_range(-0.28, 0.04))] * 3,
            [0.085] * 3,
            avoid=[(zone_xy, 0.1), *[(b, 0.09) for b in button_xy]],
        )
        cube_colours = pick_colours(rng, variant, 3)
        zone_colour = pick_colours(rng, variant, 1)[0]
        button_colours = pick_colours(rng, variant, 2)
        cubes = tuple(
            cube_placement(i, cube_colours[i], variant, cube_xy[i], rng) for i in range(3)
        )
        zones = (flat_placement(0, zone_colour, variant, zone_xy),)
        buttons = tuple(
            flat_placement(i, button_colours[i], variant, button_xy[i]) for i in range(2)
        )
        target = int(rng.integers(2))
        a, b, button = cube_colours[0], cube_colours[1], button_colours[target]
        return TaskInstance(
            task=self.name,
            seed=seed,
            variant=variant,
            instruction=(
                f"put the {a} cube on the {zone_colour} zone, stack the {b} cube on it, "
                f"then press the {button} button"
            ),
            cubes=cubes,
            zones=zones,
            buttons=buttons,
            subtasks=(
                Subtask("pick", f"pick up the {a} cube", {"cube": 0}, "grasp_first"),
                Subtask(
                    "place_on_zone",
                    f"place the {a} cube on the {zone_colour} zone",
                    {"cube": 0, "zone": 0},
                    "first_on_zone",
                ),
                Subtask("pick", f"pick up the {b} cube", {"cube": 1}, "grasp_second"),
                Subtask(
                    "place_on_cube",
                    f"stack the {b} cube on the {a} cube",
                    {"cube": 1, "base": 0},
                    "stack",
                ),
                Subtask("press", f"press the {button} button", {"button": target}, "signal"),
            ),
            params={
                "base_cube": 0,
                "top_cube": 1,
                "zone": 0,
                "button": target,
                "other_button": 1 - target,
            },
        )

    def rubric(self, instance: TaskInstance) -> Rubric:
        base, top = instance.params["base_cube"], instance.params["top_cube"]
        zone, button = instance.params["zone"], instance.params["button"]
        a, b = instance.colour_of("cube", base), instance.colour_of("cube", top)
        z, c = instance.colour_of("zone", zone), instance.colour_of("button", button)
        return Rubric(
            (
                Milestone("grasp_first", 1, f"{a} cube held", lambda s: p.grasped(s, base)),
                Milestone(
                    "first_on_zone",
                    2,
                    f"{a} cube resting inside the {z} zone (must hold at the end)",
                    lambda s: p.on_zone(s, base, zone),
                    latched=False,
                ),
                Milestone("grasp_second", 1, f"{b} cube held", lambda s: p.grasped(s, top)),
                Milestone(
                    "stack",
                    3,
                    f"{b} cube resting on the {a} cube (must hold at the end)",
                    lambda s: p.stacked_on(s, top, base),
                    latched=False,
                ),
                Milestone(
                    "signal",
                    3,
                    f"the {c} button is the first button pressed",
                    lambda s: len(s.press_order) > 0 and s.press_order[0] == button,
                ),
            )
        )

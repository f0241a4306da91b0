"""Push-to-target: push a cube (without grasping) onto a coloured target zone."""

from __future__ import annotations

import numpy as np

from wallwm_sim.tasks import predicates as p
from wallwm_sim.tasks.base import (
    Milestone,
    Rubric,
    Subtask,
    Task,
    TaskError,
    TaskInstance,
    cube_placement,
    flat_placement,
    layout_side,
    pick_colours,
    sample_points,
)

# The pushed cube starts this far (xy, metres) from the target zone's centre.
START_DISTANCE = (0.14, 0.22)
CORRIDOR_CLEARANCE = 0.1


def _distance_to_segment(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    direction = end - start
    t = float(np.clip(np.dot(point - start, direction) / np.dot(direction, direction), 0.0, 1.0))
    return float(np.linalg.norm(point - (start + t * direction)))


class PushToTargetTask(Task):
    name = "push_to_target"
    summary = "push a cube onto a coloured target zone"
    time_limit_s = 20.0

    def _sample(self, rng: np.random.Generator, seed: int, variant: str) -> TaskInstance:
        side = layout_side(variant)
        zone_y = (0.08, 0.22) if side > 0 else (-0.22, -0.08)
        for _ in range(200):
            zone_xy = sample_points(rng, [((0.42, 0.56), zone_y)], [0.0])[0]
            distance = rng.uniform(*START_DISTANCE)
            # Push towards +y (training) or -y (mirrored), within +-35 degrees.
            angle = np.pi / 2 * side + rng.uniform(-0.6, 0.6)
            cube_xy = zone_xy - distance * np.array([np.cos(angle), np.sin(angle)])
            # Room behind the cube for the gripper to start the push.
            behind = cube_xy - 0.06 * np.array([np.cos(angle), np.sin(angle)])
            if not all(0.32 <= float(np.linalg.norm(q)) <= 0.64 for q in (cube_xy, behind)):
                continue
            try:
                distractor_xy, distractor_zone_xy = sample_points(
                    rng,
                    [((0.36, 0.6), (-0.28, 0.28))] * 2,
                    [0.12, 0.12],
                    avoid=[(zone_xy, 0.13), (cube_xy, 0.1), (behind, 0.1)],
                )
            except TaskError:
                continue
            if _distance_to_segment(distractor_xy, behind, zone_xy) > CORRIDOR_CLEARANCE:
                break
        else:
            raise TaskError(f"could not lay out {self.name} for seed {seed}")
        cube_colours = pick_colours(rng, variant, 2)
        zone_colours = pick_colours(rng, variant, 2)
        cubes = (
            cube_placement(0, cube_colours[0], variant, cube_xy, rng),
            cube_placement(1, cube_colours[1], variant, distractor_xy, rng),
        )
        zones = (
            flat_placement(0, zone_colours[0], variant, zone_xy),
            flat_placement(1, zone_colours[1], variant, distractor_zone_xy),
        )
        cube, zone = cube_colours[0], zone_colours[0]
        return TaskInstance(
            task=self.name,
            seed=seed,
            variant=variant,
            instruction=f"push the {cube} cube onto the {zone} zone",
            cubes=cubes,
            zones=zones,
            subtasks=(
                Subtask("approach_push", f"move behind the {cube} cube", {"cube": 0, "zone": 0}),
                Subtask(
                    "push_to_zone",
                    f"push the {cube} cube onto the {zone} zone",
                    {"cube": 0, "zone": 0},
                    "on_target",
                ),
            ),
            params={
                "cube": 0,
                "zone": 0,
                "start_distance": float(np.linalg.norm(cube_xy - zone_xy)),
            },
        )

    def rubric(self, instance: TaskInstance) -> Rubric:
        cube, zone = instance.params["cube"], instance.params["zone"]
        start = instance.params["start_distance"]
        c, z = instance.colour_of("cube", cube), instance.colour_of("zone", zone)
        return Rubric(
            (
                Milestone(
                    "start",
                    2,
                    f"{c} cube pushed at least 2 cm closer to the {z} zone",
                    lambda s: p.distance_to_zone(s, cube, zone) < start - 0.02,
                ),
                Milestone(
                    "third",
                    2,
                    f"{c} cube a third of the way to the {z} zone",
                    lambda s: p.distance_to_zone(s, cube, zone) < start * 2 / 3,
                ),
                Milestone(
                    "two_thirds",
                    2,
                    f"{c} cube two thirds of the way to the {z} zone",
                    lambda s: p.distance_to_zone(s, cube, zone) < start / 3,
                ),
                Milestone(
                    "on_target",
                    4,
                    f"{c} cube resting inside the {z} zone (must hold at the end)",
                    lambda s: p.on_zone(s, cube, zone),
                    latched=False,
                ),
            )
        )

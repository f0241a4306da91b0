"""Press buttons in a requested order (the reasoning task): three buttons that latch."""

from __future__ import annotations

import numpy as np

from wallwm_sim.tasks import predicates as p
from wallwm_sim.tasks.base import (
    Milestone,
    Rubric,
    Subtask,
    Task,
    TaskInstance,
    flat_placement,
    pick_colours,
)

BUTTON_SPACING = 0.11
ORDINALS = ("first", "second", "third")


def button_row(rng: np.random.Generator, variant: str, count: int) -> list[np.ndarray]:
    """Button positions in spatial order: a row across the table (robot's left to right) in
    training, a column along the robot's view (near to far) for ``novel_layout``."""
    offsets = (np.arange(count) - (count - 1) / 2) * BUTTON_SPACING
    if variant == "novel_layout":
        x_centre = rng.uniform(0.46, 0.5)
        y = rng.choice([-1.0, 1.0]) * rng.uniform(0.13, 0.19)
        return [np.array([x_centre + o, y]) for o in offsets]
    x = rng.uniform(0.5, 0.57)
    y_centre = rng.uniform(-0.08, 0.08)
    return [np.array([x, y_centre - o]) for o in offsets]


def requested_order(rng: np.random.Generator, variant: str, count: int) -> tuple[int, ...]:
    """Training orders are rotations of the spatial order; ``novel_order`` uses rotations of the
    reversed spatial order, which training never requests."""
    spatial = list(range(count))
    if variant == "novel_order":
        spatial.reverse()
    shift = int(rng.integers(count))
    return tuple(spatial[shift:] + spatial[:shift])


def join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" and {words[-1]}"


class PressButtonsTask(Task):
    name = "press_buttons"
    summary = "press three coloured buttons in a requested order"
    variants = ("train", "novel_layout", "novel_colours", "novel_order")
    time_limit_s = 16.0

    def _sample(self, rng: np.random.Generator, seed: int, variant: str) -> TaskInstance:
        positions = button_row(rng, variant, 3)
        colours = pick_colours(rng, variant, 3)
        buttons = tuple(flat_placement(i, colours[i], variant, positions[i]) for i in range(3))
        order = requested_order(rng, variant, 3)
        names = [colours[i] for i in order]
        return TaskInstance(
            task=self.name,
            seed=seed,
            variant=variant,
            instruction=f"press the {join_words(names)} buttons in that order",
            cubes=(),
            buttons=buttons,
            subtasks=tuple(
                Subtask(
                    "press", f"press the {colours[b]} button", {"button": b}, f"press_{ordinal}"
                )
                for b, ordinal in zip(order, ORDINALS, strict=True)
            ),
            params={"order": order},
        )

    def rubric(self, instance: TaskInstance) -> Rubric:
        order = tuple(instance.params["order"])
        names = [instance.colour_of("button", b) for b in order]
        points = (3, 3, 4)
        return Rubric(
            tuple(
                Milestone(
                    f"press_{ORDINALS[k]}",
                    points[k],
                    f"the first press is {names[0]}"
                    if k == 0
                    else f"the first {k + 1} presses are {', '.join(names[: k + 1])}",
                    lambda s, k=k: p.pressed_prefix(s, order, k + 1),
                )
                for k in range(3)
            )
        )

"""Task definitions: seeded instances, event decomposition and the Task Progress rubric.

A :class:`Task` turns ``(seed, variant)`` into a :class:`TaskInstance` (object layout, colours,
instruction and its subtasks, i.e. the events) and gives a :class:`Rubric` for an instance: 10
points of partial credit over :class:`Milestone` predicates on a
:class:`~wallwm_sim.state.SceneState`, reported as Task Progress 0-100.

Variants: ``train`` is the training distribution; generalisation variants are kept apart from it
by construction (``novel_layout``: mirrored / rotated arrangement never sampled in training;
``novel_colours``: a palette never used in training; ``novel_order``: requested orders never used
in training).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from wallwm_sim import scene
from wallwm_sim.state import SceneState
from wallwm_sim.tasks import predicates

TRAIN_PALETTE: Mapping[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.12, 0.65, 0.2),
    "blue": (0.12, 0.28, 0.85),
    "yellow": (0.92, 0.8, 0.1),
}
NOVEL_PALETTE: Mapping[str, tuple[float, float, float]] = {
    "orange": (1.0, 0.5, 0.05),
    "purple": (0.55, 0.2, 0.75),
    "cyan": (0.1, 0.8, 0.85),
    "pink": (1.0, 0.5, 0.72),
}
VARIANTS: tuple[str, ...] = ("train", "novel_layout", "novel_colours", "novel_order")
TOTAL_POINTS = 10


class TaskError(ValueError):
    """An unknown task or variant, or a task definition that is inconsistent."""


@dataclasses.dataclass(frozen=True)
class Placement:
    """One object of an instance: scene object index, colour, pose on the table."""

    index: int
    colour: str
    rgba: tuple[float, float, float, float]
    position: tuple[float, float, float]
    yaw: float = 0.0


@dataclasses.dataclass(frozen=True)
class Subtask:
    """One event of the decomposition: ``kind`` is what the expert does, ``args`` its objects.

    Kinds: ``pick`` (cube), ``place_on_zone`` (cube, zone), ``place_on_cube`` (cube, base),
    ``drop_in_bin`` (cube), ``push_to_zone`` (cube, zone), ``press`` (button).

    ``milestone`` names the rubric milestone that shows this event done (``lift`` for a pick,
    ``place`` for a placement, ...): an evaluation counts the event as succeeded when that
    milestone earns its points at the event's end. Empty for an event no milestone measures
    (moving behind a cube before pushing it).
    """

    kind: str
    caption: str
    args: Mapping[str, int]
    milestone: str = ""


@dataclasses.dataclass(frozen=True)
class TaskInstance:
    """A fully specified episode set-up; objects not listed are parked."""

    task: str
    seed: int
    variant: str
    instruction: str
    cubes: tuple[Placement, ...]
    zones: tuple[Placement, ...] = ()
    buttons: tuple[Placement, ...] = ()
    bin_position: tuple[float, float, float] | None = None
    subtasks: tuple[Subtask, ...] = ()
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def colour_of(self, kind: str, index: int) -> str:
        for placement in {"cube": self.cubes, "zone": self.zones, "button": self.buttons}[kind]:
            if placement.index == index:
                return placement.colour
        raise KeyError(f"{self.task} instance has no {kind} {index}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable description (stored with recorded episodes)."""
        return dataclasses.asdict(self) | {
            "params": {k: _jsonable(v) for k, v in self.params.items()}
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclasses.dataclass(frozen=True)
class Milestone:
    """``points`` of partial credit when ``predicate(state)`` holds.

    ``latched`` milestones keep their points once reached (progress made at any time);
    unlatched ones count only while their predicate holds (the final arrangement).
    """

    name: str
    points: int
    description: str
    predicate: Callable[[SceneState], bool]
    latched: bool = True


@dataclasses.dataclass(frozen=True)
class Rubric:
    """Milestones whose points add up to :data:`TOTAL_POINTS`."""

    milestones: tuple[Milestone, ...]

    def __post_init__(self) -> None:
        total = sum(m.points for m in self.milestones)
        if total != TOTAL_POINTS:
            raise TaskError(f"rubric points add up to {total}, not {TOTAL_POINTS}")
        names = [m.name for m in self.milestones]
        if len(set(names)) != len(names):
            raise TaskError(f"duplicate milestone names {names}")


def pick_up_milestones(cube: int, colour: str) -> tuple[Milestone, ...]:
    """The 5 points for picking up ``cube``: reach (1), grasp (2) and lift (2)."""
    return (
        Milestone(
            "reach",
            1,
            f"gripper centre within 3 cm of the {colour} cube",
            lambda s: predicates.tool_near_cube(s, cube),
        ),
        Milestone(
            "grasp",
            2,
            f"{colour} cube held between both fingers",
            lambda s: predicates.grasped(s, cube),
        ),
        Milestone(
            "lift",
            2,
            f"{colour} cube held 3 cm above the table",
            lambda s: predicates.lifted(s, cube),
        ),
    )


class ProgressTracker:
    """Task Progress of one episode: feed every state, read the score (0-100)."""

    def __init__(self, rubric: Rubric) -> None:
        self.rubric = rubric
        self._reached: dict[str, bool] = {m.name: False for m in rubric.milestones}
        self._holds: dict[str, bool] = dict(self._reached)

    def update(self, state: SceneState) -> None:
        for milestone in self.rubric.milestones:
            holds = bool(milestone.predicate(state))
            self._holds[milestone.name] = holds
            self._reached[milestone.name] |= holds

    def achieved(self) -> dict[str, bool]:
        """Whether each milestone currently earns its points."""
        return {
            m.name: self._reached[m.name] if m.latched else self._holds[m.name]
            for m in self.rubric.milestones
        }

    def points(self) -> int:
        achieved = self.achieved()
        return sum(m.points for m in self.rubric.milestones if achieved[m.name])

    def score(self) -> float:
        """Task Progress, 0-100."""
        return 100.0 * self.points() / TOTAL_POINTS


class Task(abc.ABC):
    """A task family: seeded instances and their rubric."""

    name: ClassVar[str]
    summary: ClassVar[str]
    variants: ClassVar[tuple[str, ...]] = ("train", "novel_layout", "novel_colours")
    time_limit_s: ClassVar[float]

    def sample(self, seed: int, variant: str = "train") -> TaskInstance:
        """The instance for ``seed`` and ``variant`` (deterministic)."""
        if variant not in self.variants:
            raise TaskError(
                f"task {self.name!r} has no variant {variant!r}; it has {self.variants}"
            )
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise TaskError(f"seed must be a non-negative integer, got {seed!r}")
        task_key = sum(ord(c) * 31**i for i, c in enumerate(self.name)) % (2**31)
        rng = np.random.default_rng([int(seed), task_key, VARIANTS.index(variant)])
        return self._sample(rng, int(seed), variant)

    @abc.abstractmethod
    def _sample(self, rng: np.random.Generator, seed: int, variant: str) -> TaskInstance: ...

    @abc.abstractmethod
    def rubric(self, instance: TaskInstance) -> Rubric: ...

    def rubric_table(self) -> list[tuple[str, int, str]]:
        """(milestone, points, description) rows for the documentation, from seed 0."""
        rubric = self.rubric(self.sample(0, self.variants[0]))
        return [(m.name, m.points, m.description) for m in rubric.milestones]


# ---------------------------------------------------------------- layout sampling helpers


def palette_for(variant: str) -> Mapping[str, tuple[float, float, float]]:
    return NOVEL_PALETTE if variant == "novel_colours" else TRAIN_PALETTE


def pick_colours(rng: np.random.Generator, variant: str, count: int) -> list[str]:
    names = list(palette_for(variant))
    if count > len(names):
        raise TaskError(f"need {count} distinct colours, palette has {len(names)}")
    return [names[i] for i in rng.permutation(len(names))[:count]]


def rgba(variant: str, colour: str) -> tuple[float, float, float, float]:
    return (*palette_for(variant)[colour], 1.0)


def layout_side(variant: str) -> float:
    """+1: receptacles on the left (y > 0) as in training; -1: mirrored (novel_layout)."""
    return -1.0 if variant == "novel_layout" else 1.0


# Reachable top-down workspace on the table (metres from the base axis).
MIN_REACH = 0.32
MAX_REACH = 0.66


def sample_points(
    rng: np.random.Generator,
    regions: Sequence[tuple[tuple[float, float], tuple[float, float]]],
    min_distances: Sequence[float],
    avoid: Sequence[tuple[np.ndarray, float]] = (),
    max_tries: int = 2000,
) -> list[np.ndarray]:
    """One xy point per ``((x_lo, x_hi), (y_lo, y_hi))`` region, rejection-sampled.

    Point i keeps ``max(min_distances[i], min_distances[j])`` from every point j before it and
    ``radius`` from every ``(centre, radius)`` in ``avoid``; all points lie in the reachable
    annulus. Deterministic for a given ``rng`` state.
    """
    points: list[np.ndarray] = []
    for index, ((x_lo, x_hi), (y_lo, y_hi)) in enumerate(regions):
        for _ in range(max_tries):
            point = np.array([rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)])
            if not MIN_REACH <= float(np.linalg.norm(point)) <= MAX_REACH:
                continue
            if any(
                np.linalg.norm(point - other) < max(min_distances[index], min_distances[j])
                for j, other in enumerate(points)
            ):
                continue
            if any(np.linalg.norm(point - centre) < radius for centre, radius in avoid):
                continue
            points.append(point)
            break
        else:
            raise TaskError(f"could not place object {index} in region {regions[index]}")
    return points


def cube_placement(
    index: int, colour: str, variant: str, xy: np.ndarray, rng: np.random.Generator
) -> Placement:
    return Placement(
        index=index,
        colour=colour,
        rgba=rgba(variant, colour),
        position=(float(xy[0]), float(xy[1]), scene.CUBE_HALF_SIZE),
        yaw=float(rng.uniform(-np.pi / 4, np.pi / 4)),
    )


def flat_placement(index: int, colour: str, variant: str, xy: np.ndarray) -> Placement:
    return Placement(
        index=index,
        colour=colour,
        rgba=rgba(variant, colour),
        position=(float(xy[0]), float(xy[1]), 0.0),
    )


def object_region(side: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where manipulable cubes start: the half of the table away from the receptacles."""
    y = (-0.28, 0.0) if side > 0 else (0.0, 0.28)
    return ((0.36, 0.6), y)


def receptacle_region(side: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where bins and target zones go: y > 0.1 in training, y < -0.1 when mirrored."""
    y = (0.1, 0.28) if side > 0 else (-0.28, -0.1)
    return ((0.38, 0.58), y)

"""The task suite: six tasks, looked up by name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from wallwm_sim.tasks.base import (
    VARIANTS,
    Milestone,
    Placement,
    ProgressTracker,
    Rubric,
    Subtask,
    Task,
    TaskError,
    TaskInstance,
)
from wallwm_sim.tasks.build_and_signal import BuildAndSignalTask
from wallwm_sim.tasks.pick_place import PickPlaceTask
from wallwm_sim.tasks.press_buttons import PressButtonsTask
from wallwm_sim.tasks.push_to_target import PushToTargetTask
from wallwm_sim.tasks.put_in_bin import PutInBinTask
from wallwm_sim.tasks.stack import StackTask

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        PickPlaceTask(),
        StackTask(),
        PutInBinTask(),
        PushToTargetTask(),
        PressButtonsTask(),
        BuildAndSignalTask(),
    )
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name raises :class:`TaskError` with suggestions."""
    try:
        return TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, TASK_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TaskError(f"unknown task {name!r}{hint}; tasks are {TASK_NAMES}") from None


def episode_jobs(
    tasks: Iterable[str], variants: Iterable[str], seeds: Iterable[int]
) -> list[tuple[str, str, int]]:
    """Every (task, variant, seed) in that nesting order, skipping variants a task lacks;
    unknown task names raise :class:`TaskError`."""
    variants, seeds = tuple(variants), tuple(seeds)
    return [
        (task, variant, seed)
        for task in tasks
        for variant in variants
        if variant in get_task(task).variants
        for seed in seeds
    ]


__all__ = [
    "TASKS",
    "TASK_NAMES",
    "VARIANTS",
    "Milestone",
    "Placement",
    "ProgressTracker",
    "Rubric",
    "Subtask",
    "Task",
    "TaskError",
    "TaskInstance",
    "episode_jobs",
    "get_task",
]

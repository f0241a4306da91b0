"""Argument helpers shared by the command-line tools."""

from __future__ import annotations

import argparse
import importlib

from wallwm_sim.tasks import TASK_NAMES, VARIANTS, get_task


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` (inclusive range), ``"1,5,9"`` or a mix like ``"0-2,10"``."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                first, last = (int(v) for v in part.split("-", 1))
                if last < first:
                    raise ValueError
                seeds.extend(range(first, last + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must look like '0-4' or '1,5,9', got {text!r}"
        ) from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"need at least one non-negative seed, got {text!r}")
    return seeds


def parse_tasks(text: str) -> list[str]:
    """``"all"`` or comma-separated task names."""
    if text == "all":
        return list(TASK_NAMES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        for name in names:
            get_task(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return names


def parse_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_variants(text: str) -> list[str]:
    """Comma-separated variant names, each one of :data:`~wallwm_sim.tasks.VARIANTS`."""
    names = parse_names(text)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}; variants are {VARIANTS}")
    return names


def add_episode_arguments(parser: argparse.ArgumentParser, default_seeds: str) -> None:
    """``--tasks``, ``--seeds`` and ``--variants``: which episodes a tool runs."""
    parser.add_argument(
        "--tasks", type=parse_tasks, default=parse_tasks("all"), help="'all' or comma list"
    )
    parser.add_argument(
        "--seeds",
        type=parse_seeds,
        default=parse_seeds(default_seeds),
        help=f"e.g. {default_seeds} or 1,5,9 (default {default_seeds})",
    )
    parser.add_argument(
        "--variants", type=parse_variants, default=["train"], help=f"comma list of {VARIANTS}"
    )


def load_policy_factory(spec: str):
    """``expert``, ``do_nothing`` or ``package.module:factory`` (a callable returning a policy)."""
    from wallwm_sim.expert import ScriptedExpert
    from wallwm_sim.policy import DoNothingPolicy

    builtins = {"expert": ScriptedExpert, "do_nothing": DoNothingPolicy}
    if spec in builtins:
        return builtins[spec]
    if ":" not in spec:
        raise argparse.ArgumentTypeError(
            f"policy must be one of {sorted(builtins)} or 'module:factory', got {spec!r}"
        )
    module_name, attribute = spec.split(":", 1)
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise argparse.ArgumentTypeError(f"cannot load policy factory {spec!r}: {error}") from None

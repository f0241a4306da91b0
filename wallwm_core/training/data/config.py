"""The data section of a training config: datasets, windows, split, codec stage, balancing."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from wallwm_core.config_loading import did_you_mean
from wallwm_core.episode_format import TRACKS

WINDOW_MODES = ("event", "fixed")
FIXED_INSTRUCTIONS = ("task", "event")
OVERSIZE_POLICIES = ("split", "skip")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the episodes are and how they become training windows.

    - ``paths``: dataset folders, each with ``episodes.jsonl`` (episode format v1,
      :mod:`wallwm_core.episode_format`).
    - ``window_mode``: ``"event"`` windows run from an observation to the end of the event it
      is in (event mode); ``"fixed"`` windows have ``fixed_window_steps`` action steps (the
      chunk baseline and unified mode), with the ``"task"`` text or the current ``"event"`` text
      (``fixed_instruction``).
    - ``instruction_track``: the caption track cut into events; its captions are the next-event
      instructions (``"subtask"`` is what the planner sends at deployment, see docs/training.md).
    - ``window_stride_steps``: a window starts every this many model action steps inside an
      event, and at its start.
    - ``val_fraction``: share of episode seeds held out for validation (never split by window).
    - ``balance_alpha``: window sampling weight ``~ cluster_size ** -alpha``; 0 = uniform.
    - ``codec_*``: the codec (conv autoencoder) stage.
    - ``cache_dir``: the latent cache; ``""`` = ``<first path>.wallwm_cache`` beside the dataset.
    - ``oversize_events``: an event longer than the model's ``limits.max_event_s`` is ``"split"``
      into equal pieces or ``"skip"``-ped; both are counted in the report.
    """

    paths: tuple[str, ...]
    window_mode: str = "event"
    instruction_track: str = "subtask"
    fixed_window_steps: int = 32
    fixed_instruction: str = "task"
    window_stride_steps: int = 4
    val_fraction: float = 0.1
    balance_alpha: float = 1.0
    num_clusters: int = 8
    codec_steps: int = 2000
    codec_batch_size: int = 32
    codec_lr: float = 1.0e-3
    cache_dir: str = ""
    oversize_events: str = "split"

    def __post_init__(self) -> None:
        paths = self.paths
        if isinstance(paths, str):
            paths = (paths,)
        if not isinstance(paths, tuple | list) or not paths:
            raise ValueError(f"data.paths must be a non-empty list of folders, got {self.paths!r}")
        if any(not isinstance(p, str) or not p.strip() for p in paths):
            raise ValueError(f"data.paths must hold non-empty strings, got {list(paths)!r}")
        object.__setattr__(self, "paths", tuple(paths))
        _choice("window_mode", self.window_mode, WINDOW_MODES)
        _choice("instruction_track", self.instruction_track, TRACKS)
        _choice("fixed_instruction", self.fixed_instruction, FIXED_INSTRUCTIONS)
        _choice("oversize_events", self.oversize_events, OVERSIZE_POLICIES)
        for name in ("fixed_window_steps", "window_stride_steps", "codec_batch_size"):
            _integer(name, getattr(self, name), minimum=1)
        _integer("num_clusters", self.num_clusters, minimum=1)
        _integer("codec_steps", self.codec_steps, minimum=0)
        for name in ("val_fraction", "balance_alpha", "codec_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"data.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"data.{name} must be finite, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.balance_alpha < 0.0:
            raise ValueError(f"data.balance_alpha must be >= 0, got {self.balance_alpha}")
        if self.codec_lr <= 0.0:
            raise ValueError(f"data.codec_lr must be > 0, got {self.codec_lr}")
        if not isinstance(self.cache_dir, str):
            raise ValueError(f"data.cache_dir must be a string, got {self.cache_dir!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataConfig:
        """Build from plain data (YAML); an unknown key names the closest valid one."""
        if not isinstance(data, Mapping):
            raise ValueError(f"data must be a mapping, got {type(data).__name__}")
        names = [field.name for field in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                hint = did_you_mean(str(key), names)
                raise ValueError(f"unknown data config key {key!r}{hint} (valid: {names})")
        if "paths" not in data:
            raise ValueError("data.paths is required (dataset folders with episodes.jsonl)")
        values = dict(data)
        if isinstance(values["paths"], list):
            values["paths"] = tuple(values["paths"])
        return cls(**values)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"data.{name} must be one of {list(choices)}, got {value!r}")


def _integer(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"data.{name} must be an integer >= {minimum}, got {value!r}")

"""The data side's settings (the ``data:`` section of a training config).

The interface between the data pipeline and the training loop; see the module docs of
:mod:`wallwm_core.training.data` for what each stage does with them.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

WINDOW_MODES = ("event", "fixed")
FIXED_INSTRUCTIONS = ("task", "event")
OVERSIZE_POLICIES = ("split", "skip")


def _fail(name: str, value: Any, requirement: str) -> None:
    raise ValueError(f"data.{name}={value!r}: {requirement}")


def _int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, value, f"must be an integer >= {minimum}")


def _float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(name, value, "must be a number")
    return float(value)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the episodes are and how they become training windows."""

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
        paths = tuple(paths)
        if not paths or any(not isinstance(p, str) or not p.strip() for p in paths):
            _fail("paths", self.paths, "must be one or more dataset folder paths")
        object.__setattr__(self, "paths", paths)
        if self.window_mode not in WINDOW_MODES:
            _fail("window_mode", self.window_mode, f"must be one of {WINDOW_MODES}")
        if not isinstance(self.instruction_track, str) or not self.instruction_track:
            _fail("instruction_track", self.instruction_track, "must be a caption track name")
        _int("fixed_window_steps", self.fixed_window_steps, 1)
        if self.fixed_instruction not in FIXED_INSTRUCTIONS:
            _fail(
                "fixed_instruction", self.fixed_instruction, f"must be one of {FIXED_INSTRUCTIONS}"
            )
        _int("window_stride_steps", self.window_stride_steps, 1)
        val = _float("val_fraction", self.val_fraction)
        if not 0.0 < val < 1.0:
            _fail("val_fraction", self.val_fraction, "must be in (0, 1)")
        object.__setattr__(self, "val_fraction", val)
        alpha = _float("balance_alpha", self.balance_alpha)
        if alpha < 0.0:
            _fail("balance_alpha", self.balance_alpha, "must be >= 0 (0 = uniform)")
        object.__setattr__(self, "balance_alpha", alpha)
        _int("num_clusters", self.num_clusters, 1)
        _int("codec_steps", self.codec_steps, 0)
        _int("codec_batch_size", self.codec_batch_size, 1)
        lr = _float("codec_lr", self.codec_lr)
        if lr <= 0.0:
            _fail("codec_lr", self.codec_lr, "must be > 0")
        object.__setattr__(self, "codec_lr", lr)
        if not isinstance(self.cache_dir, str):
            _fail("cache_dir", self.cache_dir, "must be a folder path or ''")
        if self.oversize_events not in OVERSIZE_POLICIES:
            _fail("oversize_events", self.oversize_events, f"must be one of {OVERSIZE_POLICIES}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataConfig:
        """Build from plain data; an unknown key is an error naming the closest valid key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"data: expected a mapping, got {type(data).__name__}")
        names = [field.name for field in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"; did you mean 'data.{close[0]}'?" if close else ""
                raise ValueError(f"unknown key 'data.{key}'{hint} (valid: {names})")
        if "paths" not in data:
            raise ValueError("data.paths is required (dataset folders with episodes.jsonl)")
        return cls(**dict(data))

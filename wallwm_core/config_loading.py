"""YAML files -> frozen, typed dataclasses, with errors that name the file and the field.

Type and unknown-key checks come from dacite (strict mode); each config dataclass checks its own
semantics (ranges, consistent sizes) in ``__post_init__`` and raises :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import dacite
import yaml

ConfigT = TypeVar("ConfigT")


class ConfigError(ValueError):
    """A configuration that is missing, malformed or inconsistent."""


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition`` holds (the configs' validation checks)."""
    if not condition:
        raise ConfigError(message)


def did_you_mean(name: str, names: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``names`` to ``name`` (difflib), else ``""``."""
    close = difflib.get_close_matches(name, list(names), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def config_from_dict(
    cls: type[ConfigT], data: Mapping[str, Any], source: str = "<dict>"
) -> ConfigT:
    """Build ``cls`` from ``data``: unknown keys, missing keys and wrong types are errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping for {cls.__name__}, got {type(data).__name__}"
        )
    try:
        return dacite.from_dict(cls, dict(data), config=dacite.Config(strict=True, cast=[tuple]))
    except dacite.DaciteError as error:
        raise ConfigError(f"{source}: invalid {cls.__name__}: {error}") from error
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{source}: invalid {cls.__name__}: {error}") from error


def load_config(cls: type[ConfigT], path: str | Path) -> ConfigT:
    """Read the YAML file at ``path`` into ``cls``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    return config_from_dict(cls, data if data is not None else {}, source=str(path))

"""Per-dimension normalisation statistics that travel with the checkpoint.

Two modes, both an affine map ``y = (x - offset) / scale`` per dimension:

- ``"mean_std"``: ``offset = mean``, ``scale = std`` -> about zero mean, unit std;
- ``"quantile"``: ``offset = (q01 + q99) / 2``, ``scale = (q99 - q01) / 2`` -> the 1st and 99th
  percentiles map to -1 and +1 (values outside them fall outside [-1, 1]; nothing is clipped, so
  ``unnormalize`` is an exact inverse).

Zero-variance dimensions: :func:`fit` floors ``std`` at ``eps * max(1, |mean|)`` and widens a
quantile range narrower than ``2 * eps * max(1, |centre|)`` symmetrically to that width (relative
to the magnitude, so the floor survives float64 rounding of large values). The floors are applied to the stored
statistics, so a loaded file is used verbatim and no epsilon hides in the transforms; a constant
dimension normalises to exactly 0.

Statistics are stored as float64 tensors ``{prefix}mean``, ``{prefix}std``, ``{prefix}q01``,
``{prefix}q99`` (each ``[D]``) and ``{prefix}mode`` (int64 ``[1]``: 0 mean_std, 1 quantile),
either inside a larger safetensors checkpoint (:meth:`NormalizationStats.to_tensors`) or in a file
of their own (:meth:`NormalizationStats.save`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import safetensors
import safetensors.torch
import torch

NormalizationMode = Literal["mean_std", "quantile"]
MODES: tuple[NormalizationMode, ...] = ("mean_std", "quantile")
DEFAULT_EPS = 1e-6
STAT_NAMES = ("mean", "std", "q01", "q99")
MODE_KEY = "mode"

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclasses.dataclass(frozen=True)
class NormalizationStats:
    """Statistics of ``D`` dimensions; arrays are float64 ``[D]``. Build with :func:`fit`."""

    mode: NormalizationMode
    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray
    q99: np.ndarray

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode=}")
        for name in STAT_NAMES:
            array = np.array(getattr(self, name), dtype=np.float64)  # a private copy
            array.setflags(write=False)
            object.__setattr__(self, name, array)
            if array.ndim != 1 or array.shape[0] == 0:
                raise ValueError(f"{name} must be [D] with D >= 1, got {array.shape}")
            if array.shape != self.mean.shape:
                raise ValueError(f"{name} has shape {array.shape}, mean has {self.mean.shape}")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name} contains NaN or infinite values")
        if np.any(self.std <= 0.0):
            raise ValueError(f"std must be positive, got {self.std.min()=}")
        if np.any(self.q99 <= self.q01):
            raise ValueError("q99 must exceed q01 in every dimension")

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def offset(self) -> np.ndarray:
        """``[D]``: subtracted before scaling."""
        if self.mode == "mean_std":
            return self.mean
        return (self.q01 + self.q99) / 2.0

    @property
    def scale(self) -> np.ndarray:
        """``[D]``: positive divisor after the offset."""
        if self.mode == "mean_std":
            return self.std
        return (self.q99 - self.q01) / 2.0

    def _apply(self, x: ArrayT, inverse: bool) -> ArrayT:
        # Computed in float64 and cast back: a large offset with a small scale (a position near
        # 100 with std 1e-3) would lose most of its digits in float32 arithmetic.
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"last dimension must be {self.dim}, got shape {tuple(x.shape)}")
        if isinstance(x, torch.Tensor):
            dtype = x.dtype if x.is_floating_point() else torch.float64
            offset = torch.tensor(self.offset, dtype=torch.float64, device=x.device)
            scale = torch.tensor(self.scale, dtype=torch.float64, device=x.device)
            x64 = x.to(torch.float64)
            return (x64 * scale + offset if inverse else (x64 - offset) / scale).to(dtype)
        x = np.asarray(x)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        x64 = x.astype(np.float64, copy=False)
        y = x64 * self.scale + self.offset if inverse else (x64 - self.offset) / self.scale
        return y.astype(dtype, copy=False)

    def normalize(self, x: ArrayT) -> ArrayT:
        """``[..., D]`` raw -> normalised; same type (numpy or torch), device and float dtype
        (integers become float64)."""
        return self._apply(x, inverse=False)

    def unnormalize(self, x: ArrayT) -> ArrayT:
        """Exact inverse of :meth:`normalize` (up to rounding)."""
        return self._apply(x, inverse=True)

    def to_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The statistics as tensors keyed ``{prefix}mean`` etc. (add your own separator)."""
        tensors = {
            prefix + name: torch.from_numpy(getattr(self, name).copy()) for name in STAT_NAMES
        }
        tensors[prefix + MODE_KEY] = torch.tensor([MODES.index(self.mode)], dtype=torch.int64)
        return tensors

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, torch.Tensor], prefix: str = "", source: str = "<tensors>"
    ) -> NormalizationStats:
        """Inverse of :meth:`to_tensors`; keys outside ``prefix`` are ignored.

        Raises ValueError naming the key and ``source`` on a missing key, a wrong shape or dtype,
        a non-finite value or an unknown mode.
        """
        missing = [prefix + n for n in (*STAT_NAMES, MODE_KEY) if prefix + n not in tensors]
        if missing:
            raise ValueError(f"{source}: missing normalisation key(s) {missing}")
        mode_tensor = tensors[prefix + MODE_KEY]
        if tuple(mode_tensor.shape) != (1,) or mode_tensor.is_floating_point():
            raise ValueError(
                f"{source}: key {prefix + MODE_KEY!r} must be an integer [1] tensor, got "
                f"{mode_tensor.dtype} {tuple(mode_tensor.shape)}"
            )
        mode_code = int(mode_tensor.item())
        if not 0 <= mode_code < len(MODES):
            raise ValueError(f"{source}: key {prefix + MODE_KEY!r} holds unknown mode {mode_code}")
        arrays: dict[str, np.ndarray] = {}
        expected_shape = tuple(tensors[prefix + "mean"].shape)
        for name in STAT_NAMES:
            key = prefix + name
            tensor = tensors[key]
            if not tensor.is_floating_point():
                raise ValueError(
                    f"{source}: key {key!r} must be floating point, got {tensor.dtype}"
                )
            if tensor.ndim != 1 or tuple(tensor.shape) != expected_shape:
                raise ValueError(
                    f"{source}: key {key!r} has shape {tuple(tensor.shape)}, expected "
                    f"{expected_shape} like {prefix + 'mean'!r} (a [D] vector)"
                )
            array = tensor.detach().cpu().to(torch.float64).numpy()
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{source}: key {key!r} contains NaN or infinite values")
            arrays[name] = array
        try:
            return cls(mode=MODES[mode_code], **arrays)
        except ValueError as error:
            raise ValueError(
                f"{source}: invalid normalisation stats under {prefix!r}: {error}"
            ) from error

    def save(self, path: str | Path) -> None:
        """Write a safetensors file holding only these statistics."""
        safetensors.torch.save_file(
            self.to_tensors(), str(path), metadata={"content": "wallwm normalization stats"}
        )

    @classmethod
    def load(cls, path: str | Path) -> NormalizationStats:
        """Read a file written by :meth:`save`; every problem is a ValueError naming the file."""
        path = Path(path)
        try:
            tensors = safetensors.torch.load_file(str(path))
        except FileNotFoundError as error:
            raise ValueError(f"{path}: no such normalisation file") from error
        except (OSError, safetensors.SafetensorError) as error:
            raise ValueError(f"{path}: not a readable safetensors file: {error}") from error
        expected = {*STAT_NAMES, MODE_KEY}
        unexpected = sorted(set(tensors) - expected)
        if unexpected:
            raise ValueError(f"{path}: unexpected key(s) {unexpected} in a normalisation file")
        return cls.from_tensors(tensors, source=str(path))


def fit(
    data: np.ndarray, mode: NormalizationMode = "mean_std", eps: float = DEFAULT_EPS
) -> NormalizationStats:
    """Statistics of ``data`` ``[N, D]`` (N >= 1 samples); see the module doc for ``eps``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode=}")
    if not eps > 0.0:
        raise ValueError(f"eps must be positive, got {eps=}")
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"data must be [N >= 1, D >= 1], got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("data contain NaN or infinite values")
    # Exact for constant dims (a summed mean can be off by rounding), so they normalise to 0.
    mean = np.where(np.ptp(data, axis=0) == 0.0, data[0], data.mean(axis=0))
    q01, q99 = np.quantile(data, [0.01, 0.99], axis=0)
    center = (q01 + q99) / 2.0
    min_half = eps * np.maximum(1.0, np.abs(center))
    narrow = (q99 - q01) / 2.0 < min_half
    return NormalizationStats(
        mode=mode,
        mean=mean,
        std=np.maximum(data.std(axis=0), eps * np.maximum(1.0, np.abs(mean))),
        q01=np.where(narrow, center - min_half, q01),
        q99=np.where(narrow, center + min_half, q99),
    )


class Normalize:
    """Callable transform ``[..., D]`` raw -> normalised; the pair of :class:`Unnormalize`."""

    def __init__(self, stats: NormalizationStats) -> None:
        self.stats = stats

    def __call__(self, x: ArrayT) -> ArrayT:
        return self.stats.normalize(x)


class Unnormalize:
    """Callable transform ``[..., D]`` normalised -> raw; the pair of :class:`Normalize`."""

    def __init__(self, stats: NormalizationStats) -> None:
        self.stats = stats

    def __call__(self, x: ArrayT) -> ArrayT:
        return self.stats.unnormalize(x)

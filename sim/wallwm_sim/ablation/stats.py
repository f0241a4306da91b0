"""Confidence intervals for the ablation report: a stratified bootstrap for mean Task Progress,
Wilson for success rates, a t-interval over training seeds for the seed-to-seed spread.

Strata ("cells") are (training seed, task, variant): the statistic is the mean over cells of the
cell means, so every training seed, task and variant weighs the same whatever its episode count,
and the bootstrap resamples episodes with replacement inside each cell. It measures how
precisely the evaluation episodes pin down the trained models' performance; the variation from
one training seed to the next is reported beside it (per-seed means and a t-interval over them),
see docs/ablation.md for why both.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval; ``n``: episodes (or seeds) behind it."""

    value: float
    low: float
    high: float
    n: int

    def to_json(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


NAN_INTERVAL = Interval(math.nan, math.nan, math.nan, 0)


def _cell_resample_means(
    cells: Sequence[np.ndarray], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``[resamples]`` bootstrap replicates of the mean over cells of the cell means."""
    total = np.zeros(resamples)
    for values in cells:
        index = rng.integers(0, len(values), size=(resamples, len(values)))
        total += values[index].mean(axis=1)
    return total / len(cells)


def _nonempty(cells: Sequence[Sequence[float]]) -> list[np.ndarray]:
    return [np.asarray(c, dtype=float) for c in cells if len(c)]


def stratified_bootstrap(
    cells: Sequence[Sequence[float]],
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean over cells of the cell means, with its percentile bootstrap interval (episodes
    resampled with replacement inside each cell); empty cells are left out."""
    arrays = _nonempty(cells)
    if not arrays:
        return NAN_INTERVAL
    value = float(np.mean([a.mean() for a in arrays]))
    replicates = _cell_resample_means(arrays, resamples, np.random.default_rng(seed))
    alpha = 1.0 - confidence
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return Interval(value, float(low), float(high), sum(len(a) for a in arrays))


def bootstrap_difference(
    cells_a: Sequence[Sequence[float]],
    cells_b: Sequence[Sequence[float]],
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """(statistic of a) - (statistic of b), each as in :func:`stratified_bootstrap`, resampled
    independently; ``n`` is the episodes of both."""
    arrays_a, arrays_b = _nonempty(cells_a), _nonempty(cells_b)
    if not arrays_a or not arrays_b:
        return NAN_INTERVAL
    rng = np.random.default_rng(seed)
    value = float(np.mean([a.mean() for a in arrays_a]) - np.mean([b.mean() for b in arrays_b]))
    replicates = _cell_resample_means(arrays_a, resamples, rng) - _cell_resample_means(
        arrays_b, resamples, rng
    )
    alpha = 1.0 - confidence
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    count = sum(len(a) for a in arrays_a) + sum(len(b) for b in arrays_b)
    return Interval(value, float(low), float(high), count)


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The success rate with its Wilson score interval (scipy's ``binomtest``)."""
    if n <= 0:
        return NAN_INTERVAL
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / n, float(ci.low), float(ci.high), n)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of ``values`` (e.g. per-training-seed means) with Student's t interval; the bounds
    are NaN with fewer than 2 values."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return NAN_INTERVAL
    mean = float(array.mean())
    if array.size < 2:
        return Interval(mean, math.nan, math.nan, int(array.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, array.size - 1)) * float(
        array.std(ddof=1) / math.sqrt(array.size)
    )
    return Interval(mean, mean - half, mean + half, int(array.size))

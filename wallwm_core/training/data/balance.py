"""Cluster-balanced sampling: rare kinds of events are drawn as often as common ones.

Events are clustered by what they say and what they do: a deterministic hashed bag of words and
word pairs of the instruction (unit length), beside standardised action statistics of the event
(tool displacement, gripper at start and end, duration), both blocks of equal weight. k-means is
scipy's ``kmeans2`` (k-means++ start, fixed seed). A window's sampling weight is
``n_c ** -alpha`` with ``n_c`` the number of windows in its event's cluster, normalised to sum
1: ``alpha = 1`` gives every cluster the same share, ``alpha = 0`` is uniform over windows.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.cluster.vq import kmeans2

TEXT_DIM = 64
SEED = 0


def text_features(texts: Sequence[str], dim: int = TEXT_DIM) -> np.ndarray:
    """``[N, dim]`` unit vectors: hashed counts of the lower-case words and word pairs."""
    out = np.zeros((len(texts), dim))
    for row, text in enumerate(texts):
        words = text.lower().split()
        for gram in [*words, *(" ".join(p) for p in itertools.pairwise(words))]:
            out[row, zlib.crc32(gram.encode()) % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0.0, norms, 1.0)


def event_features(texts: Sequence[str], action_stats: np.ndarray) -> np.ndarray:
    """Text block (unit length) beside the z-scored action statistics ``[N, S]`` scaled to
    unit expected length."""
    stats = np.asarray(action_stats, dtype=np.float64)
    std = stats.std(axis=0)
    scaled = (stats - stats.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)
    return np.concatenate([text_features(texts), scaled / np.sqrt(stats.shape[1])], axis=1)


def cluster(features: np.ndarray, num_clusters: int) -> np.ndarray:
    """Cluster label ``[N]`` per row (k = min(num_clusters, distinct rows)), labels renumbered
    by first appearance so they do not depend on k-means' internal order."""
    distinct = len(np.unique(features.round(9), axis=0))
    k = min(num_clusters, distinct)
    if k <= 1:
        return np.zeros(len(features), dtype=np.int64)
    _, labels = kmeans2(features, k, minit="++", seed=SEED)
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[np.searchsorted(np.unique(labels), labels)].astype(np.int64)


def balance_weights(labels: np.ndarray, alpha: float) -> np.ndarray:
    """Per-window weights ``n_c ** -alpha`` normalised to sum 1 (float64 ``[N]``)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    weights = counts[inverse].astype(np.float64) ** -alpha
    return weights / weights.sum()


def distribution(
    labels: np.ndarray, weights: np.ndarray, texts: Sequence[str], examples: int = 3
) -> list[dict[str, Any]]:
    """Per cluster: windows, share under uniform and under the weights, commonest texts."""
    rows = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        names, counts = np.unique([texts[i] for i in members], return_counts=True)
        top = names[np.argsort(-counts, kind="stable")][:examples]
        rows.append(
            {
                "cluster": int(label),
                "windows": len(members),
                "share_uniform": float(len(members) / len(labels)),
                "share_weighted": float(weights[members].sum()),
                "examples": [str(t) for t in top],
            }
        )
    return rows

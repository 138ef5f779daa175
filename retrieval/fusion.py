"""Fusing the ranked lists of several first stages (sparse, dense, SPANN) into one ranking.

Pure functions over one query's lists: each list is a pair (ids (n,) int64, scores (n,)
float), larger scores better, as the first-stage indexes return them (padding entries,
id -1 or a non-finite score, are ignored). Within a list an id counts once, at its best
rank. Results come back as (ids (m,) int64, scores (m,) float32), best first; equal fused
scores are ordered by ascending id so that fusion is deterministic.

- `reciprocal_rank_fusion`: RRF (Cormack, Clarke, Buettcher, SIGIR 2009),
  score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1, k = 60 by default.
- `weighted_score_fusion`: each list's scores min-max normalised to [0, 1], then a
  weighted sum (a document missing from a list gets 0 from it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from lamina.index.errors import InvalidArgument

RankedList = tuple[np.ndarray, np.ndarray]


def _clean(ranked: RankedList, position: int) -> tuple[np.ndarray, np.ndarray]:
    """One list's valid entries, best first (ties by id), each id once: ids int64, scores float64."""
    try:
        ids = np.asarray(ranked[0], dtype=np.int64).reshape(-1)
        scores = np.asarray(ranked[1], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, IndexError) as exc:
        raise InvalidArgument(f"ranked list {position} is not a pair of id and score arrays: {exc}") from None
    if len(ids) != len(scores):
        raise InvalidArgument(f"ranked list {position} has {len(ids)} ids but {len(scores)} scores")
    valid = (ids >= 0) & np.isfinite(scores)
    ids, scores = ids[valid], scores[valid]
    order = np.lexsort((ids, -scores))
    ids, scores = ids[order], scores[order]
    _, first = np.unique(ids, return_index=True)  # best occurrence of each id
    first.sort()
    return ids[first], scores[first]


def _weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != n:
        raise InvalidArgument(f"{len(w)} weights for {n} ranked lists")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InvalidArgument(f"fusion weights must be finite and >= 0, got {w.tolist()}")
    return w


def _accumulate(ids_parts: list[np.ndarray], score_parts: list[np.ndarray],
                limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit <= 0):
        raise InvalidArgument(f"limit must be a positive integer, got {limit!r}")
    if not ids_parts:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    all_ids = np.concatenate(ids_parts)
    all_scores = np.concatenate(score_parts)
    fused_ids, inverse = np.unique(all_ids, return_inverse=True)
    fused = np.bincount(inverse, weights=all_scores, minlength=len(fused_ids))
    order = np.lexsort((fused_ids, -fused))
    if limit is not None:
        order = order[:limit]
    return fused_ids[order], fused[order].astype(np.float32)


def reciprocal_rank_fusion(lists: Sequence[RankedList], *, k: float = 60.0, weights: Sequence[float] | None = None,
                           limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """RRF of ranked lists: ids (m,) int64 and fused scores (m,) float32, best first.

    `lists`: (ids, scores) pairs; a list's ranks follow its scores (descending, ties by
    ascending id). `k` > 0 damps the weight of top ranks; `weights` (one per list, >= 0)
    scale each list's contribution; `limit` keeps the best `limit` results.
    """
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not np.isfinite(k) or k <= 0:
        raise InvalidArgument(f"RRF k must be a finite number > 0, got {k!r}")
    w = _weights(weights, len(lists))
    ids_parts, score_parts = [], []
    for i, ranked in enumerate(lists):
        ids, _ = _clean(ranked, i)
        ids_parts.append(ids)
        score_parts.append(w[i] / (k + np.arange(1, len(ids) + 1, dtype=np.float64)))
    return _accumulate(ids_parts, score_parts, limit)


def min_max_normalise(scores: np.ndarray) -> np.ndarray:
    """Scores (n,) mapped linearly onto [0, 1] (min -> 0, max -> 1); all equal -> all 1.

    A list whose entries all tie carries no preference among them, but each entry is
    still a best hit of that list, so it gets the top value rather than nothing.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    low, high = scores.min(), scores.max()
    if high == low:
        return np.ones_like(scores)
    return (scores - low) / (high - low)


def weighted_score_fusion(lists: Sequence[RankedList], weights: Sequence[float] | None = None, *,
                          limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sum of min-max normalised scores: ids (m,) int64 and fused scores (m,) float32.

    `weights` (one per list, >= 0; default all 1) multiply each list's normalised scores;
    a document missing from a list gets 0 from it. `limit` keeps the best `limit` results.
    """
    w = _weights(weights, len(lists))
    ids_parts, score_parts = [], []
    for i, ranked in enumerate(lists):
        ids, scores = _clean(ranked, i)
        ids_parts.append(ids)
        score_parts.append(w[i] * min_max_normalise(scores))
    return _accumulate(ids_parts, score_parts, limit)

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
- `zscore_fusion`: each list's scores standardised (minus the list's mean, over its standard
  deviation), then a weighted sum; a document missing from a list gets that list's lowest value.
- `adaptive_fusion`: `weighted_score_fusion` whose weights are set per query, with no labels,
  from how decisive each list's own ranking is (`decisiveness`): a list whose best scores stand
  out from the rest of its candidates gets more say than one whose scores are flat.
- `fuse`: one of them by name, with what it did for `explain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def zscore_normalise(scores: np.ndarray) -> np.ndarray:
    """Scores (n,) minus their mean, over their standard deviation (float64); all equal -> all 0."""
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    spread = scores.std()
    if not spread > 0:
        return np.zeros_like(scores)
    return (scores - scores.mean()) / spread


def zscore_fusion(lists: Sequence[RankedList], weights: Sequence[float] | None = None, *,
                  limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sum of standardised scores: ids (m,) int64 and fused scores (m,) float32.

    A document missing from a list gets that list's lowest standardised score (as min-max
    fusion gives it the list's lowest, 0), so being absent never beats being listed.
    """
    w = _weights(weights, len(lists))
    cleaned = [_clean(ranked, i) for i, ranked in enumerate(lists)]
    z = [zscore_normalise(scores) for _, scores in cleaned]
    floors = np.array([part.min() if len(part) else 0.0 for part in z])
    # shift each list by its floor so that a missing document adds 0, then add the floors back
    ids_parts = [ids for ids, _ in cleaned]
    score_parts = [w[i] * (z[i] - floors[i]) for i in range(len(lists))]
    ids, fused = _accumulate(ids_parts, score_parts, limit)
    return ids, (fused + np.float32(float(w @ floors))).astype(np.float32)


def decisiveness(scores: np.ndarray, depth: int = 10) -> float:
    """How decisive one ranked list is, in [0, 1]: 1 minus the mean min-max normalised score of
    its ranks 2..depth (0 when fewer than 2 entries or all scores tie).

    Scale-free, so a BM25 list and a cosine list compare: a list whose top hit stands far above
    the next ones scores near 1, a list whose first `depth` hits are as good as its best near 0.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 2:
        raise InvalidArgument(f"decisiveness depth must be an integer >= 2, got {depth!r}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    scores = np.sort(scores[np.isfinite(scores)])[::-1]
    if len(scores) < 2 or scores[0] == scores[-1]:
        return 0.0
    normalised = (scores[1:depth] - scores[-1]) / (scores[0] - scores[-1])
    return float(1.0 - normalised.mean())


def adaptive_weights(lists: Sequence[RankedList], weights: Sequence[float] | None = None, *,
                     depth: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per-query weights (n,) float64 of ranked lists and their decisiveness signals (n,).

    weight_i = base_i * decisiveness_i / mean over lists of decisiveness (base: `weights`, default
    1), so the weights keep the base's scale; when no list is decisive (all 0) the base is used.
    """
    base = _weights(weights, len(lists))
    signals = np.array([decisiveness(_clean(ranked, i)[1], depth) for i, ranked in enumerate(lists)])
    mean = signals.mean() if len(signals) else 0.0
    if not mean > 0:
        return base, signals
    return base * signals / mean, signals


def adaptive_fusion(lists: Sequence[RankedList], weights: Sequence[float] | None = None, *, depth: int = 10,
                    limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`weighted_score_fusion` with `adaptive_weights`: ids, fused scores, the weights used and
    the lists' decisiveness signals."""
    w, signals = adaptive_weights(lists, weights, depth=depth)
    ids, scores = weighted_score_fusion(lists, w, limit=limit)
    return ids, scores, w, signals


def rocchio(query: np.ndarray, feedback: np.ndarray, beta: float) -> np.ndarray:
    """Rocchio's pseudo-relevance feedback on a dense query: query (d,) + beta * the mean of the
    feedback documents' vectors (m, d), rescaled to the query's norm (float32, (d,)).

    No feedback documents (m = 0) or beta 0 give the query back unchanged.
    """
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    feedback = np.asarray(feedback, dtype=np.float32).reshape(-1, len(query)) if np.size(feedback) else \
        np.empty((0, len(query)), np.float32)
    if not (np.isfinite(beta) and beta >= 0):
        raise InvalidArgument(f"feedback weight must be a finite number >= 0, got {beta!r}")
    if not len(feedback) or beta == 0:
        return query
    moved = query + np.float32(beta) * feedback.mean(axis=0)
    norm, original = float(np.linalg.norm(moved)), float(np.linalg.norm(query))
    return (moved * (original / norm)).astype(np.float32) if norm > 0 else query


FUSION_METHODS = ("rrf", "weighted", "zscore", "adaptive")


def fuse(method: str, lists: Sequence[RankedList], *, weights: Sequence[float] | None = None, rrf_k: float = 60.0,
         limit: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fuse by name (one of FUSION_METHODS): ids, scores and what the fusion did, for `explain`
    ({"weights": the weights applied}, and for "adaptive" each list's "decisiveness")."""
    if method == "rrf":
        ids, scores = reciprocal_rank_fusion(lists, k=rrf_k, weights=weights, limit=limit)
        return ids, scores, {"weights": _weights(weights, len(lists)).tolist(), "rrf_k": rrf_k}
    if method == "weighted":
        ids, scores = weighted_score_fusion(lists, weights, limit=limit)
    elif method == "zscore":
        ids, scores = zscore_fusion(lists, weights, limit=limit)
    elif method == "adaptive":
        ids, scores, w, signals = adaptive_fusion(lists, weights, limit=limit)
        return ids, scores, {"weights": [round(float(x), 4) for x in w],
                             "decisiveness": [round(float(x), 4) for x in signals]}
    else:
        raise InvalidArgument(f"unknown fusion {method!r}; expected one of {', '.join(FUSION_METHODS)}")
    return ids, scores, {"weights": _weights(weights, len(lists)).tolist()}

"""Pure kernels of the scatter-gather: per-shard answers in, one node's answer out.

- `merge_ranked`: one first stage's candidate lists from every shard (document ids and scores,
  best first) -> that stage's global list, the best `limit` by score (ties by document id), i.e.
  the list one node holding every shard's documents would produce;
- `dense_ids`: document ids -> int64 ids for `lamina.retrieval.fusion` (the rank of each id in
  lexicographic order, so that fusion's tie-break by ascending id is a tie-break by document id,
  whatever the shard count);
- `merge_facets`: keyword counts summed, numeric min/max combined, histograms (over shared
  edges) summed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from lamina.index.facets import FacetCount, FacetResult, NumericStats


def merge_ranked(parts: Sequence[tuple[Sequence[str], np.ndarray]], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Shards' (doc_ids, scores) -> (doc_ids (m,) object, scores (m,) float32), best `limit` first."""
    ids = np.concatenate([np.asarray(list(p[0]), dtype=object) for p in parts]) if parts else np.empty(0, object)
    scores = np.concatenate([np.asarray(p[1], dtype=np.float32) for p in parts]) if parts else np.empty(0, np.float32)
    if not len(ids):
        return ids, scores
    order = np.lexsort((ids.astype(str), -scores.astype(np.float64)))[:limit]
    return ids[order], scores[order]


def dense_ids(lists: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The union of the lists' document ids, sorted (vocabulary), and each list as int64 positions in it."""
    if not lists:
        return np.empty(0, object), []
    vocab = np.unique(np.concatenate([np.asarray(x, dtype=str) for x in lists]))
    return vocab.astype(object), [np.searchsorted(vocab, np.asarray(x, dtype=str)).astype(np.int64) for x in lists]


def merge_facets(parts: Sequence[FacetResult], limit: int) -> FacetResult:
    """Every shard's facet of one field (each asked for every value) -> one node's facet."""
    first = parts[0]
    documents = sum(p.documents for p in parts)
    time_ms = max(p.time_ms for p in parts)
    if first.kind == "keyword":
        totals: dict[object, int] = {}
        for part in parts:
            for c in part.counts:
                totals[c.value] = totals.get(c.value, 0) + c.count
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1], _value_key(kv[0])))
        counts = tuple(FacetCount(v, n) for v, n in ranked[:limit])
        return FacetResult(first.field, "keyword", documents, counts, len(totals), None, time_ms)
    stats = [p.stats for p in parts if p.stats is not None and p.stats.count]
    if not stats:
        return FacetResult(first.field, "numeric", documents, (), 0, first.stats, time_ms)
    hist = np.sum([np.asarray(s.counts, dtype=np.int64) for s in stats], axis=0) if stats[0].counts else ()
    merged = NumericStats(sum(s.count for s in stats), min(s.min for s in stats), max(s.max for s in stats),
                          tuple(stats[0].edges), tuple(int(c) for c in hist))
    return FacetResult(first.field, "numeric", documents, (), 0, merged, time_ms)


def _value_key(value: object) -> tuple[int, object]:
    """The facets' tie order: bools, then numbers, then strings, each ascending."""
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))

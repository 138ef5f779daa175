"""Which postings a vector goes to, which postings a query reads: SPANN's placement and pruning rules.

Placement (SPANN §3.2, "posting list expansion" with the RNG rule): a vector is a candidate for
its `candidates` nearest heads, taken nearest first; head c_i is accepted unless some already
accepted head c_j satisfies rng_factor * d(c_i, c_j) < d(x, c_i), i.e. c_i lies behind c_j as
seen from x, so a query near x that reaches c_i would reach c_j too. At most `replicas` heads
are accepted. Boundary vectors thus land in a few diverse postings instead of many similar ones.

Capping: a posting keeps its `cap` nearest entries; the farthest are dropped (they are the
least likely to be found through this head and usually have other replicas).

Pruning (SPANN §3.3, query-aware dynamic pruning): a query reads the posting of a looked-up head
only when d(q, head) <= max_dist_ratio * d(q, nearest head).

Distances are squared L2, as in SPTAG. The RNG test always uses the L2 geometry of the vectors
(for inner product on unit vectors it is the same rule, since |a - b|^2 = 2 - 2<a, b>); pruning
for inner product uses the gap |q| * max|head| - <q, head>, which is >= 0 by Cauchy-Schwarz,
ranks heads as the inner product does, and equals half the squared L2 distance on unit vectors,
so one `max_dist_ratio` means the same thing for both metrics there.

Pure functions: numpy in, numpy out. Loops run over candidate positions (or blocks of them),
never over vectors.
"""

from __future__ import annotations

import numpy as np

# Rows processed together by the RNG rule, and the most head-vector floats gathered at once.
_RNG_CHUNK = 4096
_GATHER = 1 << 22


def squared_l2_from_ip(ip: np.ndarray, vector_norms: np.ndarray, head_norms: np.ndarray) -> np.ndarray:
    """Squared L2 (n, c) float32 from inner products ip (n, c), |x|^2 (n,) and |head|^2 (n, c)."""
    return np.maximum(vector_norms[:, None] + head_norms - 2.0 * ip, 0.0).astype(np.float32)


def ip_gap(ip: np.ndarray, query_norm: float, max_head_norm: float) -> np.ndarray:
    """Pruning distance for inner product: |q| * max|head| - <q, head>, float32, >= 0."""
    return np.maximum(np.float32(query_norm * max_head_norm) - ip, 0.0).astype(np.float32)


def rng_select(
    candidate_heads: np.ndarray,
    candidate_dists: np.ndarray,
    head_vectors: np.ndarray,
    *,
    rng_factor: float = 1.0,
    replicas: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the RNG rule to each vector's candidate heads.

    candidate_heads (n, c) int64, nearest first, -1 padding at the end of a row;
    candidate_dists (n, c) float32 squared L2 from the vector to each candidate;
    head_vectors (H, d) float32 indexed by head number.
    Returns the accepted heads (n, replicas) int64, nearest first, -1 padded, and their
    positions (n, replicas) int64 among the candidates (-1 padded), so that callers can pick
    any per-candidate value. The nearest head is always accepted.
    """
    n = len(candidate_heads)
    chosen = np.full((n, replicas), -1, dtype=np.int64)
    positions = np.full((n, replicas), -1, dtype=np.int64)
    for start in range(0, n, _RNG_CHUNK):
        stop = min(start + _RNG_CHUNK, n)
        _rng_chunk(candidate_heads[start:stop], candidate_dists[start:stop], head_vectors, float(rng_factor),
                   chosen[start:stop], positions[start:stop])
    return chosen, positions


def _rng_chunk(candidates: np.ndarray, dists: np.ndarray, head_vectors: np.ndarray, rng_factor: float,
               chosen: np.ndarray, positions: np.ndarray) -> None:
    n_rows, n_candidates = candidates.shape
    replicas = chosen.shape[1]
    valid = candidates >= 0
    # position 0, the nearest head, is always accepted
    chosen[valid[:, 0], 0] = candidates[valid[:, 0], 0]
    positions[valid[:, 0], 0] = 0
    count = valid[:, 0].astype(np.int64)
    nearest = head_vectors[np.maximum(candidates[:, 0], 0)]
    block = max(1, _GATHER // max(n_rows * head_vectors.shape[1], 1))
    for start in range(1, n_candidates, block):
        stop = min(start + block, n_candidates)
        # the nearest head vetoes most candidates: test a block of positions against it at once,
        # for the rows still short of replicas (most fill up within the first 20 positions)
        rows = np.flatnonzero(count < replicas)
        if not len(rows):
            break
        diff = head_vectors[np.maximum(candidates[rows, start:stop], 0)] - nearest[rows, None, :]
        between = np.einsum("ijk,ijk->ij", diff, diff)
        survives = np.zeros((n_rows, stop - start), dtype=bool)
        survives[rows] = valid[rows, start:stop] & ~(rng_factor * between < dists[rows, start:stop])
        # the survivors meet the other accepted heads, one position at a time
        # (acceptance depends on what the earlier positions accepted)
        for position in range(start, stop):
            test = np.flatnonzero(survives[:, position - start] & (count < replicas))
            if not len(test):
                continue
            accepted = chosen[test, 1: max(int(count[test].max()), 1)]
            diff = head_vectors[candidates[test, position]][:, None, :] - head_vectors[np.maximum(accepted, 0)]
            between = np.einsum("ijk,ijk->ij", diff, diff)
            vetoed = (rng_factor * between < dists[test, position][:, None]) & (accepted >= 0)
            taken = test[~vetoed.any(axis=1)]
            slots = count[taken]
            chosen[taken, slots] = candidates[taken, position]
            positions[taken, slots] = position
            count[taken] += 1


def cap_postings(heads: np.ndarray, dists: np.ndarray, cap: int) -> np.ndarray:
    """Entries kept when each posting holds at most `cap`: indices (m,) int64 into heads/dists.

    heads (E,) int64 and dists (E,) float32 describe one entry each (smaller is nearer).
    The result is sorted by (head, distance), so each posting is a contiguous, nearest-first run.
    """
    order = np.lexsort((dists, heads))
    sorted_heads = heads[order]
    starts = np.flatnonzero(np.r_[True, sorted_heads[1:] != sorted_heads[:-1]])
    run_lengths = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, run_lengths)
    return order[rank < cap]


def posting_bounds(sorted_heads: np.ndarray, n_heads: int) -> np.ndarray:
    """Start offsets (n_heads + 1,) int64 of each head's run in a head-sorted entry array."""
    return np.searchsorted(sorted_heads, np.arange(n_heads + 1), side="left").astype(np.int64)


def prune_postings(head_dists: np.ndarray, *, max_dist_ratio: float, min_postings: int = 0) -> np.ndarray:
    """Mask (m,) bool of the looked-up heads whose postings a query reads.

    head_dists (m,) float32 ascending (squared L2, or the inner-product gap). The nearest
    `min_postings` are always read, so a query sitting on a head (distance 0) still reads
    its neighbourhood.
    """
    if not len(head_dists):
        return np.zeros(0, dtype=bool)
    keep = head_dists <= np.float32(max_dist_ratio) * head_dists[0]
    keep[:min_postings] = True
    return keep

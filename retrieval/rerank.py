"""Multivector (late-interaction) reranking of first-stage candidates by MaxSim, with early pruning.

MaxSim (ColBERT, Khattab & Zaharia, SIGIR'20) scores a document by, for each query token, the
largest inner product with any of the document's tokens, summed over the query tokens. Lamina
applies it as the second stage of a two-stage pipeline, after Martinico, Nardini, Rulli &
Venturini, "Multivector Reranking in the Era of Strong First-Stage Retrievers" (ECIR 2026): the
first stage (sparse, dense, SPANN, or their fusion) proposes candidates, the best `kappa` of
them by first-stage score are rescored by MaxSim, and the best `k` are returned. Two rules of
the paper skip candidates that are unlikely to matter, as its authors implement them in
`RerankIndex::search` of TusKANNy/vectorium (`src/core/rerank_index.rs`):

- Candidate pruning (CP, `alpha`): with s_k the k-th best first-stage score among the kappa
  candidates, drop every candidate whose first-stage score is below (1 - alpha) * s_k; nothing is
  pruned when fewer than k candidates are offered. The paper's threshold assumes s_k >= 0 (its
  scores are learned-sparse inner products); Lamina uses s_k - alpha * |s_k|, which is the same
  number then and still keeps the first-stage top-k when s_k < 0 (minus an L2 distance, say).
  alpha = 0 keeps exactly the first-stage top-k (and its ties); alpha -> 1 prunes nothing
  of non-negative scores.
- Early exit (EE, `beta`): candidates are scored in first-stage order; the first k fill a top-k
  heap; each later candidate enters it when its MaxSim beats the heap's k-th score (strictly),
  and reranking stops once beta consecutive candidates have failed to enter.

With alpha and beta off (the default of `Rerank`: bench/RESULTS.md, "Rerank pruning defaults") the
result is the MaxSim top-k of the kappa candidates. Both rules
change which candidates are scored, never how: the vectorised `rerank` returns exactly what the
plain `rerank_reference` returns (tests hold them to it).

Shapes: token matrices are (n, d) float32 with L2-normalised rows (cosine = inner product); a
set of documents travels packed, tokens (T, d) float32 plus offsets (n+1,) int64, document i
owning tokens[offsets[i]:offsets[i+1]]. `maxsim` computes one matrix product per block of
candidates and a segment max (`np.maximum.reduceat`) over the offsets: no Python loop over
tokens or documents. Scores are larger-is-better.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from lamina.index import deadline as request_deadline
from lamina.index.errors import InvalidArgument

# Most candidates one query may rerank: MaxSim costs m x (tokens of kappa documents) dot products.
MAX_KAPPA = 1000
# Token rows scored per matrix product when no early exit asks for smaller blocks: big enough to
# amortise the numpy calls, small enough that the (rows, query tokens) similarity block stays small.
BLOCK_TOKENS = 32_768


@runtime_checkable
class TokenSource(Protocol):
    """Where the reranker reads token matrices: `lamina.index.multivector.TokenStore` plays it."""

    dim: int

    def get_packed(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens (T, dim) float32 and offsets (n+1,) int64 of ids (n,) int64; an id the source
        does not hold owns no rows (offsets[i] == offsets[i+1])."""


@dataclass(frozen=True)
class RerankStats:
    """What one rerank did with its candidates.

    offered: distinct valid candidate ids given (id >= 0, finite first-stage score);
    considered: those kept by the kappa cut; pruned: dropped by candidate pruning (alpha);
    scored: MaxSim computed; skipped: left unscored by early exit (beta);
    missing: scored candidates the token source holds no tokens for (deleted meanwhile), never returned.
    """

    offered: int
    considered: int
    pruned: int
    scored: int
    skipped: int
    missing: int

    def to_dict(self) -> dict[str, int]:
        return {"offered": self.offered, "considered": self.considered, "pruned": self.pruned,
                "scored": self.scored, "skipped": self.skipped, "missing": self.missing}


# ---------------------------------------------------------------------- MaxSim
def maxsim(query_tokens: np.ndarray, doc_tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MaxSim of one query against packed documents.

    query_tokens: (m, d) float32; doc_tokens: (T, d) float32; offsets: (n+1,) int64 with
    offsets[0] == 0 and offsets[-1] == T. Returns (n,) float32: for document i,
    sum over query tokens q of max over rows t of doc i of <q, t>; -inf for a document with no rows.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    scores = np.full(n, -np.inf, dtype=np.float32)
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    if not nonempty.any():
        return scores
    # (T, m): document rows down, so that reduceat reduces contiguous row ranges. Empty documents
    # own no rows, so the starts of the non-empty ones delimit exactly their own ranges.
    similarity = doc_tokens @ query_tokens.T
    best = np.maximum.reduceat(similarity, offsets[:-1][nonempty], axis=0)  # (n_nonempty, m)
    scores[nonempty] = best.sum(axis=1, dtype=np.float32)
    return scores


def maxsim_reference(query_tokens: np.ndarray, doc_tokens: list[np.ndarray]) -> np.ndarray:
    """Plain-loop MaxSim (tests only): (n,) float64 of query (m, d) against n matrices (n_i, d)."""
    out = np.full(len(doc_tokens), -np.inf)
    for i, doc in enumerate(doc_tokens):
        if len(doc) == 0:
            continue
        total = 0.0
        for q in query_tokens:
            total += max(float(np.dot(q.astype(np.float64), t.astype(np.float64))) for t in doc)
        out[i] = total
    return out


# ---------------------------------------------------------------------- the paper's two rules
def pruning_threshold(sorted_scores: np.ndarray, k: int, alpha: float) -> float:
    """First-stage score a candidate needs to survive candidate pruning.

    sorted_scores: (n,) first-stage scores in decreasing order. Returns s_k - alpha * |s_k|
    (= (1 - alpha) * s_k for s_k >= 0), or -inf when fewer than k candidates (nothing pruned).
    """
    if len(sorted_scores) < k:
        return -np.inf
    kth = float(sorted_scores[k - 1])
    return kth - alpha * abs(kth)


class _EarlyExitTopK:
    """The early-exit scan's state: a min-heap of the best k (score, -first-stage rank) pairs
    and the run of consecutive candidates that failed to enter it."""

    def __init__(self, k: int, beta: int | None) -> None:
        self.k = k
        self.beta = beta
        self.heap: list[tuple[float, int]] = []
        self.stalls = 0

    @property
    def done(self) -> bool:
        return self.beta is not None and self.stalls >= self.beta

    def next_block(self, remaining: int) -> int:
        """How many candidates to score next: up to the heap's fill, then just enough to make an
        exit possible (beta - stalls), so the scan never scores a candidate it would not reach."""
        if len(self.heap) < self.k:
            return min(remaining, self.k - len(self.heap))
        if self.beta is None:
            return remaining
        return min(remaining, self.beta - self.stalls)

    def push(self, scores: np.ndarray, ranks: np.ndarray) -> int:
        """Offer scored candidates in order; returns how many were consumed before an exit."""
        for i, (score, rank) in enumerate(zip(scores.tolist(), ranks.tolist())):
            if len(self.heap) < self.k:
                heapq.heappush(self.heap, (score, -rank))
                continue
            # ties go to the earlier candidate, as a stable sort by first-stage rank would
            if score > self.heap[0][0]:
                heapq.heapreplace(self.heap, (score, -rank))
                self.stalls = 0
            else:
                self.stalls += 1
                if self.done:
                    return i + 1
        return len(scores)


# ---------------------------------------------------------------------- rerank
def check_rerank_params(k: int, kappa: int, alpha: float | None, beta: int | None) -> None:
    """Raise InvalidArgument, naming the value, unless 1 <= k <= kappa <= MAX_KAPPA,
    alpha is None or in [0, 1) and beta is None or a positive integer."""
    for name, value in (("k", k), ("kappa", kappa)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise InvalidArgument(f"{name} must be a positive integer, got {value!r}")
    if kappa > MAX_KAPPA:
        raise InvalidArgument(f"kappa={kappa} exceeds the limit of {MAX_KAPPA} reranked candidates")
    if k > kappa:
        raise InvalidArgument(f"k={k} exceeds kappa={kappa}: rerank at least as many candidates as are returned")
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)) \
                or not 0.0 <= float(alpha) < 1.0:
            raise InvalidArgument(f"alpha (candidate pruning) must be in [0, 1), got {alpha!r}")
    if beta is not None:
        if isinstance(beta, bool) or not isinstance(beta, (int, np.integer)) or beta <= 0:
            raise InvalidArgument(f"beta (early exit) must be a positive integer, got {beta!r}")


def _check_query(query_tokens: np.ndarray, dim: int) -> np.ndarray:
    try:
        query = np.ascontiguousarray(query_tokens, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"query tokens are not numeric: {exc}") from None
    if query.ndim != 2 or query.shape[1] != dim:
        raise InvalidArgument(f"query tokens have shape {query.shape}, expected (m, {dim})")
    if not len(query):
        raise InvalidArgument("query has no tokens to rerank with")
    if not np.isfinite(query).all():
        raise InvalidArgument("query tokens contain NaN or infinite values")
    return query


def _candidates(candidate_ids: np.ndarray, first_stage_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid candidates in first-stage order: ids (n,) int64, scores (n,) float64, decreasing.

    Drops id < 0 and non-finite scores (faiss's "no result" slots); a repeated id keeps its best
    score. Ties keep the order given (stable sort).
    """
    ids = np.asarray(candidate_ids, dtype=np.int64).reshape(-1)
    scores = np.asarray(first_stage_scores, dtype=np.float64).reshape(-1)
    if len(ids) != len(scores):
        raise InvalidArgument(f"{len(ids)} candidate ids for {len(scores)} first-stage scores")
    valid = (ids >= 0) & np.isfinite(scores)
    ids, scores = ids[valid], scores[valid]
    order = np.argsort(-scores, kind="stable")
    ids, scores = ids[order], scores[order]
    _, first = np.unique(ids, return_index=True)
    if len(first) < len(ids):
        keep = np.sort(first)
        ids, scores = ids[keep], scores[keep]
    return ids, scores


def _blocks_by_tokens(lengths: np.ndarray, budget: int) -> list[slice]:
    """Consecutive slices of documents holding about `budget` rows each (at least one document)."""
    slices, start, n = [], 0, len(lengths)
    ends = np.cumsum(lengths)
    while start < n:
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + budget, side="right")))
        slices.append(slice(start, stop))
        start = stop
    return slices


def rerank(
    query_tokens: np.ndarray,
    candidate_ids: np.ndarray,
    first_stage_scores: np.ndarray,
    token_source: TokenSource,
    *,
    k: int,
    kappa: int,
    alpha: float | None = None,
    beta: int | None = None,
) -> tuple[np.ndarray, np.ndarray, RerankStats]:
    """Rerank first-stage candidates by MaxSim and return the best k.

    query_tokens: (m, d) float32; candidate_ids: (n,) int64 and first_stage_scores: (n,) float
    (larger is better, any order; id < 0 or a non-finite score marks an empty slot). The best
    `kappa` candidates by first-stage score are considered, pruned by `alpha`, scored in
    first-stage order with early exit after `beta` consecutive misses (see the module docstring).
    Returns ids (<= k,) int64 and MaxSim scores (<= k,) float32 in decreasing score order (ties:
    first-stage order), and RerankStats. Candidates the source has no tokens for are dropped.
    """
    check_rerank_params(k, kappa, alpha, beta)
    query = _check_query(query_tokens, token_source.dim)
    ids, scores = _candidates(candidate_ids, first_stage_scores)
    offered = len(ids)
    ids, scores = ids[:kappa], scores[:kappa]
    considered = len(ids)
    if alpha is not None:
        keep = scores >= pruning_threshold(scores, k, float(alpha))
        ids = ids[keep]  # the threshold is a score: survivors are a prefix, order is kept
    pruned = considered - len(ids)

    topk = _EarlyExitTopK(k, beta)
    ranks = np.arange(len(ids))
    scored = missing = 0
    if beta is None:
        # no exit to honour: fetch everything at once and score it in token-bounded blocks
        tokens, offsets = token_source.get_packed(ids)
        parts = []
        for block in _blocks_by_tokens(np.diff(offsets), BLOCK_TOKENS):
            request_deadline.check("a rerank block")  # an abandoned request stops between blocks
            lo, hi = offsets[block.start], offsets[block.stop]
            parts.append(maxsim(query, tokens[lo:hi], offsets[block.start:block.stop + 1] - lo))
        maxsims = np.concatenate(parts) if parts else np.empty(0, np.float32)
        scored = len(ids)
        present = np.isfinite(maxsims)
        missing = int((~present).sum())
        topk.push(maxsims[present], ranks[present])
    else:
        position = 0
        while position < len(ids) and not topk.done:
            request_deadline.check("a rerank block")
            size = topk.next_block(len(ids) - position)
            block = slice(position, position + size)
            tokens, offsets = token_source.get_packed(ids[block])
            maxsims = maxsim(query, tokens, offsets)
            present = np.isfinite(maxsims)
            missing += int((~present).sum())
            # a missing candidate neither enters nor stalls the scan: it is not a document
            consumed = topk.push(maxsims[present], ranks[block][present])
            if topk.done:  # the scan stops at the candidate that made it exit
                position += int(np.flatnonzero(present)[consumed - 1]) + 1
            else:
                position += size
            scored = position
    best = sorted(topk.heap, key=lambda entry: (-entry[0], -entry[1]))
    out_ids = np.array([ids[-rank] for _, rank in best], dtype=np.int64)
    out_scores = np.array([score for score, _ in best], dtype=np.float32)
    stats = RerankStats(offered, considered, pruned, scored, len(ids) - scored, missing)
    return out_ids, out_scores, stats


def rerank_reference(
    query_tokens: np.ndarray,
    candidate_ids: np.ndarray,
    first_stage_scores: np.ndarray,
    token_source: TokenSource,
    *,
    k: int,
    kappa: int,
    alpha: float | None = None,
    beta: int | None = None,
) -> tuple[np.ndarray, np.ndarray, RerankStats]:
    """`rerank` written as plainly as possible, one candidate at a time (tests only)."""
    check_rerank_params(k, kappa, alpha, beta)
    query = np.asarray(query_tokens, dtype=np.float32)
    pairs = [(float(s), int(i)) for i, s in zip(np.asarray(candidate_ids).tolist(), np.asarray(first_stage_scores).tolist())
             if i >= 0 and np.isfinite(s)]
    ordered: list[tuple[int, float]] = []
    seen: set[int] = set()
    for position in sorted(range(len(pairs)), key=lambda j: -pairs[j][0]):  # stable: ties keep input order
        score, doc = pairs[position]
        if doc not in seen:
            seen.add(doc)
            ordered.append((doc, score))
    offered = len(ordered)
    ordered = ordered[:kappa]
    considered = len(ordered)
    if alpha is not None and len(ordered) >= k:
        kth = ordered[k - 1][1]
        threshold = kth - alpha * abs(kth)
        ordered = [(doc, score) for doc, score in ordered if score >= threshold]
    pruned = considered - len(ordered)
    top: list[tuple[int, float, int]] = []  # (doc, maxsim, rank)
    stalls = scored = missing = 0
    for rank, (doc, _) in enumerate(ordered):
        scored += 1
        tokens, offsets = token_source.get_packed(np.array([doc]))
        if offsets[-1] == 0:
            missing += 1
            continue
        value = float(maxsim_reference(query, [tokens])[0])
        if len(top) < k:
            top.append((doc, value, rank))
            continue
        worst = min(top, key=lambda entry: (entry[1], -entry[2]))
        if value > worst[1]:
            top.remove(worst)
            top.append((doc, value, rank))
            stalls = 0
        else:
            stalls += 1
            if beta is not None and stalls >= beta:
                break
    top.sort(key=lambda entry: (-entry[1], entry[2]))
    stats = RerankStats(offered, considered, pruned, scored, len(ordered) - scored, missing)
    return (np.array([d for d, _, _ in top], dtype=np.int64), np.array([s for _, s, _ in top], dtype=np.float32),
            stats)


# ---------------------------------------------------------------------- exhaustive (benchmarks)
def exhaustive_maxsim(
    queries: list[np.ndarray],
    blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """MaxSim top-k of every query over a whole collection: the upper bound reranking aims at.

    queries: list of nq (m_i, d) float32 token matrices; blocks: (ids (n,) int64, tokens (T, d)
    float32, offsets (n+1,) int64) covering the collection once, e.g. `TokenStore.iter_blocks()`
    (each block is decoded once for all queries). Returns scores (nq, k) float32 and ids (nq, k)
    int64 in decreasing score order, padded with -inf and -1 when the collection is smaller.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise InvalidArgument(f"k must be a positive integer, got {k!r}")
    nq = len(queries)
    best_scores = np.full((nq, k), -np.inf, dtype=np.float32)
    best_ids = np.full((nq, k), -1, dtype=np.int64)
    for ids, tokens, offsets in blocks:
        for qi, query in enumerate(queries):
            block_scores = maxsim(np.asarray(query, dtype=np.float32), tokens, offsets)
            scores = np.concatenate([best_scores[qi], block_scores])
            cand = np.concatenate([best_ids[qi], ids])
            top = np.argsort(-scores, kind="stable")[:k]
            best_scores[qi], best_ids[qi] = scores[top], cand[top]
    best_ids[~np.isfinite(best_scores)] = -1
    return best_scores, best_ids

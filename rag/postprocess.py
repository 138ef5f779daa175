"""Postprocessors: what happens to retrieved chunks between the search and the prompt.

Each is a small pure component (LlamaIndex's node postprocessors are the model): ranked candidates
in, ranked candidates out, nothing read or written. One Protocol, `Postprocessor`, and four
implementations:

    DedupeByParent     at most n chunks of one source document, and no chunk that mostly repeats
                       the span of a better one of the same document (overlapping windows)
    SimilarityCutoff   drop chunks scored below an absolute score or a fraction of the best
    MMR                maximal marginal relevance (Carbonell & Goldstein, 1998) over the chunks'
                       dense vectors: relevance from the retrieval scores, redundancy from cosine
    ContextBudget      the best chunks that fit a budget of the generator's tokens, in rank order
                       ("fill": a chunk that does not fit is skipped and smaller ones after it still
                       go in; "prefix": the best chunks up to the first that does not fit)

`to_dict`/`postprocessor_from_dict` give each a serialisable form for the pipeline's wiring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from lamina.index.errors import InvalidArgument
from lamina.rag.types import Chunk, TokenCounter


@dataclass(frozen=True)
class Candidate:
    """A retrieved chunk with its retrieval score; `vector` is its dense vector when a step needs it,
    `tokens` its length in the generator's tokens once counted."""

    chunk: Chunk
    score: float
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    tokens: int | None = None


@runtime_checkable
class Postprocessor(Protocol):
    """Ranked candidates in, ranked candidates out (a subset, maybe reordered). Pure."""

    kind: ClassVar[str]

    def process(self, candidates: Sequence[Candidate]) -> list[Candidate]: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DedupeByParent:
    """Keep at most `max_per_parent` chunks of one parent (None: no limit), and drop a chunk whose
    character span overlaps a better-ranked kept chunk of the same parent by more than
    `max_overlap` of its own length (overlapping windows repeat text the prompt already has)."""

    max_per_parent: int | None = None
    max_overlap: float = 0.5
    kind: ClassVar[str] = "dedupe_by_parent"

    def __post_init__(self) -> None:
        if self.max_per_parent is not None and (isinstance(self.max_per_parent, bool) or self.max_per_parent < 1):
            raise InvalidArgument(f"max_per_parent must be a positive integer or None, got {self.max_per_parent!r}")
        if not 0.0 <= self.max_overlap <= 1.0:
            raise InvalidArgument(f"max_overlap must be within [0, 1], got {self.max_overlap!r}")

    def process(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        kept: list[Candidate] = []
        spans: dict[str, list[tuple[int, int]]] = {}
        for cand in candidates:
            chunk = cand.chunk
            taken = spans.setdefault(chunk.parent, [])
            if self.max_per_parent is not None and len(taken) >= self.max_per_parent:
                continue
            length = max(chunk.end - chunk.start, 1)
            overlap = max((min(chunk.end, e) - max(chunk.start, s) for s, e in taken), default=0)
            if overlap > self.max_overlap * length:
                continue
            taken.append((chunk.start, chunk.end))
            kept.append(cand)
        return kept

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_per_parent": self.max_per_parent, "max_overlap": self.max_overlap}


@dataclass(frozen=True)
class SimilarityCutoff:
    """Drop candidates scored below `min_score`, or below `min_ratio` times the best score (for
    scores that are positive, such as inner products of normalised vectors or fused scores)."""

    min_score: float | None = None
    min_ratio: float | None = None
    kind: ClassVar[str] = "similarity_cutoff"

    def __post_init__(self) -> None:
        if self.min_score is None and self.min_ratio is None:
            raise InvalidArgument("a similarity cutoff needs min_score or min_ratio")
        if self.min_ratio is not None and not 0.0 <= self.min_ratio <= 1.0:
            raise InvalidArgument(f"min_ratio must be within [0, 1], got {self.min_ratio!r}")

    def process(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        scores = np.array([c.score for c in candidates], dtype=np.float64)
        keep = np.ones(len(scores), dtype=bool)
        if self.min_score is not None:
            keep &= scores >= self.min_score
        if self.min_ratio is not None:
            keep &= scores >= self.min_ratio * scores.max()
        return [c for c, k in zip(candidates, keep) if k]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "min_score": self.min_score, "min_ratio": self.min_ratio}


def mmr_order(relevance: np.ndarray, vectors: np.ndarray, k: int, lambda_: float) -> np.ndarray:
    """Maximal marginal relevance: positions of `k` rows picked greedily by
    lambda * relevance - (1 - lambda) * max cosine to the rows already picked.

    relevance: (n,) float, larger is better; vectors: (n, d) float. Returns (min(k, n),) int64."""
    n = len(relevance)
    k = min(k, n)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    redundancy = np.full(n, -np.inf)
    picked = np.empty(k, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    for step in range(k):  # k picks, each vectorised over the candidates
        gain = lambda_ * relevance - (1.0 - lambda_) * np.where(np.isinf(redundancy), 0.0, redundancy)
        gain[~free] = -np.inf
        best = int(np.argmax(gain))
        picked[step] = best
        free[best] = False
        redundancy = np.maximum(redundancy, similarity[best])
    return picked


@dataclass(frozen=True)
class MMR:
    """Reorder (and cut to `top_n`) by maximal marginal relevance. Relevance is the retrieval score
    min-max normalised to [0, 1]; candidates need their dense `vector` (the pipeline fetches them)."""

    lambda_: float = 0.7
    top_n: int | None = None
    kind: ClassVar[str] = "mmr"
    needs_vectors: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.lambda_ <= 1.0:
            raise InvalidArgument(f"MMR lambda must be within [0, 1], got {self.lambda_!r}")

    def process(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        if any(c.vector is None for c in candidates):
            raise InvalidArgument("MMR needs the candidates' dense vectors (a collection with dense vectors)")
        scores = np.array([c.score for c in candidates], dtype=np.float64)
        spread = scores.max() - scores.min()
        relevance = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
        vectors = np.stack([np.asarray(c.vector, dtype=np.float32) for c in candidates])
        order = mmr_order(relevance, vectors, self.top_n or len(candidates), self.lambda_)
        return [candidates[i] for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lambda_": self.lambda_, "top_n": self.top_n}


BUDGET_POLICIES = ("fill", "prefix")


def fit_budget(tokens: np.ndarray, budget: int, policy: str = "fill") -> np.ndarray:
    """The items a budget keeps, in order. fill: each item goes in when it still fits (a long one is
    skipped and shorter ones after it still go in); prefix: items go in until the first that does not
    fit. tokens: (n,) int. Returns a bool mask (n,)."""
    if policy == "prefix":
        return np.cumsum(tokens) <= budget
    keep = np.zeros(len(tokens), dtype=bool)
    left = budget
    for i, size in enumerate(tokens.tolist()):  # one step a candidate (tens), not a token
        if size <= left:
            keep[i] = True
            left -= size
    return keep


@dataclass(frozen=True)
class ContextBudget:
    """The candidates that fit `max_tokens` of the generator's tokens (each chunk counted with the
    separator the template adds, `overhead` tokens), in rank order; `counter` counts them."""

    max_tokens: int = 1024
    overhead: int = 8
    policy: str = "fill"
    counter: TokenCounter | None = field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "context_budget"

    def __post_init__(self) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InvalidArgument(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if self.policy not in BUDGET_POLICIES:
            raise InvalidArgument(f"unknown budget policy {self.policy!r}; expected one of {', '.join(BUDGET_POLICIES)}")

    def with_counter(self, counter: TokenCounter) -> ContextBudget:
        return self if self.counter is not None else replace(self, counter=counter)

    def process(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        if not candidates:
            return []
        counted = count_candidates(candidates, self.counter)
        tokens = np.array([c.tokens for c in counted], dtype=np.int64) + self.overhead
        keep = fit_budget(tokens, self.max_tokens, self.policy)
        return [c for c, k in zip(counted, keep) if k]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_tokens": self.max_tokens, "overhead": self.overhead, "policy": self.policy}


def count_candidates(candidates: Sequence[Candidate], counter: TokenCounter | None) -> list[Candidate]:
    """The candidates with `tokens` set, counting (in one batch) those not counted yet."""
    todo = [i for i, c in enumerate(candidates) if c.tokens is None]
    if not todo:
        return list(candidates)
    if counter is None:
        raise InvalidArgument("a context budget needs a token counter (the generator's tokenizer)")
    counts = counter.count_tokens([candidates[i].chunk.text for i in todo])
    out = list(candidates)
    for i, n in zip(todo, counts):
        out[i] = replace(out[i], tokens=int(n))
    return out


POSTPROCESSORS: dict[str, type] = {cls.kind: cls for cls in (DedupeByParent, SimilarityCutoff, MMR, ContextBudget)}


def postprocessor_from_dict(data: Mapping[str, Any]) -> Postprocessor:
    """A postprocessor from its `to_dict()` form."""
    options = dict(data)
    kind = options.pop("kind", None)
    cls = POSTPROCESSORS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise InvalidArgument(f"unknown postprocessor {kind!r}; expected one of {', '.join(POSTPROCESSORS)}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise InvalidArgument(f"postprocessor {kind!r}: {exc}") from None

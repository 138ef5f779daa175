"""`lamina bench sparse`: Lamina's Seismic-style sparse index beside pyseismic-lsr, bm25s and exact search.

Every system indexes the same sparse vectors (`lamina.bench.sparse_data`: synthetic SPLADE-like
vectors, or BM25 weights of a BEIR corpus) and answers the same queries, one at a time on one
thread, as ann-benchmarks measures latency. The systems (`SparseSystem`, the sparse flavour of
`harness.Algorithm`):

- `exact`: scipy.sparse scoring of the query against the term-major (inverted) CSR matrix of the
  documents, float64: the ground truth of recall@10 and the latency baseline;
- `lamina-sparse`: `lamina.index.sparse.SparseIndex`, searched through its public `search`
  (input checks included), swept over query_cut x heap_factor;
- `pyseismic`: pyseismic-lsr's `SeismicIndexRaw` (Rust), built with the same build parameters
  from the same vectors, swept over the same grid. Its heap_factor is the reciprocal of ours
  (`index.sparse.search`), so each point runs it with 1 / heap_factor; its rows report its own
  value. Skipped with a message when `import seismic` fails;
- `bm25s` (BEIR only): bm25s's own BM25 ("lucene") indexing the same WordPiece tokens.

Recall@10 follows `lamina.bench.groundtruth`: a returned document counts when its score,
recomputed from the float32 vectors, is within the tolerance of the 10th exact score, so a tie
or float16 rounding is not a miss; a query with fewer than 10 matching documents is judged on
those it has. On a BEIR directory every row also carries nDCG@10 against the qrels (ranx).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lamina.bench.groundtruth import recall_per_query
from lamina.bench.report import make_report, write_report, write_report_and_plot
from lamina.bench.sparse_data import SparseDataset, load_sparse_dataset
from lamina.index.sparse import SeismicConfig, SparseBatch, SparseIndex

SYSTEMS: tuple[str, ...] = ("exact", "lamina-sparse", "pyseismic", "bm25s")

#: Query-argument grid of the Seismic systems in Lamina's convention (a block is skipped when
#: its summary score < k-th score / heap_factor); pyseismic runs each point with 1 / heap_factor.
SEISMIC_GRID: list[dict[str, Any]] = [
    {"query_cut": cut, "heap_factor": factor}
    for cut in (3, 5, 8, 10, 15, 20) for factor in (1.0, 1.1, 1.25, 1.43, 2.0)
]
WARMUP_QUERIES = 10


@runtime_checkable
class SparseSystem(Protocol):
    """A sparse retrieval system under test.

    name: the label in reports; build_params: what `fit` built with; grid: its query arguments
    (Lamina's convention, see `SEISMIC_GRID`), [{}] for a system without knobs.
    """

    name: str
    build_params: dict[str, Any]
    grid: list[dict[str, Any]]

    def fit(self, dataset: SparseDataset) -> None:
        """Index dataset.docs; the row number is the id."""

    def set_query_arguments(self, **params: Any) -> dict[str, Any]:
        """Use params for the following queries; returns them as the system itself names them."""

    def query(self, terms: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
        """Ids (<= k,) int64 of the best rows for one query (terms (m,) int32, weights (m,) float32)."""

    def memory_bytes(self) -> int | None:
        """Bytes of the index (arrays held, or its serialized size)."""

    def done(self) -> None:
        """Release the index."""


def seismic_build_params(config: SeismicConfig) -> dict[str, Any]:
    """The build parameters Lamina and pyseismic share, from Lamina's config."""
    return {"n_postings": config.n_postings, "pruning": config.pruning, "max_fraction": config.max_fraction,
            "centroid_fraction": config.centroid_fraction, "doc_cut": config.doc_cut,
            "summary_energy": config.summary_energy}


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Ids (<= k,) of the k largest scores (n,), best first, ties by smaller id."""
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = np.flatnonzero(scores >= kth)
        scores, ids = scores[keep], ids[keep]
    return ids[np.lexsort((ids, -scores))[:k]]


# ---------------------------------------------------------------------------- systems
class ExactSparse:
    """Exact inner products with scipy.sparse: query (1, V) times the documents' (V, n) CSR matrix."""

    name = "exact"

    def __init__(self) -> None:
        self.build_params: dict[str, Any] = {"dtype": "float64"}
        self.grid: list[dict[str, Any]] = [{}]
        self._by_term: Any = None
        self._vocab_size = 0

    def fit(self, dataset: SparseDataset) -> None:
        import scipy.sparse

        docs = dataset.docs
        matrix = scipy.sparse.csr_matrix((docs.values.astype(np.float64), docs.indices, docs.indptr),
                                         shape=(len(docs), dataset.vocab_size))
        self._by_term = matrix.T.tocsr()  # term-major: a query touches only its terms' rows
        self._vocab_size = dataset.vocab_size

    def set_query_arguments(self, **params: Any) -> dict[str, Any]:
        return dict(params)

    def query(self, terms: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
        import scipy.sparse

        query = scipy.sparse.csr_matrix((weights.astype(np.float64), terms, [0, len(terms)]),
                                        shape=(1, self._vocab_size))
        scores = (query @ self._by_term).tocsr()
        return top_k(scores.data, scores.indices.astype(np.int64), k)

    def memory_bytes(self) -> int:
        m = self._by_term
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)

    def done(self) -> None:
        self._by_term = None


class LaminaSparse:
    """Lamina's `SparseIndex`, built with `config` and searched through its public `search`."""

    name = "lamina-sparse"

    def __init__(self, config: SeismicConfig | None = None, grid: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.config = config or SeismicConfig()
        self.build_params = seismic_build_params(self.config)
        self.grid = [dict(p) for p in (SEISMIC_GRID if grid is None else grid)]
        self._index: SparseIndex | None = None
        self._params: dict[str, Any] = {}

    def fit(self, dataset: SparseDataset) -> None:
        index = SparseIndex(dataset.vocab_size, self.config)
        index.add(np.arange(len(dataset.docs), dtype=np.int64), dataset.docs)
        index.compact()  # everything into the Seismic structure, nothing left in the exact delta
        self._index = index

    def set_query_arguments(self, **params: Any) -> dict[str, Any]:
        self._params = dict(params)
        # the report says whether short queries were answered exactly (term at a time)
        return {**params, "exact_postings": params.get("exact_postings", self.config.exact_postings)}

    def query(self, terms: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
        batch = SparseBatch(np.array([0, len(terms)], np.int64), terms, weights)
        return self._require().search(batch, k, params=self._params)[1][0]

    def memory_bytes(self) -> int:
        return self._require().memory_bytes()

    def done(self) -> None:
        self._index = None

    def _require(self) -> SparseIndex:
        if self._index is None:
            raise RuntimeError(f"{self.name}: fit() first")
        return self._index


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send file descriptor 1 to stderr for a while: the Rust build logs on stdout, where the
    JSON report of `--json` must stay alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def write_seismic_inner(docs: SparseBatch, path: Path) -> None:
    """Write docs in Seismic's inner binary format: u32 n, then per row u32 m, m u32 terms, m f32 weights."""
    lengths = docs.row_lengths()
    words = np.empty(1 + len(docs) + 2 * docs.nnz, np.uint32)
    words[0] = len(docs)
    starts = 1 + np.arange(len(docs), dtype=np.int64) + 2 * docs.indptr[:-1]  # position of each row's m
    words[starts] = lengths
    row_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    within = np.arange(docs.nnz, dtype=np.int64) - docs.indptr[row_of]
    terms_at = starts[row_of] + 1 + within
    words[terms_at] = docs.indices
    words[terms_at + lengths[row_of]] = docs.values.view(np.uint32)
    words.tofile(path)


class PyseismicPeer:
    """pyseismic-lsr's `SeismicIndexRaw`: the Rust Seismic, same build parameters, same vectors."""

    name = "pyseismic"

    def __init__(self, config: SeismicConfig | None = None, grid: Sequence[Mapping[str, Any]] | None = None) -> None:
        import seismic  # noqa: F401 - fail here, so the caller can skip the system

        self.config = config or SeismicConfig()
        self.build_params = seismic_build_params(self.config) | {"min_cluster_size": 2}
        self.grid = [dict(p) for p in (SEISMIC_GRID if grid is None else grid)]
        self._index: Any = None
        self._cut, self._factor = self.config.query_cut, 1.0 / self.config.heap_factor

    def fit(self, dataset: SparseDataset) -> None:
        import seismic

        if self.config.pruning != "global":
            raise ValueError("pyseismic's Python build offers only the global-threshold pruning")
        c = self.config
        with tempfile.TemporaryDirectory(prefix="lamina-seismic-") as tmp, stdout_to_stderr():
            path = Path(tmp) / "docs.bin"
            write_seismic_inner(dataset.docs, path)
            self._index = seismic.SeismicIndexRaw.build(
                str(path), n_postings=c.n_postings, centroid_fraction=c.centroid_fraction, min_cluster_size=2,
                summary_energy=c.summary_energy, max_fraction=c.max_fraction, doc_cut=c.doc_cut)

    def set_query_arguments(self, **params: Any) -> dict[str, Any]:
        self._cut = int(params.get("query_cut", self.config.query_cut))
        self._factor = 1.0 / float(params.get("heap_factor", self.config.heap_factor))
        return {"query_cut": self._cut, "heap_factor": round(self._factor, 4)}

    def query(self, terms: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
        hits = self._index.search(terms, weights, k, self._cut, self._factor, 0, True)
        return np.fromiter((doc for _, doc in hits), dtype=np.int64, count=len(hits))

    def memory_bytes(self) -> int:
        with tempfile.TemporaryDirectory(prefix="lamina-seismic-") as tmp, stdout_to_stderr():
            self._index.save(str(Path(tmp) / "index"))
            return sum(f.stat().st_size for f in Path(tmp).iterdir())

    def done(self) -> None:
        self._index = None


class Bm25sPeer:
    """bm25s's own BM25 (method "lucene", same k1 and b) over the dataset's WordPiece token ids.

    A query's tokens are its term ids repeated by their counts (the BM25 query weights), so
    bm25s scores the very tokens the sparse systems see. Documents sharing no token with the
    query (score 0) are dropped from its answer, as the other systems never return them.
    """

    name = "bm25s"

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        import bm25s  # noqa: F401 - fail here, so the caller can skip the system

        self.build_params: dict[str, Any] = {"k1": k1, "b": b, "method": "lucene"}
        self.grid: list[dict[str, Any]] = [{}]
        self._retriever: Any = None
        self._vocab: dict[str, int] = {}

    def fit(self, dataset: SparseDataset) -> None:
        import bm25s
        from bm25s.tokenization import Tokenized

        if dataset.doc_tokens is None or dataset.vocab is None:
            raise ValueError(f"bm25s needs the tokens of a text dataset; {dataset.name} has none")
        self._vocab = dataset.vocab
        retriever = bm25s.BM25(k1=self.build_params["k1"], b=self.build_params["b"], method="lucene")
        retriever.index(Tokenized(ids=[row.tolist() for row in dataset.doc_tokens], vocab=self._vocab),
                        show_progress=False)
        self._retriever = retriever

    def set_query_arguments(self, **params: Any) -> dict[str, Any]:
        return dict(params)

    def query(self, terms: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
        from bm25s.tokenization import Tokenized

        tokens = np.repeat(terms, np.rint(weights).astype(np.int64)).tolist()
        k = min(k, self._retriever.scores["num_docs"])
        ids, scores = self._retriever.retrieve(Tokenized(ids=[tokens], vocab=self._vocab), k=k,
                                               show_progress=False, n_threads=1)
        # bm25s fills the top-k with documents of score 0; like the others, answer only matching ones
        return np.asarray(ids[0], dtype=np.int64)[np.asarray(scores[0]) > 0]

    def memory_bytes(self) -> int:
        return sum(int(v.nbytes) for v in self._retriever.scores.values() if isinstance(v, np.ndarray))

    def done(self) -> None:
        self._retriever = None


def make_sparse_systems(names: Sequence[str], dataset: SparseDataset, *, config: SeismicConfig | None = None,
                        grid: Sequence[Mapping[str, Any]] | None = None,
                        skip: Callable[[str], None] | None = None) -> list[SparseSystem]:
    """The systems of `names` (a subset of `SYSTEMS`) that can run on `dataset`, in that order.

    bm25s runs only on text datasets; pyseismic and bm25s are skipped when not installed.
    Each skipped system is reported through `skip(message)`. Raises ValueError for an unknown name.
    """
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown sparse system(s) {', '.join(unknown)}; expected a subset of {', '.join(SYSTEMS)}")
    say = skip or (lambda message: None)
    systems: list[SparseSystem] = []
    for name in dict.fromkeys(names):
        if name == "exact":
            systems.append(ExactSparse())
        elif name == "lamina-sparse":
            systems.append(LaminaSparse(config, grid))
        elif name == "pyseismic":
            try:
                systems.append(PyseismicPeer(config, grid))
            except ImportError:
                say("pyseismic skipped: `import seismic` failed (pip install pyseismic-lsr)")
        elif dataset.doc_tokens is None:
            say(f"bm25s skipped: {dataset.name} has no text (BM25 runs on BEIR directories)")
        else:
            try:
                k1, b = dataset.meta.get("k1", 1.2), dataset.meta.get("b", 0.75)
                systems.append(Bm25sPeer(float(k1), float(b)))  # type: ignore[arg-type]
            except ImportError:
                say("bm25s skipped: `import bm25s` failed (pip install bm25s)")
    return systems


# ---------------------------------------------------------------------------- measuring
def time_queries(system: SparseSystem, queries: SparseBatch, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One query at a time: (ids (nq, k) int64, -1 padded; latencies (nq,) seconds)."""
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    latencies = np.empty(len(queries), dtype=np.float64)
    rows = [queries.row(i) for i in range(len(queries))]
    for terms, weights in rows[:WARMUP_QUERIES]:  # page in the index, compile, warm the caches
        system.query(terms, weights, k)
    clock = time.perf_counter
    for i, (terms, weights) in enumerate(rows):
        start = clock()
        found = system.query(terms, weights, k)
        latencies[i] = clock() - start
        ids[i, :len(found)] = found[:k]
    return ids, latencies


def scores_of(docs: SparseBatch, queries: SparseBatch, ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Inner products (nq, k) float64 of each query with its returned rows ids (nq, k); -inf for -1.

    Recomputed from the float32 vectors, so every system is judged by the same arithmetic.
    """
    nq, k = ids.shape
    valid = ids >= 0
    rows = docs.take(np.where(valid, ids, 0).reshape(-1)).to_scipy(vocab_size).astype(np.float64)
    repeated = queries.take(np.repeat(np.arange(nq), k)).to_scipy(vocab_size).astype(np.float64)
    scores = np.asarray(rows.multiply(repeated).sum(axis=1)).reshape(nq, k)
    return np.where(valid, scores, -np.inf)


def sparse_recall(found_ids: np.ndarray, found_scores: np.ndarray, true_ids: np.ndarray, true_scores: np.ndarray,
                  k: int = 10) -> np.ndarray:
    """Recall@k per query (nq,) with `groundtruth`'s score tolerance; a query with fewer than k
    matching documents is judged on the ones it has."""
    recall = recall_per_query(found_ids, true_ids, k, -true_scores, -found_scores)
    n_true = np.maximum(1, (true_ids[:, :k] >= 0).sum(axis=1))
    return np.minimum(1.0, recall * k / n_true)


def ndcg_at_10(dataset: SparseDataset, ids: np.ndarray) -> float | None:
    """nDCG@10 (ranx) of result rows ids (nq, >=10) against the dataset's qrels; None without qrels."""
    if not dataset.qrels or dataset.doc_ids is None or dataset.query_ids is None:
        return None
    from lamina.bench.quality import score_run

    run = {}
    for qid, row in zip(dataset.query_ids, ids, strict=True):
        ranked = [dataset.doc_ids[i] for i in row[:10] if i >= 0]
        run[qid] = {doc_id: float(len(ranked) - rank) for rank, doc_id in enumerate(ranked)}
    return score_run(run, dataset.qrels, ("ndcg@10",))["ndcg@10"]


def run_sparse_sweep(dataset: SparseDataset, systems: Sequence[SparseSystem], *, k: int = 10,
                     progress: Callable[[str], None] | None = None,
                     checkpoint: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Build each system and measure it at every point of its grid, one query at a time.

    The ground truth is the `exact` system's answer when it is among `systems` (it runs first
    then), else an untimed `ExactSparse`. Returns one dict per (system, query arguments) with
    the report keys: system, params, recall@10, qps, p50_ms, p99_ms, memory_bytes, build_s,
    plus ndcg@10 (BEIR), build_params, k, queries. `checkpoint(results so far)` is called after
    each system, so that a long run killed part-way still leaves its finished systems behind.
    """
    say = progress or (lambda message: None)
    queries = dataset.queries
    systems = sorted(systems, key=lambda s: s.name != "exact")  # exact first: it is the ground truth
    true_ids: np.ndarray | None = None
    if not any(s.name == "exact" for s in systems):
        reference = ExactSparse()
        reference.fit(dataset)
        true_ids, _ = time_queries(reference, queries, k)
        reference.done()
    true_scores = None if true_ids is None else scores_of(dataset.docs, queries, true_ids, dataset.vocab_size)
    results: list[dict[str, Any]] = []
    for system in systems:
        start = time.perf_counter()
        system.fit(dataset)
        build_s = time.perf_counter() - start
        memory = system.memory_bytes()
        say(f"{system.name}: built in {build_s:.2f} s, {memory / 2**20:.1f} MiB" if memory is not None
            else f"{system.name}: built in {build_s:.2f} s")
        for args in system.grid:
            params = system.set_query_arguments(**args)
            ids, latencies = time_queries(system, queries, k)
            found_scores = scores_of(dataset.docs, queries, ids, dataset.vocab_size)
            if true_ids is None:  # the exact system, first in line
                true_ids, true_scores = ids, found_scores
            row: dict[str, Any] = {
                "system": system.name,
                "params": params,
                "recall@10": float(sparse_recall(ids, found_scores, true_ids, true_scores, min(k, 10)).mean()),
                "qps": len(queries) / float(latencies.sum()),
                "p50_ms": float(np.percentile(latencies, 50) * 1e3),
                "p99_ms": float(np.percentile(latencies, 99) * 1e3),
                "memory_bytes": memory,
                "build_s": build_s,
                "build_params": dict(system.build_params),
                "k": k,
                "queries": len(queries),
            }
            ndcg = ndcg_at_10(dataset, ids)
            if ndcg is not None:
                row["ndcg@10"] = ndcg
            results.append(row)
            label = " ".join([system.name, *(f"{name}={value}" for name, value in params.items())])
            say(f"{label}: recall@10={row['recall@10']:.4f} p50={row['p50_ms']:.3f} ms "
                f"p99={row['p99_ms']:.3f} ms qps={row['qps']:.0f}"
                + (f" ndcg@10={ndcg:.4f}" if ndcg is not None else ""))
        system.done()
        if checkpoint is not None:
            checkpoint(results)
    return results


def _stderr(message: str) -> None:
    # progress goes to stderr: with --json the last line of stdout must be the report
    print(f"[bench sparse] {message}", file=sys.stderr, flush=True)


def run_sparse(
    dataset_spec: str,
    systems: Sequence[str] = SYSTEMS,
    *,
    k: int = 10,
    out_dir: Path | None = None,
    max_queries: int | None = 1000,
    progress: bool = True,
    config: SeismicConfig | None = None,
    grid: Sequence[Mapping[str, Any]] | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Benchmark `systems` (a subset of `SYSTEMS`) on `dataset_spec`; returns the report ("sparse").

    dataset_spec: `synthetic-sparse:N[:NQ]`, `beir:DIR` or a BEIR directory. config: the build
    parameters of lamina-sparse and pyseismic (default `SeismicConfig()`); grid: their query
    arguments (default `SEISMIC_GRID`, Lamina's heap_factor convention). With `out_dir`, writes
    `sparse-<dataset>.json` and `sparse-<dataset>.png` (recall@10 vs QPS) there. Systems that
    cannot run (not installed, bm25s without text) are skipped and listed in meta["skipped"].
    """
    say = _stderr if progress else None
    if not systems:
        raise ValueError(f"no systems to benchmark: pass a subset of {', '.join(SYSTEMS)}")
    if k < 10:
        raise ValueError(f"k must be at least 10 (recall@10 and nDCG@10 are reported), got {k}")
    start = time.perf_counter()
    dataset = load_sparse_dataset(dataset_spec, max_queries=max_queries, cache_dir=cache_dir)
    if say:
        say(f"dataset {dataset.name}: {len(dataset.docs)} documents ({dataset.docs.nnz / max(1, len(dataset.docs)):.1f}"
            f" non-zeros each), {len(dataset.queries)} queries "
            f"({dataset.queries.nnz / max(1, len(dataset.queries)):.1f} non-zeros each) over {dataset.vocab_size} "
            f"terms ({time.perf_counter() - start:.1f} s)")
    skipped: list[str] = []

    def skip(message: str) -> None:
        skipped.append(message)
        if say:
            say(message)

    config = config or SeismicConfig()
    chosen = make_sparse_systems(systems, dataset, config=config, grid=grid, skip=skip)
    meta = {"spec": dataset_spec, "n": len(dataset.docs), "vocab_size": dataset.vocab_size,
            "queries": len(dataset.queries), "dropped_queries": dataset.dropped_queries, "k": k,
            "systems": [s.name for s in chosen], "skipped": skipped, "seismic_config": config.to_dict(),
            "threads": 1, **dataset.meta}

    def checkpoint(partial: list[dict[str, Any]]) -> None:
        if out_dir is not None:
            write_report(make_report("sparse", dataset.name, partial, meta={**meta, "partial": True}), out_dir)

    results = run_sparse_sweep(dataset, chosen, k=k, progress=say, checkpoint=checkpoint)
    report = make_report("sparse", dataset.name, results, meta=meta)
    if out_dir is not None:
        write_report_and_plot(report, out_dir, say)
    return report

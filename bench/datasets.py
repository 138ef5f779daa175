"""Benchmark datasets: vector sets for ANN sweeps and BEIR text collections for quality.

Vector datasets (`load_dataset(spec)`) follow ann-benchmarks' layout: base vectors to index,
held-apart query vectors, one metric. The specs:

- `synthetic:N:D[:NQ]`: a seeded Gaussian mixture (64-256 clusters of unequal weight and
  scale); NQ (default 1000) queries are fresh draws from the same mixture, so they are near
  the data without being in it. Metric l2.
- `PATH.npy[:ip|:l2]`: base vectors from one (n, d) array. NQ = min(max_queries or 1000, n // 10)
  rows, chosen at random with a fixed seed, are *held out* as queries and removed from the
  base, so a query never finds itself at distance 0. Metric: as given, else ip when the rows
  are unit-norm (embeddings), else l2.
- `PATH.fvecs` / `PATH.bvecs` (`[:ip|:l2]`): the TEXMEX format. A `*_base.fvecs` with a sibling
  `*_query.fvecs` (SIFT/GIST layout) uses those queries; otherwise queries are held out as for
  `.npy`. Metric chosen as for `.npy` (SIFT and GIST come out l2).
- `beir:DIR`: a BEIR directory embedded through an encoder (`encode_documents`/`encode_queries`);
  corpus embeddings are the base, query embeddings the queries, metric ip. Embeddings are
  cached as `.npy` under a cache directory keyed by the directory's path and the encoder name.
- `minilm:N[:NQ]`: N + NQ (default 1000) distinct real text passages found on this machine
  (`lamina.bench.passages`: Cranfield, /usr/share/doc, site-packages docstrings and docs),
  embedded with the encoder (all-MiniLM-L6-v2 by default) and cached; NQ passages are held
  out as queries. Metric ip (the embeddings are unit-norm).

Text datasets (`load_beir(dir)`) read BEIR's `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`
for the retrieval-quality benchmark; a document's text is `title + " " + text`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_QUERIES = 1000
HELD_OUT_SEED = 1234
SYNTHETIC_SEED = 0


class TextEncoder(Protocol):
    """What `beir:` embedding needs from an encoder (lamina.retrieval's DenseEncoder fits)."""

    name: str

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class VectorDataset:
    """Base vectors to index and queries to search them with.

    base: (n, d) float32, C-contiguous. queries: (nq, d) float32. metric: "ip" or "l2".
    ground_truth: (nq, k) int64 neighbour ids shipped with the dataset (TEXMEX `*_groundtruth.ivecs`),
    or None; the harness recomputes ground truth anyway, this is only for cross-checking.
    """

    name: str
    base: np.ndarray
    queries: np.ndarray
    metric: str
    ground_truth: np.ndarray | None = None

    @property
    def train(self) -> np.ndarray:
        """ann-benchmarks' name for the vectors to index."""
        return self.base

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    def __post_init__(self) -> None:
        if self.metric not in ("ip", "l2"):
            raise ValueError(f"dataset {self.name!r}: unknown metric {self.metric!r}; expected ip or l2")
        self.base = np.ascontiguousarray(self.base, dtype=np.float32)
        self.queries = np.ascontiguousarray(self.queries, dtype=np.float32)
        if self.base.ndim != 2 or self.queries.ndim != 2 or self.base.shape[1] != self.queries.shape[1]:
            raise ValueError(f"dataset {self.name!r}: base {self.base.shape} and queries {self.queries.shape} "
                             "must be 2-D with the same dimension")


@dataclass
class BeirDataset:
    """A BEIR collection as text.

    doc_ids[i] names doc_texts[i]; query_ids[j] names query_texts[j] (every query of
    queries.jsonl, judged or not); qrels[qid][docid] = graded relevance (int).
    """

    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def judged_queries(self) -> tuple[list[str], list[str]]:
        """(ids, texts) of the queries with at least one relevant (score > 0) judgement, in file order."""
        judged = [(qid, text) for qid, text in zip(self.query_ids, self.query_texts, strict=True)
                  if any(rel > 0 for rel in self.qrels.get(qid, {}).values())]
        return [q for q, _ in judged], [t for _, t in judged]


# ---------------------------------------------------------------------- TEXMEX readers / writers
def _read_vecs(path: str | Path, dtype: np.dtype, what: str) -> np.ndarray:
    """Rows of an .fvecs/.ivecs/.bvecs file: each row is an int32 dimension, then d values."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        return np.empty((0, 0), dtype=dtype)
    dim = int(raw[:4].view(np.int32)[0])
    itemsize = np.dtype(dtype).itemsize
    row_bytes = 4 + dim * itemsize
    if dim <= 0 or raw.size % row_bytes:
        raise ValueError(f"{path}: not a {what} file (first dimension {dim}, {raw.size} bytes)")
    rows = raw.reshape(-1, row_bytes)
    dims = rows[:, :4].copy().view(np.int32).ravel()
    if (dims != dim).any():
        raise ValueError(f"{path}: rows of different dimensions in a {what} file")
    return np.ascontiguousarray(rows[:, 4:]).view(dtype).reshape(len(rows), dim)


def read_fvecs(path: str | Path) -> np.ndarray:
    """(n, d) float32 from an .fvecs file."""
    return _read_vecs(path, np.dtype(np.float32), ".fvecs")


def read_ivecs(path: str | Path) -> np.ndarray:
    """(n, d) int32 from an .ivecs file (TEXMEX ground truth)."""
    return _read_vecs(path, np.dtype(np.int32), ".ivecs")


def read_bvecs(path: str | Path) -> np.ndarray:
    """(n, d) uint8 from a .bvecs file (SIFT1B)."""
    return _read_vecs(path, np.dtype(np.uint8), ".bvecs")


def _write_vecs(path: str | Path, array: np.ndarray, dtype: np.dtype) -> None:
    array = np.ascontiguousarray(array, dtype=dtype)
    n, d = array.shape
    header = np.full((n, 1), d, dtype=np.int32).view(np.uint8)
    np.hstack([header, array.view(np.uint8).reshape(n, -1)]).tofile(path)


def write_fvecs(path: str | Path, array: np.ndarray) -> None:
    """Write (n, d) values as float32 .fvecs."""
    _write_vecs(path, array, np.dtype(np.float32))


def write_ivecs(path: str | Path, array: np.ndarray) -> None:
    """Write (n, d) values as int32 .ivecs."""
    _write_vecs(path, array, np.dtype(np.int32))


def write_bvecs(path: str | Path, array: np.ndarray) -> None:
    """Write (n, d) values as uint8 .bvecs."""
    _write_vecs(path, array, np.dtype(np.uint8))


# ---------------------------------------------------------------------- synthetic
def synthetic_mixture(n: int, dim: int, n_queries: int = DEFAULT_QUERIES, *,
                      seed: int = SYNTHETIC_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(base (n, dim), queries (n_queries, dim)) float32 drawn from one Gaussian mixture.

    64-256 clusters (about sqrt(n)) with Dirichlet weights and per-cluster scales, so IVF
    lists are unequal and clusters overlap, like real embeddings and unlike uniform noise.
    """
    if n <= 0 or dim <= 0 or n_queries <= 0:
        raise ValueError(f"synthetic dataset needs positive n, dim, queries; got {n}, {dim}, {n_queries}")
    # independent streams: the base depends on (seed, n, dim) only, and the queries of a
    # smaller NQ are a prefix of a larger one's, so trimming queries never changes the data
    mix, base_labels, base_noise, query_labels, query_noise = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, n, dim]).spawn(5))
    n_clusters = int(np.clip(round(math.sqrt(n)), 64, 256))
    centers = mix.standard_normal((n_clusters, dim), dtype=np.float32)
    # within-cluster spread comparable to the distance between centres: neighbours cross lists
    scales = mix.uniform(0.4, 1.0, n_clusters).astype(np.float32)
    weights = mix.dirichlet(np.full(n_clusters, 2.0))

    def draw(labels_rng: np.random.Generator, noise_rng: np.random.Generator, count: int) -> np.ndarray:
        labels = labels_rng.choice(n_clusters, size=count, p=weights)
        points = noise_rng.standard_normal((count, dim), dtype=np.float32)
        points *= scales[labels, None]
        points += centers[labels]
        return points

    return draw(base_labels, base_noise, n), draw(query_labels, query_noise, n_queries)


# ---------------------------------------------------------------------- files
def _split_metric(spec: str) -> tuple[str, str | None]:
    """`path.npy:ip` -> ("path.npy", "ip"); a path without the suffix -> (path, None)."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail in ("ip", "l2"):
        return head, tail
    return spec, None


def guess_metric(vectors: np.ndarray, sample: int = 1000) -> str:
    """ip when the rows are unit-norm (normalised embeddings), else l2."""
    norms = np.linalg.norm(np.asarray(vectors[:sample], dtype=np.float32), axis=1)
    return "ip" if len(norms) and np.allclose(norms, 1.0, atol=1e-3) else "l2"


def hold_out(vectors: np.ndarray, n_queries: int, *, seed: int = HELD_OUT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Split (n, d) rows into (base, queries): `n_queries` random rows become the queries."""
    n = len(vectors)
    if not 0 < n_queries < n:
        raise ValueError(f"cannot hold out {n_queries} queries from {n} vectors")
    rng = np.random.default_rng(seed)
    is_query = np.zeros(n, dtype=bool)
    is_query[rng.choice(n, size=n_queries, replace=False)] = True
    return np.asarray(vectors[~is_query], dtype=np.float32), np.asarray(vectors[is_query], dtype=np.float32)


def _held_out_count(n: int, max_queries: int | None) -> int:
    return max(1, min(max_queries or DEFAULT_QUERIES, n // 10))


def _load_vector_file(spec: str, max_queries: int | None) -> VectorDataset:
    path_str, metric = _split_metric(spec)
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    suffix = path.suffix.lower()
    ground_truth = None
    if suffix == ".npy":
        vectors = np.load(path, mmap_mode="r")
        if vectors.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D array, got shape {vectors.shape}")
        base, queries = hold_out(vectors, _held_out_count(len(vectors), max_queries))
    elif suffix in (".fvecs", ".bvecs"):
        reader = read_fvecs if suffix == ".fvecs" else read_bvecs
        vectors = reader(path)
        query_path = path.with_name(path.name.replace("_base.", "_query.")) if "_base." in path.name else None
        if query_path is not None and query_path.is_file():
            base, queries = vectors.astype(np.float32), reader(query_path).astype(np.float32)
            gt_path = path.with_name(path.name.replace("_base" + path.suffix, "_groundtruth.ivecs"))
            if gt_path.is_file():
                ground_truth = read_ivecs(gt_path).astype(np.int64)
        else:
            base, queries = hold_out(vectors.astype(np.float32), _held_out_count(len(vectors), max_queries))
    else:
        raise ValueError(f"unknown dataset {spec!r}: expected synthetic:N:D[:NQ], beir:DIR, "
                         "or a .npy/.fvecs/.bvecs file")
    return VectorDataset(path.name, base, queries, metric or guess_metric(base), ground_truth)


# ---------------------------------------------------------------------- BEIR
def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_beir(directory: str | Path, split: str = "test") -> BeirDataset:
    """Read a BEIR directory: corpus.jsonl, queries.jsonl and qrels/<split>.tsv (header line)."""
    directory = Path(directory).expanduser()
    for part in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (directory / part).is_file():
            raise FileNotFoundError(f"{directory} is not a BEIR directory: {part} is missing")
    corpus = _read_jsonl(directory / "corpus.jsonl")
    queries = _read_jsonl(directory / "queries.jsonl")
    qrels: dict[str, dict[str, int]] = {}
    with (directory / f"qrels/{split}.tsv").open(encoding="utf-8", newline="") as fh:
        rows = [row for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if len(row) >= 3]
    if rows and not rows[0][2].strip().lstrip("-").isdigit():  # the "query-id corpus-id score" header
        rows = rows[1:]
    for qid, doc_id, score, *_ in rows:
        qrels.setdefault(qid, {})[doc_id] = int(score)
    return BeirDataset(
        name=directory.name,
        doc_ids=[str(doc["_id"]) for doc in corpus],
        doc_texts=[f"{doc.get('title') or ''} {doc.get('text') or ''}".strip() for doc in corpus],
        query_ids=[str(q["_id"]) for q in queries],
        query_texts=[str(q["text"]) for q in queries],
        qrels=qrels,
    )


def default_cache_dir() -> Path:
    """$LAMINA_CACHE_DIR/bench, else ~/.cache/lamina/bench."""
    root = os.environ.get("LAMINA_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "lamina") / "bench"


def embed_beir(directory: str | Path, encoder: TextEncoder, *, cache_dir: Path | None = None,
               max_queries: int | None = None) -> VectorDataset:
    """A BEIR directory as vectors: corpus embeddings (base) and query embeddings, metric ip.

    Embeddings are cached in `cache_dir` as `<key>-docs.npy` / `<key>-queries.npy`, the key
    hashing the directory's resolved path and the encoder's name: encoding is the slow part.
    """
    directory = Path(directory).expanduser().resolve()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = str(getattr(encoder, "name", type(encoder).__name__))
    key = hashlib.sha1(f"{directory}\0{name}".encode()).hexdigest()[:16]
    docs_path, queries_path = cache_dir / f"{key}-docs.npy", cache_dir / f"{key}-queries.npy"
    if docs_path.is_file() and queries_path.is_file():
        base, queries = np.load(docs_path), np.load(queries_path)
    else:
        beir = load_beir(directory)
        base = np.asarray(encoder.encode_documents(beir.doc_texts), dtype=np.float32)
        queries = np.asarray(encoder.encode_queries(beir.query_texts), dtype=np.float32)
        cache_dir.mkdir(parents=True, exist_ok=True)
        for path, array in ((docs_path, base), (queries_path, queries)):
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, array)
            tmp.replace(path)  # a crash mid-write leaves no truncated cache entry
    if max_queries is not None:
        queries = queries[:max_queries]
    return VectorDataset(f"beir-{directory.name}", base, queries, "ip")


def parse_minilm(spec: str) -> tuple[int, int]:
    """`minilm:N[:NQ]` -> (N, NQ); NQ defaults to DEFAULT_QUERIES."""
    parts = spec.split(":")[1:]
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"bad minilm spec {spec!r}: expected minilm:N[:NQ] with positive integers")
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else DEFAULT_QUERIES


def load_minilm(spec: str, encoder: TextEncoder | None, *, max_queries: int | None = None,
                cache_dir: Path | None = None) -> VectorDataset:
    """The `minilm:N[:NQ]` dataset: N base and NQ held-out query embeddings of real passages."""
    from lamina.bench.passages import embedded_passages

    n, n_queries = parse_minilm(spec)
    if encoder is None:
        raise ValueError(f"dataset {spec!r} needs an encoder to embed its passages")
    vectors = embedded_passages(n + n_queries, encoder, Path(cache_dir) if cache_dir is not None
                                else default_cache_dir())
    base, queries = hold_out(vectors, n_queries)
    if max_queries is not None:
        queries = queries[:max_queries]
    name = str(getattr(encoder, "name", "encoder")).replace("/", "_")
    return VectorDataset(f"minilm-{n}" if name == "all-MiniLM-L6-v2" else f"text-{name}-{n}", base, queries, "ip")


# ---------------------------------------------------------------------- entry point
def load_dataset(spec: str, *, max_queries: int | None = None, encoder: TextEncoder | None = None,
                 cache_dir: Path | None = None) -> VectorDataset:
    """Load a vector dataset from a spec (see the module docstring); at most `max_queries` queries.

    `encoder` is needed only for `beir:` and `minilm:` specs.
    """
    if spec.startswith("synthetic:"):
        parts = spec.split(":")[1:]
        if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
            raise ValueError(f"bad synthetic spec {spec!r}: expected synthetic:N:D[:NQ]")
        n, dim = int(parts[0]), int(parts[1])
        n_queries = int(parts[2]) if len(parts) == 3 else DEFAULT_QUERIES
        if max_queries is not None:
            n_queries = min(n_queries, max_queries)
        base, queries = synthetic_mixture(n, dim, n_queries)
        return VectorDataset(f"synthetic-{n}-{dim}", base, queries, "l2")
    if spec.startswith("minilm:"):
        return load_minilm(spec, encoder, max_queries=max_queries, cache_dir=cache_dir)
    if spec.startswith("beir:"):
        if encoder is None:
            raise ValueError(f"dataset {spec!r} needs an encoder to embed its texts")
        return embed_beir(spec[len("beir:"):], encoder, cache_dir=cache_dir, max_queries=max_queries)
    dataset = _load_vector_file(spec, max_queries)
    if max_queries is not None and len(dataset.queries) > max_queries:
        dataset.queries = dataset.queries[:max_queries]
        if dataset.ground_truth is not None:
            dataset.ground_truth = dataset.ground_truth[:max_queries]
    return dataset

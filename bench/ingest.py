"""`lamina bench ingest`: ingestion throughput with encoding excluded.

A synthetic corpus of plain-text files (prose-like words drawn from a fixed vocabulary, seeded)
sized to about `n_chunks` chunks of `chunk_tokens` tokens, ingested three ways, each timed alone:

    chunking     `TokenChunker.chunk` over the loaded documents (all-MiniLM-L6-v2's tokenizer)
    store write  `Collection.upsert(wait=True)` of the ready chunk points, in ingest's batches
    end to end   `ingest(collection, [directory])`: walk, load, hash, chunk, write, synced
    unchanged    the same `ingest` again: every document skipped by its content hash

Encoding is excluded by construction: the collections' dense encoder is a stub returning a
fixed unit vector per text (384 dimensions, MiniLM's), and they keep no sparse field. So is the
one-time index build: the flat index keeps no PQ scan codes (a default one trains them once, at
its 10,000th vector). Further rows: "end to end + bm25", into a collection with the default BM25
sparse field, whose term weighting is encoding too; with `with_training`, "end to end +
scan-code training", into a default flat index. Neither is part of the target, >= 1,000
chunks/s end to end.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from lamina.rag.chunking import TokenChunker, token_offsets
from lamina.rag.ingest import BATCH_CHUNKS, ingest
from lamina.rag.loaders import load
from lamina.retrieval.collection import Database

TARGET_CHUNKS_PER_S = 1_000
DIM = 384
CHUNKS_PER_DOC = 8  # documents of ~8 chunks (a few pages each)


class StubEncoder:
    """A dense encoder that costs nothing: the same unit vector for every text."""

    name = "stub"
    dim = DIM

    def __init__(self) -> None:
        vector = np.random.default_rng(0).standard_normal(DIM).astype(np.float32)
        self._vector = vector / np.linalg.norm(vector)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return np.broadcast_to(self._vector, (len(texts), DIM)).copy()

    encode_queries = encode_documents


def _prose(rng: np.random.Generator, vocab: np.ndarray, words: int) -> str:
    picked = vocab[rng.integers(0, len(vocab), words)]
    return " ".join(" ".join(s).capitalize() + "." for s in np.array_split(picked, max(1, words // 14)))


def synthetic_corpus(directory: Path, n_chunks: int, chunker: TokenChunker, seed: int = 0) -> int:
    """Write .txt files of about CHUNKS_PER_DOC chunks each, about `n_chunks` in all; returns
    the number of files."""
    rng = np.random.default_rng(seed)
    syllables = np.array(["ka", "lo", "mi", "ren", "tal", "vo", "sin", "dre", "po", "lu", "ther", "an", "es"])
    vocab = np.array(["".join(rng.choice(syllables, rng.integers(1, 4))) for _ in range(3000)]
                     + ["the", "of", "and", "a", "in", "to", "is", "that", "for", "on"] * 100)
    sample = 20_000
    tokens_per_word = len(token_offsets(chunker.tokenizer, _prose(rng, vocab, sample))) / sample
    n_docs = max(1, -(-n_chunks // CHUNKS_PER_DOC))
    size, stride = chunker.chunk_tokens, chunker.chunk_tokens - chunker.overlap
    words = int((size + (CHUNKS_PER_DOC - 1) * stride - stride / 2) / tokens_per_word)
    for d in range(n_docs):
        (directory / f"doc{d:05d}.txt").write_text(_prose(rng, vocab, words), encoding="utf-8")
    return n_docs


def _collection(db: Database, name: str, sparse: bool, scan_codes: bool = False) -> Any:
    # scan_codes off: a flat index trains its PQ scan codes once, at its 10,000th vector (tens of
    # seconds for 384-d): an index-build cost, measured in a row of its own
    return db.create_collection(name, encoder="stub", sparse=sparse, payload={"parent": "keyword"},
                                index={"kind": "flat", "scan_codes": scan_codes})


def run_ingest(n_chunks: int = 10_000, *, chunk_tokens: int = 256, overlap: int = 32,
               with_training: bool = False) -> dict[str, Any]:
    """The benchmark report (see the module docstring)."""
    chunker = TokenChunker(chunk_tokens, overlap)
    encoder = StubEncoder()
    with tempfile.TemporaryDirectory(prefix="lamina-bench-ingest-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        n_docs = synthetic_corpus(corpus, n_chunks, chunker)
        docs = [load(path) for path in sorted(corpus.iterdir())]
        started = time.perf_counter()
        chunks = [c for doc in docs for c in chunker.chunk(doc)]
        chunk_s = time.perf_counter() - started
        points = [c.to_point() for c in chunks]
        started = time.perf_counter()
        encoder.encode_documents([p["text"] for p in points])
        stub_s = time.perf_counter() - started
        rows: list[dict[str, Any]] = []

        def row(system: str, seconds: float, n: int, **extra: Any) -> None:
            rows.append({"system": system, "params": {"chunk_tokens": chunk_tokens, "overlap": overlap}, "chunks": n,
                         "seconds": round(seconds, 4), "chunks_per_s": round(n / seconds, 1), **extra})

        row("chunking", chunk_s, len(chunks))
        with Database(Path(tmp) / "data", encoder_loader=lambda name: encoder) as db:
            coll = _collection(db, "write", sparse=False)
            started = time.perf_counter()
            for i in range(0, len(points), BATCH_CHUNKS):
                coll.upsert(points[i:i + BATCH_CHUNKS], wait=True)
            row("store write", time.perf_counter() - started, len(points))
            phases = [("end to end", False, False), ("end to end + bm25", True, False)]
            if with_training:
                phases.append(("end to end + scan-code training", False, True))
            for system, sparse, codes in phases:
                coll = _collection(db, f"e2e-{len(rows)}", sparse=sparse, scan_codes=codes)
                report = ingest(coll, [corpus], chunker=chunker, wait=True)
                assert report.ok and report.chunks_written == len(chunks), report.errors
                row(system, report.seconds, report.chunks_written, documents=report.added,
                    **{f"{k}_s": round(v, 4) for k, v in report.timings.items()},
                    target_met=(report.chunks_written / report.seconds >= TARGET_CHUNKS_PER_S
                                if system == "end to end" else None))
                if system == "end to end":
                    again = ingest(coll, [corpus], chunker=chunker, wait=True)
                    assert again.unchanged == n_docs
                    row("unchanged re-ingest", again.seconds, len(chunks), documents=again.unchanged)
    return {"benchmark": "ingest", "dataset": f"synthetic-{len(chunks)}-chunks-{n_docs}-files",
            "encoding": "excluded: a stub dense encoder (fixed vector), no sparse field, no scan codes; "
                        f"the stub's own cost {stub_s * 1000:.1f} ms for all chunks",
            "target_chunks_per_s": TARGET_CHUNKS_PER_S, "results": rows}

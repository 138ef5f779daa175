"""Dataset specs and file formats of lamina.bench.datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lamina.bench.datasets import (
    embed_beir,
    guess_metric,
    load_beir,
    load_dataset,
    read_bvecs,
    read_fvecs,
    read_ivecs,
    write_bvecs,
    write_fvecs,
    write_ivecs,
)


def _rows(a: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in a}


# ---------------------------------------------------------------------- synthetic
def test_synthetic_spec_shapes_and_determinism():
    ds = load_dataset("synthetic:3000:16:200")
    assert ds.base.shape == (3000, 16) and ds.queries.shape == (200, 16)
    assert ds.base.dtype == np.float32 and ds.queries.dtype == np.float32
    assert ds.base.flags.c_contiguous and ds.metric == "l2" and ds.name == "synthetic-3000-16"
    again = load_dataset("synthetic:3000:16:200")
    np.testing.assert_array_equal(ds.base, again.base)
    np.testing.assert_array_equal(ds.queries, again.queries)
    assert not _rows(ds.base) & _rows(ds.queries)  # queries are fresh draws, not base rows


def test_synthetic_default_queries_and_trimming_keep_the_base():
    full = load_dataset("synthetic:2000:8")
    assert full.queries.shape == (1000, 8)
    trimmed = load_dataset("synthetic:2000:8", max_queries=50)
    np.testing.assert_array_equal(full.base, trimmed.base)
    np.testing.assert_array_equal(full.queries[:50], trimmed.queries)


def test_synthetic_is_clustered_not_uniform():
    ds = load_dataset("synthetic:4000:16:10")
    # a mixture: the nearest neighbour is much closer than a random pair
    sample = ds.base[:500]
    d2 = ((sample[:, None, :] - sample[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    assert np.median(d2.min(axis=1)) < 0.5 * np.median(d2[np.isfinite(d2)])


@pytest.mark.parametrize("spec", ["synthetic:10", "synthetic:a:b", "synthetic:1:2:3:4", "nope.txt"])
def test_bad_specs_are_rejected(spec):
    with pytest.raises((ValueError, FileNotFoundError)):
        load_dataset(spec)


# ---------------------------------------------------------------------- .npy
def test_npy_holds_out_queries(tmp_path: Path):
    vectors = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    ds = load_dataset(str(tmp_path / "v.npy"))
    assert ds.base.shape == (450, 8) and ds.queries.shape == (50, 8)  # n // 10 held out
    assert ds.metric == "l2"
    assert _rows(ds.base) | _rows(ds.queries) == _rows(vectors)
    assert not _rows(ds.base) & _rows(ds.queries)
    np.testing.assert_array_equal(load_dataset(str(tmp_path / "v.npy")).queries, ds.queries)
    assert load_dataset(str(tmp_path / "v.npy"), max_queries=7).queries.shape == (7, 8)


def test_npy_metric_guess_and_override(tmp_path: Path):
    vectors = np.random.default_rng(1).standard_normal((200, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.save(tmp_path / "unit.npy", vectors)
    assert guess_metric(vectors) == "ip"
    assert load_dataset(str(tmp_path / "unit.npy")).metric == "ip"
    assert load_dataset(str(tmp_path / "unit.npy") + ":l2").metric == "l2"


# ---------------------------------------------------------------------- TEXMEX
def test_fvecs_layout_is_texmex(tmp_path: Path):
    rows = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    by_hand = b"".join(np.int32(3).tobytes() + row.tobytes() for row in rows)
    (tmp_path / "hand.fvecs").write_bytes(by_hand)
    np.testing.assert_array_equal(read_fvecs(tmp_path / "hand.fvecs"), rows)
    write_fvecs(tmp_path / "out.fvecs", rows)
    assert (tmp_path / "out.fvecs").read_bytes() == by_hand


def test_vecs_round_trips(tmp_path: Path):
    rng = np.random.default_rng(2)
    f = rng.standard_normal((17, 5)).astype(np.float32)
    i = rng.integers(-5, 10_000, (17, 9)).astype(np.int32)
    b = rng.integers(0, 256, (17, 3)).astype(np.uint8)
    write_fvecs(tmp_path / "a.fvecs", f)
    write_ivecs(tmp_path / "a.ivecs", i)
    write_bvecs(tmp_path / "a.bvecs", b)
    np.testing.assert_array_equal(read_fvecs(tmp_path / "a.fvecs"), f)
    np.testing.assert_array_equal(read_ivecs(tmp_path / "a.ivecs"), i)
    np.testing.assert_array_equal(read_bvecs(tmp_path / "a.bvecs"), b)


def test_truncated_vecs_file_is_rejected(tmp_path: Path):
    write_fvecs(tmp_path / "a.fvecs", np.ones((3, 4), dtype=np.float32))
    data = (tmp_path / "a.fvecs").read_bytes()
    (tmp_path / "bad.fvecs").write_bytes(data[:-3])
    with pytest.raises(ValueError):
        read_fvecs(tmp_path / "bad.fvecs")


def test_sift_layout_uses_query_and_groundtruth_files(tmp_path: Path):
    rng = np.random.default_rng(3)
    base, queries = rng.standard_normal((100, 6)), rng.standard_normal((10, 6))
    gt = rng.integers(0, 100, (10, 5))
    write_fvecs(tmp_path / "toy_base.fvecs", base)
    write_fvecs(tmp_path / "toy_query.fvecs", queries)
    write_ivecs(tmp_path / "toy_groundtruth.ivecs", gt)
    ds = load_dataset(str(tmp_path / "toy_base.fvecs"), max_queries=4)
    np.testing.assert_allclose(ds.base, base.astype(np.float32))
    np.testing.assert_allclose(ds.queries, queries[:4].astype(np.float32))
    np.testing.assert_array_equal(ds.ground_truth, gt[:4])
    assert ds.metric == "l2"


def test_bvecs_without_query_file_holds_out(tmp_path: Path):
    write_bvecs(tmp_path / "x.bvecs", np.random.default_rng(4).integers(0, 256, (300, 4)))
    ds = load_dataset(str(tmp_path / "x.bvecs"))
    assert ds.base.shape == (270, 4) and ds.queries.shape == (30, 4) and ds.base.dtype == np.float32


# ---------------------------------------------------------------------- BEIR
def test_load_beir(tiny_beir: Path):
    beir = load_beir(tiny_beir)
    assert beir.name == "tiny"
    assert beir.doc_ids == ["d1", "d2", "d3", "d4", "d5", "d6"]
    assert beir.doc_texts[0] == "alpha apples and apricots"
    assert beir.doc_texts[3] == "alpha beta mixed fruit"  # empty title: no leading space
    assert beir.query_ids == ["q1", "q2", "q3", "q4"]
    assert beir.qrels == {"q1": {"d1": 2, "d4": 1}, "q2": {"d2": 3, "d4": 1, "d6": 1}, "q4": {"d5": 0}}
    assert all(isinstance(r, int) for docs in beir.qrels.values() for r in docs.values())
    ids, texts = beir.judged_queries()
    assert ids == ["q1", "q2"] and texts == ["alpha fruit", "beta fruit"]


def test_load_beir_without_qrels_header(tmp_path: Path, beir_writer):
    directory = beir_writer(tmp_path / "nohead", {"d": ("t", "x")}, {"q": "x"}, [("q", "d", 1)], header=False)
    assert load_beir(directory).qrels == {"q": {"d": 1}}


def test_load_beir_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        load_beir(tmp_path)


class CountingEncoder:
    """Deterministic fake embeddings (text length features), counting its calls."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.calls = 0

    def _encode(self, texts):
        self.calls += 1
        v = np.array([[len(t), t.count("a"), t.count("e"), 1.0] for t in texts], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    encode_documents = encode_queries = _encode


def test_embed_beir_caches_by_path_and_encoder(tiny_beir: Path, tmp_path: Path):
    encoder = CountingEncoder()
    ds = embed_beir(tiny_beir, encoder, cache_dir=tmp_path / "cache")
    assert ds.base.shape == (6, 4) and ds.queries.shape == (4, 4) and ds.metric == "ip"
    assert encoder.calls == 2
    again = load_dataset(f"beir:{tiny_beir}", encoder=encoder, cache_dir=tmp_path / "cache", max_queries=2)
    assert encoder.calls == 2  # served from the cache
    np.testing.assert_array_equal(again.base, ds.base)
    np.testing.assert_array_equal(again.queries, ds.queries[:2])
    other = CountingEncoder("other")
    embed_beir(tiny_beir, other, cache_dir=tmp_path / "cache")
    assert other.calls == 2
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 4


def test_beir_spec_needs_an_encoder(tiny_beir: Path):
    with pytest.raises(ValueError, match="encoder"):
        load_dataset(f"beir:{tiny_beir}")


def test_cranfield_layout(cranfield: Path):
    beir = load_beir(cranfield)
    assert len(beir.doc_ids) == 1400 and len(beir.query_ids) == 225
    assert sum(len(docs) for docs in beir.qrels.values()) == 1837
    assert {r for docs in beir.qrels.values() for r in docs.values()} <= {1, 2, 3, 4}

"""Bounds on per-request work: ResourceExhausted naming the field and the bound, adjustable."""

from __future__ import annotations

import numpy as np
import pytest

from lamina.index import limits
from lamina.index.errors import InvalidArgument, ResourceExhausted
from lamina.retrieval.collection import Database
from lamina.retrieval.query import SearchRequest, Stage

DIM = 8


@pytest.fixture
def restore_limits():
    saved = limits.current()
    yield
    limits.configure(saved)


@pytest.fixture
def hnsw(tmp_path):
    with Database(tmp_path / "data") as db:
        coll = db.create_collection("h", dim=DIM, encoder=None, index={"kind": "hnsw"})
        rng = np.random.default_rng(1)
        coll.upsert([{"id": f"d{i}", "vector": rng.standard_normal(DIM)} for i in range(40)], wait=True)
        yield coll


def test_hnsw_ef_times_k_past_the_bound_is_resource_exhausted(hnsw, restore_limits):
    with pytest.raises(ResourceExhausted, match=r"max\(ef_search 64, limit 10,000\).*max_ef_k of 10,000,000"):
        hnsw.search(np.ones(DIM), 10_000)
    with pytest.raises(ResourceExhausted, match=r"ef_search 5,000.*max_ef_k"):
        hnsw.search(np.ones(DIM), 5_000, params={"ef_search": 5_000})
    assert len(hnsw.search(np.ones(DIM), 10, params={"ef_search": 5_000})) == 10  # 50,000: under the bound
    limits.configure(max_ef_k=100)
    with pytest.raises(ResourceExhausted, match="max_ef_k of 100"):
        hnsw.search(np.ones(DIM), 10, params={"ef_search": 11})
    limits.configure(max_ef_k=10**9)
    assert len(hnsw.search(np.ones(DIM), 10_000)) == 40  # raised: the k = 10,000 runs again


def test_candidates_summed_over_stages_past_the_bound_is_resource_exhausted(hnsw, restore_limits):
    stages = tuple(Stage("dense", limit=10_000, params={"ef_search": 1}) for _ in range(5))
    with pytest.raises(ResourceExhausted, match="50,000 candidates.*max_candidates is 40,000"):
        hnsw.query(SearchRequest(np.ones(DIM), 10, stages))
    limits.configure(max_candidates=100, max_ef_k=10**9)
    with pytest.raises(ResourceExhausted, match="200 candidates"):
        hnsw.query(SearchRequest(np.ones(DIM), 10, (Stage("dense", limit=100), Stage("dense", limit=100))))


def test_input_limits_are_adjustable(hnsw, restore_limits):
    limits.configure(max_text_bytes=100, max_id_bytes=8, max_metadata_depth=2, max_metadata_bytes=50)
    results = hnsw.upsert([
        {"id": "t", "vector": np.ones(DIM), "text": "x" * 101},
        {"id": "much-too-long", "vector": np.ones(DIM)},
        {"id": "deep", "vector": np.ones(DIM), "metadata": {"a": {"b": {"c": 1}}}},
        {"id": "big", "vector": np.ones(DIM), "metadata": {"a": "y" * 60}},
        {"id": "ok", "vector": np.ones(DIM), "text": "x" * 100, "metadata": {"a": {"b": 1}}},
    ])
    errors = [r.error for r in results]
    assert "the limit is 100" in errors[0]
    assert "exceeds 8 bytes" in errors[1]
    assert "deeper than 2 levels" in errors[2]
    assert "the limit is 50" in errors[3]
    assert errors[4] is None
    with pytest.raises(InvalidArgument, match="max_text_bytes must be a positive integer"):
        limits.configure(max_text_bytes=0)
    with pytest.raises(InvalidArgument, match="unknown limit"):
        limits.Limits.from_mapping({"max_texts": 3})

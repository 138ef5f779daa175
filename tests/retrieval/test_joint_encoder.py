"""Encode once: a multivector collection runs the model once per batch of documents and once per query.

The shared pass is compared with the two-pass reference (the dense `SentenceTransformerEncoder`
and the projection-free `SentenceTransformerTokenEncoder`, each running its own forward).
"""

from __future__ import annotations

import numpy as np
import pytest

from lamina.retrieval.collection import Database
from lamina.retrieval.encoders.dense import SentenceTransformerEncoder, load_dense_encoder
from lamina.retrieval.encoders.joint import JointEncoder, SharedPassEncoder
from lamina.retrieval.encoders.multivector import SentenceTransformerTokenEncoder, TokenEncoder, load_token_encoder

TEXTS = ["wing lift and drag", "the boundary layer of a shock , heat transfer .", "flow",
         "pressure in the file", "sort list of heat and flow and lift and drag in a wing"]


class ForwardCounter:
    """Counts forward passes through a model's transformer module."""

    def __init__(self, model) -> None:
        self.calls = 0
        self.handle = model[0].register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.calls += 1


@pytest.mark.parametrize("skip", [False, True])
def test_one_pass_equals_the_two_pass_vectors(tiny_model_dir, skip):
    dense = SentenceTransformerEncoder(str(tiny_model_dir))
    tokens = SentenceTransformerTokenEncoder(str(tiny_model_dir), skip_special=skip, skip_punctuation=skip)
    joint = SharedPassEncoder(dense, skip_special=skip, skip_punctuation=skip)
    assert isinstance(joint, JointEncoder) and isinstance(joint, TokenEncoder)
    assert joint.shares_pass_with(dense) and not joint.shares_pass_with(SentenceTransformerEncoder(str(tiny_model_dir)))
    counter = ForwardCounter(dense.model)
    pooled, matrices = joint.encode_documents_joint(TEXTS)
    assert counter.calls == 1  # one batch, one forward
    np.testing.assert_allclose(pooled, dense.encode_documents(TEXTS), atol=1e-6, rtol=0)
    reference = tokens.encode_documents(TEXTS)
    assert [m.shape for m in matrices] == [m.shape for m in reference]
    for got, want in zip(matrices, reference):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    q_pooled, q_tokens = joint.encode_queries_joint(TEXTS[:1])
    np.testing.assert_allclose(q_pooled, dense.encode_queries(TEXTS[:1]), atol=1e-6, rtol=0)
    np.testing.assert_allclose(q_tokens[0], tokens.encode_queries(TEXTS[:1])[0], atol=1e-6, rtol=0)
    empty_pooled, empty_tokens = joint.encode_documents_joint([])
    assert empty_pooled.shape == (0, dense.dim) and empty_tokens == []


def test_batches_are_sorted_and_restored(tiny_model_dir):
    dense = SentenceTransformerEncoder(str(tiny_model_dir))
    joint = SharedPassEncoder(dense, batch_size=2)
    counter = ForwardCounter(dense.model)
    pooled, matrices = joint.encode_documents_joint(TEXTS)
    assert counter.calls == 3  # ceil(5 / 2)
    for i, text in enumerate(TEXTS):  # each text's vectors, whatever batch it was padded in
        alone_pooled, alone_tokens = joint.encode_documents_joint([text])
        np.testing.assert_allclose(pooled[i], alone_pooled[0], atol=1e-5)
        np.testing.assert_allclose(matrices[i], alone_tokens[0], atol=1e-5)


def test_the_loader_shares_the_dense_model(tiny_model_dir):
    joint = load_token_encoder(str(tiny_model_dir))
    assert isinstance(joint, SharedPassEncoder) and joint.dense is load_dense_encoder(str(tiny_model_dir))
    assert joint.model is joint.dense.model  # one copy of the weights


def test_a_multivector_collection_encodes_once(tmp_path, tiny_model_dir):
    name = str(tiny_model_dir)
    db = Database(tmp_path)
    try:
        coll = db.create_collection("c", encoder=name, multivector=True, sparse=None)
        model = load_dense_encoder(name).model
        counter = ForwardCounter(model)
        coll.upsert([{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS)] + [{"id": "e", "text": ""}], wait=True)
        writes = counter.calls
        counter.calls = 0
        hits = coll.search("heat and flow", 3, rerank=5)
        searches = counter.calls
        counter.calls = 0
        coll.search("heat and flow", 3)
        plain = counter.calls
        counter.calls = 0
        coll.search("heat and flow", 3, mode="dense", rerank=5, params=None)
        assert counter.calls == 1
        stored = coll.get(["d1"], with_vectors=True)[0]
    finally:
        db.close()
    assert writes == 2  # the texts in one pass; the empty text's dense vector alone (it has no tokens)
    assert searches == 1 and plain == 1 and len(hits) == 3
    two_pass = SentenceTransformerEncoder(name).encode_documents([TEXTS[1]])[0]
    np.testing.assert_allclose(np.asarray(stored.vector), two_pass, atol=1e-6)

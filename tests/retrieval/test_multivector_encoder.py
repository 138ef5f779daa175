import json
import string

import numpy as np
import pytest

from lamina.index.errors import InvalidArgument
from lamina.retrieval.encoders.multivector import (
    SentenceTransformerTokenEncoder,
    TokenEncoder,
    is_late_interaction_checkpoint,
)
from lamina.retrieval.rerank import maxsim

TEXTS = ["wing lift and drag", "the boundary layer of a shock , heat transfer .", "flow"]


def wordpieces(model_dir, text: str) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir.parent / "bert"))
    return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])


@pytest.fixture(scope="module")
def encoder(tiny_model_dir):
    return SentenceTransformerTokenEncoder(str(tiny_model_dir))


def test_projection_free_token_embeddings(encoder, tiny_model_dir):
    assert isinstance(encoder, TokenEncoder)
    assert not encoder.late_interaction and encoder.dim == 16  # the backbone's width: no projection
    docs = encoder.encode_documents(TEXTS)
    assert len(docs) == 3
    for text, matrix in zip(TEXTS, docs):
        assert matrix.dtype == np.float32 and matrix.ndim == 2 and matrix.shape[1] == 16
        np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)
        # every wordpiece and [CLS]/[SEP]/punctuation (kept by default): padding never appears
        assert len(matrix) == len(wordpieces(tiny_model_dir, text))
    # batching pads the short texts: their matrices must not depend on the batch
    alone = encoder.encode_documents([TEXTS[2]])[0]
    np.testing.assert_allclose(alone, docs[2], rtol=1e-4, atol=1e-5)
    assert encoder.encode_documents([]) == []


def test_tokens_are_the_transformer_outputs(tiny_model_dir, encoder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    raw = model.encode(TEXTS[:1], output_value="token_embeddings")[0]
    raw = np.asarray(raw.cpu() if hasattr(raw, "cpu") else raw, dtype=np.float32)
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(encoder.encode_documents(TEXTS[:1])[0], expected, rtol=1e-4, atol=1e-5)


def test_skipping_special_tokens_and_punctuation(tiny_model_dir):
    trimmed = SentenceTransformerTokenEncoder(str(tiny_model_dir), skip_special=True, skip_punctuation=True)
    text = TEXTS[1]
    kept = [t for t in wordpieces(tiny_model_dir, text) if t not in ("[CLS]", "[SEP]") and t not in string.punctuation]
    for matrix in (trimmed.encode_documents([text])[0], trimmed.encode_queries([text])[0]):
        assert len(matrix) == len(kept)
    # a text of nothing but skipped tokens has no vectors at all
    assert trimmed.encode_documents([""])[0].shape == (0, 16)


def test_queries_and_documents_share_a_space(encoder):
    # MaxSim of a text with itself is its token count: every token finds itself (unit rows)
    doc = encoder.encode_documents([TEXTS[0]])[0]
    query = encoder.encode_queries([TEXTS[0]])[0]
    score = maxsim(query, doc, np.array([0, len(doc)]))[0]
    assert score == pytest.approx(len(query), rel=1e-4)


def test_late_interaction_checkpoints_load_as_trained(tiny_model_dir, tmp_path):
    from sentence_transformers import MultiVectorEncoder, SentenceTransformer
    from sentence_transformers.base.modules import Dense, Normalize
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from torch import nn

    transformer = SentenceTransformer(str(tiny_model_dir), device="cpu")[0]
    projection = Dense(16, 8, bias=False, activation_function=nn.Identity(), module_input_name="token_embeddings")
    colbert = MultiVectorEncoder(modules=[transformer, projection, MultiVectorMask(), Normalize(module_input_name="token_embeddings")],
                                 device="cpu")
    colbert.save(str(tmp_path / "colbert"))
    assert is_late_interaction_checkpoint(tmp_path / "colbert")
    assert not is_late_interaction_checkpoint(tiny_model_dir)
    encoder = SentenceTransformerTokenEncoder(str(tmp_path / "colbert"))
    assert encoder.late_interaction and encoder.dim == 8  # the checkpoint's own projection
    matrices = encoder.encode_queries(TEXTS)
    assert [m.shape[1] for m in matrices] == [8, 8, 8]
    expected = colbert.encode_query(TEXTS[:1], convert_to_numpy=True)[0]
    np.testing.assert_allclose(matrices[0], expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)


def test_bare_transformers_directory(tiny_model_dir):
    encoder = SentenceTransformerTokenEncoder(str(tiny_model_dir.parent / "bert"))
    assert encoder.dim == 16 and not encoder.late_interaction
    assert encoder.encode_documents(TEXTS[:1])[0].shape[1] == 16


def test_unknown_model_is_invalid_argument(tmp_path):
    with pytest.raises(InvalidArgument):
        SentenceTransformerTokenEncoder(str(tmp_path / "missing"))
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"model_type": "MultiVectorEncoder"}))
    assert is_late_interaction_checkpoint(tmp_path)

import numpy as np
import pytest

from lamina.index.errors import InvalidArgument
from lamina.retrieval.encoders.dense import SentenceTransformerEncoder, resolve_model_path


def test_local_sentence_transformers_directory_loads(tiny_model_dir):
    enc = SentenceTransformerEncoder(str(tiny_model_dir))
    assert enc.dim == 16
    vecs = enc.encode_documents(["wing lift", "heat transfer in the boundary layer", ""])
    assert vecs.shape == (3, 16) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs[:2], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(enc.encode_queries(["wing lift"])[0], vecs[0], rtol=1e-5, atol=1e-6)
    assert enc.encode_queries([]).shape == (0, 16)


def test_unknown_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidArgument, match="local sentence-transformers model directory"):
        resolve_model_path(str(tmp_path / "nope"))


@pytest.mark.slow
def test_default_encoder_is_minilm_from_the_pypi_package():
    from lamina.retrieval.encoders.dense import load_dense_encoder

    enc = load_dense_encoder()
    assert enc.dim == 384
    a, b, c = enc.encode_queries(["the lift of a wing", "aerofoil lift", "a recipe for bread"])
    assert a @ b > a @ c

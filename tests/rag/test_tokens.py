from lamina.rag.tokens import CachedCounter, HFTokenCounter, cached_counter, default_counter

from tests.rag.conftest import WordCounter


class Counting(WordCounter):
    def __init__(self):
        self.seen = []

    def count_tokens(self, texts):
        self.seen.append(list(texts))
        return super().count_tokens(texts)


def test_the_cache_returns_the_counter_s_counts_and_counts_each_text_once():
    inner = Counting()
    counter = CachedCounter(inner, size=3)
    texts = ["a b", "c", "a b", "d e f"]
    assert counter.count_tokens(texts) == WordCounter().count_tokens(texts)
    assert counter.count_tokens(["c", "d e f"]) == [1, 3]
    assert inner.seen == [["a b", "c", "d e f"]]  # one batch of the distinct texts, then hits only
    counter.count_tokens(["g", "h"])  # beyond size 3 the oldest are forgotten
    assert counter.count_tokens(["a b"]) == [2] and inner.seen[-1] == ["a b"]


def test_one_cache_per_counter_and_the_default_counts_wordpieces():
    inner = WordCounter()
    assert cached_counter(inner) is cached_counter(inner) and cached_counter(cached_counter(inner)) is cached_counter(inner)
    counter = default_counter()
    assert isinstance(counter, HFTokenCounter)
    assert counter.count_tokens(["unaffable", ""]) == [len(counter.tokenizer.tokenize("unaffable")), 0]

"""Chunker invariants, checked against the document's own tokenisation (brute force over tokens)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamina.index.errors import InvalidArgument
from lamina.rag.chunking import (
    Chunker,
    SentenceChunker,
    TokenChunker,
    load_default_tokenizer,
    make_chunker,
    pack,
    sentence_spans,
    token_offsets,
    token_windows,
)
from lamina.rag.types import Mark, SourceDocument

TOKENIZER = load_default_tokenizer()
ALPHABET = "abcdefghij klmnop  qrstuvwxyz ABC 0123 .,;!?'\"()-\n\t éüß中文"
texts = st.text(alphabet=ALPHABET, max_size=600)


def tokens_in(offsets: np.ndarray, start: int, end: int) -> set[int]:
    """Indices of the document tokens that start inside [start, end)."""
    return {i for i, (a, _) in enumerate(offsets.tolist()) if start <= a < end}


def check_common(doc: SourceDocument, chunks) -> None:
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text == doc.text[c.start:c.end] and c.text.strip() == c.text and c.text
        assert c.parent == doc.id and c.id == f"{doc.id}#{c.position}" and c.source == doc.source
        mark = doc.mark_at(c.start)  # the reference: the Protocol type's own linear scan
        pages = [m for m in doc.marks if m.page is not None and m.start <= c.start]
        assert c.page == (pages[-1].page if pages else None)
        if all(m.page is None for m in doc.marks):
            assert c.section == (mark.section if mark else None)


def test_token_windows_against_a_brute_force_cover():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, size = int(rng.integers(0, 60)), int(rng.integers(1, 12))
        overlap = int(rng.integers(0, size))
        starts, ends = token_windows(n, size, overlap)
        if n == 0:
            assert len(starts) == 0
            continue
        assert starts[0] == 0 and ends[-1] == n and np.all(ends - starts <= size)
        assert np.all(ends[:-1] - starts[1:] == overlap)  # consecutive windows share exactly `overlap`
        assert np.all(ends[:-1] - starts[:-1] == size)  # only the last may be short
        covered = np.zeros(n, bool)
        for a, b in zip(starts, ends):
            covered[a:b] = True
        assert covered.all()
        assert len(starts) == 1 or ends[-2] < n  # no window that adds nothing


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, size=st.integers(1, 40), overlap_frac=st.floats(0, 0.9))
def test_token_chunks_reproduce_the_text_with_exact_overlap(text, size, overlap_frac):
    overlap = min(int(size * overlap_frac), size - 1)
    doc = SourceDocument("d", text, source="d.txt")
    chunks = TokenChunker(size, overlap, tokenizer=TOKENIZER).chunk(doc)
    offsets = token_offsets(TOKENIZER, text)
    check_common(doc, chunks)
    if not len(offsets):
        assert chunks == []
        return
    sets = [tokens_in(offsets, c.start, c.end) for c in chunks]
    assert all(len(s) <= size for s in sets)
    assert all(len(s) == size for s in sets[:-1])
    assert all(len(a & b) == overlap for a, b in zip(sets, sets[1:]))
    assert set().union(*sets) == set(range(len(offsets)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, size=st.integers(1, 40))
def test_sentence_chunks_pack_whole_sentences_within_the_budget(text, size):
    doc = SourceDocument("d", text)
    chunks = SentenceChunker(size, tokenizer=TOKENIZER).chunk(doc)
    offsets = token_offsets(TOKENIZER, text)
    check_common(doc, chunks)
    sets = [tokens_in(offsets, c.start, c.end) for c in chunks]
    assert all(0 < len(s) <= size for s in sets)
    assert sum(len(s) for s in sets) == len(offsets) and set().union(*sets) == set(range(len(offsets)))
    # a chunk starts at a sentence, or inside one over the budget (cut into windows)
    s_start, s_end = sentence_spans(text)
    for c in chunks:
        inside = np.flatnonzero((s_start <= c.start) & (c.start < s_end))
        assert len(inside) == 1
        j = inside[0]
        assert c.start == s_start[j] or len(tokens_in(offsets, s_start[j], s_end[j])) > size
    # greedy: the next chunk's first sentence would not have fitted
    for a, b, c in zip(chunks, chunks[1:], sets):
        first_of_b = np.flatnonzero(s_start == b.start)
        if len(first_of_b):
            j = first_of_b[0]
            assert len(c) + len(tokens_in(offsets, s_start[j], s_end[j])) > size or a.end < s_end[j - 1]


def test_sentences_are_packed_greedily():
    text = "One two three. Four five! Six seven eight nine? Ten.\n\nEleven twelve"
    doc = SourceDocument("d", text)
    assert [c.text for c in SentenceChunker(5, tokenizer=TOKENIZER).chunk(doc)] == [
        "One two three.", "Four five!", "Six seven eight nine?", "Ten.\n\nEleven twelve"]
    # a sentence over the budget is cut by tokens
    assert [c.text for c in SentenceChunker(2, tokenizer=TOKENIZER).chunk(SourceDocument("d", "a b c d e."))] == [
        "a b", "c d", "e."]
    assert pack(np.array([0, 2, 5]), np.array([2, 5, 6]), 4).tolist() == [0, 1]


def test_chunks_carry_the_page_and_section_of_their_start():
    pages = ["alpha " * 30, "beta " * 30, "gamma " * 30]
    text = "\n\n".join(pages)
    marks, at = [], 0
    for i, page in enumerate(pages, start=1):
        marks.append(Mark(at, page=i))
        at += len(page) + 2
    doc = SourceDocument("r.pdf", text, source="r.pdf", marks=marks, metadata={"lang": "en"})
    chunks = TokenChunker(16, 4, tokenizer=TOKENIZER).chunk(doc)
    check_common(doc, chunks)
    assert [c.page for c in chunks][0] == 1 and chunks[-1].page == 3
    assert {c.page for c in chunks} == {1, 2, 3} and chunks[0].metadata == {"lang": "en"}
    md = SourceDocument("a.md", "intro\n# One\nbody one\n# Two\nbody two",
                        marks=[Mark(6, section="One"), Mark(22, section="Two")])
    got = [(c.text, c.section) for c in TokenChunker(3, 0, tokenizer=TOKENIZER).chunk(md)]
    assert got == [("intro\n# One", None), ("body one\n#", "One"), ("Two\nbody two", "Two")]


def test_a_transformers_fast_tokenizer_works_too():
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "wing", "lift", "drag", "##s", "."]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    doc = SourceDocument("d", "wing lifts. drag wings wing.")
    chunks = TokenChunker(3, 1, tokenizer=tokenizer).chunk(doc)
    # windows are tokens of the whole text: one may start inside a word (lift|##s)
    assert [c.text for c in chunks] == ["wing lifts", "s. drag", "drag wings", "s wing."]
    assert isinstance(TokenChunker(3, 1, tokenizer=tokenizer), Chunker)


def test_bad_settings_are_invalid():
    for size, overlap in [(0, 0), (4, 4), (4, -1), (2.5, 0), (True, 0)]:
        with pytest.raises(InvalidArgument):
            TokenChunker(size, overlap, tokenizer=TOKENIZER)
    with pytest.raises(InvalidArgument, match="unknown chunker 'words'"):
        make_chunker("words", tokenizer=TOKENIZER)
    assert make_chunker("sentence", chunk_tokens=64, tokenizer=TOKENIZER).name.startswith("sentence:64:")
    assert TokenChunker(tokenizer=TOKENIZER).name != TokenChunker(128, tokenizer=TOKENIZER).name

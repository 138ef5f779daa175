"""Loaders: a file on disk to a `SourceDocument` (plain text plus page/section marks).

    .txt .text          plain text (UTF-8)
    .md .markdown       Markdown, kept as written; a Mark per heading (ATX `#` or setext underline),
                        section = the heading's text; headings inside fenced code are not headings
    .html .htm .xhtml   HTML through beautifulsoup4: visible text, blocks on their own lines, a Mark
                        per <h1>..<h6>; <title> goes to metadata["title"]
    .pdf                pypdf: the text of each page, pages joined by a blank line, one Mark a page
                        (page numbers from 1)

`load(path)` picks a loader by suffix (`loader_for`). Every failure is a `LoadError` naming the
file (an `InvalidArgument`): `UnsupportedFileType`, `EmptyDocument`, `UnreadableDocument`,
`EncryptedDocument`; ingest reports it per file and goes on with the rest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol, runtime_checkable

from lamina.index.errors import InvalidArgument
from lamina.rag.types import Mark, SourceDocument


class LoadError(InvalidArgument):
    """A file that cannot be loaded; `path` names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class UnsupportedFileType(LoadError):
    """No loader reads files with this suffix."""


class EmptyDocument(LoadError):
    """The file holds no text (an empty file, or a PDF whose pages have no text layer)."""


class UnreadableDocument(LoadError):
    """The file cannot be read or parsed (I/O error, not UTF-8, a damaged PDF)."""


class EncryptedDocument(LoadError):
    """An encrypted PDF that does not open without a password."""


@runtime_checkable
class Loader(Protocol):
    """Reads one kind of file. `suffixes` are the lower-case file suffixes it takes."""

    suffixes: tuple[str, ...]

    def load(self, path: Path, doc_id: str) -> SourceDocument:
        """The document at `path` with id `doc_id`; a `LoadError` naming the file otherwise."""
        ...


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableDocument(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument(path, f"is not UTF-8 text (byte {exc.start})") from None


def _non_empty(doc: SourceDocument, path: Path, what: str = "no text") -> SourceDocument:
    if not doc.text.strip():
        raise EmptyDocument(path, what)
    return doc


class TextLoader:
    suffixes = (".txt", ".text")

    def load(self, path: Path, doc_id: str) -> SourceDocument:
        return _non_empty(SourceDocument(doc_id, _read_text(path), source=str(path)), path, "is empty")


_FENCE = re.compile(r"^ {0,3}(```|~~~).*?(?:^ {0,3}\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_SETEXT = re.compile(r"^ {0,3}(\S[^\n]*?)[ \t]*\n {0,3}(?:=+|-+)[ \t]*$", re.MULTILINE)


def markdown_marks(text: str) -> list[Mark]:
    """A Mark at the start of each heading's line (section = its text), outside fenced code."""
    fences = [(m.start(), m.end()) for m in _FENCE.finditer(text)]

    def in_fence(pos: int) -> bool:
        return any(a <= pos < b for a, b in fences)

    found = [(m.start(), m.group(1).strip()) for m in _ATX.finditer(text) if not in_fence(m.start())]
    found += [(m.start(), m.group(1).strip()) for m in _SETEXT.finditer(text)
              if not in_fence(m.start()) and not m.group(1).lstrip().startswith(("#", "-", "*", ">", "|"))]
    return [Mark(start, section=title) for start, title in sorted(found)]


class MarkdownLoader:
    suffixes = (".md", ".markdown")

    def load(self, path: Path, doc_id: str) -> SourceDocument:
        text = _read_text(path)
        doc = SourceDocument(doc_id, text, source=str(path), marks=markdown_marks(text))
        return _non_empty(doc, path, "is empty")


_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset({"p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "ul", "ol",
                     "li", "table", "tr", "blockquote", "pre", "br", "hr", "dl", "dt", "dd", "figure",
                     "figcaption", "form", "address", "title"}) | _HEADINGS
_HIDDEN = ("script", "style", "noscript", "template", "head", "svg")


def html_to_document(html: str, doc_id: str, source: str | None = None) -> SourceDocument:
    """The visible text of an HTML page, one line a block, a Mark per heading; the title in metadata."""
    from bs4 import BeautifulSoup, NavigableString
    from bs4.element import Comment, Doctype, ProcessingInstruction

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(_HIDDEN):
        tag.decompose()
    pieces: list[str] = []
    marks: list[Mark] = []
    size = 0

    def emit(piece: str) -> None:
        nonlocal size
        pieces.append(piece)
        size += len(piece)

    def newline() -> None:
        if pieces and not pieces[-1].endswith("\n"):
            emit("\n")

    def walk(node) -> None:  # the DOM, in document order (not a per-token loop)
        for child in node.children:
            if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                piece = re.sub(r"\s+", " ", str(child))
                if piece.strip():
                    if not pieces or pieces[-1].endswith("\n"):
                        piece = piece.lstrip()
                    emit(piece)
                continue
            block = child.name in _BLOCKS
            if block:
                newline()
            if child.name in _HEADINGS:
                heading = " ".join(child.get_text(" ").split())
                if heading:
                    marks.append(Mark(size, section=heading))
            walk(child)
            if block:
                newline()

    walk(soup)
    text = "".join(pieces).rstrip()  # no leading newline: `newline()` never starts the text
    return SourceDocument(doc_id, text, source=source, metadata={"title": title} if title else {}, marks=marks)


class HtmlLoader:
    suffixes = (".html", ".htm", ".xhtml")

    def load(self, path: Path, doc_id: str) -> SourceDocument:
        raw = _read_text(path)
        if not raw.strip():
            raise EmptyDocument(path, "is empty")
        try:
            doc = html_to_document(raw, doc_id, str(path))
        except RecursionError:
            raise UnreadableDocument(path, "is HTML nested too deeply to read") from None
        return _non_empty(doc, path, "has no visible text")


class PdfLoader:
    suffixes = (".pdf",)

    def load(self, path: Path, doc_id: str) -> SourceDocument:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, PyPdfError

        try:
            if path.stat().st_size == 0:
                raise EmptyDocument(path, "is empty")
            reader = PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(""):  # an owner-only password still opens
                raise EncryptedDocument(path, "is an encrypted PDF (a password is needed to read it)")
            texts = [page.extract_text() or "" for page in reader.pages]
        except LoadError:
            raise
        except DependencyError as exc:  # AES needs the optional `cryptography` package
            raise EncryptedDocument(path, f"is an encrypted PDF that cannot be decrypted here ({exc})") from None
        except OSError as exc:
            raise UnreadableDocument(path, f"cannot be read ({exc.strerror or exc})") from None
        except (PyPdfError, Exception) as exc:  # a damaged file raises almost anything from pypdf's parser
            raise UnreadableDocument(path, f"is not a readable PDF ({type(exc).__name__}: {exc})") from None
        marks, parts, size = [], [], 0
        for number, page_text in enumerate(texts, start=1):
            if parts:
                parts.append("\n\n")
                size += 2
            marks.append(Mark(size, page=number))
            parts.append(page_text)
            size += len(page_text)
        doc = SourceDocument(doc_id, "".join(parts), source=str(path), metadata={"pages": len(texts)}, marks=marks)
        return _non_empty(doc, path, "has no text layer (a scanned PDF? OCR is not supported)")


LOADERS: tuple[Loader, ...] = (TextLoader(), MarkdownLoader(), HtmlLoader(), PdfLoader())
SUFFIXES: frozenset[str] = frozenset(s for loader in LOADERS for s in loader.suffixes)


def loader_for(path: str | Path) -> Loader:
    """The loader of a file's suffix; `UnsupportedFileType` naming the file otherwise."""
    suffix = Path(path).suffix.lower()
    for loader in LOADERS:
        if suffix in loader.suffixes:
            return loader
    raise UnsupportedFileType(path, f"unsupported file type {suffix or '(no suffix)'!r} "
                                    f"(supported: {', '.join(sorted(SUFFIXES))})")


def load(path: str | Path, doc_id: str | None = None) -> SourceDocument:
    """Load one file; its id is `doc_id`, or the path as given (POSIX separators)."""
    path = Path(path)
    loader = loader_for(path)
    if not path.is_file():
        raise UnreadableDocument(path, "is not a file" if path.exists() else "does not exist")
    return loader.load(path, doc_id if doc_id is not None else path.as_posix())

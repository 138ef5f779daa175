"""Loaders: text, Markdown sections, HTML text and headings, PDF pages, and the per-file errors."""

from __future__ import annotations

import pytest

from lamina.index.errors import InvalidArgument
from lamina.rag.loaders import (
    EmptyDocument,
    EncryptedDocument,
    UnreadableDocument,
    UnsupportedFileType,
    html_to_document,
    load,
    loader_for,
    markdown_marks,
)


def make_pdf(path, pages, *, password=None):
    """A PDF whose pages carry `pages` as text (pypdf writes the content streams itself)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for text in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
            {NameObject("/F1"): font})})
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 700 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password is not None:
        writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def test_plain_text(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("\ufeffFirst line.\nSecond line.\n", encoding="utf-8")
    doc = load(path)
    assert doc.id == path.as_posix() and doc.source == str(path)
    assert doc.text == "First line.\nSecond line.\n" and doc.marks == []
    assert load(path, doc_id="mine").id == "mine"


def test_markdown_marks_every_heading_outside_code(tmp_path):
    text = ("Intro before any heading.\n\n# Getting started\n\nInstall it.\n\n"
            "```sh\n# not a heading\n```\n\n## Options ##\n\nSome options.\n\nSetext title\n============\n\nBody.\n")
    path = tmp_path / "guide.md"
    path.write_text(text)
    doc = load(path)
    assert doc.text == text  # Markdown is kept as written: offsets are the file's
    assert [(m.section, text[m.start:m.start + 5]) for m in doc.marks] == [
        ("Getting started", "# Get"), ("Options", "## Op"), ("Setext title", "Setex")]
    assert doc.mark_at(text.index("Install")).section == "Getting started"
    assert doc.mark_at(0) is None
    assert markdown_marks("no headings\n- a list\n---\n") == []


def test_html_visible_text_headings_and_title(tmp_path):
    html = """<!doctype html><html><head><title>The Page</title><style>p {color: red}</style>
    <script>var hidden = 1;</script></head><body>
    <nav>Home</nav><h1>Main   heading</h1><p>First <b>bold</b> paragraph.</p><!-- a comment -->
    <h2>Sub</h2><ul><li>one</li><li>two</li></ul><p>Last.</p></body></html>"""
    path = tmp_path / "page.html"
    path.write_text(html)
    doc = load(path)
    assert doc.text == "Home\nMain heading\nFirst bold paragraph.\nSub\none\ntwo\nLast."
    assert doc.metadata == {"title": "The Page"}
    assert [(m.section, doc.text[m.start:m.start + len(m.section)]) for m in doc.marks] == [
        ("Main heading", "Main heading"), ("Sub", "Sub")]
    assert "hidden" not in doc.text and "color" not in doc.text and "comment" not in doc.text
    assert html_to_document("<p>x</p>", "id").text == "x"


def test_pdf_one_mark_a_page(tmp_path):
    path = make_pdf(tmp_path / "report.pdf", ["Alpha page one", "Beta page two", "Gamma page three"])
    doc = load(path)
    assert [m.page for m in doc.marks] == [1, 2, 3] and doc.metadata == {"pages": 3}
    for mark, word in zip(doc.marks, ["Alpha", "Beta", "Gamma"]):
        assert doc.text[mark.start:].startswith(word)
        assert doc.mark_at(doc.text.index(word) + 2).page == mark.page


def test_pdf_with_an_owner_password_only_still_opens(tmp_path):
    path = make_pdf(tmp_path / "open.pdf", ["Readable text"], password="")
    assert "Readable text" in load(path).text


@pytest.mark.parametrize("name, content, error, message", [
    ("empty.txt", b"", EmptyDocument, "is empty"),
    ("blank.md", b"  \n\n ", EmptyDocument, "is empty"),
    ("empty.pdf", b"", EmptyDocument, "is empty"),
    ("script.html", b"<script>only()</script>", EmptyDocument, "no visible text"),
    ("image.png", b"\x89PNG", UnsupportedFileType, "unsupported file type '.png'"),
    ("README", b"text", UnsupportedFileType, "(no suffix)"),
    ("latin1.txt", "caf\u00e9".encode("latin-1"), UnreadableDocument, "not UTF-8"),
    ("broken.pdf", b"%PDF-1.4\nnot really a pdf", UnreadableDocument, "not a readable PDF"),
])
def test_bad_files_are_named_errors(tmp_path, name, content, error, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=message) as info:
        load(path)
    assert isinstance(info.value, InvalidArgument) and info.value.path == str(path) and name in str(info.value)


def test_encrypted_and_textless_pdfs(tmp_path):
    with pytest.raises(EncryptedDocument, match="password"):
        load(make_pdf(tmp_path / "secret.pdf", ["Top secret"], password="hunter2"))
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    with open(tmp_path / "scan.pdf", "wb") as fh:
        writer.write(fh)
    with pytest.raises(EmptyDocument, match="no text layer"):
        load(tmp_path / "scan.pdf")


def test_missing_paths_and_suffix_choice(tmp_path):
    with pytest.raises(UnreadableDocument, match="does not exist"):
        load(tmp_path / "nope.txt")
    (tmp_path / "dir.md").mkdir()
    with pytest.raises(UnreadableDocument, match="not a file"):
        load(tmp_path / "dir.md")
    assert loader_for("A.HTM").suffixes == loader_for("b.html").suffixes


def test_html_nested_past_the_recursion_limit_is_unreadable(tmp_path):
    path = tmp_path / "deep.html"
    path.write_text("<div>" * 5000 + "x" + "</div>" * 5000)
    with pytest.raises(UnreadableDocument, match="nested too deeply"):
        load(path)

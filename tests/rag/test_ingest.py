"""Ingest: files to chunks, idempotent by content hash, changed documents replaced atomically,
per-file errors, tenants, and the same code against a remote collection over gRPC."""

from __future__ import annotations

import pytest

from lamina.rag.chunking import SentenceChunker, TokenChunker, load_default_tokenizer
from lamina.rag.ingest import CHUNK_COUNT_FIELD, IngestReport, default_chunker, expand_sources, ingest
from lamina.rag.loaders import load
from lamina.rag.types import HASH_FIELD, Chunk, SourceDocument
from lamina.retrieval.collection import Database
from lamina.service.client import Client

from tests.rag.test_loaders import make_pdf
from tests.service.conftest import ServerThread

TOKENIZER = load_default_tokenizer()
CHUNKER = TokenChunker(12, 3, tokenizer=TOKENIZER)
PROSE = " ".join(f"Sentence number {i} talks about wings, lift and drag." for i in range(30))


@pytest.fixture
def db(tmp_path, fake_encoder_loader):
    with Database(tmp_path / "data", encoder_loader=fake_encoder_loader) as database:
        yield database


@pytest.fixture
def coll(db):
    return db.create_collection("docs", encoder="hashing", sparse=None, payload={"parent": "keyword"})


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "guide.md").write_text(f"# Intro\n\n{PROSE}\n\n## Details\n\n{PROSE}\n")
    (root / "notes.txt").write_text(PROSE)
    (root / "sub" / "page.html").write_text(f"<html><body><h1>Page</h1><p>{PROSE}</p></body></html>")
    make_pdf(root / "sub" / "report.pdf", [f"{word} " + "wing lift drag " * 8 for word in ("Alpha", "Beta", "Gamma")])
    make_pdf(root / "sub" / "secret.pdf", ["Top secret"], password="hunter2")
    (root / "empty.txt").write_text("")
    (root / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden.md").write_text("# not ingested")
    return root


def stored_chunks(coll, doc_id: str) -> list[Chunk]:
    """Every stored chunk of a document, found by brute force over the ids <doc_id>#0.."""
    out, i = [], 0
    while (doc := coll.get([f"{doc_id}#{i}"])[0]) is not None:
        out.append(Chunk.from_point(doc.id, doc.text, doc.metadata))
        i += 1
    assert coll.get([f"{doc_id}#{i + 1}"]) == [None]
    return out


def parent_count(coll, doc_id: str) -> int:
    return coll.count(filter={"must": [{"key": "parent", "match": {"value": doc_id}}]})


def test_a_directory_is_ingested_and_bad_files_are_reported_per_file(coll, corpus):
    report = ingest(coll, [corpus], chunker=CHUNKER)
    assert isinstance(report, IngestReport) and report.added == 4 and report.skipped_files == 1
    assert sorted((e.source.rsplit("/", 1)[-1], e.error) for e in report.errors) == [
        ("empty.txt", "EmptyDocument"), ("secret.pdf", "EncryptedDocument")]
    assert not report.ok and report.seconds > 0
    ids = {p.as_posix() for p in (corpus / "guide.md", corpus / "notes.txt", corpus / "sub/page.html",
                                  corpus / "sub/report.pdf")}
    total = 0
    for doc_id in ids:
        doc = load(doc_id)
        expected = CHUNKER.chunk(doc)
        got = stored_chunks(coll, doc_id)
        assert [(c.id, c.text, c.start, c.end, c.page, c.section, c.source) for c in got] == [
            (c.id, c.text, c.start, c.end, c.page, c.section, c.source) for c in expected]
        assert all(c.text == doc.text[c.start:c.end] for c in got)
        assert parent_count(coll, doc_id) == len(expected)
        total += len(expected)
    assert report.chunks_written == total == coll.count()
    pdf = stored_chunks(coll, (corpus / "sub/report.pdf").as_posix())
    assert [c.page for c in pdf][0] == 1 and {c.page for c in pdf} == {1, 2, 3}
    guide = stored_chunks(coll, (corpus / "guide.md").as_posix())
    assert guide[0].section == "Intro" and guide[-1].section == "Details"
    # an unknown file named explicitly is an error of its own; the rest still goes in
    again = ingest(coll, [corpus / "image.png", corpus / "notes.txt", corpus / "missing.txt"], chunker=CHUNKER)
    assert [(e.error, e.source.rsplit("/", 1)[-1]) for e in again.errors] == [
        ("UnsupportedFileType", "image.png"), ("UnreadableDocument", "missing.txt")]
    assert again.unchanged == 1


def test_unchanged_documents_are_skipped_without_a_write(db, coll, corpus):
    ingest(coll, [corpus], chunker=CHUNKER)
    seq = db.store.last_seq
    report = ingest(coll, [corpus], chunker=CHUNKER)
    assert (report.added, report.updated, report.unchanged, report.chunks_written) == (0, 0, 4, 0)
    assert db.store.last_seq == seq and report.timings["chunk"] == 0.0
    # other chunker settings chunk again
    assert ingest(coll, [corpus], chunker=TokenChunker(20, 0, tokenizer=TOKENIZER)).updated == 4


def test_a_changed_file_replaces_exactly_its_chunks_in_one_write(db, coll, corpus):
    ingest(coll, [corpus], chunker=CHUNKER)
    notes, guide = (corpus / "notes.txt").as_posix(), (corpus / "guide.md").as_posix()
    before_guide = [(c.id, c.text) for c in stored_chunks(coll, guide)]
    old = stored_chunks(coll, notes)
    old_hash = db.store.get_documents("docs", [old[0].id])[0].metadata[HASH_FIELD]
    assert len(old) > 5
    (corpus / "notes.txt").write_text("A much shorter note about wings now.")
    seq, count = db.store.last_seq, coll.count()
    report = ingest(coll, [corpus], chunker=CHUNKER)
    assert (report.updated, report.unchanged) == (1, 3)
    new = stored_chunks(coll, notes)
    expected = CHUNKER.chunk(load(notes))
    assert [(c.id, c.text) for c in new] == [(c.id, c.text) for c in expected] and len(new) < len(old)
    assert report.chunks_written == len(new) and report.chunks_deleted == len(old) - len(new)
    assert coll.count() == count - len(old) + len(new) and parent_count(coll, notes) == len(new)
    assert [(c.id, c.text) for c in stored_chunks(coll, guide)] == before_guide  # the others untouched
    # the replacement and the deletes are one store write: one sequence number, shared by the new chunks
    assert db.store.last_seq == seq + 1
    records = db.store.get_documents("docs", [c.id for c in new])
    assert {r.seq for r in records} == {seq + 1}
    assert len({r.metadata[HASH_FIELD] for r in records} | {old_hash}) == 2
    assert {r.metadata[CHUNK_COUNT_FIELD] for r in records} == {len(new)}
    # and growing again writes the new chunks past the old count
    (corpus / "notes.txt").write_text(PROSE + " And one more sentence.")
    assert ingest(coll, [corpus / "notes.txt"], chunker=CHUNKER).chunks_deleted == 0
    assert len(stored_chunks(coll, notes)) == len(CHUNKER.chunk(load(notes)))


def test_documents_given_directly(coll):
    docs = [SourceDocument("a", PROSE, metadata={"lang": "en"}), SourceDocument("b", "Short one.")]
    report = ingest(coll, docs, chunker=SentenceChunker(16, tokenizer=TOKENIZER))
    assert report.added == 2 and report.ok
    assert stored_chunks(coll, "a")[0].metadata["lang"] == "en"
    # a document given with no text is deleted; one never stored, and a repeated id, are errors
    report = ingest(coll, [SourceDocument("a", ""), SourceDocument("new", " "), SourceDocument("b", "x"),
                           SourceDocument("b", "y")], chunker=CHUNKER)
    assert report.deleted == 1 and stored_chunks(coll, "a") == [] and report.updated == 1
    assert sorted((e.source, e.error) for e in report.errors) == [("b", "InvalidArgument"), ("new", "EmptyDocument")]
    assert "given twice" in next(e.message for e in report.errors if e.source == "b")
    assert [c.text for c in stored_chunks(coll, "b")] == ["x"]


def test_progress_and_batches(coll):
    calls = []
    docs = [SourceDocument(f"d{i}", PROSE) for i in range(7)]
    report = ingest(coll, docs, chunker=CHUNKER, batch_chunks=2, progress=lambda *a: calls.append(a))
    assert [c[:2] for c in calls] == [(i, 7) for i in range(1, 8)] and calls[-1][2] == "d6"
    assert report.added == 7 and coll.count() == report.chunks_written == 7 * len(CHUNKER.chunk(docs[0]))


def test_a_tenant_writes_its_own_chunks_only(coll):
    ingest(coll, [SourceDocument("shared-id", PROSE)], chunker=CHUNKER, tenant="acme")
    assert {c.tenant for c in coll.get([f"shared-id#{i}" for i in range(3)])} == {"acme"}
    report = ingest(coll, [SourceDocument("shared-id", "globex text"), SourceDocument("g", "mine")],
                    chunker=CHUNKER, tenant="globex")
    assert [e.source for e in report.errors] == ["shared-id"] and "not available" in report.errors[0].message
    assert report.added == 1 and coll.get(["g#0"])[0].tenant == "globex"
    assert coll.get(["shared-id#0"])[0].text != "globex text"


def test_the_same_code_ingests_into_a_remote_collection(db, coll, corpus):
    server = ServerThread(db).start()
    try:
        with Client(server.target) as client:
            remote = client.collection("docs")
            report = ingest(remote, [corpus], chunker=CHUNKER)
            assert report.added == 4 and len(report.errors) == 2
            notes = (corpus / "notes.txt").as_posix()
            old = len(stored_chunks(coll, notes))
            (corpus / "notes.txt").write_text("Short now.")
            report = ingest(remote, [corpus], chunker=CHUNKER)
            assert (report.updated, report.unchanged, report.chunks_deleted) == (1, 3, old - 1)
            assert [c.text for c in stored_chunks(coll, notes)] == ["Short now."]
    finally:
        server.stop()


def test_expand_sources_walks_directories_in_order(corpus):
    items, skipped = expand_sources(corpus)
    names = [p.relative_to(corpus).as_posix() for p in items]
    assert names == ["empty.txt", "guide.md", "notes.txt", "sub/page.html", "sub/report.pdf", "sub/secret.pdf"]
    assert skipped == 1


def test_the_default_chunker_counts_in_the_collection_encoders_tokenizer(coll, tiny_model_dir):
    from types import SimpleNamespace

    assert default_chunker(coll).name == "token:256:32:Tokenizer:30522"  # all-MiniLM-L6-v2's WordPiece
    local = SimpleNamespace(config=SimpleNamespace(encoder=str(tiny_model_dir)))
    chunker = default_chunker(local, "sentence", chunk_tokens=64)
    assert chunker.name.startswith("sentence:64:") and chunker.tokenizer.get_vocab_size() < 100


def test_a_pipeline_indexes_through_ingest(coll, corpus):
    import lamina.rag  # noqa: F401  (loads the pipeline factory behind Collection.as_pipeline)

    report = coll.as_pipeline().index([corpus], chunker=CHUNKER)
    assert isinstance(report, IngestReport) and report.added == 4
    assert coll.as_pipeline().index([corpus], chunker=CHUNKER).unchanged == 4

import json
import os

import faiss
import numpy as np
import pytest

from lamina.index import multivector
from lamina.index.errors import CorruptIndex, InvalidArgument, NotFound
from lamina.index.multivector import TokenStore, pack_tokens, ranges, unpack_tokens
from lamina.index.snapshot import MANIFEST


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """The codebooks here are tiny: OpenMP start-up and spinning on a busy machine cost more than the work."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered_docs(n_docs: int, dim: int = 32, seed: int = 0, centers: int = 24) -> list[np.ndarray]:
    """Token matrices of 1-30 unit rows drawn around shared centres, as contextual embeddings are."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim))
    docs = []
    for _ in range(n_docs):
        n = int(rng.integers(1, 31))
        docs.append(unit(c[rng.integers(0, centers, n)] + 0.35 * rng.standard_normal((n, dim))))
    return docs


def as_f16(docs):
    return [d.astype(np.float16).astype(np.float32) for d in docs]


def assert_same_docs(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == np.float32
        np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------------- bytes for the RocksDB store
def test_pack_round_trip_is_float16():
    m = clustered_docs(1)[0]
    data = pack_tokens(m)
    assert len(data) == 12 + 2 * m.size
    np.testing.assert_array_equal(unpack_tokens(data), m.astype(np.float16).astype(np.float32))
    empty = unpack_tokens(pack_tokens(np.empty((0, 8), np.float32)))
    assert empty.shape == (0, 8)


@pytest.mark.parametrize("bad", [b"", b"XXXX" + bytes(8), pack_tokens(np.ones((2, 4), np.float32))[:-1]])
def test_unpack_rejects_garbage(bad):
    with pytest.raises(InvalidArgument):
        unpack_tokens(bad)


@pytest.mark.parametrize("bad", [np.ones(4), np.full((2, 4), np.nan), np.full((1, 4), 1e6), [["a"]]])
def test_pack_rejects_bad_matrices(bad):
    with pytest.raises(InvalidArgument):
        pack_tokens(bad)


def test_ranges_helper():
    np.testing.assert_array_equal(ranges(np.array([5, 0, 9]), np.array([2, 0, 3])), [5, 6, 9, 10, 11])
    assert ranges(np.array([], np.int64), np.array([], np.int64)).shape == (0,)


# ---------------------------------------------------------------------- add / get / delete
def test_get_returns_what_was_added_in_any_order():
    docs = clustered_docs(60)
    ids = np.arange(60, dtype=np.int64) * 7 + 3
    store = TokenStore(32)
    store.add(ids[:25], docs[:25])
    store.add(ids[25:], docs[25:])  # a second segment
    order = np.random.default_rng(1).permutation(60)
    assert_same_docs(store.get(ids[order]), [as_f16(docs)[i] for i in order])
    tokens, offsets = store.get_packed(ids[order])
    assert tokens.shape == (sum(len(d) for d in docs), 32) and offsets[0] == 0 and offsets[-1] == len(tokens)
    assert len(store) == 60 and store.num_tokens == len(tokens)
    assert store.bytes_per_token == 64


def test_unknown_and_deleted_ids():
    docs = clustered_docs(10)
    store = TokenStore.build(np.arange(10), docs)
    store.delete(np.array([2, 5, 999]))  # 999 was never there: ignored
    store.delete(np.array([2]))  # twice: ignored
    assert len(store) == 8
    assert store.num_tokens == sum(len(d) for i, d in enumerate(docs) if i not in (2, 5))
    np.testing.assert_array_equal(store.contains(np.array([1, 2, 5, 999])), [True, False, False, False])
    np.testing.assert_array_equal(store.ids(), [0, 1, 3, 4, 6, 7, 8, 9])
    with pytest.raises(NotFound, match="5"):
        store.get(np.array([1, 5]))
    tokens, offsets = store.get_packed(np.array([1, 5, 999, 3]))
    lengths = np.diff(offsets)
    assert lengths.tolist() == [len(docs[1]), 0, 0, len(docs[3])]


def test_add_rejects_bad_input():
    store = TokenStore(8)
    store.add(np.array([1]), [np.ones((2, 8), np.float32)])
    store.add(np.array([1]), [np.ones((2, 8), np.float32)])  # the same tokens again: a no-op (replay)
    assert len(store) == 1 and store.num_tokens == 2
    with pytest.raises(InvalidArgument, match="already holds"):
        store.add(np.array([1]), [np.zeros((2, 8), np.float32)])
    store.delete(np.array([1]))
    with pytest.raises(InvalidArgument, match="never reused"):  # tombstoned ids stay taken
        store.add(np.array([1]), [np.ones((2, 8), np.float32)])
    with pytest.raises(InvalidArgument, match="repeat"):
        store.add(np.array([4, 4]), [np.ones((1, 8)), np.ones((1, 8))])
    with pytest.raises(InvalidArgument, match="shape"):
        store.add(np.array([2]), [np.ones((2, 9), np.float32)])
    with pytest.raises(InvalidArgument, match="2 ids for 1"):
        store.add(np.array([2, 3]), [np.ones((2, 8), np.float32)])
    with pytest.raises(InvalidArgument, match="NaN"):
        store.add(np.array([2]), [np.full((2, 8), np.inf, np.float32)])
    with pytest.raises(InvalidArgument):
        TokenStore(0)
    with pytest.raises(InvalidArgument, match="divide"):
        TokenStore(30, "pq16")
    with pytest.raises(InvalidArgument, match="unknown token codec"):
        TokenStore(32, "zip")
    assert len(store) == 0  # nothing of the failed adds went in


def test_empty_documents_are_kept():
    store = TokenStore(4)
    store.add(np.array([1, 2]), [np.empty((0, 4), np.float32), np.ones((3, 4), np.float32)])
    got = store.get(np.array([1, 2]))
    assert got[0].shape == (0, 4) and got[1].shape == (3, 4)


def test_compaction_keeps_the_live_documents():
    docs = clustered_docs(40)
    store = TokenStore(32)
    store.add(np.arange(20), docs[:20])
    store.add(np.arange(20, 40), docs[20:])
    store.delete(np.arange(0, 40, 3))
    live = [i for i in range(40) if i % 3]
    before = store.get(np.array(live))
    store.compact()
    assert len(store._view.segments) == 1 and len(store._view.tombstones) == 0
    assert_same_docs(store.get(np.array(live)), before)
    assert store.stored_bytes() < sum(len(d) for d in docs) * 64 + 40 * 16 + 16  # dead rows are gone
    assert not store.contains(np.array([0, 3])).any()


def test_iter_blocks_covers_live_documents_once():
    docs = clustered_docs(50)
    store = TokenStore(32)
    store.add(np.arange(30), docs[:30])
    store.add(np.arange(30, 50), docs[30:])
    store.delete(np.array([4, 33]))
    seen = {}
    for ids, tokens, offsets in store.iter_blocks(max_tokens=40):
        assert offsets[-1] == len(tokens)
        for i, doc_id in enumerate(ids):
            seen[int(doc_id)] = tokens[offsets[i]:offsets[i + 1]]
    assert sorted(seen) == [i for i in range(50) if i not in (4, 33)]
    for doc_id, matrix in seen.items():
        np.testing.assert_array_equal(matrix, as_f16(docs)[doc_id])


# ---------------------------------------------------------------------- persistence
def test_save_load_round_trip_is_memory_mapped(tmp_path):
    docs = clustered_docs(30)
    store = TokenStore.build(np.arange(30), docs)
    store.delete(np.array([7]))
    store.save(tmp_path, seq=42)
    loaded = TokenStore.load(tmp_path)
    assert loaded.seq == 42 and len(loaded) == 29
    assert isinstance(loaded._view.segments[0].rows, np.memmap)
    assert_same_docs(loaded.get(np.arange(8, 30)), as_f16(docs)[8:])
    rows = np.load(tmp_path / loaded._view.segments[0].name / "tokens.npy", mmap_mode="r")
    assert rows.dtype == np.float16 and rows.shape[1] == 32


def test_incremental_saves_append_segments(tmp_path):
    docs = clustered_docs(30)
    store = TokenStore(32)
    store.add(np.arange(10), docs[:10])
    store.save(tmp_path, seq=1)
    first_segment = store._view.segments[0].name
    store.add(np.arange(10, 20), docs[10:20])
    store.delete(np.array([3, 12]))
    store.save(tmp_path, seq=2)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert [s["dir"] for s in manifest["segments"]][0] == first_segment  # not rewritten
    assert len(manifest["segments"]) == 2 and manifest["tombstones"]
    reopened = TokenStore.load(tmp_path)
    reopened.add(np.arange(20, 30), docs[20:])
    reopened.save(tmp_path, seq=3)
    final = TokenStore.load(tmp_path)
    assert final.seq == 3 and len(final) == 28
    live = [i for i in range(30) if i not in (3, 12)]
    assert_same_docs(final.get(np.array(live)), [as_f16(docs)[i] for i in live])
    # every file on disk is named by the manifest: superseded tombstones and codecs were removed
    named = {rel.split("/")[0] for rel in json.loads((tmp_path / MANIFEST).read_text())["files"]}
    assert {p.name for p in tmp_path.iterdir()} == named | {MANIFEST}


def test_compaction_on_disk_and_automatic(tmp_path):
    docs = clustered_docs(40)
    store = TokenStore.build(np.arange(40), docs)
    store.save(tmp_path)
    store.delete(np.arange(0, 40, 2))  # half the rows dead: the next save rewrites
    store.save(tmp_path, seq=9)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert len(manifest["segments"]) == 1 and manifest["tombstones"] is None
    assert manifest["segments"][0]["docs"] == 20
    loaded = TokenStore.load(tmp_path)
    assert_same_docs(loaded.get(np.arange(1, 40, 2)), as_f16(docs)[1::2])
    loaded.delete(np.array([1]))
    loaded.compact()  # explicit: publishes a rewrite in place
    again = TokenStore.load(tmp_path)
    assert len(again) == 19 and again.seq == 9 and len(again._view.tombstones) == 0


def test_crash_while_saving_leaves_the_previous_version(tmp_path, monkeypatch):
    docs = clustered_docs(20)
    store = TokenStore.build(np.arange(10), docs[:10])
    store.save(tmp_path, seq=1)
    store.add(np.arange(10, 20), docs[10:])
    store.delete(np.array([0]))

    def crash(*args, **kwargs):
        raise OSError("power cut")

    # the new segment and tombstones are on disk, the manifest never replaced
    monkeypatch.setattr(multivector, "write_atomic", crash)
    with pytest.raises(OSError, match="power cut"):
        store.save(tmp_path, seq=2)
    previous = TokenStore.load(tmp_path)
    assert previous.seq == 1 and len(previous) == 10 and previous.contains(np.array([0]))[0]
    assert_same_docs(previous.get(np.arange(10)), as_f16(docs)[:10])
    # a crash half-way through a segment file: a leftover temporary directory
    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError):
        store.save(tmp_path, seq=2)
    assert TokenStore.load(tmp_path).seq == 1
    # the next successful save clears the leftovers and publishes everything
    monkeypatch.undo()
    store.save(tmp_path, seq=2)
    final = TokenStore.load(tmp_path)
    assert final.seq == 2 and len(final) == 19
    named = {rel.split("/")[0] for rel in json.loads((tmp_path / MANIFEST).read_text())["files"]}
    assert {p.name for p in tmp_path.iterdir()} == named | {MANIFEST}


def test_load_detects_corruption(tmp_path):
    store = TokenStore.build(np.arange(10), clustered_docs(10))
    store.save(tmp_path)
    with pytest.raises(NotFound):
        TokenStore.load(tmp_path / "nowhere")
    segment = store._view.segments[0].name
    tokens = tmp_path / segment / "tokens.npy"
    data = bytearray(tokens.read_bytes())
    data[-1] ^= 0xFF
    tokens.write_bytes(bytes(data))
    with pytest.raises(CorruptIndex, match="checksum"):
        TokenStore.load(tmp_path)
    TokenStore.load(tmp_path, verify=False)  # shapes still agree
    np.save(tmp_path / segment / "offsets.npy", np.array([0, 1], np.int64))
    with pytest.raises(CorruptIndex):
        TokenStore.load(tmp_path, verify=False)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(CorruptIndex):
        TokenStore.load(tmp_path)


def test_rebuild_from_store_bytes():
    docs = clustered_docs(25)
    batches = [(np.arange(0, 10), [pack_tokens(d) for d in docs[:10]]),
               (np.arange(10, 25), [pack_tokens(d) for d in docs[10:]])]
    store = TokenStore.from_packed(batches, 32)
    assert_same_docs(store.get(np.arange(25)), as_f16(docs))


# ---------------------------------------------------------------------- compression
def maxsim_plain(q: np.ndarray, d: np.ndarray) -> float:
    return float((q @ d.T).max(axis=1).sum())


@pytest.mark.parametrize("codec,bytes_per_token", [("pq16", 16), ("faiss:IVF64,PQ8", 9),
                                                   pytest.param("opq16", 16, marks=pytest.mark.slow),
                                                   ("ivf64pq8", 9), ("pca32sq4", 16)])
def test_quantised_maxsim_stays_close_to_float16(codec, bytes_per_token):
    docs = clustered_docs(200, seed=3)
    ids = np.arange(200, dtype=np.int64)
    exact = TokenStore.build(ids, docs)
    pq = TokenStore.build(ids, docs, codec=codec)
    assert pq.encoded and pq.bytes_per_token == bytes_per_token < exact.bytes_per_token == 64
    per_token, top_relative, agreement = [], [], []
    for q in clustered_docs(20, seed=4):
        a = np.array([maxsim_plain(q, d) for d in exact.get(ids)])
        b = np.array([maxsim_plain(q, d) for d in pq.get(ids)])
        # MaxSim sums one cosine per query token: its error per query token is at most 2
        per_token.append(np.abs(a - b) / len(q))
        top = np.argsort(-a)[:10]
        top_relative.append(np.abs(a - b)[top] / np.abs(a[top]))
        agreement.append(len(set(top) & set(np.argsort(-b)[:10])) / 10)
    # measured: pq16 0.025 / 0.003 / 0.010 / 0.84, IVF64,PQ8 0.033 / 0.005 / 0.013 / 0.84
    assert np.max(per_token) < 0.06 and np.mean(per_token) < 0.01
    assert np.mean(top_relative) < 0.03
    assert np.mean(agreement) >= 0.75


def test_compressed_store_trains_once_enough_rows_and_persists(tmp_path):
    docs = clustered_docs(300, seed=5)
    store = TokenStore(32, "pq16x4", train_size=2000)  # 16 centroids a sub-quantiser: quick to train
    store.add(np.arange(50), docs[:50])
    assert not store.encoded and store.bytes_per_token == 64  # exact until trained
    np.testing.assert_array_equal(store.get(np.array([3]))[0], as_f16(docs)[3])
    store.save(tmp_path, seq=1)
    store.add(np.arange(50, 300), docs[50:])
    assert store.encoded and store.bytes_per_token == 8
    decoded = store.get(np.arange(300))
    store.save(tmp_path, seq=2)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["codebook"] and all(s["encoded"] for s in manifest["segments"])
    loaded = TokenStore.load(tmp_path)
    assert_same_docs(loaded.get(np.arange(300)), decoded)
    assert os.path.getsize(tmp_path / manifest["segments"][0]["dir"] / "codes.npy") < 8 * loaded.num_tokens + 200
    # appends after training are encoded directly; retraining re-encodes what is stored
    extra = clustered_docs(5, seed=6)
    loaded.add(np.arange(300, 305), extra)
    loaded.train()
    assert loaded.get(np.arange(305))[-1].shape == extra[-1].shape


def test_build_with_too_few_rows_for_the_codebook():
    with pytest.raises(InvalidArgument, match="cannot train"):
        TokenStore.build(np.arange(3), clustered_docs(3), codec="pq16")


@pytest.mark.parametrize("spec,factory,size", [
    ("float16", None, 768), ("pq32", "PQ32x8", 32), ("pq48x5", "PQ48x5", 30), ("opq32", "OPQ32,PQ32x8", 32),
    ("ivf1024pq48x5", "IVF1024,PQ48x5", 32), ("ivf256pq32", "IVF256,PQ32x8", 33), ("pca64sq8", "PCA64,SQ8", 64),
    ("ivf16384x2pq24x9", "Stack2x16384,PQ24x9", 31), ("ivf256x3pq8", "Stack3x256,PQ8x8", 11),
    ("rq32", "Stack2x16384,PQ24x9", 31), ("rq64", "IVF1024,PQ96x5", 62)])
def test_codec_names_and_their_sizes(spec, factory, size):
    codec = multivector.TokenCodec(spec, 384)
    assert codec.factory == factory and codec.bytes_per_token == size  # coarse ids are counted


@pytest.mark.parametrize("spec", ["opq7", "ivf0pq8", "ivf70000pq8", "ivf64x0pq8", "ivf64x5pq8", "pca500sq8", "pca64sq5",
                                  "pq8x17", "rq", "faiss:"])
def test_bad_codec_names_are_rejected(spec):
    with pytest.raises(InvalidArgument, match="codec"):
        multivector.TokenCodec(spec, 384)


@pytest.mark.parametrize("codec", [pytest.param("opq16", marks=pytest.mark.slow), "ivf64pq8", "ivf64x2pq8"])
def test_residual_and_rotated_codecs_persist(tmp_path, codec):
    docs = clustered_docs(150, seed=8)
    store = TokenStore.build(np.arange(150), docs, codec=codec)
    rows = np.concatenate(as_f16(docs))
    decoded = np.concatenate(store.get(np.arange(150)))
    # reconstruction error well under the rows' own spread (unit rows around 24 centres)
    spread = float(((rows - rows.mean(0)) ** 2).sum(1).mean())
    assert float(((decoded - rows) ** 2).sum(1).mean()) < 0.5 * spread
    store.save(tmp_path)
    assert_same_docs(TokenStore.load(tmp_path).get(np.arange(150)), store.get(np.arange(150)))


def test_residual_stack_against_a_plain_reference():
    """Each stage's id is the centroid nearest to what the stages before it left, the PQ code
    quantises the last residual, and a row decodes to the sum; a second stage lowers the error."""
    rows = np.concatenate(clustered_docs(150, seed=12))
    stack = multivector.ResidualStack(32, 2, 64, 8, 6)
    stack.train(rows)
    codes = stack.sa_encode(rows)
    assert codes.shape == (len(rows), 2 * 1 + 6) and stack.sa_code_size() == 8
    assert stack.memory_bytes() == 4 * (2 * 64 * 32 + 8 * 64 * 4)  # two stages, PQ 8 x 64 x 4 dims
    residual = rows.astype(np.float64)
    for stage, table in enumerate(stack.centroids):
        nearest = ((residual[:, None, :] - table[None].astype(np.float64)) ** 2).sum(2).argmin(1)
        np.testing.assert_array_equal(codes[:, stage], nearest)  # a byte an id: 64 centroids
        residual -= table[nearest]
    np.testing.assert_array_equal(codes[:, 2:], stack.pq.compute_codes(residual.astype(np.float32)))
    expected = stack.centroids[0][codes[:, 0]] + stack.centroids[1][codes[:, 1]] + stack.pq.decode(codes[:, 2:])
    np.testing.assert_allclose(stack.sa_decode(codes), expected, rtol=1e-5, atol=1e-6)
    one = multivector.TokenCodec("ivf64pq8x6", 32)
    one.train(rows)
    two = multivector.TokenCodec("ivf64x2pq8x6", 32)
    two.train(rows)
    error = {c.spec: float(((c.decode(c.encode(rows)) - rows) ** 2).sum(1).mean()) for c in (one, two)}
    assert error["ivf64x2pq8x6"] < 0.9 * error["ivf64pq8x6"]
    again = multivector.TokenCodec("ivf64x2pq8x6", 32)
    again.load_bytes(two.to_bytes())
    np.testing.assert_array_equal(again.encode(rows), two.encode(rows))
    assert again.memory_bytes() == stack.memory_bytes()
    store = TokenStore.build(np.arange(150), clustered_docs(150, seed=12), codec="ivf64x2pq8x6")
    plain = TokenStore.build(np.arange(150), clustered_docs(150, seed=12))
    tokens = store.num_tokens
    # in memory: 8-byte codes instead of 64-byte float16 rows, and the codec's centroids counted
    assert store.memory_bytes() == plain.memory_bytes() - (64 - 8) * tokens + stack.memory_bytes()
    blob = two.to_bytes()
    for damaged in (blob[: len(blob) // 2], blob[:40], blob[:-10]):
        with pytest.raises(CorruptIndex, match="unreadable"):
            multivector.TokenCodec("ivf64x2pq8x6", 32).load_bytes(damaged)


def test_codec_of_unit_rows_decodes_unit_rows(tmp_path):
    docs = clustered_docs(150, seed=9)  # unit rows
    store = TokenStore.build(np.arange(150), docs, codec="pq8")
    assert store.codec.unit_rows
    decoded = np.concatenate(store.get(np.arange(150)))
    np.testing.assert_allclose(np.linalg.norm(decoded, axis=1), 1.0, rtol=1e-5)
    raw = store.codec._index.sa_decode(store.codec.encode(np.concatenate(as_f16(docs))))  # rows kept as float16
    assert np.abs(np.linalg.norm(raw, axis=1) - 1).max() > 1e-2  # faiss alone shrinks them
    np.testing.assert_allclose(decoded, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    store.save(tmp_path)
    loaded = TokenStore.load(tmp_path)
    assert loaded.codec.unit_rows
    assert_same_docs(loaded.get(np.arange(150)), store.get(np.arange(150)))
    # rows of other norms are decoded as faiss decodes them, and a headerless codec file still loads
    scaled = TokenStore.build(np.arange(150), [2 * d for d in docs], codec="pq8")
    assert not scaled.codec.unit_rows
    assert not scaled.codec.to_bytes().startswith(multivector._UNIT_HEADER)
    plain = multivector.TokenCodec("pq8", 32)
    plain.load_bytes(scaled.codec.to_bytes())
    assert not plain.unit_rows and plain.trained


def test_decode_kernels_match_numpy():
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((50, 24)).astype(np.float32)
    rows[7] = 0.0  # a zero row stays zero
    want = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)
    got = rows.copy()
    multivector._normalise_rows(got)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not got[7].any()
    table = rng.standard_normal((10, 24)).astype(np.float32)
    ids = np.stack([rng.integers(0, 10, 50), rng.integers(0, 10, 50)], axis=1).astype("<u2")
    got = rows.copy()
    multivector._add_rows(got, table, ids[:, 1])  # a strided column, as the stack decodes
    np.testing.assert_allclose(got, rows + table[ids[:, 1]], rtol=1e-6)

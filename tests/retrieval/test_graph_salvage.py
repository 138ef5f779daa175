"""`lamina store repair` of a graph collection whose MANIFEST was lost (issue #20): the WAL's
records are salvaged into the column families they came from, the "graph" family's included
(told by its keys, `<collection>\\0g\\0...`), so that the entity graph comes back record for record
and is not mistaken for vectors, nor recreated empty."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.index.errors import StoreCorrupted
from lamina.index.store_check import repair_store
from lamina.retrieval.collection import Database

TESTS = Path(__file__).resolve().parents[1]
CORPUS = [f"Ada Lovelace met Charles Babbage in London in {1830 + i}. The Analytical Engine of "
          f"Babbage impressed Lovelace, and Mary Somerville introduced them." for i in range(12)]
WRITER = f"""
import json, os, signal, sys
sys.path.insert(0, {str(TESTS)!r})
from conftest import HashingEncoder
from lamina.retrieval.collection import Database
encoder = HashingEncoder()
db = Database(sys.argv[1], encoder_loader=lambda name: encoder)
c = db.create_collection("g", encoder="hashing", graph={{"extractor": "regex"}})
plain = db.create_collection("plain", encoder="hashing", sparse=False)
for i, text in enumerate({CORPUS!r}):
    c.upsert([{{"id": f"d{{i}}", "text": text}}], wait=True)
    plain.upsert([{{"id": f"p{{i}}", "text": text}}], wait=True)
records = [(k.hex(), v.hex()) for k, v in db.store.iter_graph("g")]
with open(sys.argv[2], "w") as fh:
    json.dump(records, fh)
os.kill(os.getpid(), signal.SIGKILL)  # nothing flushed: every record lives in the WAL only
"""


@pytest.mark.slow
def test_a_graph_collection_with_a_lost_manifest_is_salvaged_whole(tmp_path, fake_encoder_loader):
    data, expected_path = tmp_path / "data", tmp_path / "graph.json"
    proc = subprocess.run([sys.executable, "-c", WRITER, str(data), str(expected_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    expected = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in json.loads(expected_path.read_text())]
    assert len(expected) > 20  # chunks, entities, vectors, co-occurrences
    for manifest in (data / "store").glob("MANIFEST-*"):
        manifest.unlink()
    with pytest.raises(StoreCorrupted):
        Database(data, encoder_loader=fake_encoder_loader)
    repair_store(data / "store")
    with Database(data, encoder_loader=fake_encoder_loader) as db:
        assert list(db.store.iter_graph("g")) == expected
        assert list(db.store.iter_graph("plain")) == []
        for name, prefix in (("g", "d"), ("plain", "p")):
            coll = db.collection(name)
            assert coll.count() == len(CORPUS)
            assert all(doc is not None for doc in coll.get([f"{prefix}{i}" for i in range(len(CORPUS))]))
        hits = db.collection("g").search("Where did Lovelace meet Babbage?", k=3, mode="hybrid+graph")
        assert hits and all(h.id.startswith("d") for h in hits)

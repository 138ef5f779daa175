"""Acknowledged writes survive SIGKILL of the server (ARCHITECTURE.md, durability model)."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from lamina.retrieval.collection import Database


@pytest.mark.slow
def test_sigkill_during_acknowledged_upserts_loses_none(tmp_path, start_server):
    from lamina.service.client import Client

    data = tmp_path / "data"
    proc, target = start_server(data)
    acked: list[str] = []
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((100_000, 8)).astype(np.float32)
    with Client(target, timeout=10) as client:
        client.create_collection("c", 8, metric="l2", encoder=None)
        killer = threading.Timer(1.5, os.kill, (proc.pid, signal.SIGKILL))
        killer.start()
        i = 0
        try:
            while True:
                batch = [{"id": f"p{j}", "vector": vectors[j], "metadata": {"j": j}} for j in range(i, i + 5)]
                results = client.upsert("c", batch, wait=True)
                assert all(r.ok for r in results)
                acked.extend(p["id"] for p in batch)  # acknowledged: the reply came back
                i += 5
        except Exception:  # the server died mid-stream: the call in flight may or may not have landed
            pass
        killer.join()
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 20, "the stream should have run for a while before the kill"

    # restart a server on the same directory: every acknowledged point is there and searchable
    proc, target = start_server(data)
    try:
        with Client(target, timeout=30) as client:
            docs = client.get("c", acked)
            assert all(d is not None for d in docs)
            assert [d.metadata["j"] for d in docs] == list(range(len(acked)))
            for j in (0, len(acked) // 2, len(acked) - 1):
                assert client.search("c", vectors[j], 1)[0].id == f"p{j}"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0

    with Database(data) as db:  # a graceful stop left a snapshot covering everything
        assert db.collection("c").count() >= len(acked)

"""`lamina ingest`: files to a collection, the report, per-file failures and the exit code."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lamina.cli import main


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_ingest_then_search_then_ingest_again(tmp_path, tiny_model_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "wing.md").write_text("# Wing\n\n" + "the wing lift and drag. " * 20
                                  + "\n# Heat\n\n" + "heat transfer flow. " * 10)
    (docs / "flow.txt").write_text("shock pressure in the flow. " * 10)
    (docs / "empty.txt").write_text("")
    common = ["--collection", "c", "--data-dir", tmp_path / "data", "--encoder", tiny_model_dir]
    first = run(["ingest", docs, *common, "--chunk-tokens", "16", "--overlap", "4", "--json"])
    assert first.exit_code == 1  # empty.txt failed; the others are in
    report = json.loads(first.stdout.splitlines()[-1])
    assert (report["added"], report["unchanged"]) == (2, 0) and report["chunks_written"] > 4
    assert [(e["source"].rsplit("/", 1)[-1], e["error"]) for e in report["errors"]] == [("empty.txt", "EmptyDocument")]
    assert "failed" in first.stderr and "empty.txt" in first.stderr

    found = run(["search", "--collection", "c", "--data-dir", tmp_path / "data", "heat transfer", "--json", "-k", "50"])
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert len(hits) == report["chunks_written"]
    heat = [h for h in hits if "heat transfer" in h["text"]]
    assert heat and all(h["metadata"]["parent"] == (docs / "wing.md").as_posix() for h in heat)
    text = (docs / "wing.md").read_text()
    after = {h["metadata"]["section"] for h in hits if h["metadata"]["start"] >= text.index("# Heat")
             and h["metadata"]["parent"].endswith("wing.md")}
    assert after == {"Heat"}

    again = run(["ingest", docs / "wing.md", docs / "flow.txt", *common, "--chunk-tokens", "16", "--overlap", "4"])
    assert again.exit_code == 0, again.output
    assert "0 added, 0 updated, 2 unchanged" in again.output
    sentence = run(["ingest", docs / "flow.txt", *common, "--chunker", "sentence", "--chunk-tokens", "16"])
    assert sentence.exit_code == 0 and "1 updated" in sentence.output

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lamina.cli import main
from lamina.retrieval.encoders.dense import SentenceTransformerEncoder


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": "d1", "title": "Wing", "text": "lift and drag of a wing", "metadata": {"year": 1960}},
        {"_id": "d2", "text": "heat transfer in the boundary layer"},
        {"_id": "d3", "text": "shock and pressure in the flow"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def run(args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def test_build_then_search_and_rebuild_is_idempotent(tmp_path, corpus, tiny_model_dir):
    data = tmp_path / "data"
    common = ["--data-dir", data]
    first = run(["build", corpus, "--collection", "c", "--encoder", tiny_model_dir, *common])
    assert first.exit_code == 0, first.output
    assert "3 written, 0 unchanged, 0 rejected; 3 documents" in first.output
    again = run(["build", corpus, "--collection", "c", "--encoder", tiny_model_dir, *common])
    assert "0 written, 3 unchanged" in again.output

    found = run(["search", "--collection", "c", "heat transfer in the boundary layer", "-k", "3", "--json", *common])
    assert found.exit_code == 0, found.output
    hits = [json.loads(line) for line in found.output.splitlines()]
    # the random tiny model has no semantics: compare with brute force over its own embeddings
    enc = SentenceTransformerEncoder(str(tiny_model_dir))
    texts = ["Wing lift and drag of a wing", "heat transfer in the boundary layer", "shock and pressure in the flow"]
    scores = enc.encode_documents(texts) @ enc.encode_queries(["heat transfer in the boundary layer"])[0]
    expected = {f"d{i + 1}": float(score) for i, score in enumerate(scores)}
    assert sorted(h["id"] for h in hits) == ["d1", "d2", "d3"]
    np.testing.assert_allclose([h["score"] for h in hits], [expected[h["id"]] for h in hits], rtol=1e-4)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert next(h for h in hits if h["id"] == "d1")["text"] == "Wing lift and drag of a wing"

    listed = run(["collections", "list", *common])
    assert listed.output.startswith("c\tdim=16\tmetric=ip\tindex=flat")


def test_data_dir_from_environment(tmp_path, corpus, tiny_model_dir):
    env = {"LAMINA_DATA_DIR": str(tmp_path / "env-data")}
    assert run(["build", corpus, "--collection", "c", "--encoder", tiny_model_dir], env=env).exit_code == 0
    assert (tmp_path / "env-data" / "store").is_dir()


def test_bad_lines_are_named_and_the_rest_is_written(tmp_path, tiny_model_dir):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"_id": "ok", "text": "wing"}\nnot json\n{"text": "no id"}\n[1, 2]\n'
                    '{"_id": "m", "text": "x", "metadata": {"v": NaN}}\n')
    result = CliRunner().invoke(
        main, ["build", str(path), "--collection", "c", "--encoder", str(tiny_model_dir),
               "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "1 written, 0 unchanged, 4 rejected; 1 documents" in result.stdout
    assert "line 2: not valid JSON" in result.stderr
    assert 'line 3: missing "_id"' in result.stderr
    assert "line 4: expected a JSON object" in result.stderr
    assert "id 'm'" in result.stderr and "'v' is not a finite number" in result.stderr


def test_unknown_collection_and_bad_params_are_clear_errors(tmp_path):
    result = CliRunner().invoke(main, ["search", "--collection", "nope", "x",
                                                       "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "collection 'nope' does not exist" in result.stderr
    result = CliRunner().invoke(main, ["search", "--collection", "nope", "x", "--param", "nprobe",
                                                       "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "NAME=NUMBER" in result.stderr
    result = CliRunner().invoke(main, ["build", str(tmp_path / "missing.jsonl"), "--collection", "c"])
    assert result.exit_code != 0



def test_build_with_every_field_then_search_each_mode(tmp_path, corpus, tiny_model_dir):
    data = ["--data-dir", tmp_path / "data"]
    built = run(["build", corpus, "--collection", "c", "--encoder", tiny_model_dir, "--multivector",
                 "--payload", "year:numeric", *data])
    assert built.exit_code == 0, built.output
    for mode in ("dense", "sparse", "hybrid"):
        found = run(["search", "--collection", "c", "heat transfer boundary layer", "--mode", mode, "-k", "3",
                     "--json", *data])
        assert found.exit_code == 0, found.output
        hits = [json.loads(line) for line in found.output.splitlines()]
        assert hits and len({h["id"] for h in hits}) == len(hits)
        if mode == "sparse":  # BM25: the only document with these terms comes first
            assert hits[0]["id"] == "d2"
    flt = json.dumps({"must": [{"key": "year", "range": {"gte": 1950}}]})
    found = run(["search", "--collection", "c", "wing", "--mode", "hybrid", "--rerank", "3", "-k", "3",
                 "--filter", flt, "--explain", "--json", *data])
    assert found.exit_code == 0, found.output
    assert [json.loads(line)["id"] for line in found.stdout.splitlines()] == ["d1"]
    explain = json.loads(found.stderr.strip().splitlines()[-1])
    assert explain["cardinality"] == 1 and explain["rerank"]["scored"] == 1
    bad = CliRunner().invoke(main, ["search", "--collection", "c", "wing", "--filter", '{"must": [{"key": "colour", '
                                    '"match": {"value": 1}}]}', *map(str, data)])
    assert bad.exit_code != 0 and "'colour' is not indexed" in bad.stderr


def test_build_spann_options(tmp_path, corpus, tiny_model_dir):
    common = ["--data-dir", tmp_path / "data", "--encoder", tiny_model_dir]
    built = run(["build", corpus, "--collection", "s", "--index", "spann", "--spann-param", "dtype=int8",
                 "--spann-param", "head_ratio=0.08", *common])
    assert built.exit_code == 0, built.output
    from lamina.retrieval.collection import Database

    db = Database(tmp_path / "data")
    try:
        assert db.collection("s").config.index.spann == {"dtype": "int8", "head_ratio": 0.08}
    finally:
        db.close()
    found = run(["search", "--collection", "s", "heat transfer", "-k", "2", "--json", "--data-dir", tmp_path / "data"])
    assert found.exit_code == 0 and len(found.output.splitlines()) == 2, found.output
    wrong_kind = CliRunner().invoke(main, ["build", str(corpus), "--collection", "f", "--spann-param", "dtype=int8",
                                           "--encoder", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")])
    assert wrong_kind.exit_code != 0 and "--index spann" in wrong_kind.output
    typo = CliRunner().invoke(main, ["build", str(corpus), "--collection", "t", "--index", "spann", "--spann-param",
                                     "replicaz=3", "--encoder", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")])
    assert typo.exit_code != 0 and "replicaz" in typo.output

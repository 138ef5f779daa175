import json

from click.testing import CliRunner

from lamina.cli import main
from tests.lamina.test_cli import corpus, run  # noqa: F401 - the shared fixture


def test_ask_without_a_generator_prints_the_citations_and_json(tmp_path, corpus, tiny_model_dir):  # noqa: F811
    data = tmp_path / "data"
    assert run(["build", corpus, "--collection", "c", "--encoder", tiny_model_dir, "--data-dir", data]).exit_code == 0
    shown = run(["ask", "--collection", "c", "--generator", "none", "--data-dir", data, "-k", 2, "wing lift"])
    assert shown.exit_code == 0 and "[1] " in shown.output and "[2] " in shown.output
    as_json = run(["ask", "--collection", "c", "--generator", "none", "--data-dir", data, "--json", "wing lift"])
    result = json.loads(as_json.output.strip().splitlines()[-1])
    assert result["answer"] == "" and result["error"] is None
    assert {c["chunk_id"] for c in result["citations"]} == {"d1", "d2", "d3"}
    assert "Question: wing lift" in result["context"] and "retrieve_ms" in result["timings"]


def test_ask_names_an_over_long_question(tmp_path, corpus, tiny_model_dir):  # noqa: F811
    data = tmp_path / "data"
    run(["build", corpus, "--collection", "c", "--encoder", tiny_model_dir, "--data-dir", data])
    long = CliRunner().invoke(main, ["ask", "--collection", "c", "--generator", "none", "--data-dir", str(data),
                                     "x" * 9000])
    assert long.exit_code != 0 and "limit is 8,192" in long.output

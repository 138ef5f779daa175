"""`measure_ttft` and `lamina bench generate` on a tiny random Llama (no timing assertions)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lamina.bench.generation import context_prompt, measure_ttft
from lamina.cli import main
from lamina.index.errors import InvalidArgument
from lamina.rag.generators import LocalGenerator, NoGenerator


def test_the_prompt_fills_the_context(tiny_llama):
    generator = LocalGenerator(str(tiny_llama)).load()
    prompt = context_prompt(generator, 1024)
    tokens = sum(len(s.token_ids) for s in generator.segments(prompt))
    assert 900 <= tokens <= 1024
    assert sum(part.chunk_id is not None for part in prompt.parts) >= 2
    with pytest.raises(InvalidArgument, match="context_tokens"):
        context_prompt(generator, 10)


def test_measure_ttft_reports_both_prefills(tiny_llama):
    generator = LocalGenerator(str(tiny_llama)).load()
    report = measure_ttft(generator, context_tokens=1024, repeats=2, new_tokens=4)
    assert report["prompt_tokens"] == report["stats"]["tokens_computed"] <= 1024
    assert len(report["runs"]["ttft_ms"]) == len(report["runs"]["full_prefill_ms"]) == 2
    assert report["prefill_ms"] <= report["ttft_ms"] <= report["total_ms"]
    assert report["full_prefill_ms"] > 0 and report["model"] == generator.model_id


def test_a_failing_generator_fails_the_benchmark():
    with pytest.raises(InvalidArgument, match="refused"):
        from lamina.rag.generators import OpenAIGenerator

        measure_ttft(OpenAIGenerator(base_url="http://127.0.0.1:9", timeout_s=1), context_tokens=128, repeats=1)
    assert measure_ttft(NoGenerator(), context_tokens=128, repeats=1)["ttft_ms"] is None


def test_cli(tiny_llama, tmp_path):
    result = CliRunner().invoke(main, ["bench", "generate", "--generator", f"local:{tiny_llama}",
                                       "--context-tokens", "512", "--repeats", "1", "--new-tokens", "2",
                                       "--json", "--out", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["benchmark"] == "generate" and report["dataset"] == "synthetic-context-512"
    (row,) = report["results"]
    assert row["system"].startswith("local:") and row["full_prefill_ms"] > 0
    assert (tmp_path / "generate-synthetic-context-512.json").is_file()

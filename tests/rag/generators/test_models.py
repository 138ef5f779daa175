"""Resolving and loading generator models: the conversion cache (atomic), bad paths, and the packaged
SmolLM2 answering from a given context (slow)."""

from __future__ import annotations

import pytest

from lamina.index.errors import InvalidArgument
from lamina.rag.generators import models
from lamina.rag.generators.models import MARKER, convert_gguf, load_causal_lm, resolve_model


def test_a_local_directory_resolves_to_itself(tiny_llama):
    assert resolve_model(str(tiny_llama)) == tiny_llama
    model, tokenizer = load_causal_lm(tiny_llama)
    assert not model.training and tokenizer.chat_template


def test_bad_paths_name_what_was_found(tmp_path):
    with pytest.raises(InvalidArgument, match="no such file or directory"):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidArgument, match="is a file, not a model directory"):
        resolve_model(str(tmp_path / "notes.txt"))
    with pytest.raises(InvalidArgument, match=r"no config.json.*found: notes.txt"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InvalidArgument, match="no weights"):
        resolve_model(str(tmp_path))


def test_conversion_is_atomic_and_done_once(tmp_path, monkeypatch):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF not really")
    calls = []

    def crash(source, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setattr(models, "_convert_into", crash)
    with pytest.raises(RuntimeError):
        convert_gguf(gguf, cache_dir=tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache" / "models").iterdir() if not p.name.endswith(".lock")] == []

    def convert(source, out):
        calls.append(source)
        (out / "model.safetensors").write_bytes(b"whole")
        (out / MARKER).write_text("{}")

    monkeypatch.setattr(models, "_convert_into", convert)
    target = convert_gguf(gguf, cache_dir=tmp_path / "cache")
    assert target.name == f"tiny-{models.file_digest(gguf)}" and (target / "model.safetensors").read_bytes() == b"whole"
    assert convert_gguf(gguf, cache_dir=tmp_path / "cache") == target and len(calls) == 1
    gguf.write_bytes(b"GGUF changed")  # another file: another directory
    assert convert_gguf(gguf, cache_dir=tmp_path / "cache") != target and len(calls) == 2


@pytest.mark.slow
def test_packaged_smollm2_answers_from_the_context():
    """Through the conversion cache ($LAMINA_CACHE_DIR or ~/.cache/lamina: about 20 s to convert when cold)."""
    pytest.importorskip("gguf")
    try:
        models.packaged_gguf()
    except InvalidArgument as exc:
        pytest.skip(str(exc))
    from lamina.rag.generators import load_generator
    from lamina.rag.types import Prompt, PromptPart

    generator = load_generator("local").load()
    assert (generator._path / MARKER).is_file()
    prompt = Prompt(parts=(PromptPart("Context:\n"),
                           PromptPart("The capital of Freedonia is Zubrowka.\n", chunk_id="freedonia#0"),
                           PromptPart("\nQuestion: What is the capital of Freedonia?")),
                    system="Answer the question using only the context.")
    answer = generator.generate(prompt, max_new_tokens=24)
    assert answer.error is None and "Zubrowka" in answer.text, answer.text
    assert answer.prompt_tokens == answer.stats["tokens_computed"] > 20

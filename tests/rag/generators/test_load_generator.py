"""The generator factory: specs, config dicts, and bad specs."""

from __future__ import annotations

import json

import pytest

from lamina.index.errors import InvalidArgument
from lamina.rag.generators import (LocalGenerator, NoGenerator, OpenAIGenerator, from_dict, load_generator,
                                   to_dict)
from lamina.rag.generators.prefill import FullPrefill
from lamina.rag.types import Generator, Prompt, PromptPart


def test_specs(tiny_llama, monkeypatch):
    monkeypatch.delenv("LAMINA_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    default = load_generator("local")
    assert isinstance(default, LocalGenerator) and default._model is None  # lazy: no conversion yet
    assert isinstance(load_generator(None), LocalGenerator)
    local = load_generator(f"local:{tiny_llama}")
    assert local.model_id == str(tiny_llama.resolve())
    remote = load_generator("openai:http://127.0.0.1:9/v1")
    assert isinstance(remote, OpenAIGenerator) and remote.url == "http://127.0.0.1:9/v1/chat/completions"
    assert load_generator("openai").base_url == "https://api.openai.com"
    none = load_generator("none")
    assert isinstance(none, NoGenerator) and isinstance(none, Generator)
    assert load_generator(none) is none


def test_no_generator_answers_empty():
    prompt = Prompt(parts=(PromptPart("context"),))
    answer = NoGenerator().generate(prompt)
    assert answer.text == "" and answer.error is None and answer.finish_reason == "none"
    assert list(NoGenerator().stream(prompt)) == []


@pytest.mark.parametrize("spec, message", [
    ("llama", "unknown generator 'llama': choose one of local, local:DIR, openai, openai:BASE_URL, none"),
    ("none:x", "unknown generator"),
    ("local:/no/such/dir", "no such file or directory"),
    ("openai:ftp://host", "not an http"),
    ({"type": "vllm"}, "unknown type 'vllm'"),
    ({"type": "openai", "base_url": "http://h", "key": "x"}, "unknown key.*'key'"),
    (3, "neither a spec"),
])
def test_bad_specs(spec, message):
    with pytest.raises(InvalidArgument, match=message):
        load_generator(spec)


def test_configs_round_trip(tiny_llama):
    local = LocalGenerator(str(tiny_llama), max_new_tokens=32, temperature=0.5, seed=3)
    remote = OpenAIGenerator(base_url="http://h:1/v1", model="m", timeout_s=5)
    for generator in (local, remote, NoGenerator()):
        config = to_dict(generator)
        json.dumps(config)  # serialisable
        again = from_dict(config)
        assert type(again) is type(generator) and to_dict(again) == config
        assert to_dict(load_generator(config)) == config
    assert to_dict(local)["prefiller"] == FullPrefill.name

    class Reuse(FullPrefill):
        name = "chunk-kv"

    config = to_dict(LocalGenerator(str(tiny_llama), prefiller=Reuse()))
    with pytest.raises(InvalidArgument, match="prefiller 'chunk-kv'"):
        from_dict(config)
    prefiller = Reuse()
    assert from_dict(config, prefiller=prefiller).prefiller is prefiller

"""Generators: answer a RAG prompt with a local causal LM, an OpenAI-compatible endpoint, or none.

One Protocol (`lamina.rag.types.Generator`), three backends, one factory:

    load_generator("local")              the embedded SmolLM2-135M-Instruct (lazy: loads on first use)
    load_generator("local:/models/qwen") any local transformers causal-LM directory (or a .gguf file)
    load_generator("openai")             an OpenAI-compatible endpoint from LAMINA_OPENAI_BASE_URL ...
    load_generator("openai:http://127.0.0.1:8080")
    load_generator("none")               no generation: the pipeline returns the context alone
    load_generator({"type": "local", "max_new_tokens": 64})   a config dict, as `to_dict` writes it

`to_dict(generator)` / `from_dict(config)` round-trip a generator's configuration (secrets such
as API keys stay in the environment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lamina.index.errors import InvalidArgument
from lamina.rag.generators.local import LocalGenerator
from lamina.rag.generators.none import NoGenerator
from lamina.rag.generators.openai import OpenAIGenerator
from lamina.rag.generators.prefill import FullPrefill
from lamina.rag.types import Generator, Prefiller

GENERATORS: dict[str, type] = {"local": LocalGenerator, "openai": OpenAIGenerator, "none": NoGenerator}
CHOICES = "local, local:DIR, openai, openai:BASE_URL, none"
DEFAULT_GENERATOR = "local"


def load_generator(spec: str | Mapping[str, Any] | Generator | None = None, *,
                   prefiller: Prefiller | None = None) -> Generator:
    """The generator a spec names (see the module doc); None is the default, "local".

    `prefiller` goes to a local generator (a chunk-KV cache); an unknown spec is InvalidArgument
    listing the choices. A Generator instance is returned as it is.
    """
    if spec is None:
        spec = DEFAULT_GENERATOR
    if isinstance(spec, Mapping):
        return from_dict(spec, prefiller=prefiller)
    if not isinstance(spec, str):
        if isinstance(spec, Generator):
            return spec
        raise InvalidArgument(f"generator {spec!r} is neither a spec ({CHOICES}), a config dict nor a Generator")
    kind, _, argument = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "local":
        return LocalGenerator(argument or None, prefiller=prefiller)
    if kind == "openai":
        return OpenAIGenerator(base_url=argument or None)
    if kind == "none" and not argument:
        return NoGenerator()
    raise InvalidArgument(f"unknown generator {spec!r}: choose one of {CHOICES}")


def to_dict(generator: Generator) -> dict[str, Any]:
    """A generator's configuration as a JSON-able dict with its "type" (`from_dict` reads it back)."""
    if not hasattr(generator, "to_dict"):
        raise InvalidArgument(f"generator {generator!r} has no to_dict: it cannot be serialised")
    return generator.to_dict()


def from_dict(data: Mapping[str, Any], *, prefiller: Prefiller | None = None) -> Generator:
    """The generator a `to_dict` config describes; an unknown "type" or key is InvalidArgument."""
    kind = str(data.get("type", "")).lower()
    if kind not in GENERATORS:
        raise InvalidArgument(f"generator config {dict(data)!r}: unknown type {data.get('type')!r} "
                              f"(choose one of {', '.join(GENERATORS)})")
    if kind == "local":
        return LocalGenerator.from_dict(data, prefiller=prefiller)
    return GENERATORS[kind].from_dict(data)


__all__ = ["CHOICES", "GENERATORS", "FullPrefill", "LocalGenerator", "NoGenerator", "OpenAIGenerator",
           "from_dict", "load_generator", "to_dict"]

"""Time to first token of a generator at a given context size, beside the full prefill time.

The prompt is a RAG prompt of `context_tokens` tokens (template included, counted in the
generator's own tokenizer): numbered synthetic passages, each a chunk part (so a chunk-KV cache
sees chunks it can reuse), and a question. Prefill cost depends on the token count, not the words.

For a local generator the report puts side by side:
    ttft_ms          the generator's time to first token, through its own prefiller (median)
    prefill_ms       its prefiller's time inside that
    full_prefill_ms  `FullPrefill` over the same segments: what a chunk-KV cache is measured against
    decode_ms_per_token  the time a later token takes, from the same runs
A remote generator (OpenAI-compatible) reports ttft_ms and the decode rate alone.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from lamina.index.errors import InvalidArgument
from lamina.rag.types import Generator, Prompt, PromptPart

SYSTEM = "Answer the question using only the numbered passages. Cite the passage numbers you use."
QUESTION = "\nQuestion: Which city lies on the river Avon, and how many people live there?"
RIVERS = ("Avon", "Severn", "Tamar", "Ouse", "Wye", "Dee", "Trent", "Exe", "Test", "Cam")
TRADES = ("wool", "salt", "tin", "glass", "paper", "cider", "lace", "clocks", "boats", "cheese")


def synthetic_passages(n: int) -> list[str]:
    """`n` distinct deterministic passages, a few sentences each."""
    out = []
    for i in range(n):
        river, trade = RIVERS[i % len(RIVERS)], TRADES[(i * 7) % len(TRADES)]
        out.append(f"[{i + 1}] The town of Newbridge-{i} lies on the river {river}, {3 + i % 40} miles from the "
                   f"coast. It has {1000 + 137 * i} inhabitants, and its market has sold {trade} since "
                   f"{1200 + (i * 13) % 600}. Its bridge was rebuilt in {1750 + (i * 29) % 250}.\n")
    return out


def context_prompt(generator: Generator, context_tokens: int) -> Prompt:
    """A prompt whose passages fill `context_tokens` tokens less the template, system and question."""
    if context_tokens < 64:
        raise InvalidArgument(f"context_tokens must be at least 64, got {context_tokens}")
    passages = synthetic_passages(max(8, context_tokens // 20))
    cumulative = np.cumsum(generator.count_tokens(passages))
    keep = max(1, int(np.searchsorted(cumulative, context_tokens - _overhead(generator), side="right")))
    return _prompt(passages[:keep])


def _prompt(passages: list[str]) -> Prompt:
    parts = [PromptPart("Passages:\n")]
    parts += [PromptPart(text, chunk_id=f"newbridge#{i}") for i, text in enumerate(passages)]
    parts.append(PromptPart(QUESTION))
    return Prompt(parts=tuple(parts), system=SYSTEM)


def _overhead(generator: Generator) -> int:
    """The prompt's tokens besides the passages: exact where the generator shows its segments (each part
    is tokenised alone there, as `count_tokens` counts), else the texts plus ~24 tokens of template."""
    segments = getattr(generator, "segments", None)
    if segments is not None:
        return sum(len(segment.token_ids) for segment in segments(_prompt([])))
    return 24 + sum(generator.count_tokens([SYSTEM, "Passages:\n", QUESTION]))


def measure_ttft(generator: Generator, context_tokens: int = 1024, repeats: int = 3,
                 new_tokens: int = 16) -> dict[str, Any]:
    """Time to first token at a `context_tokens` context, `repeats` runs, beside the full prefill
    (local generators); medians, with every run's value under "runs"."""
    if repeats < 1 or new_tokens < 1:
        raise InvalidArgument(f"repeats and new_tokens must be at least 1, got {repeats} and {new_tokens}")
    prompt = context_prompt(generator, context_tokens)
    runs: dict[str, list[float]] = {"ttft_ms": [], "prefill_ms": [], "total_ms": [], "decode_ms_per_token": []}
    answer = None
    for _ in range(repeats):
        answer = generator.generate(prompt, max_new_tokens=new_tokens)
        if answer.error:
            raise InvalidArgument(f"generator {generator.name} failed during the benchmark: {answer.error}")
        runs["ttft_ms"].append(answer.ttft_ms)
        runs["prefill_ms"].append(answer.prefill_ms)
        runs["total_ms"].append(answer.total_ms)
        if answer.tokens > 1 and answer.ttft_ms is not None:
            runs["decode_ms_per_token"].append((answer.total_ms - answer.ttft_ms) / (answer.tokens - 1))
    report: dict[str, Any] = {"system": generator.name, "context_tokens": context_tokens,
                              "prompt_tokens": answer.prompt_tokens, "new_tokens": answer.tokens,
                              "repeats": repeats, "stats": answer.stats}
    segments = getattr(generator, "segments", None)
    if segments is not None:  # a local generator: the full prefill of the same segments
        from lamina.rag.generators.prefill import FullPrefill

        full = FullPrefill()
        parts = segments(prompt)
        runs["full_prefill_ms"] = []
        for _ in range(repeats):
            start = time.perf_counter()
            full.prefill(generator.model, parts)
            runs["full_prefill_ms"].append((time.perf_counter() - start) * 1e3)
        report["model"] = generator.model_id
        report["torch_threads"] = _torch_threads()
    for key, values in runs.items():
        clean = [v for v in values if v is not None]
        report[key] = statistics.median(clean) if clean else None
    report["runs"] = runs
    return report


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()

"""The local generator: a Hugging Face transformers causal LM on this machine.

A prompt becomes token ids through the model's chat template, as segments a `Prefiller` can
compute or reuse. The template is rendered once, with the whole user message; the user message
is then found inside the rendered text (by rendering once more with a sentinel in its place), and
the text is tokenised piece by piece:

    [template head] [part 1] [part 2] ... [part n] [template tail]

each piece with `add_special_tokens=False` (the template writes its own special tokens), the ids
concatenated; in the parts a special token's spelling is tokenised as plain text, so retrieved text
cannot close the user turn or forge a role. A part that is one retrieved chunk (`PromptPart.chunk_id`)
becomes a segment with a `chunk_key` of (model id, chunk id, SHA-256 of its text), so a chunk-KV
cache can reuse its keys and values across prompts. Tokenising piece by piece can differ from tokenising the whole text
where a BPE merge would cross a piece boundary; that is the price of separable chunks (a
boundary at whitespace or a newline, as the pipeline's assembly puts them, costs nothing). Where a
template rewrites the user message (trims it, say) so that it is not found verbatim, the prompt is
one segment with no chunk keys: still answered, only not reusable.

Decoding runs token by token from the prefilled cache (greedy at temperature 0, else sampling),
stops at EOS or the template's end-of-turn token, and streams text as the suffix that each new
token adds to the decoded answer, held back while it ends in an incomplete UTF-8 sequence.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lamina.index.errors import InvalidArgument, LaminaError
from lamina.rag.generators.base import config_options
from lamina.rag.generators.models import DEFAULT_MODEL, load_causal_lm, resolve_model
from lamina.rag.generators.prefill import FullPrefill, forward_with_cache
from lamina.rag.types import Generation, GenerationError, Prefiller, Prompt, Segment

DEFAULT_MAX_NEW_TOKENS = 256
INCOMPLETE = "\ufffd"  # what a tokenizer decodes a partial UTF-8 sequence to
USER_SENTINEL = "\u2063lamina-user-message\u2063"  # invisible separators: in no real prompt


class LocalGenerator:
    """Answers prompts with a local causal LM (transformers, CPU or whatever torch runs on).

    `model`: None or "smollm2" for the embedded default, a local causal-LM directory, a `.gguf`
    file, or an already loaded model (then pass its `tokenizer` too). Loading is lazy and
    thread-safe; `load()` loads now. `prefiller` computes the prompt's cache (`FullPrefill`
    unless given: a chunk-KV cache plugs in here). `temperature` 0 decodes greedily; above 0
    samples (`seed` makes it repeatable). `threads` sets torch's intra-op threads at load.
    """

    name = "local"

    def __init__(self, model: Any = None, *, tokenizer: Any = None, prefiller: Prefiller | None = None,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0,
                 seed: int | None = None, threads: int | None = None) -> None:
        if int(max_new_tokens) < 1:
            raise InvalidArgument(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if float(temperature) < 0:
            raise InvalidArgument(f"temperature must be >= 0, got {temperature}")
        if threads is not None and int(threads) < 1:
            raise InvalidArgument(f"threads must be at least 1, got {threads}")
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.seed = seed
        self.threads = threads
        self.prefiller: Prefiller = prefiller if prefiller is not None else FullPrefill()
        self._lock = threading.Lock()
        self._model = self._tokenizer = None
        self._path: Path | None = None
        self._spec: str | None = None
        if model is None or isinstance(model, (str, os.PathLike)):
            self._spec = None if model is None else str(model)
            if self._spec is not None and self._spec.strip().lower() != DEFAULT_MODEL:
                self._path = resolve_model(self._spec)  # a bad path fails here, not at the first question
        else:
            if tokenizer is None:
                raise InvalidArgument("LocalGenerator(model=<a loaded model>) needs its tokenizer= too")
            self._prepare(model, tokenizer)

    # ------------------------------------------------------------------ loading
    def load(self) -> LocalGenerator:
        """Load the model now (the server does at start-up); later calls return at once."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    if self.threads is not None:
                        import torch
                        torch.set_num_threads(int(self.threads))
                    path = self._path or resolve_model(self._spec)
                    model, tokenizer = load_causal_lm(path)
                    self._path = path
                    self._prepare(model, tokenizer)
        return self

    def _prepare(self, model: Any, tokenizer: Any) -> None:
        """Check the model, derive its stop tokens and context; the model is published last (lock-free reads)."""
        if getattr(tokenizer, "chat_template", None) is None:
            raise InvalidArgument(f"generator model {self.model_id!r} has no chat template")
        self._stop_ids = frozenset(_stop_token_ids(model, tokenizer))
        self._context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self._tokenizer = tokenizer
        self._model = model

    @property
    def model(self) -> Any:
        return self.load()._model

    @property
    def tokenizer(self) -> Any:
        return self.load()._tokenizer

    @property
    def model_id(self) -> str:
        """Names the weights (a chunk-KV cache keys on it): the model directory, resolved."""
        if self._path is not None:
            return str(self._path.resolve())
        if self._model is not None:
            return str(getattr(self._model.config, "_name_or_path", "") or f"model@{id(self._model):x}")
        return DEFAULT_MODEL

    # ------------------------------------------------------------------ prompt to segments
    def segments(self, prompt: Prompt) -> list[Segment]:
        """The prompt as token-id segments: template head, each part, template tail (see the module doc)."""
        tokenizer = self.tokenizer
        messages = prompt.messages()
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # where the user message sits: render once more with a sentinel in its place, so that a short
        # message that also occurs in the template's own text ("a" in "assistant") is not mistaken
        messages[-1] = {"role": "user", "content": USER_SENTINEL}
        marked = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        around = marked.split(USER_SENTINEL)
        if len(around) != 2 or around[0] + prompt.user + around[1] != rendered:
            return [Segment(self._encode([rendered], text_only=False)[0])]  # the template rewrote it: one run
        head, tail = self._encode([around[0], around[1]], text_only=False)
        ids = [head, *self._encode([part.text for part in prompt.parts]), tail]
        keys = [None, *(self._chunk_key(part.chunk_id, part.text) if part.chunk_id else None
                        for part in prompt.parts), None]
        return [Segment(seg, key) for seg, key in zip(ids, keys) if seg]

    def _chunk_key(self, chunk_id: str, text: str) -> tuple[str, str, str]:
        return (self.model_id, str(chunk_id), hashlib.sha256(text.encode("utf-8")).hexdigest())

    def _encode(self, texts: Sequence[str], *, text_only: bool = True) -> list[list[int]]:
        """Token ids of each text, one batched call. `text_only`: a special token's spelling inside the
        text ("<|im_end|>" in a retrieved chunk) is tokenised as text, so a prompt part cannot end the
        turn or forge a role; the template's own head and tail keep their special tokens."""
        if not texts:
            return []
        out = self.tokenizer(list(texts), add_special_tokens=False, split_special_tokens=text_only)
        return [list(ids) for ids in out["input_ids"]]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The token count of each text in this model's tokenizer (no special tokens), one batched call."""
        return [len(ids) for ids in self._encode(list(texts))]

    # ------------------------------------------------------------------ generation
    def generate(self, prompt: Prompt, *, max_new_tokens: int | None = None) -> Generation:
        """The whole answer. A model failure is returned as `Generation.error` (with the text before it);
        bad input (a prompt longer than the model's context, max_new_tokens < 1) raises InvalidArgument."""
        record: dict[str, Any] = {}
        start = time.perf_counter()
        pieces: list[str] = []
        try:
            for piece in self._decode(prompt, self._budget(max_new_tokens), record):
                pieces.append(piece)
        except InvalidArgument:
            raise
        except Exception as exc:  # noqa: BLE001 - never raise for a model failure: the caller keeps its context
            record.update(finish_reason="error", total_ms=(time.perf_counter() - start) * 1e3,
                          error=f"local generator ({self.model_id}) failed: {type(exc).__name__}: {exc}")
        return _generation("".join(pieces), record)

    def stream(self, prompt: Prompt, *, max_new_tokens: int | None = None,
               record: dict[str, Any] | None = None) -> Iterator[str]:
        """Text pieces as they are decoded; a model failure ends the stream with a GenerationError.
        When exhausted, the stream returns the whole Generation (timings, the prefiller's stats) as its
        value, which the pipeline reads. `record`, when given, is filled as the stream runs:
        prompt_tokens, tokens, ttft_ms, prefill_ms, total_ms, finish_reason and the prefiller's stats."""
        record = {} if record is None else record
        pieces: list[str] = []
        try:
            for piece in self._decode(prompt, self._budget(max_new_tokens), record):
                pieces.append(piece)
                yield piece
            return _generation("".join(pieces), record)
        except LaminaError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise GenerationError(
                f"local generator ({self.model_id}) failed: {type(exc).__name__}: {exc}") from exc

    def _budget(self, max_new_tokens: int | None) -> int:
        budget = self.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        if budget < 1:
            raise InvalidArgument(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        return budget

    def _decode(self, prompt: Prompt, max_new_tokens: int, record: dict[str, Any]) -> Iterator[str]:
        """Prefill, then decode one token at a time, yielding each new piece of text; fills `record`."""
        import torch

        model, tokenizer = self.model, self.tokenizer  # loading (once) is not part of the first token's time
        start = time.perf_counter()
        segments = self.segments(prompt)
        prompt_tokens = sum(len(s.token_ids) for s in segments)
        record.update(prompt_tokens=prompt_tokens, tokens=0, finish_reason="length")
        if self._context and prompt_tokens + max_new_tokens > self._context:
            raise InvalidArgument(f"prompt of {prompt_tokens} tokens plus max_new_tokens {max_new_tokens} exceeds "
                                  f"the context of {self._context} tokens of {self.model_id}")
        sampler = _Sampler(self.temperature, self.seed)
        # no_grad around each model call, not around the yields: grad mode is thread-local and the
        # consumer of the stream runs between them
        with torch.no_grad():
            result = self.prefiller.prefill(model, segments)
        record["prefill_ms"] = float(result.stats.get("prefill_ms", (time.perf_counter() - start) * 1e3))
        record["stats"] = dict(result.stats)
        cache, logits = result.past_key_values, result.logits
        answer: list[int] = []
        emitted = ""
        for step in range(max_new_tokens):
            token = sampler(logits)
            if step == 0:
                record["ttft_ms"] = (time.perf_counter() - start) * 1e3
            if token in self._stop_ids:
                record["finish_reason"] = "stop"
                break
            answer.append(token)
            record["tokens"] = len(answer)
            text = tokenizer.decode(answer, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            if not text.endswith(INCOMPLETE) and len(text) > len(emitted):
                yield text[len(emitted):]
                emitted = text
            if step + 1 < max_new_tokens:
                with torch.no_grad():
                    logits = forward_with_cache(model, torch.tensor([[token]]), cache).logits[0, -1]
        text = tokenizer.decode(answer, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if len(text) > len(emitted):  # an incomplete sequence at the very end: flush it as it is
            yield text[len(emitted):]
        record["total_ms"] = (time.perf_counter() - start) * 1e3

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.name, "model": self._spec if self._path is None else str(self._path),
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed,
                "threads": self.threads, "prefiller": getattr(self.prefiller, "name", type(self.prefiller).__name__)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, prefiller: Prefiller | None = None) -> LocalGenerator:
        """The generator `to_dict` described; a prefiller other than the full one is passed in (it holds state)."""
        options = config_options(data, ("model", "max_new_tokens", "temperature", "seed", "threads", "prefiller"),
                                 cls.name)
        described = options.pop("prefiller", FullPrefill.name)
        if prefiller is None and described != FullPrefill.name:
            raise InvalidArgument(f"local generator config names the prefiller {described!r}: pass it as prefiller=")
        return cls(prefiller=prefiller, **options)

    def __repr__(self) -> str:
        return f"LocalGenerator(model={self.model_id!r}, max_new_tokens={self.max_new_tokens})"


class _Sampler:
    """The next token from the last position's logits: argmax at temperature 0, else a softmax sample."""

    def __init__(self, temperature: float, seed: int | None) -> None:
        import torch

        self.temperature = temperature
        self.rng = None
        if temperature > 0:
            self.rng = torch.Generator()
            self.rng.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))

    def __call__(self, logits: Any) -> int:
        import torch

        logits = logits.reshape(-1).float()
        if self.rng is None:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.rng))


def _stop_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """EOS ids (tokenizer and generation config) and the chat template's end-of-turn token: the first
    special token the template writes after an assistant message."""
    stops: set[int] = set()
    for source in (getattr(tokenizer, "eos_token_id", None), getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            stops.add(source)
        elif source:
            stops.update(int(x) for x in source)
    marker = "\u2063lamina\u2063"
    try:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}], tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render a reply: EOS alone
        return stops
    at = rendered.find(marker)
    if at >= 0:
        special = set(tokenizer.all_special_ids)
        tail = tokenizer(rendered[at + len(marker):], add_special_tokens=False)["input_ids"]
        stops.update(next(([t] for t in tail if t in special), []))
    return stops


def _generation(text: str, record: Mapping[str, Any]) -> Generation:
    return Generation(text=text, tokens=int(record.get("tokens", 0)), prompt_tokens=int(record.get("prompt_tokens", 0)),
                      finish_reason=str(record.get("finish_reason", "stop")), ttft_ms=record.get("ttft_ms"),
                      prefill_ms=record.get("prefill_ms"), total_ms=record.get("total_ms"),
                      error=record.get("error"), stats=dict(record.get("stats", {})))

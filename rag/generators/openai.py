"""A generator on an OpenAI-compatible HTTP endpoint: `POST {base}/v1/chat/completions`.

That is what vLLM, llama.cpp's server, Ollama and the hosted APIs speak. Streaming uses
server-sent events (`"stream": true`, `data: {...}` lines until `data: [DONE]`). Only the standard
library is used (`http.client`), so the generator adds no dependency.

Configuration, each from the argument, else the environment:
    base URL   LAMINA_OPENAI_BASE_URL, OPENAI_BASE_URL, else https://api.openai.com
               (with or without a trailing /v1)
    API key    LAMINA_OPENAI_API_KEY, OPENAI_API_KEY (sent as `Authorization: Bearer ...`; none: no header)
    model      LAMINA_OPENAI_MODEL, else "default" (llama.cpp's server ignores it; vLLM and hosted
               APIs need the served name)

Failures (down, refused, timed out, an HTTP error, a malformed reply): `generate` returns a
`Generation` whose `error` names the URL and the failure, `stream` raises `GenerationError`.
`timeout_s` bounds the connection and every read, so a stream that stalls that long fails too.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from lamina.index.errors import InvalidArgument
from lamina.rag.generators.base import config_options, estimate_tokens
from lamina.rag.types import Generation, GenerationError, Prompt

DEFAULT_BASE_URL = "https://api.openai.com"
DEFAULT_MODEL = "default"
DEFAULT_MAX_NEW_TOKENS = 256
CHAT_PATH = "/v1/chat/completions"
ERROR_BODY_CHARS = 300  # of an HTTP error's body, quoted in the message


def _env(*names: str) -> str | None:
    for name in names:
        if value := os.environ.get(name):
            return value
    return None


def normalise_base_url(base_url: str) -> str:
    """scheme://host[:port][/prefix] without a trailing slash or /v1; InvalidArgument if not http(s)."""
    url = base_url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"OpenAI base URL {base_url!r} is not an http(s) URL with a host "
                              "(e.g. http://127.0.0.1:8000 or https://api.openai.com/v1)")
    return url


class OpenAIGenerator:
    """Answers prompts through an OpenAI-compatible `/v1/chat/completions` endpoint (see the module doc).

    `tokenizer` counts tokens for context budgets: a TokenCounter, a Hugging Face tokenizer, or a
    local tokenizer directory; without one, `estimate_tokens`. `stream_generate=True` makes
    `generate` collect a stream, which measures the time to the first token.
    """

    name = "openai"

    def __init__(self, base_url: str | None = None, api_key: str | None = None, model: str | None = None,
                 timeout_s: float = 30.0, tokenizer: Any = None, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 temperature: float = 0.0, stream_generate: bool = False) -> None:
        if float(timeout_s) <= 0:
            raise InvalidArgument(f"timeout_s must be positive, got {timeout_s}")
        if int(max_new_tokens) < 1:
            raise InvalidArgument(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.base_url = normalise_base_url(base_url or _env("LAMINA_OPENAI_BASE_URL", "OPENAI_BASE_URL")
                                           or DEFAULT_BASE_URL)
        self.api_key = api_key or _env("LAMINA_OPENAI_API_KEY", "OPENAI_API_KEY")
        self.model = model or _env("LAMINA_OPENAI_MODEL") or DEFAULT_MODEL
        self.timeout_s = float(timeout_s)
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.stream_generate = bool(stream_generate)
        self._tokenizer = tokenizer

    @property
    def url(self) -> str:
        return self.base_url + CHAT_PATH

    # ------------------------------------------------------------------ tokens
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts in the given tokenizer, else `estimate_tokens` (the endpoint's own tokenizer is unknown)."""
        texts = list(texts)
        tokenizer = self._tokenizer
        if isinstance(tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            tokenizer = self._tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        if tokenizer is None:
            return [estimate_tokens(text) for text in texts]
        if hasattr(tokenizer, "count_tokens"):
            return list(tokenizer.count_tokens(texts))
        if not texts:
            return []
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    # ------------------------------------------------------------------ generation
    def generate(self, prompt: Prompt, *, max_new_tokens: int | None = None) -> Generation:
        """The whole answer; a failed endpoint is returned as `Generation.error`, never raised."""
        start = time.perf_counter()
        if self.stream_generate:
            record: dict[str, Any] = {}
            pieces: list[str] = []
            try:
                pieces.extend(self.stream(prompt, max_new_tokens=max_new_tokens, record=record))
            except GenerationError as exc:
                return _failed("".join(pieces), str(exc), start, record)
            return Generation(text="".join(pieces), tokens=record["tokens"],
                              prompt_tokens=record.get("prompt_tokens", 0), finish_reason=record["finish_reason"],
                              ttft_ms=record.get("ttft_ms"), total_ms=record["total_ms"], stats=record["stats"])
        try:
            reply = self._post(prompt, self._budget(max_new_tokens), stream=False)
            try:
                body = json.loads(reply.read())
            finally:
                reply.close()
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
        except GenerationError as exc:
            return _failed("", str(exc), start, {})
        except (OSError, http.client.HTTPException) as exc:
            return _failed("", self._failure(exc), start, {})
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            return _failed("", f"OpenAI-compatible endpoint {self.url} sent a malformed reply: {exc!r}", start, {})
        usage = body.get("usage") or {}
        total_ms = (time.perf_counter() - start) * 1e3
        return Generation(
            text=text, tokens=int(usage.get("completion_tokens") or self.count_tokens([text])[0]),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            finish_reason=str(choice.get("finish_reason") or "stop"),
            ttft_ms=total_ms, total_ms=total_ms, stats={"endpoint": self.url, "model": body.get("model", self.model)})

    def stream(self, prompt: Prompt, *, max_new_tokens: int | None = None,
               record: dict[str, Any] | None = None) -> Iterator[str]:
        """Text pieces as the endpoint sends them (SSE); a failure raises GenerationError naming the URL.
        `record`, when given, is filled: tokens (streamed pieces, or the usage the endpoint reports),
        ttft_ms, total_ms, finish_reason."""
        record = {} if record is None else record
        start = time.perf_counter()
        record.update(tokens=0, finish_reason="length", stats={"endpoint": self.url, "model": self.model})
        reply = self._post(prompt, self._budget(max_new_tokens), stream=True)
        try:
            for event in _sse_events(reply):
                if event.strip() == "[DONE]":
                    break
                piece = self._delta(event, record)
                if piece:
                    if "ttft_ms" not in record:
                        record["ttft_ms"] = (time.perf_counter() - start) * 1e3
                    record["tokens"] += 1
                    yield piece
        except (OSError, http.client.HTTPException) as exc:
            raise GenerationError(self._failure(exc)) from exc
        finally:
            reply.close()
            record["tokens"] = record.pop("tokens_reported", record["tokens"])  # the endpoint's count, if it sent one
            record["total_ms"] = (time.perf_counter() - start) * 1e3

    def _delta(self, event: str, record: dict[str, Any]) -> str:
        """The text of one streamed chunk; its finish reason and usage go into `record`."""
        try:
            chunk = json.loads(event)
            if "error" in chunk:
                raise GenerationError(f"OpenAI-compatible endpoint {self.url} reported an error: {chunk['error']}")
            usage = chunk.get("usage") or {}
            if usage.get("completion_tokens"):
                record["tokens_reported"] = int(usage["completion_tokens"])
            if usage.get("prompt_tokens"):
                record["prompt_tokens"] = int(usage["prompt_tokens"])
            if not chunk.get("choices"):
                return ""
            choice = chunk["choices"][0]
            if choice.get("finish_reason"):
                record["finish_reason"] = str(choice["finish_reason"])
            return (choice.get("delta") or {}).get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise GenerationError(f"OpenAI-compatible endpoint {self.url} sent a malformed stream event "
                                  f"{event[:80]!r}: {exc!r}") from exc

    def _budget(self, max_new_tokens: int | None) -> int:
        budget = self.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        if budget < 1:
            raise InvalidArgument(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        return budget

    def _post(self, prompt: Prompt, max_new_tokens: int, *, stream: bool) -> http.client.HTTPResponse:
        """Send the request; an HTTP error status or a connection failure raises GenerationError."""
        body = {"model": self.model, "messages": prompt.messages(), "max_tokens": max_new_tokens,
                "temperature": self.temperature, "stream": stream}
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        parts = urlsplit(self.url)
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(parts.hostname, parts.port, timeout=self.timeout_s)
        try:
            connection.request("POST", parts.path, body=json.dumps(body).encode("utf-8"), headers=headers)
            reply = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise GenerationError(self._failure(exc)) from exc
        if reply.status != 200:
            try:
                detail = reply.read(4096).decode("utf-8", "replace").strip()[:ERROR_BODY_CHARS]
            except (OSError, http.client.HTTPException):
                detail = ""
            finally:
                connection.close()
            raise GenerationError(f"OpenAI-compatible endpoint {self.url} answered HTTP {reply.status} "
                                  f"{reply.reason}" + (f": {detail}" if detail else ""))
        return reply

    def _failure(self, exc: BaseException) -> str:
        if isinstance(exc, (TimeoutError, socket.timeout)):
            what = f"timed out after {self.timeout_s:g} s"
        elif isinstance(exc, ConnectionRefusedError):
            what = "connection refused (is the server running?)"
        else:
            what = f"{type(exc).__name__}: {exc}"
        return f"OpenAI-compatible endpoint {self.url} failed: {what}"

    def to_dict(self) -> dict[str, Any]:
        """The configuration, without the API key (a secret: `from_dict` takes it from the environment)."""
        return {"type": self.name, "base_url": self.base_url, "model": self.model, "timeout_s": self.timeout_s,
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "stream_generate": self.stream_generate}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpenAIGenerator:
        known = ("base_url", "api_key", "model", "timeout_s", "max_new_tokens", "temperature", "stream_generate")
        return cls(**config_options(data, known, cls.name))

    def __repr__(self) -> str:
        return f"OpenAIGenerator(base_url={self.base_url!r}, model={self.model!r})"


def _sse_events(reply: http.client.HTTPResponse) -> Iterator[str]:
    """The data of each server-sent event (its `data:` lines joined by newlines), in order."""
    data: list[str] = []
    while True:
        raw = reply.readline()
        if not raw:
            break
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        # other fields (event:, id:, retry:) and comments (":") carry nothing a chat stream needs
    if data:
        yield "\n".join(data)


def _failed(text: str, error: str, start: float, record: Mapping[str, Any]) -> Generation:
    return Generation(text=text, tokens=int(record.get("tokens", 0)), finish_reason="error",
                      ttft_ms=record.get("ttft_ms"), total_ms=(time.perf_counter() - start) * 1e3, error=error)


"""The OpenAI-compatible generator against a fake endpoint served by the test (http.server in a thread)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lamina.index.errors import InvalidArgument
from lamina.rag.generators.base import estimate_tokens
from lamina.rag.generators.openai import OpenAIGenerator, normalise_base_url
from lamina.rag.types import GenerationError, Generator, Prompt, PromptPart

PROMPT = Prompt(parts=(PromptPart("Context: The capital of Freedonia is Zubrowka.\n", chunk_id="c#0"),
                       PromptPart("Question: what is the capital of Freedonia?")), system="Answer from the context.")
PIECES = ["The ", "capital ", "is Zub", "rówka."]


class FakeEndpoint(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions as an OpenAI-compatible server does; `server.mode` picks a failure."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        mode = self.server.mode
        if mode == "http_error":
            return self._send(503, b'{"error": {"message": "model is loading"}}', "application/json")
        if mode == "stall":
            time.sleep(1.0)
        if self.path != "/v1/chat/completions":
            return self._send(404, b"not found", "text/plain")
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(PIECES)}
            reply = {"model": body["model"], "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                     "usage": {"prompt_tokens": 31, "completion_tokens": 7}}
            return self._send(200, json.dumps(reply).encode(), "application/json")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
        events += [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in PIECES]
        events += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
        self.wfile.write(b": a comment line, ignored\n\n")
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        if mode == "malformed":
            self.wfile.write(b"data: {not json\n\n")
        self.wfile.write(b"data: [DONE]\n\n")

    def _send(self, status, payload, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEndpoint)
    server.requests, server.mode = [], "ok"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_generate_sends_the_chat_request(endpoint):
    gen = OpenAIGenerator(base_url=_base(endpoint) + "/v1/", api_key="sk-test", model="smol", max_new_tokens=64)
    assert isinstance(gen, Generator)
    answer = gen.generate(PROMPT)
    assert answer.error is None and answer.text == "".join(PIECES)
    assert (answer.tokens, answer.prompt_tokens, answer.finish_reason) == (7, 31, "stop")
    (request,) = endpoint.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"] == {"model": "smol", "messages": PROMPT.messages(), "max_tokens": 64,
                               "temperature": 0.0, "stream": False}


def test_stream_parses_server_sent_events(endpoint, monkeypatch):
    monkeypatch.setenv("LAMINA_OPENAI_BASE_URL", _base(endpoint))  # no /v1: accepted too
    monkeypatch.delenv("LAMINA_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    gen = OpenAIGenerator()
    record: dict = {}
    assert list(gen.stream(PROMPT, max_new_tokens=5, record=record)) == PIECES
    (request,) = endpoint.requests
    assert request["body"]["stream"] is True and request["body"]["max_tokens"] == 5
    assert "Authorization" not in request["headers"]
    assert record["tokens"] == len(PIECES) and record["finish_reason"] == "stop"
    assert record["ttft_ms"] <= record["total_ms"]
    collected = OpenAIGenerator(stream_generate=True).generate(PROMPT)
    assert collected.text == "".join(PIECES) and collected.ttft_ms <= collected.total_ms


def test_an_endpoint_that_is_down_is_named_in_the_error():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = OpenAIGenerator(base_url=f"http://127.0.0.1:{port}", timeout_s=2)
    answer = gen.generate(PROMPT)
    assert answer.finish_reason == "error" and answer.text == ""
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in answer.error and "refused" in answer.error
    with pytest.raises(GenerationError, match=f"127.0.0.1:{port}.*refused"):
        list(gen.stream(PROMPT))


@pytest.mark.parametrize("mode, expected", [("http_error", "HTTP 503.*model is loading"),
                                             ("stall", "timed out after 0.2 s")])
def test_http_errors_and_timeouts(endpoint, mode, expected):
    endpoint.mode = mode
    gen = OpenAIGenerator(base_url=_base(endpoint), timeout_s=0.2)
    answer = gen.generate(PROMPT)
    assert answer.finish_reason == "error"
    assert re.search(expected, answer.error), answer.error
    with pytest.raises(GenerationError, match=expected):
        list(gen.stream(PROMPT))


def test_a_malformed_stream_keeps_the_text_before_it(endpoint):
    endpoint.mode = "malformed"
    gen = OpenAIGenerator(base_url=_base(endpoint), stream_generate=True)
    answer = gen.generate(PROMPT)
    assert answer.text == "".join(PIECES) and "malformed stream event" in answer.error


def test_token_counts(tiny_llama):
    from transformers import AutoTokenizer

    assert OpenAIGenerator(base_url="http://x").count_tokens(["four word long text", ""]) == [
        estimate_tokens("four word long text"), 0]
    assert estimate_tokens("a" * 40) == 10 and estimate_tokens("a b c") == 4
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    counts = OpenAIGenerator(base_url="http://x", tokenizer=str(tiny_llama)).count_tokens(["Zubrowka is", "東京"])
    assert counts == [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in ["Zubrowka is", "東京"]]


def test_configuration(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://example.test/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.delenv("LAMINA_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("LAMINA_OPENAI_API_KEY", raising=False)
    gen = OpenAIGenerator(model="m")
    assert gen.url == "https://example.test/v1/chat/completions" and gen.api_key == "sk-env"
    monkeypatch.setenv("LAMINA_OPENAI_API_KEY", "sk-lamina")  # Lamina's own variable wins
    assert OpenAIGenerator().api_key == "sk-lamina"
    config = gen.to_dict()
    assert "api_key" not in config and "sk-env" not in json.dumps(config)
    assert OpenAIGenerator.from_dict(config).to_dict() == config
    assert normalise_base_url("http://h:8080/openai/v1/") == "http://h:8080/openai"
    with pytest.raises(InvalidArgument, match="not an http"):
        OpenAIGenerator(base_url="ftp://host")
    with pytest.raises(InvalidArgument, match="timeout_s"):
        OpenAIGenerator(base_url="http://h", timeout_s=0)

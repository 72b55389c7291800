"""Hosted-API backends (OpenAI-compatible, Anthropic, Gemini) and their SSE plumbing.

Two layers: wire-level tests against `httpx.MockTransport` (exact bytes, chunk boundaries,
transport failures), then end-to-end tests through the loopback fakes in tests/fakes.
"""

from __future__ import annotations

import contextlib
import asyncio
import json
from typing import Any, AsyncIterator, Callable

import httpx
import pytest

from runner.backends.anthropic import AnthropicBackend
from runner.backends.base import BackendError, Call, Done, TextDelta, ThinkingDelta, Timeouts, Usage
from runner.backends.gemini import GeminiBackend
from runner.backends.openai import OpenAIBackend
from runner.redact import redact
from runner.backends.sse import parse_sse, sse_lines
from tests.fakes import Fault
from tests.fakes.fixtures import DEEPSEEK_REASONING, GEMINI_THINKING
from tests.fakes.tokens import message_tokens

SECRET = "test-key-SECRET123"


# --- helpers ----------------------------------------------------------------------------------


def run(coro):
    return asyncio.run(coro)


async def _collect(backend: Any, call: Call) -> list[Any]:
    try:
        return [event async for event in backend.stream(call)]
    finally:
        await backend.aclose()


def collect(backend: Any, call: Call | None = None) -> list[Any]:
    return run(_collect(backend, call or Call(model="m", messages=[{"role": "user", "content": "hi"}])))


def failure(backend: Any, call: Call | None = None) -> BackendError:
    with pytest.raises(BackendError) as info:
        collect(backend, call)
    err = info.value
    assert SECRET not in str(err) and SECRET not in repr(err.args)
    return err


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def thinking_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, ThinkingDelta))


def done_of(events: list[Any]) -> Done:
    assert isinstance(events[-1], Done)
    assert sum(isinstance(e, Done) for e in events) == 1
    return events[-1]


def sse(*items: Any, event: bool = False) -> bytes:
    """An SSE body: dicts become `data: json`, strings are sent as data verbatim,
    (name, dict) pairs become `event: name` + `data: json`."""
    out = []
    for item in items:
        if isinstance(item, tuple):
            name, obj = item
            out.append(f"event: {name}\ndata: {json.dumps(obj)}\n\n")
        elif isinstance(item, str):
            out.append(f"data: {item}\n\n")
        else:
            out.append(f"data: {json.dumps(item)}\n\n")
    return "".join(out).encode()


class Mock:
    """A MockTransport that records requests and answers with a fixed response."""

    def __init__(
        self,
        body: bytes | Callable[[], AsyncIterator[bytes]] = b"",
        status: int = 200,
        headers: dict[str, str] | None = None,
        exc: Exception | None = None,
    ) -> None:
        self.body, self.status, self.headers, self.exc = body, status, headers or {}, exc
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.exc:
            raise self.exc
        content = self.body() if callable(self.body) else self.body
        headers = {"content-type": "text/event-stream", **self.headers}
        return httpx.Response(self.status, headers=headers, content=content)

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)


def chunked(*parts: bytes, then: Exception | None = None) -> Callable[[], AsyncIterator[bytes]]:
    async def gen() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
        if then:
            raise then

    return gen


# --- SSE parser -------------------------------------------------------------------------------


async def _parse(*chunks: bytes) -> list[tuple[str, str]]:
    async def source() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c

    return [item async for item in parse_sse(sse_lines(source()))]


def test_sse_fields_comments_multiline_and_dispatch():
    body = (
        b": keep-alive comment\n"
        b"event: message_start\n"
        b"data: {\"a\":1}\n"
        b"\n"
        b"data: line one\n"
        b"data: line two\n"
        b"\n"
        b"event: lonely\n"  # an event with no data is dropped
        b"\n"
        b"data:no-space\n"
        b"id: 7\n"
        b"retry: 100\n"
        b"\n"
    )
    assert run(_parse(body)) == [
        ("message_start", '{"a":1}'),
        ("message", "line one\nline two"),
        ("message", "no-space"),
    ]


def test_sse_crlf_cr_and_boundaries_split_anywhere():
    body = "\ufeffevent: x\r\ndata: 1\r\n\r\ndata: 2\r\rdata: é\n\n".encode()
    expected = [("x", "1"), ("message", "2"), ("message", "é")]
    assert run(_parse(body)) == expected
    # Every split point, including inside CRLF and inside a multi-byte character.
    for i in range(1, len(body)):
        assert run(_parse(body[:i], body[i:])) == expected, i
    assert run(_parse(*[body[i : i + 1] for i in range(len(body))])) == expected


def test_sse_final_event_without_blank_line():
    assert run(_parse(b"data: a\n\ndata: last")) == [("message", "a"), ("message", "last")]
    assert run(_parse(b"event: e\ndata: last\r\n")) == [("e", "last")]


def test_sse_unicode_line_separators_stay_inside_data():
    # JSON may carry U+2028/U+2029/U+0085 raw; splitting on them would corrupt the chunk.
    payload = json.dumps({"t": "a\u2028b\u2029c\x85d"}, ensure_ascii=False)
    assert run(_parse(f"data: {payload}\n\n".encode())) == [("message", payload)]


def test_redact():
    assert redact("key sk-123 and sk-123", ["sk-123"]) == "key *** and ***"
    assert redact("nothing here", ["", None]) == "nothing here"
    assert redact("abcdef", ["abc", "abcdef"]) == "***"


# --- OpenAI-compatible ------------------------------------------------------------------------


def openai_chunk(content: str | None = None, *, finish: str | None = None, **delta: Any) -> dict:
    if content is not None:
        delta["content"] = content
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def openai_usage(prompt: int, completion: int, **extra: Any) -> dict:
    return {"id": "c1", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                                 "total_tokens": prompt + completion, **extra}}


def test_openai_text_usage_and_request():
    mock = Mock(sse(
        openai_chunk("", role="assistant"),
        openai_chunk("Hello"),
        openai_chunk(", world"),
        openai_chunk(finish="stop"),
        openai_usage(12, 3, prompt_tokens_details={"cached_tokens": 8},
                     completion_tokens_details={"reasoning_tokens": 0}),
        "[DONE]",
    ))
    backend = OpenAIBackend("https://api.example/v1/", SECRET, transport=mock.transport)
    call = Call(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}], system="be brief",
                max_output_tokens=50, temperature=0.2, seed=7)
    events = collect(backend, call)
    assert text_of(events) == "Hello, world"
    done = done_of(events)
    assert done.finish_reason == "stop"
    assert done.usage == Usage(input_tokens=12, output_tokens=3, cache_read_tokens=8, reasoning_tokens=0)

    req = mock.requests[0]
    assert req.method == "POST" and str(req.url) == "https://api.example/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {SECRET}"
    assert mock.json == {
        "model": "gpt-4.1",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "seed": 7,
    }


def test_openai_max_tokens_field_and_no_key():
    mock = Mock(sse(openai_chunk("x", finish="length"), "[DONE]"))
    backend = OpenAIBackend("http://127.0.0.1:1234/v1", None, provider="lmstudio",
                            max_tokens_field="max_tokens", transport=mock.transport)
    events = collect(backend, Call("local", [{"role": "user", "content": "q"}], max_output_tokens=9))
    assert mock.json["max_tokens"] == 9 and "max_completion_tokens" not in mock.json
    assert "authorization" not in mock.requests[0].headers
    done = done_of(events)
    # [DONE] without a usage chunk: the caller estimates.
    assert done.finish_reason == "length"
    assert done.usage == Usage()


def test_openai_deepseek_reasoning_and_cache_hits():
    mock = Mock(sse(
        openai_chunk(reasoning_content="Let me think. "),
        openai_chunk(reasoning_content="Done."),
        openai_chunk("42", finish="stop"),
        openai_usage(100, 20, prompt_cache_hit_tokens=64, prompt_cache_miss_tokens=36,
                     completion_tokens_details={"reasoning_tokens": 15}),
        "[DONE]",
    ))
    events = collect(OpenAIBackend("https://api.deepseek.com", SECRET, provider="deepseek",
                                   transport=mock.transport))
    assert thinking_of(events) == "Let me think. Done." and text_of(events) == "42"
    assert isinstance(events[0], ThinkingDelta)
    assert done_of(events).usage == Usage(input_tokens=100, output_tokens=20, cache_read_tokens=64,
                                          reasoning_tokens=15)


def test_openai_ollama_v1_reasoning_field():
    mock = Mock(sse(openai_chunk(reasoning="hmm"), openai_chunk("ok", finish="stop"), "[DONE]"))
    events = collect(OpenAIBackend("http://127.0.0.1:11434/v1", None, provider="ollama",
                                   transport=mock.transport))
    assert thinking_of(events) == "hmm" and text_of(events) == "ok"


def test_openai_xai_reasoning_counted_outside_completion():
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 312,
             "completion_tokens_details": {"reasoning_tokens": 300}}
    mock = Mock(sse(openai_chunk("hi", finish="stop"), {"choices": [], "usage": usage}, "[DONE]"))
    events = collect(OpenAIBackend("https://api.x.ai/v1", SECRET, provider="xai", transport=mock.transport))
    assert done_of(events).usage.output_tokens == 302


def test_openai_mistral_request_quirks():
    mock = Mock(sse(openai_chunk("ok", finish="stop"), openai_usage(5, 1), "[DONE]"))
    backend = OpenAIBackend("https://api.mistral.ai/v1", SECRET, provider="mistral",
                            max_tokens_field="max_tokens", transport=mock.transport)
    collect(backend, Call("mistral-small-latest", [{"role": "user", "content": "q"}], seed=3))
    assert "stream_options" not in mock.json
    assert mock.json["random_seed"] == 3 and "seed" not in mock.json


def test_openai_reasoning_effort_and_extra_body():
    mock = Mock(sse(openai_chunk("ok", finish="stop"), "[DONE]"))
    call = Call("o4-mini", [{"role": "user", "content": "q"}], think="high", max_output_tokens=100,
                backend_options={"extra_body": {"service_tier": "flex"}})
    collect(OpenAIBackend("https://api.openai.com/v1", SECRET, transport=mock.transport), call)
    assert mock.json["reasoning_effort"] == "high"
    assert mock.json["service_tier"] == "flex"
    assert mock.json["max_completion_tokens"] == 100


def test_openai_stream_without_done_is_an_error():
    mock = Mock(sse(openai_chunk("partial answer")))
    err = failure(OpenAIBackend("https://api.example/v1", SECRET, transport=mock.transport))
    assert err.kind == "stream" and err.retryable


def test_openai_connection_dropped_mid_stream():
    body = chunked(sse(openai_chunk("partial")), then=httpx.RemoteProtocolError("peer closed connection"))
    err = failure(OpenAIBackend("https://api.example/v1", SECRET, transport=Mock(body).transport))
    assert err.kind == "stream" and err.retryable


def test_openai_partial_text_arrives_before_the_error():
    mock = Mock(sse(openai_chunk("partial")))
    seen: list[Any] = []

    async def go() -> None:
        backend = OpenAIBackend("https://api.example/v1", SECRET, transport=mock.transport)
        async for event in backend.stream(Call("m", [{"role": "user", "content": "q"}])):
            seen.append(event)

    with pytest.raises(BackendError):
        run(go())
    assert seen == [TextDelta("partial")]


@pytest.mark.parametrize(
    "error, kind, retryable",
    [
        ({"message": "The server had an error", "type": "server_error", "code": None}, "server", True),
        ({"message": "Overloaded", "type": None}, "overloaded", True),
        ({"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}, "rate_limit", True),
        ({"message": "Invalid prompt", "type": "invalid_request_error"}, "bad_request", False),
    ],
)
def test_openai_error_line_mid_stream(error, kind, retryable):
    mock = Mock(sse(openai_chunk("partial"), {"error": error}, "[DONE]"))
    err = failure(OpenAIBackend("https://api.example/v1", SECRET, transport=mock.transport))
    assert (err.kind, err.retryable) == (kind, retryable)
    assert error["message"] in err.message


def test_openai_compatible_error_shapes_mid_stream():
    # llama.cpp: a non-SSE `error:` line; vLLM: a bare {"object": "error"} chunk.
    llama = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n' \
        b'error: {"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}\n\n'
    err = failure(OpenAIBackend("http://127.0.0.1:8080/v1", None, transport=Mock(llama).transport))
    assert err.kind == "context" and "available context size" in err.message
    vllm = sse(openai_chunk("x"), {"object": "error", "message": "engine died", "type": "InternalServerError",
                                   "code": 500})
    err = failure(OpenAIBackend("http://127.0.0.1:8000/v1", None, transport=Mock(vllm).transport))
    assert (err.kind, err.retryable) == ("server", True) and "engine died" in err.message


def test_malformed_chunk_is_a_stream_error():
    err = failure(OpenAIBackend("https://api.example/v1", SECRET,
                                transport=Mock(b"data: {not json " + SECRET.encode() + b"\n\n").transport))
    assert err.kind == "stream" and "***" in err.message


def test_server_that_keeps_the_body_open_after_done(monkeypatch):
    import runner.backends.sse as sse_module

    monkeypatch.setattr(sse_module, "DRAIN_TIMEOUT", 0.2)

    async def stall() -> AsyncIterator[bytes]:
        yield sse(openai_chunk("ok", finish="stop"), openai_usage(3, 1), "[DONE]")
        await asyncio.sleep(30)
        yield b""

    events = collect(OpenAIBackend("https://api.example/v1", SECRET, transport=Mock(stall).transport))
    assert text_of(events) == "ok" and done_of(events).usage.output_tokens == 1


def test_openai_content_filter_is_blocked():
    mock = Mock(sse(openai_chunk("some", finish="content_filter"), openai_usage(1, 1), "[DONE]"))
    err = failure(OpenAIBackend("https://api.example/v1", SECRET, transport=mock.transport))
    assert err.kind == "blocked" and not err.retryable


def test_openai_status_errors_and_key_redaction():
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {SECRET}.",
                                 "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
    mock = Mock(body, status=401, headers={"content-type": "application/json"})
    err = failure(OpenAIBackend("https://api.example/v1", SECRET, transport=mock.transport))
    assert err.kind == "auth" and err.status == 401 and not err.retryable
    assert "Incorrect API key provided: ***" in err.message

    body = json.dumps({"error": {"message": "Rate limit reached", "type": "requests"}}).encode()
    mock = Mock(body, status=429, headers={"retry-after-ms": "1500", "retry-after": "9"})
    err = failure(OpenAIBackend("https://api.example/v1", SECRET, transport=mock.transport))
    assert (err.kind, err.retryable, err.retry_after) == ("rate_limit", True, 1.5)

    body = json.dumps({"error": {"message": "This model's maximum context length is 128000 tokens.",
                                 "type": "invalid_request_error", "code": "context_length_exceeded"}}).encode()
    err = failure(OpenAIBackend("https://api.example/v1", SECRET, transport=Mock(body, status=400).transport))
    assert err.kind == "context" and err.status == 400

    err = failure(OpenAIBackend("https://api.example/v1", SECRET,
                                transport=Mock(b"<html>Bad Gateway</html>", status=502).transport))
    assert err.kind == "server" and err.retryable and "Bad Gateway" in err.message


def test_openai_secret_in_custom_header_is_redacted():
    body = json.dumps({"error": {"message": "bad api-key GATEWAY-TOKEN-9"}}).encode()
    backend = OpenAIBackend("https://gw.example/v1", None, headers={"api-key": "GATEWAY-TOKEN-9", "X-Title": "runner"},
                            transport=Mock(body, status=403).transport)
    err = failure(backend)
    assert "GATEWAY-TOKEN-9" not in err.message and err.kind == "auth"


def test_transport_failures_map_to_kinds():
    cases = [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connect"),
        (httpx.ConnectTimeout("timed out"), "timeout"),
        (httpx.ReadTimeout("timed out"), "timeout"),
        (httpx.PoolTimeout("timed out"), "timeout"),
        (httpx.ReadError("reset"), "stream"),
    ]
    for exc, kind in cases:
        backend = OpenAIBackend("http://127.0.0.1:9/v1", SECRET, transport=Mock(exc=exc).transport)
        err = failure(backend)
        assert (err.kind, err.retryable) == (kind, True), exc
    err = failure(OpenAIBackend("http://127.0.0.1:9/v1", SECRET,
                                transport=Mock(exc=httpx.ConnectError("refused")).transport))
    assert err.message.startswith("cannot connect to http://127.0.0.1:9/v1: ")


def test_real_connection_refused():
    # No transport: a real socket to a port nothing listens on.
    err = failure(OpenAIBackend("http://127.0.0.1:9/v1", SECRET),
                  Call("m", [{"role": "user", "content": "q"}], timeouts=Timeouts(connect=2)))
    assert err.kind in ("connect", "timeout") and err.retryable


def test_client_is_reused_and_timeouts_come_from_the_call():
    seen: list[dict] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, content=sse(openai_chunk("ok", finish="stop"), "[DONE]"))

    async def go() -> None:
        backend = OpenAIBackend("https://api.example/v1", SECRET, transport=httpx.MockTransport(handler))
        call = Call("m", [{"role": "user", "content": "q"}], timeouts=Timeouts(connect=3, first_token=45))
        [e async for e in backend.stream(call)]
        (client,) = backend._http._clients
        [e async for e in backend.stream(call)]
        assert backend._http._clients == [client]
        await backend.aclose()
        assert client.is_closed

    run(go())
    assert seen[0] == {"connect": 3, "read": 46, "write": 60, "pool": 60}  # read: the executor's limit fires first


# --- Anthropic --------------------------------------------------------------------------------


def anthropic_stream(*deltas: dict, stop_reason: str = "end_turn", output_tokens: int = 7,
                     stop: bool = True, usage: dict | None = None) -> bytes:
    items: list[Any] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude",
            "usage": usage or {"input_tokens": 20, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    items += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
    items += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 3}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason},
                           "usage": {"output_tokens": output_tokens}}),
    ]
    if stop:
        items.append(("message_stop", {"type": "message_stop"}))
    return sse(*items)


def test_anthropic_text_usage_and_request():
    mock = Mock(anthropic_stream(
        {"type": "text_delta", "text": "Hello"}, {"type": "text_delta", "text": " there"},
        usage={"input_tokens": 20, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 50,
               "output_tokens": 1},
    ))
    backend = AnthropicBackend("https://api.anthropic.com", SECRET, transport=mock.transport)
    call = Call("claude-sonnet-4-5", [{"role": "user", "content": "hi"}], system="sys", temperature=0.5)
    events = collect(backend, call)
    assert text_of(events) == "Hello there"
    done = done_of(events)
    assert done.finish_reason == "stop"
    assert done.usage == Usage(input_tokens=1070, output_tokens=7, cache_read_tokens=1000, cache_write_tokens=50)
    req = mock.requests[0]
    assert str(req.url) == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == SECRET and req.headers["anthropic-version"] == "2023-06-01"
    assert mock.json == {"model": "claude-sonnet-4-5", "max_tokens": 4096, "stream": True, "system": "sys",
                         "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}


def test_anthropic_thinking_request_and_deltas():
    mock = Mock(anthropic_stream(
        {"type": "thinking_delta", "thinking": "pondering"},
        {"type": "signature_delta", "signature": "sig"},
        {"type": "text_delta", "text": "answer"},
        stop_reason="max_tokens",
    ))
    call = Call("claude", [{"role": "user", "content": "q"}], think=True, temperature=0.3, max_output_tokens=8000)
    events = collect(AnthropicBackend("https://api.anthropic.com/v1/", SECRET, transport=mock.transport), call)
    assert thinking_of(events) == "pondering" and text_of(events) == "answer"
    assert done_of(events).finish_reason == "length"
    assert str(mock.requests[0].url) == "https://api.anthropic.com/v1/messages"  # a /v1 base is tolerated
    assert mock.json["thinking"] == {"type": "enabled", "budget_tokens": 4000}
    assert mock.json["max_tokens"] == 8000 and "temperature" not in mock.json


@pytest.mark.parametrize("max_out", [None, 1024, 3000, 100])
def test_anthropic_thinking_budget_is_valid(max_out):
    backend = AnthropicBackend("https://api.anthropic.com", SECRET)
    body = backend.request_body(Call("c", [{"role": "user", "content": "q"}], think="high", max_output_tokens=max_out))
    budget = body["thinking"]["budget_tokens"]
    assert 1024 <= budget < body["max_tokens"]


def test_anthropic_error_event_mid_stream():
    body = sse(
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "partial"}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    err = failure(AnthropicBackend("https://api.anthropic.com", SECRET, transport=Mock(body).transport))
    assert (err.kind, err.retryable) == ("overloaded", True) and "Overloaded" in err.message


def test_anthropic_without_message_stop_is_an_error():
    mock = Mock(anthropic_stream({"type": "text_delta", "text": "partial"}, stop=False))
    err = failure(AnthropicBackend("https://api.anthropic.com", SECRET, transport=mock.transport))
    assert err.kind == "stream" and err.retryable


def test_anthropic_status_529_and_401():
    body = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).encode()
    err = failure(AnthropicBackend("https://api.anthropic.com", SECRET,
                                   transport=Mock(body, status=529, headers={"retry-after": "3"}).transport))
    assert (err.kind, err.retryable, err.status, err.retry_after) == ("overloaded", True, 529, 3.0)
    body = json.dumps({"type": "error", "error": {"type": "authentication_error",
                                                  "message": f"invalid x-api-key {SECRET}"}}).encode()
    err = failure(AnthropicBackend("https://api.anthropic.com", SECRET, transport=Mock(body, status=401).transport))
    assert err.kind == "auth" and "invalid x-api-key ***" in err.message


# --- Gemini -----------------------------------------------------------------------------------


def gemini_chunk(*parts: dict, finish: str | None = None, usage: dict | None = None) -> dict:
    chunk: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": list(parts)}, "index": 0}],
                             "modelVersion": "gemini-2.5-pro"}
    if finish:
        chunk["candidates"][0]["finishReason"] = finish
    if usage:
        chunk["usageMetadata"] = usage
    return chunk


def test_gemini_text_thinking_usage_and_request():
    mock = Mock(sse(
        gemini_chunk({"text": "thinking...", "thought": True},
                     usage={"promptTokenCount": 30, "thoughtsTokenCount": 5, "totalTokenCount": 35}),
        gemini_chunk({"text": "Hel"}, usage={"promptTokenCount": 30, "candidatesTokenCount": 1,
                                             "thoughtsTokenCount": 9}),
        gemini_chunk({"text": "lo"}, finish="STOP",
                     usage={"promptTokenCount": 30, "candidatesTokenCount": 2, "thoughtsTokenCount": 9,
                            "cachedContentTokenCount": 16}),
    ).replace(b"\n", b"\r\n"))  # Google sends CRLF
    backend = GeminiBackend("https://generativelanguage.googleapis.com/", SECRET, transport=mock.transport)
    call = Call("gemini-2.5-pro", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                   {"role": "user", "content": "again"}],
                system="sys", max_output_tokens=100, temperature=0.1, seed=4, think=True)
    events = collect(backend, call)
    assert thinking_of(events) == "thinking..." and text_of(events) == "Hello"
    done = done_of(events)
    assert done.finish_reason == "stop"
    assert done.usage == Usage(input_tokens=30, output_tokens=11, cache_read_tokens=16, reasoning_tokens=9)
    req = mock.requests[0]
    assert str(req.url) == ("https://generativelanguage.googleapis.com/v1beta/models/"
                            "gemini-2.5-pro:streamGenerateContent?alt=sse")
    assert req.headers["x-goog-api-key"] == SECRET and SECRET not in str(req.url)
    assert mock.json == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "yo"}]},
                     {"role": "user", "parts": [{"text": "again"}]}],
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "generationConfig": {"maxOutputTokens": 100, "temperature": 0.1, "seed": 4,
                             "thinkingConfig": {"includeThoughts": True}},
    }


def test_gemini_max_tokens_is_length():
    mock = Mock(sse(gemini_chunk({"text": "cut"}, finish="MAX_TOKENS",
                                 usage={"promptTokenCount": 3, "candidatesTokenCount": 1})))
    events = collect(GeminiBackend("https://g.example", SECRET, transport=mock.transport))
    assert done_of(events).finish_reason == "length"
    assert done_of(events).usage == Usage(input_tokens=3, output_tokens=1, reasoning_tokens=None)


def test_gemini_blocked_prompt():
    mock = Mock(sse({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                     "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}))
    err = failure(GeminiBackend("https://g.example", SECRET, transport=mock.transport))
    assert (err.kind, err.retryable) == ("blocked", False) and "PROHIBITED_CONTENT" in err.message


def test_gemini_safety_finish_is_blocked():
    mock = Mock(sse(gemini_chunk({"text": "partial"}), gemini_chunk(finish="SAFETY")))
    err = failure(GeminiBackend("https://g.example", SECRET, transport=mock.transport))
    assert (err.kind, err.retryable) == ("blocked", False) and "SAFETY" in err.message


def test_gemini_stream_without_finish_reason_is_an_error():
    mock = Mock(sse(gemini_chunk({"text": "partial"}, usage={"promptTokenCount": 3, "candidatesTokenCount": 1})))
    err = failure(GeminiBackend("https://g.example", SECRET, transport=mock.transport))
    assert err.kind == "stream" and err.retryable


def test_gemini_error_chunk_mid_stream():
    mock = Mock(sse(gemini_chunk({"text": "partial"}),
                    {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}))
    err = failure(GeminiBackend("https://g.example", SECRET, transport=mock.transport))
    assert err.retryable and err.kind in ("server", "overloaded")


def test_gemini_status_errors():
    body = json.dumps([{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}])
    err = failure(GeminiBackend("https://g.example", SECRET,
                                transport=Mock(body.encode(), status=429, headers={"retry-after": "20"}).transport))
    assert (err.kind, err.retry_after) == ("rate_limit", 20.0) and "Resource has been exhausted" in err.message
    body = json.dumps({"error": {"code": 400, "message": f"API key not valid: {SECRET}", "status": "INVALID_ARGUMENT"}})
    err = failure(GeminiBackend("https://g.example", SECRET, transport=Mock(body.encode(), status=400).transport))
    assert err.kind == "bad_request" and "***" in err.message
    body = json.dumps({"error": {"code": 404, "message": "models/nope is not found", "status": "NOT_FOUND"}})
    err = failure(GeminiBackend("https://g.example", SECRET, transport=Mock(body.encode(), status=404).transport))
    assert err.kind == "not_found" and not err.retryable


def test_gemini_retry_delay_without_header():
    body = json.dumps({"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
                                 "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                              "retryDelay": "37s"}]}})
    err = failure(GeminiBackend("https://g.example", SECRET, transport=Mock(body.encode(), status=429).transport))
    assert (err.kind, err.retry_after) == ("rate_limit", 37.0)


# --- end to end through the loopback fakes (tests/fakes) --------------------------------------

KEY = "test-key"  # what the fixtures' fakes expect
HI = [{"role": "user", "content": "Say hello."}]


def openai_for(fake: Any, provider: str = "openai", key: str = KEY, **kw: Any) -> OpenAIBackend:
    base = fake.url if provider == "deepseek" else fake.url + "/v1"  # DeepSeek's base has no /v1
    return OpenAIBackend(base, key, provider=provider, **kw)


def test_fake_openai_text_usage(fake_openai):
    fake_openai.replies["gpt-4.1"] = "Hello from the fake."
    call = Call("gpt-4.1", HI, system="Be brief.", max_output_tokens=100, temperature=0.0, seed=1)
    events = collect(openai_for(fake_openai), call)
    assert text_of(events) == "Hello from the fake."
    done = done_of(events)
    assert done.finish_reason == "stop"
    prompt = message_tokens([{"role": "system", "content": "Be brief."}, *HI])
    assert done.usage.input_tokens == prompt
    assert done.usage.output_tokens and done.usage.output_tokens > 0
    req = fake_openai.requests[-1]
    assert req.path == "/v1/chat/completions" and req.headers["authorization"] == f"Bearer {KEY}"
    assert req.json["stream_options"] == {"include_usage": True}
    assert req.json["max_completion_tokens"] == 100


def test_fake_openai_o_series_needs_max_completion_tokens(fake_openai):
    call = Call("o3", HI, max_output_tokens=500)
    done = done_of(collect(openai_for(fake_openai), call))
    assert done.usage.reasoning_tokens and done.usage.reasoning_tokens > 0
    assert done.usage.output_tokens >= done.usage.reasoning_tokens
    # The wrong field is a 400 from an o-series model, named in the message.
    err = failure(openai_for(fake_openai, max_tokens_field="max_tokens"), call)
    assert err.kind == "bad_request" and err.status == 400 and "max_completion_tokens" in err.message


def test_fake_openai_length_finish(fake_openai):
    fake_openai.replies["gpt-4.1"] = "one two three four five six seven eight nine ten eleven twelve"
    done = done_of(collect(openai_for(fake_openai), Call("gpt-4.1", HI, max_output_tokens=3)))
    assert done.finish_reason == "length" and done.usage.output_tokens == 3


def test_fake_deepseek_reasoning_and_cache(fake_deepseek):
    call = Call("deepseek-v4-pro", HI)
    events = collect(openai_for(fake_deepseek, "deepseek"), call)
    assert thinking_of(events) == DEEPSEEK_REASONING["deepseek-v4-pro"]
    assert text_of(events)
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ThinkingDelta) for e in events[:first_text])
    done = done_of(events)
    assert done.usage.reasoning_tokens and done.usage.output_tokens > done.usage.reasoning_tokens
    assert fake_deepseek.requests[-1].path == "/chat/completions"


def test_fake_xai_and_mistral(fake_xai, fake_mistral):
    events = collect(openai_for(fake_xai, "xai"), Call("grok-4.3", HI))
    assert text_of(events) and done_of(events).usage.input_tokens == message_tokens(HI)
    backend = openai_for(fake_mistral, "mistral", max_tokens_field="max_tokens")
    events = collect(backend, Call("mistral-small-latest", HI, max_output_tokens=50, seed=2))
    assert text_of(events) and done_of(events).finish_reason == "stop"
    sent = fake_mistral.requests[-1].json
    assert sent["max_tokens"] == 50 and "stream_options" not in sent and sent["random_seed"] == 2


def test_fake_anthropic_text_usage(fake_anthropic):
    fake_anthropic.replies["claude-sonnet-4-5"] = "Hello from Claude."
    call = Call("claude-sonnet-4-5", HI, system="Be brief.", temperature=0.2)
    events = collect(AnthropicBackend(fake_anthropic.url, KEY), call)
    assert text_of(events) == "Hello from Claude."
    done = done_of(events)
    assert done.finish_reason == "stop"
    assert done.usage.input_tokens and done.usage.input_tokens > 0
    assert done.usage.output_tokens and done.usage.output_tokens > 0
    req = fake_anthropic.requests[-1]
    assert req.path == "/v1/messages" and req.headers["anthropic-version"] == "2023-06-01"
    assert req.json["max_tokens"] == 4096 and req.json["system"] == "Be brief."


def test_fake_anthropic_thinking(fake_anthropic):
    for think, max_out in ((True, None), ("high", 2000), (True, 500)):
        call = Call("claude-sonnet-4-5", HI, think=think, max_output_tokens=max_out, temperature=0.7)
        events = collect(AnthropicBackend(fake_anthropic.url, KEY), call)
        assert thinking_of(events) and text_of(events), (think, max_out)
        assert isinstance(events[0], ThinkingDelta)
        assert done_of(events).finish_reason == "stop"


def test_fake_gemini_text_thinking_usage(fake_gemini):
    fake_gemini.replies["gemini-2.5-flash"] = "Hello from Gemini."
    call = Call("gemini-2.5-flash", HI, system="Be brief.", think=True)
    events = collect(GeminiBackend(fake_gemini.url, KEY), call)
    assert text_of(events) == "Hello from Gemini."
    assert thinking_of(events).strip() == GEMINI_THINKING["gemini-2.5-flash"]
    done = done_of(events)
    assert done.finish_reason == "stop"
    assert done.usage.reasoning_tokens and done.usage.output_tokens > done.usage.reasoning_tokens
    req = fake_gemini.requests[-1]
    assert req.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert req.query == {"alt": "sse"} and req.headers["x-goog-api-key"] == KEY
    # Thoughts are billed even when not shown.
    done = done_of(collect(GeminiBackend(fake_gemini.url, KEY), Call("gemini-2.5-flash", HI)))
    assert done.usage.reasoning_tokens and done.usage.output_tokens > done.usage.reasoning_tokens


def test_fake_gemini_max_tokens(fake_gemini):
    done = done_of(collect(GeminiBackend(fake_gemini.url, KEY), Call("gemini-2.5-flash", HI, max_output_tokens=5)))
    assert done.finish_reason == "length"


def test_fake_gemini_blocked_prompt(fake_gemini):
    fake_gemini.push_fault(Fault(error_type="blocked"))
    err = failure(GeminiBackend(fake_gemini.url, KEY), Call("gemini-2.5-pro", HI))
    assert (err.kind, err.retryable) == ("blocked", False) and "SAFETY" in err.message


def _hosted(fake_openai, fake_anthropic, fake_gemini, key: str = KEY) -> list[tuple[Any, Callable[[], Any], str]]:
    return [
        (fake_openai, lambda: openai_for(fake_openai, key=key), "gpt-4.1"),
        (fake_anthropic, lambda: AnthropicBackend(fake_anthropic.url, key), "claude-sonnet-4-5"),
        (fake_gemini, lambda: GeminiBackend(fake_gemini.url, key), "gemini-2.5-pro"),
    ]


def test_fake_wrong_key_is_auth_and_never_echoed(fake_openai, fake_anthropic, fake_gemini):
    for _fake, make, model in _hosted(fake_openai, fake_anthropic, fake_gemini, key=SECRET):
        err = failure(make(), Call(model, HI))  # failure() asserts SECRET is absent
        assert err.kind in ("auth", "bad_request") and not err.retryable, (model, err.kind)
        assert err.status in (400, 401, 403)


def test_fake_unknown_model_is_not_found(fake_openai, fake_anthropic, fake_gemini):
    for _fake, make, model in _hosted(fake_openai, fake_anthropic, fake_gemini):
        err = failure(make(), Call(model + "-nope", HI))
        assert (err.kind, err.status, err.retryable) == ("not_found", 404, False), model


def test_fake_rate_limit_with_retry_after(fake_openai, fake_anthropic, fake_gemini):
    for fake, make, model in _hosted(fake_openai, fake_anthropic, fake_gemini):
        fake.push_fault(Fault(status=429, retry_after="7"))
        err = failure(make(), Call(model, HI))
        assert (err.kind, err.retryable, err.retry_after) == ("rate_limit", True, 7.0), model
    fake_openai.push_fault(Fault(status=429, retry_after="7", retry_after_ms="250"))
    assert failure(openai_for(fake_openai), Call("gpt-4.1", HI)).retry_after == 0.25


def test_fake_overloaded_529(fake_anthropic):
    fake_anthropic.push_fault(Fault(status=529))
    err = failure(AnthropicBackend(fake_anthropic.url, KEY), Call("claude-sonnet-4-5", HI))
    assert (err.kind, err.retryable, err.status) == ("overloaded", True, 529)


def test_fake_server_error_500_is_retryable(fake_openai, fake_anthropic, fake_gemini):
    for fake, make, model in _hosted(fake_openai, fake_anthropic, fake_gemini):
        fake.push_fault(Fault(status=500, message="boom"))
        err = failure(make(), Call(model, HI))
        assert (err.kind, err.retryable) == ("server", True) and "boom" in err.message, model


async def _partial_then_error(backend: Any, call: Call) -> tuple[list[Any], BackendError | None]:
    seen: list[Any] = []
    try:
        async for event in backend.stream(call):
            seen.append(event)
    except BackendError as exc:
        return seen, exc
    finally:
        await backend.aclose()
    return seen, None


def test_fake_mid_stream_error_is_an_error_not_a_short_answer(fake_openai, fake_anthropic, fake_gemini):
    for fake, make, model in _hosted(fake_openai, fake_anthropic, fake_gemini):
        fake.replies[model] = "one two three four five six seven eight nine ten eleven twelve thirteen"
        fake.push_fault(Fault(mid_stream=True, message="upstream overloaded, try again"))
        seen, err = run(_partial_then_error(make(), Call(model, HI)))
        assert err is not None, model
        assert not any(isinstance(e, Done) for e in seen), model
        assert err.retryable and SECRET not in err.message, (model, err.kind)
        assert ("overloaded" in err.message.lower()) or ("Overloaded" in err.message), model


def test_fake_dropped_stream_is_an_error(fake_openai, fake_anthropic, fake_gemini):
    for fake, make, model in _hosted(fake_openai, fake_anthropic, fake_gemini):
        fake.replies[model] = "one two three four five six seven eight nine ten eleven twelve thirteen"
        fake.push_fault(Fault(drop=True))
        seen, err = run(_partial_then_error(make(), Call(model, HI)))
        assert err is not None and (err.kind, err.retryable) == ("stream", True), model
        assert seen and not any(isinstance(e, Done) for e in seen), model


def test_fake_first_token_timeout(fake_openai):
    fake_openai.push_fault(Fault(hang_s=1.5))
    call = Call("gpt-4.1", HI, timeouts=Timeouts(connect=2, first_token=0.3))
    err = failure(openai_for(fake_openai), call)
    assert (err.kind, err.retryable) == ("timeout", True)


def test_fake_keep_alive_reuses_the_connection(fake_openai, fake_anthropic, fake_gemini):
    async def twice(make: Callable[[], Any], model: str) -> None:
        backend = make()
        try:
            for _ in range(2):
                [e async for e in backend.stream(Call(model, HI))]
        finally:
            await backend.aclose()

    for fake, make, model in _hosted(fake_openai, fake_anthropic, fake_gemini):
        run(twice(make, model))
        conns = {r.conn for r in fake.requests}
        assert len(fake.requests) == 2 and len(conns) == 1, model


def test_fake_context_overflow_is_context(fake_anthropic, fake_openai):
    long = [{"role": "user", "content": "word " * 10}]
    err = failure(AnthropicBackend(fake_anthropic.url, KEY),
                  Call("claude-sonnet-4-5", long, max_output_tokens=199_990))
    assert err.kind == "context" and err.status == 400
    err = failure(openai_for(fake_openai), Call("o3", long, max_output_tokens=199_995))
    assert err.kind == "context" and err.status == 400


def test_streams_are_spread_over_clients_of_bounded_size():
    """httpcore's pool slows with the square of its open connections: past CALLS_PER_CLIENT
    concurrent streams a backend opens another client, and reuses the least busy one after."""
    from runner.backends.http import CALLS_PER_CLIENT, HttpClient

    async def go():
        http = HttpClient("https://api.example", [])
        held = []
        stack = contextlib.AsyncExitStack()
        async with stack:
            for _ in range(2 * CALLS_PER_CLIENT + 1):
                held.append(await stack.enter_async_context(http.lease()))
            assert len(http._clients) == 3 and http._busy == [CALLS_PER_CLIENT, CALLS_PER_CLIENT, 1]
        assert http._busy == [0, 0, 0]
        async with http.lease() as again:
            assert again is http._clients[0]  # the least busy, not a new one
        await http.aclose()
        assert all(c.is_closed for c in held)

    run(go())

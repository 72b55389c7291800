"""The fakes' switchable real-server behaviours (backends.md, "Seen against real servers"), checked on
the wire with plain httpx. Each test names the switch it exercises; the fakes' docstrings say more."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.fakes.reading import sse_data, sse_events
from tests.fakes import NGINX_502, Fault, FakeAnthropic, FakeGemini, FakeOllama, FakeOpenAI, nginx_502
from tests.fakes.tokens import count_tokens, token_ids

ANTHROPIC_HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
GEMINI_KEY = {"x-goog-api-key": "test-key"}
OPENAI_KEY = {"authorization": "Bearer test-key"}
REPLY = " ".join(f"word{i}" for i in range(24))  # 24 words: 6 stream chunks of 4 words
USER = [{"role": "user", "content": "hello there"}]


def words_doc(n: int) -> str:
    return " ".join(f"w{i % 97}" for i in range(n))  # 1 token per word


def wait_for_requests(fake, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(fake.requests) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def chat(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"model": "local", "messages": USER, **body}, timeout=10)


# ============================================================================ OpenAI-compatible: llamacpp


@pytest.fixture
def llamacpp():
    """llama-cpp-python's server with a 4096-token window and no key."""
    with FakeOpenAI({"local": 4096}, api_key=None, flavor="llamacpp", replies={"local": REPLY}) as s:
        yield s


def test_llamacpp_cut_stream_fault_is_role_chunk_then_done(llamacpp):
    # 1a, one-shot: Fault(cut=True)
    llamacpp.push_fault(Fault(cut=True))
    r = chat(llamacpp.url, stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200
    data = sse_data(r.text)
    assert data[-1] == "[DONE]" and len(data) == 2
    role = json.loads(data[0])
    assert role["object"] == "chat.completion.chunk"
    assert role["choices"] == [{"index": 0, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": None}]
    assert "usage" not in role


def test_llamacpp_new_request_interrupts_the_running_stream():
    # 1a, the real trigger: interrupt_streams (on by default for the flavor); needs a paced stream
    with FakeOpenAI({"local": 4096}, api_key=None, flavor="llamacpp", replies={"local": REPLY},
                    ttft_s=0.5, chunk_delay_s=0.05) as s:
        got: dict[str, str] = {}

        def first() -> None:
            with httpx.stream("POST", f"{s.url}/v1/chat/completions", timeout=10,
                              json={"model": "local", "messages": USER, "stream": True}) as r:
                got["status"] = str(r.status_code)
                got["body"] = r.read().decode()

        t = threading.Thread(target=first)
        t.start()
        wait_for_requests(s, 1)
        time.sleep(0.05)  # the first stream is "evaluating its prompt" (ttft_s)
        second = chat(s.url)
        t.join(10)
        assert got["status"] == "200"
        data = sse_data(got["body"])
        assert len(data) == 2 and data[-1] == "[DONE]"
        assert json.loads(data[0])["choices"][0] == {"index": 0, "delta": {"role": "assistant"},
                                                     "logprobs": None, "finish_reason": None}
        assert second.status_code == 200 and second.json()["choices"][0]["finish_reason"] == "stop"
        assert s.streams_interrupted == 1


def test_llamacpp_interrupt_can_be_switched_off():
    with FakeOpenAI({"local": 4096}, api_key=None, flavor="llamacpp", replies={"local": REPLY},
                    ttft_s=0.3, chunk_delay_s=0.02, interrupt_streams=False) as s:
        got: dict[str, str] = {}

        def first() -> None:
            got["body"] = chat(s.url, stream=True).text

        t = threading.Thread(target=first)
        t.start()
        wait_for_requests(s, 1)
        chat(s.url)
        t.join(10)
        data = sse_data(got["body"])
        assert json.loads(data[-2])["choices"][0]["finish_reason"] == "stop"
        assert s.streams_interrupted == 0


def test_llamacpp_stream_shape_and_never_a_usage_chunk(llamacpp):
    # 1b: no usage chunk even when asked; chunks carry no "usage" key at all
    r = chat(llamacpp.url, stream=True, stream_options={"include_usage": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    data = sse_data(r.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    # not streamed: usage with the three counts only
    body = chat(llamacpp.url).json()
    prompt = count_tokens("hello there") + 4
    assert body["usage"] == {"prompt_tokens": prompt, "completion_tokens": count_tokens(REPLY),
                             "total_tokens": prompt + count_tokens(REPLY)}


def test_llamacpp_over_window_prompt(llamacpp):
    # 1c: prompt >= window
    big = [{"role": "user", "content": words_doc(5000)}]
    prompt = 5000 + 4
    with httpx.stream("POST", f"{llamacpp.url}/v1/chat/completions", timeout=10,
                      json={"model": "local", "messages": big, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.read() == b""  # zero bytes, then the body ends
    r = chat(llamacpp.url, messages=big, max_tokens=100)
    assert r.status_code == 400
    assert r.json() == {"error": {
        "message": f"This model's maximum context length is 4096 tokens. However, you requested {prompt + 100} "
                   f"tokens ({prompt} in the messages, 100 in the completion). Please reduce the length of the "
                   "messages or completion.",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    # without max_tokens the real server prints Python's None
    assert f"({prompt} in the messages, None in the completion)" in chat(llamacpp.url, messages=big).json()["error"]["message"]


def test_llamacpp_pings_before_the_first_token():
    # 1d: ping_interval_s (real: 15 s) while ttft_s holds the first token back
    with FakeOpenAI({"local": 4096}, api_key=None, flavor="llamacpp", ttft_s=0.7, ping_interval_s=0.2) as s:
        t0 = time.monotonic()
        lines: list[tuple[float, str]] = []
        with httpx.stream("POST", f"{s.url}/v1/chat/completions", timeout=10,
                          json={"model": "local", "messages": USER, "stream": True}) as r:
            for line in r.iter_lines():
                if line:
                    lines.append((time.monotonic() - t0, line))
        first_data = next(i for i, (_, line) in enumerate(lines) if line.startswith("data: "))
        pings = lines[:first_data]
        assert len(pings) >= 3
        assert all(line.startswith(": ping - ") for _, line in pings)  # sse-starlette: ": ping - <utc time>"
        assert pings[0][0] < 0.5 <= lines[first_data][0]  # the first byte long before the first token


def test_llamacpp_knows_max_tokens_only(llamacpp):
    # 1e: max_completion_tokens is ignored; 1h: max_tokens cuts with finish_reason "length"
    full = chat(llamacpp.url, stream=True, max_completion_tokens=3)
    chunks = [json.loads(d) for d in sse_data(full.text)[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    cut = chat(llamacpp.url, stream=True, max_tokens=3)
    chunks = [json.loads(d) for d in sse_data(cut.text)[:-1]]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert count_tokens(text) == 3


def test_max_tokens_cut_is_finish_reason_length_in_openai_flavor():
    # 1h: the OpenAI flavor already did this; pinned here
    with FakeOpenAI({"gpt-4.1": 1_047_576}, replies={"gpt-4.1": REPLY}) as s:
        r = httpx.post(f"{s.url}/v1/chat/completions", headers=OPENAI_KEY, timeout=10, json={
            "model": "gpt-4.1", "messages": USER, "stream": True, "max_completion_tokens": 5,
            "stream_options": {"include_usage": True}})
        chunks = [json.loads(d) for d in sse_data(r.text)[:-1]]
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
        assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_tokenize_endpoints(llamacpp):
    # 1f: llama-cpp-python: /extras/tokenize {"input"} and /extras/tokenize/count; no /tokenize
    text = "How many tokens in this query?"
    r = httpx.post(f"{llamacpp.url}/extras/tokenize", json={"input": text, "model": "local"})
    assert r.json() == {"tokens": token_ids(text)} and len(r.json()["tokens"]) == count_tokens(text)
    assert httpx.post(f"{llamacpp.url}/extras/tokenize/count", json={"input": text}).json() == {"count": count_tokens(text)}
    r = httpx.post(f"{llamacpp.url}/tokenize", json={"content": text})
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    # llama.cpp's llama-server: /tokenize {"content"}
    with FakeOpenAI({"local": 4096}, api_key=None, flavor="llama-server") as s:
        r = httpx.post(f"{s.url}/tokenize", json={"content": text})
        assert r.json() == {"tokens": token_ids(text)}
        pieces = httpx.post(f"{s.url}/tokenize", json={"content": "hello world", "with_pieces": True}).json()["tokens"]
        assert [p["piece"] for p in pieces] == ["hell", "o", "worl", "d"]


@pytest.mark.parametrize(("flavor", "overflow", "expected"), [
    ("llama-server", None, {"error": {
        "code": 400, "message": "request (3004 tokens) exceeds the available context size (2048 tokens), try increasing it",
        "type": "exceed_context_size_error", "n_prompt_tokens": 3004, "n_ctx": 2048}}),
    ("openai", "llama-server-old", {"error": {
        "code": 400, "message": "the request exceeds the available context size, try increasing it",
        "type": "exceed_context_size_error"}}),
    ("openai", "vllm", {
        "object": "error",
        "message": "This model's maximum context length is 2048 tokens. However, you requested 3104 tokens "
                   "(3004 in the messages, 100 in the completion). Please reduce the length of the messages or completion.",
        "type": "BadRequestError", "param": None, "code": 400}),
])
@pytest.mark.parametrize("stream", [False, True])
def test_other_overflow_wordings(flavor, overflow, expected, stream):
    # 1g: FakeOpenAI(..., overflow="llama-server" | "llama-server-old" | "vllm"), or flavor="llama-server"
    with FakeOpenAI({"local": 2048}, api_key=None, flavor=flavor, overflow=overflow) as s:
        r = chat(s.url, messages=[{"role": "user", "content": words_doc(3000)}], max_tokens=100, stream=stream)
        assert r.status_code == 400
        assert r.json() == expected


def test_openai_usage_with_cache_write_tokens():
    # 1i: Fault(usage=...) deep-merges into usage
    with FakeOpenAI({"gpt-4.1": 1_047_576}) as s:
        s.push_fault(Fault(usage={"prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 1200}}))
        r = httpx.post(f"{s.url}/v1/chat/completions", headers=OPENAI_KEY, timeout=10, json={
            "model": "gpt-4.1", "messages": USER, "stream": True, "stream_options": {"include_usage": True}})
        usage = json.loads(sse_data(r.text)[-2])["usage"]
        assert usage["prompt_tokens_details"] == {"cached_tokens": 1024, "audio_tokens": 0, "cache_write_tokens": 1200}
        assert usage["prompt_tokens"] == count_tokens("hello there") + 4


def test_openai_finish_reason_override():
    with FakeOpenAI({"gpt-4.1": 1_047_576}) as s:
        s.push_fault(Fault(finish_reason="content_filter"))
        r = httpx.post(f"{s.url}/v1/chat/completions", headers=OPENAI_KEY, timeout=10,
                       json={"model": "gpt-4.1", "messages": USER})
        assert r.json()["choices"][0]["finish_reason"] == "content_filter"


# ============================================================================ Anthropic


def anthropic_stream(s: FakeAnthropic, **body) -> list[tuple[str, dict]]:
    r = httpx.post(f"{s.url}/v1/messages", headers=ANTHROPIC_HEADERS, timeout=10, json={
        "model": "claude-sonnet-4-5", "max_tokens": 1000, "messages": USER, "stream": True, **body})
    assert r.status_code == 200
    return sse_events(r.text)


def test_anthropic_cache_creation_breakdown_override():
    # 2: Fault(usage={"cache_creation": {...}}) -> cache_creation_input_tokens = A + B
    with FakeAnthropic() as s:
        s.push_fault(Fault(usage={"cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 1200}}))
        events = anthropic_stream(s)
        usage = events[0][1]["message"]["usage"]
        assert events[0][0] == "message_start"
        assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 1200}
        assert usage["cache_creation_input_tokens"] == 1500
        assert usage["input_tokens"] == count_tokens("hello there") + 4
        assert [e for e, _ in events[-2:]] == ["message_delta", "message_stop"]


def test_anthropic_cache_creation_detail_from_ttl():
    # 2: cache_creation_detail = True computes the buckets from the breakpoints' ttl
    with FakeAnthropic() as s:
        s.cache_creation_detail = True
        doc = words_doc(3000)
        system = [{"type": "text", "text": doc, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
        usage = anthropic_stream(s, system=system)[0][1]["message"]["usage"]
        assert usage["cache_creation_input_tokens"] == 3004
        assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 3004}
        usage = anthropic_stream(s)[0][1]["message"]["usage"]  # no breakpoint: zero buckets
        assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}


@pytest.mark.parametrize("reason", ["refusal", "pause_turn", "model_context_window_exceeded"])
def test_anthropic_stop_reasons(reason):
    # 2: Fault(finish_reason=...) sets stop_reason; the stream still ends message_delta + message_stop
    with FakeAnthropic() as s:
        s.push_fault(Fault(finish_reason=reason))
        events = anthropic_stream(s)
        assert [e for e, _ in events[-2:]] == ["message_delta", "message_stop"]
        assert events[-2][1]["delta"] == {"stop_reason": reason, "stop_sequence": None}
        s.push_fault(Fault(finish_reason=reason))
        r = httpx.post(f"{s.url}/v1/messages", headers=ANTHROPIC_HEADERS, timeout=10,
                       json={"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": USER})
        assert r.json()["stop_reason"] == reason


# ============================================================================ Gemini


def gemini_stream(s: FakeGemini, body: dict | None = None, model: str = "gemini-2.5-flash") -> list[dict]:
    r = httpx.post(f"{s.url}/v1beta/models/{model}:streamGenerateContent", params={"alt": "sse"},
                   headers=GEMINI_KEY, timeout=10,
                   json=body or {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]})
    assert r.status_code == 200, r.text
    return [json.loads(d) for d in sse_data(r.text)]


def chunk_text(chunks: list[dict]) -> str:
    return "".join(p.get("text", "") for c in chunks for p in (c["candidates"][0].get("content") or {}).get("parts", []))


@pytest.mark.parametrize("reason", ["MALFORMED_RESPONSE", "OTHER", "SAFETY", "RECITATION", "BLOCKLIST",
                                    "PROHIBITED_CONTENT", "SPII", "NEW_REASON_2027"])
def test_gemini_incomplete_finish_reasons(reason):
    # 3: Fault(finish_reason=X): half the answer, then a content-less chunk with finishReason X
    with FakeGemini(replies={"gemini-2.5-flash": REPLY}) as s:
        s.push_fault(Fault(finish_reason=reason))
        chunks = gemini_stream(s)
        last = chunks[-1]["candidates"][0]
        assert last["finishReason"] == reason and "content" not in last
        assert ("safetyRatings" in last) == (reason == "SAFETY")
        assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
        text = chunk_text(chunks)
        assert text and REPLY.startswith(text) and text != REPLY


def test_gemini_continuation_legs():
    # 3: Fault(finish_reason="CONTINUATION"); the client re-sends the request with a top-level
    # "continuationToken" (our assumption of where it goes)
    with FakeGemini(replies={"gemini-2.5-flash": REPLY}) as s:
        body = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
        s.push_fault(Fault(finish_reason="CONTINUATION"))
        leg1 = gemini_stream(s, body)
        assert leg1[-1]["candidates"][0]["finishReason"] == "CONTINUATION"
        token = leg1[-1]["continuationToken"]
        assert all("continuationToken" not in c for c in leg1[:-1])
        leg2 = gemini_stream(s, {**body, "continuationToken": token})
        assert leg2[-1]["candidates"][0]["finishReason"] == "STOP" and "continuationToken" not in leg2[-1]
        assert chunk_text(leg1) + chunk_text(leg2) == REPLY
        # each leg meters itself: prompt each time, its own candidates
        u1, u2 = leg1[-1]["usageMetadata"], leg2[-1]["usageMetadata"]
        assert u1["promptTokenCount"] == u2["promptTokenCount"] == count_tokens("hello there") + 4
        assert u1["candidatesTokenCount"] + u2["candidatesTokenCount"] == count_tokens(REPLY)
        # a token is good once, and only for the same request
        r = httpx.post(f"{s.url}/v1beta/models/gemini-2.5-flash:generateContent", headers=GEMINI_KEY,
                       json={**body, "continuationToken": token})
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_gemini_continuation_not_streamed_and_three_legs():
    with FakeGemini(replies={"gemini-2.5-flash": REPLY}) as s:
        body = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
        url = f"{s.url}/v1beta/models/gemini-2.5-flash:generateContent"
        s.push_fault(Fault(finish_reason="CONTINUATION"))
        s.push_fault(Fault(finish_reason="CONTINUATION"))
        texts, reasons, req = [], [], dict(body)
        for _ in range(3):
            out = httpx.post(url, headers=GEMINI_KEY, json=req).json()
            cand = out["candidates"][0]
            texts.append(cand["content"]["parts"][0]["text"])
            reasons.append(cand["finishReason"])
            req = {**body, "continuationToken": out.get("continuationToken")}
        assert reasons == ["CONTINUATION", "CONTINUATION", "STOP"]
        assert "".join(texts) == REPLY
        other = {"contents": [{"role": "user", "parts": [{"text": "something else"}]}]}
        s.push_fault(Fault(finish_reason="CONTINUATION"))
        token = httpx.post(url, headers=GEMINI_KEY, json=body).json()["continuationToken"]
        r = httpx.post(url, headers=GEMINI_KEY, json={**other, "continuationToken": token})
        assert r.status_code == 400


def test_gemini_max_tokens_when_max_output_tokens_cuts():
    with FakeGemini(replies={"gemini-2.5-flash": REPLY}) as s:
        chunks = gemini_stream(s, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                                   "generationConfig": {"maxOutputTokens": 5}})
        assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
        assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 5


# ============================================================================ Ollama


def test_ollama_old_server_reports_exactly_num_ctx_after_a_silent_cut():
    # 4: FakeOllama(truncated_prompt_count="window"); "half" gives num_ctx // 2
    for style, expected in (("window", 32768), ("half", 16384)):
        with FakeOllama(truncated_prompt_count=style) as s:
            r = httpx.post(f"{s.url}/api/chat", timeout=30, json={
                "model": "qwen2.5:7b", "stream": False, "options": {"num_ctx": 32768},
                "messages": [{"role": "user", "content": words_doc(40000)}]})
            assert r.status_code == 200
            assert r.json()["prompt_eval_count"] == expected
    with FakeOllama() as s:  # the default reports what was kept
        r = httpx.post(f"{s.url}/api/chat", timeout=30, json={
            "model": "qwen2.5:7b", "stream": False, "options": {"num_ctx": 32768},
            "messages": [{"role": "user", "content": words_doc(40000)}]})
        assert r.json()["prompt_eval_count"] <= 32768


def test_ollama_load_and_unload(fake_ollama):
    # 4: no messages = a load-only request (real Ollama); keep_alive 0 = unload
    u = fake_ollama.url
    r = httpx.post(f"{u}/api/chat", json={"model": "qwen2.5:7b", "messages": []})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json; charset=utf-8"
    body = r.json()
    assert body["message"] == {"role": "assistant", "content": ""}
    assert body["done"] is True and body["done_reason"] == "load" and "eval_count" not in body
    assert [m["name"] for m in httpx.get(f"{u}/api/ps").json()["models"]] == ["qwen2.5:7b"]
    r = httpx.post(f"{u}/api/chat", json={"model": "qwen2.5:7b", "messages": [], "keep_alive": 0})
    assert r.json()["done_reason"] == "unload"
    assert httpx.get(f"{u}/api/ps").json()["models"] == []
    # Fault(finish_reason="load"|"unload"): THIS request, messages or not, gets that answer
    fake_ollama.push_fault(Fault(finish_reason="load"))
    r = httpx.post(f"{u}/api/chat", json={"model": "qwen2.5:7b", "messages": USER})
    assert r.json()["done_reason"] == "load" and r.json()["message"]["content"] == ""


def test_ollama_load_requests_can_be_switched_off():
    with FakeOllama(load_requests=False) as s:
        r = httpx.post(f"{s.url}/api/chat", json={"model": "qwen2.5:7b", "messages": [], "stream": False})
        assert r.json()["done_reason"] == "stop" and r.json()["message"]["content"]


@pytest.mark.parametrize("status", [429, 503])
def test_ollama_retry_headers(fake_ollama, status):
    # 4: existed already: Fault(status=..., retry_after=..., retry_after_ms=...)
    fake_ollama.push_fault(Fault(status=status, message="server busy", retry_after="2", retry_after_ms="1500"))
    r = httpx.post(f"{fake_ollama.url}/api/chat", json={"model": "qwen2.5:7b", "messages": USER})
    assert r.status_code == status
    assert r.headers["retry-after"] == "2" and r.headers["retry-after-ms"] == "1500"
    assert r.json() == {"error": "server busy"}


def test_nginx_502_on_every_fake():
    # 4: nginx_502() (any fake's generation endpoint)
    fakes = [
        (FakeOllama(), "/api/chat", {"model": "qwen2.5:7b", "messages": USER}, {}),
        (FakeOpenAI(), "/v1/chat/completions", {"model": "gpt-4.1", "messages": USER}, OPENAI_KEY),
        (FakeAnthropic(), "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 9, "messages": USER}, ANTHROPIC_HEADERS),
        (FakeGemini(), "/v1beta/models/gemini-2.5-flash:generateContent",
         {"contents": [{"parts": [{"text": "hi"}]}]}, GEMINI_KEY),
    ]
    for fake, path, body, headers in fakes:
        with fake:
            fake.push_fault(nginx_502())
            r = httpx.post(fake.url + path, json=body, headers=headers)
            assert r.status_code == 502 and r.headers["content-type"] == "text/html"
            assert r.content == NGINX_502
            assert r.content.startswith(b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n")


def test_ollama_proxy_serves_tags_but_not_chat():
    # 4: FakeOllama(tags_only=True)
    with FakeOllama(tags_only=True) as s:
        assert "qwen2.5:7b" in [m["name"] for m in httpx.get(f"{s.url}/api/tags").json()["models"]]
        for path in ("/api/chat", "/api/show"):
            r = httpx.post(s.url + path, json={"model": "qwen2.5:7b", "messages": USER})
            assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_ollama_done_reason_relabel_and_usage_merge(fake_ollama):
    fake_ollama.push_fault(Fault(finish_reason="length", usage={"prompt_eval_count": 32768}))
    r = httpx.post(f"{fake_ollama.url}/api/chat", json={"model": "qwen2.5:7b", "messages": USER})
    final = json.loads(r.text.splitlines()[-1])
    assert final["done_reason"] == "length" and final["prompt_eval_count"] == 32768


# ============================================================================ every fake


def _requests() -> list[tuple[str, object, str, dict, dict]]:
    """(name, fake factory, path, streamed request body, headers) for each fake."""
    return [
        ("openai", lambda: FakeOpenAI(replies={"gpt-4.1": REPLY}), "/v1/chat/completions",
         {"model": "gpt-4.1", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}, OPENAI_KEY),
        ("llamacpp", lambda: FakeOpenAI({"local": 4096}, api_key=None, flavor="llamacpp", replies={"local": REPLY}),
         "/v1/chat/completions", {"model": "local", "messages": USER, "stream": True}, {}),
        ("anthropic", lambda: FakeAnthropic(replies={"claude-sonnet-4-5": REPLY}), "/v1/messages",
         {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": USER, "stream": True}, ANTHROPIC_HEADERS),
        ("gemini", lambda: FakeGemini(replies={"gemini-2.5-flash": REPLY}),
         "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
         {"contents": [{"parts": [{"text": "hello there"}]}]}, GEMINI_KEY),
        ("ollama", lambda: FakeOllama(replies={"qwen2.5:7b": REPLY}), "/api/chat",
         {"model": "qwen2.5:7b", "messages": USER}, {}),
    ]


def _answer_text(name: str, body: dict) -> str:
    if name in ("openai", "llamacpp"):
        return body["choices"][0]["message"]["content"]
    if name == "anthropic":
        return body["content"][0]["text"]
    if name == "gemini":
        return body["candidates"][0]["content"]["parts"][0]["text"]
    return body["message"]["content"]


@pytest.mark.parametrize("how", ["fault", "attribute"])
@pytest.mark.parametrize("case", _requests(), ids=[c[0] for c in _requests()])
def test_streamed_request_answered_with_plain_json(case, how):
    # 5: Fault(json_body=True) once, or fake.stream_as_json = True for every request
    name, make, path, body, headers = case
    with make() as fake:
        if how == "fault":
            fake.push_fault(Fault(json_body=True))
        else:
            fake.stream_as_json = True
        r = httpx.post(fake.url + path, json=body, headers=headers, timeout=10)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        assert _answer_text(name, r.json()) == REPLY


@pytest.mark.parametrize("case", _requests(), ids=[c[0] for c in _requests()])
def test_cut_stream_ends_cleanly_without_completion_signal(case):
    # Fault(cut=True) on every fake: a complete HTTP body, but no protocol-level end
    name, make, path, body, headers = case
    with make() as fake:
        fake.push_fault(Fault(cut=True))
        r = httpx.post(fake.url + path, json=body, headers=headers, timeout=10)  # no transport error
        assert r.status_code == 200
        if name in ("openai", "llamacpp"):
            data = sse_data(r.text)
            assert data[-1] == "[DONE]"
            assert all(c["finish_reason"] is None for d in data[:-1] for c in json.loads(d)["choices"])
        elif name == "anthropic":
            kinds = [e for e, _ in sse_events(r.text)]
            assert kinds[0] == "message_start" and "message_delta" not in kinds and "message_stop" not in kinds
        elif name == "gemini":
            chunks = [json.loads(d) for d in sse_data(r.text)]
            assert chunks and all("finishReason" not in c["candidates"][0] for c in chunks)
        else:
            lines = [json.loads(line) for line in r.text.splitlines() if line]
            assert lines and not any(line["done"] for line in lines)

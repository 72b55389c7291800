"""The fake servers against the wire facts in backends.md, with plain httpx and the ollama client."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from tests.fakes.reading import sse_data, sse_events
from tests.fakes import Fault, FakeAnthropic, FakeGemini, FakeModel, FakeOllama, FakeOpenAI, count_tokens
from tests.fakes.tokens import chunk_words, head_tokens, message_tokens, tail_tokens, truncate_messages

pytest_plugins = ["tests.fakes.fixtures"]

OPENAI_KEY = {"authorization": "Bearer test-key"}
ANTHROPIC_HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
GEMINI_KEY = {"x-goog-api-key": "test-key"}


def long_doc(n_words: int, head: str = "ALPHA BRAVO CHARLIE", tail: str = "YANKEE ZULU END") -> str:
    """``head`` + n filler words (1 token each) + ``tail``."""
    filler = " ".join(f"w{i % 97}" for i in range(n_words))
    return f"{head} {filler} {tail}"


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------- tokenizer


def test_count_tokens_rules():
    assert count_tokens("") == 0
    assert count_tokens("a") == 1
    assert count_tokens("abcd") == 1
    assert count_tokens("abcde") == 2
    assert count_tokens("hello world") == 4  # 2 + 2
    assert count_tokens("   \n\t ") == 0
    assert count_tokens("a, b.") == 4
    assert count_tokens("日本語") == 3
    assert count_tokens("한국어") == 3
    assert count_tokens("é") == 1
    assert count_tokens("éé") == 1
    assert count_tokens("ééé") == 2
    assert message_tokens([{"role": "user", "content": "abcd"}]) == 5


def test_head_tail_and_truncation_are_consistent():
    text = "alphabetagamma, δέλτα 日本 end"
    n = count_tokens(text)
    for k in range(n + 1):
        assert count_tokens(head_tokens(text, k)) == k
        assert count_tokens(tail_tokens(text, k)) == k
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": long_doc(500)},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": long_doc(300, head="SECOND")},
    ]
    cut = truncate_messages(msgs, 400)
    assert cut[0] == msgs[0]
    assert message_tokens(cut) <= 400
    assert message_tokens(cut) >= 395
    assert cut[-1]["content"].endswith("YANKEE ZULU END")
    assert "".join(chunk_words(msgs[1]["content"])) == msgs[1]["content"]


# ---------------------------------------------------------------------------------------- Ollama


def test_ollama_stream_is_ndjson_with_nanosecond_metrics(fake_ollama):
    body = {"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "one two three four five six seven eight nine"}]}
    r = httpx.post(f"{fake_ollama.url}/api/chat", json=body)  # stream absent = streaming
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["transfer-encoding"] == "chunked"
    lines = ndjson(r.text)
    assert len(lines) >= 3
    assert all(not line["done"] for line in lines[:-1])
    assert all(line["message"]["role"] == "assistant" for line in lines)
    text = "".join(line["message"]["content"] for line in lines)
    prompt = count_tokens(body["messages"][0]["content"]) + 4
    assert text == f"[qwen2.5:7b] saw {prompt} tokens starting: one two three four five six seven eight"
    last = lines[-1]
    assert last["done"] is True and last["done_reason"] == "stop"
    assert last["prompt_eval_count"] == prompt
    assert last["eval_count"] == count_tokens(text)
    assert last["load_duration"] >= 1_000_000_000  # first call loads the model
    assert last["total_duration"] >= last["load_duration"]
    for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(last[k], int) and last[k] > 0
    # stream:false -> one object
    r = httpx.post(f"{fake_ollama.url}/api/chat", json={**body, "stream": False})
    obj = r.json()
    assert obj["done"] is True and obj["message"]["content"] == text
    assert obj["load_duration"] < 100_000_000  # same window: warm


def test_ollama_official_client_parses_stream(fake_ollama):
    import ollama

    async def main():
        async with ollama.AsyncClient(host=fake_ollama.url, timeout=5) as client:
            parts = []
            async for part in await client.chat(
                model="deepseek-r1:8b", messages=[{"role": "user", "content": "why is the sky blue"}], stream=True,
                think=True, options={"num_ctx": 8192},
            ):
                parts.append(part)
            return parts

    parts = asyncio.run(main())
    assert parts[-1].done and parts[-1].done_reason == "stop"
    thinking = "".join(p.message.thinking or "" for p in parts)
    content = "".join(p.message.content or "" for p in parts)
    assert thinking and "<think>" not in content
    assert content.startswith("[deepseek-r1:8b] saw")
    assert parts[-1].eval_count == count_tokens(thinking) + count_tokens(content)
    ps = httpx.get(f"{fake_ollama.url}/api/ps").json()["models"]
    assert [(m["name"], m["context_length"]) for m in ps] == [("deepseek-r1:8b", 8192)]


def test_ollama_mid_stream_error_raises_response_error(fake_ollama):
    import ollama

    fake_ollama.push_fault(Fault(mid_stream=True, message="llama runner process has terminated"))

    async def main():
        async with ollama.AsyncClient(host=fake_ollama.url, timeout=5) as client:
            got = []
            with pytest.raises(ollama.ResponseError) as exc:
                async for part in await client.chat(
                    model="qwen2.5:7b", messages=[{"role": "user", "content": "a b c d e f g h i j k"}], stream=True
                ):
                    got.append(part)
            return got, exc.value

    got, err = asyncio.run(main())
    assert len(got) == 2
    assert err.status_code == -1 and "terminated" in err.error


def test_ollama_silent_truncation_at_default_num_ctx(fake_ollama):
    doc = long_doc(10_000)
    assert count_tokens(doc) > 10_000
    body = {"model": "qwen2.5:7b", "stream": False, "messages": [{"role": "user", "content": doc}]}
    r = httpx.post(f"{fake_ollama.url}/api/chat", json=body)
    assert r.status_code == 200  # silent
    obj = r.json()
    assert 4000 <= obj["prompt_eval_count"] <= 4096
    reply = obj["message"]["content"]
    assert "ALPHA" not in reply  # the head was cut
    assert f"saw {obj['prompt_eval_count']} tokens" in reply
    # the answer reveals what it saw: the tail of the document, not its head
    words = reply.split("starting: ", 1)[1].split()
    assert len(words) == 8 and " ".join(words) in doc and not doc.startswith(" ".join(words))

    # a big enough num_ctx: nothing cut, and the model reloads with the new window
    r = httpx.post(f"{fake_ollama.url}/api/chat", json={**body, "options": {"num_ctx": 16384}})
    obj2 = r.json()
    assert obj2["prompt_eval_count"] == count_tokens(doc) + 4
    assert "ALPHA BRAVO CHARLIE" in obj2["message"]["content"]
    assert obj2["load_duration"] >= 1_000_000_000
    ps = httpx.get(f"{fake_ollama.url}/api/ps").json()["models"]
    assert ps[0]["context_length"] == 16384 and ps[0]["size_vram"] > 0 and ps[0]["expires_at"]

    # num_ctx above the model's context_length is capped by it
    r = httpx.post(f"{fake_ollama.url}/api/chat", json={**body, "options": {"num_ctx": 100_000}})
    assert httpx.get(f"{fake_ollama.url}/api/ps").json()["models"][0]["context_length"] == 32768


def test_ollama_system_message_survives_truncation(fake_ollama):
    body = {
        "model": "qwen2.5:7b",
        "stream": False,
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": long_doc(6000)}],
        "options": {"num_ctx": 2048},
    }
    obj = httpx.post(f"{fake_ollama.url}/api/chat", json=body).json()
    assert 2000 <= obj["prompt_eval_count"] <= 2048
    assert "ALPHA" not in obj["message"]["content"]


def test_ollama_truncate_false_is_a_400_on_new_servers(fake_ollama):
    body = {"model": "qwen2.5:7b", "truncate": False, "messages": [{"role": "user", "content": long_doc(5000)}]}
    r = httpx.post(f"{fake_ollama.url}/api/chat", json=body)
    assert r.status_code == 400
    assert r.json() == {"error": "the input length exceeds the context length"}
    with FakeOllama(version="0.12.3") as old:  # older server: ignores truncate, cuts silently
        r = httpx.post(f"{old.url}/api/chat", json={**body, "stream": False})
        assert r.status_code == 200 and r.json()["prompt_eval_count"] <= 4096


def test_ollama_output_limits(fake_ollama):
    msgs = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]
    obj = httpx.post(f"{fake_ollama.url}/api/chat", json={
        "model": "qwen2.5:7b", "stream": False, "messages": msgs, "options": {"num_predict": 5},
    }).json()
    assert obj["done_reason"] == "length" and obj["eval_count"] == 5
    # shift:false stops at the window
    prompt = message_tokens(msgs)
    obj = httpx.post(f"{fake_ollama.url}/api/chat", json={
        "model": "qwen2.5:7b", "stream": False, "messages": msgs, "shift": False,
        "options": {"num_ctx": prompt + 3},
    }).json()
    assert obj["done_reason"] == "length" and obj["eval_count"] == 3


def test_ollama_errors_and_metadata(fake_ollama):
    u = fake_ollama.url
    r = httpx.post(f"{u}/api/chat", json={"model": "llama9:70b", "messages": []})
    assert r.status_code == 404 and r.json() == {"error": "model 'llama9:70b' not found"}
    r = httpx.post(f"{u}/api/chat", json={"model": "qwen2.5:7b", "think": True, "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json() == {"error": '"qwen2.5:7b" does not support thinking'}
    assert httpx.get(f"{u}/").text == "Ollama is running"
    assert httpx.get(f"{u}/api/version").json() == {"version": "0.12.6"}
    tags = httpx.get(f"{u}/api/tags").json()["models"]
    assert {m["name"] for m in tags} == {"qwen2.5:7b", "qwen2.5:14b", "deepseek-r1:8b", "qwen3:8b"}
    assert all(len(m["digest"]) == 64 and m["details"]["format"] == "gguf" for m in tags)
    show = httpx.post(f"{u}/api/show", json={"model": "deepseek-r1:8b"}).json()
    arch = show["model_info"]["general.architecture"]
    assert arch == "qwen3" and show["model_info"]["qwen3.context_length"] == 131072
    assert "thinking" in show["capabilities"]
    assert httpx.post(f"{u}/api/show", json={"model": "nope"}).status_code == 404
    assert httpx.get(f"{u}/api/ps").json() == {"models": []}


def test_ollama_thinking_styles():
    models = {
        "r1:field": FakeModel(capabilities=["completion", "thinking"], thinking_style="field", thinking="hmm ok"),
        "r1:tags": FakeModel(thinking_style="tags", thinking="old style"),
    }
    with FakeOllama(models) as s:
        def chat(model, **extra):
            body = {"model": model, "stream": False, "messages": [{"role": "user", "content": "hi"}], **extra}
            return httpx.post(f"{s.url}/api/chat", json=body).json()["message"]

        m = chat("r1:field", think=True)
        assert m["thinking"] == "hmm ok" and not m["content"].startswith("<think>")
        m = chat("r1:field", think=False)
        assert "thinking" not in m and "<think>" not in m["content"]
        m = chat("r1:field")  # think absent: inline tags (legacy)
        assert m["content"].startswith("<think>hmm ok</think>") and "thinking" not in m
        m = chat("r1:tags")
        assert m["content"].startswith("<think>old style</think>")
        raw = httpx.post(f"{s.url}/api/chat", json={"model": "r1:tags", "messages": [{"role": "user", "content": "hi"}]}).text
        assert "\\u003cthink\\u003e" in raw  # Go escapes < and > on the wire


def test_ollama_faults(fake_ollama):
    u = fake_ollama.url
    body = {"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "a b c d e f g h i j k l"}]}
    fake_ollama.push_fault(Fault(status=503, message="server busy", retry_after="2"), model="qwen2.5:14b")
    fake_ollama.push_fault(Fault(status=500, message="boom"))
    r = httpx.post(f"{u}/api/chat", json=body)
    assert r.status_code == 500 and r.json() == {"error": "boom"}
    r = httpx.post(f"{u}/api/chat", json=body)  # the 14b fault does not match
    assert r.status_code == 200
    r = httpx.post(f"{u}/api/chat", json={**body, "model": "qwen2.5:14b"})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    fake_ollama.push_fault(Fault(drop=True))
    with httpx.stream("POST", f"{u}/api/chat", json=body) as resp:
        assert resp.status_code == 200
        lines = []
        with pytest.raises(httpx.RemoteProtocolError):
            for line in resp.iter_lines():
                lines.append(line)
    assert lines and all('"done":false' in line for line in lines if line)
    fake_ollama.push_fault(Fault(hang_s=1.0))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{u}/api/chat", json=body, timeout=0.2)


# ---------------------------------------------------------------------------------------- OpenAI


def test_openai_auth_masks_the_key(fake_openai):
    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(f"{fake_openai.url}/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-secret-abcdef"})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error" and err["param"] is None
    assert "sk***ef" in err["message"] and "sk-secret-abcdef" not in r.text
    r = httpx.post(f"{fake_openai.url}/v1/chat/completions", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_openai_stream_format_and_usage_placement(fake_openai):
    body = {"model": "gpt-4.1", "stream": True, "messages": [{"role": "user", "content": "tell me about the fake servers please"}]}
    for path in ("/chat/completions", "/v1/chat/completions"):
        r = httpx.post(f"{fake_openai.url}{path}", json=body, headers=OPENAI_KEY)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        data = sse_data(r.text)
        assert data[-1] == "[DONE]"
        chunks = [json.loads(d) for d in data[:-1]]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert all("usage" not in c for c in chunks)  # no include_usage: no usage at all
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text.startswith("[gpt-4.1] saw 14 tokens starting: tell me")

    r = httpx.post(f"{fake_openai.url}/v1/chat/completions", headers=OPENAI_KEY,
                   json={**body, "stream_options": {"include_usage": True}})
    data = sse_data(r.text)
    assert data[-1] == "[DONE]"
    usage_chunk = json.loads(data[-2])
    assert usage_chunk["choices"] == []
    u = usage_chunk["usage"]
    assert u["prompt_tokens"] == 14 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["prompt_tokens_details"]["cached_tokens"] == 0
    assert u["completion_tokens_details"]["reasoning_tokens"] == 0
    assert all(json.loads(d)["usage"] is None for d in data[:-2])


def test_openai_errors(fake_openai):
    u = f"{fake_openai.url}/v1/chat/completions"
    r = httpx.post(u, headers=OPENAI_KEY, json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404
    assert r.json()["error"] == {
        "message": "The model `gpt-9` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found",
    }
    r = httpx.post(u, headers=OPENAI_KEY, json={"model": "o3", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_parameter"
    with FakeOpenAI({"small": 1000}) as s:
        r = httpx.post(f"{s.url}/v1/chat/completions", headers=OPENAI_KEY,
                       json={"model": "small", "messages": [{"role": "user", "content": long_doc(2000)}]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_openai_reasoning_and_length(fake_openai):
    u = f"{fake_openai.url}/v1/chat/completions"
    msgs = [{"role": "user", "content": "what is two plus two"}]
    obj = httpx.post(u, headers=OPENAI_KEY, json={"model": "o3", "messages": msgs}).json()
    assert obj["object"] == "chat.completion" and obj["choices"][0]["finish_reason"] == "stop"
    details = obj["usage"]["completion_tokens_details"]
    assert details["reasoning_tokens"] > 0  # counted, never shown
    assert "reasoning" not in json.dumps(obj["choices"][0]["message"])
    assert obj["usage"]["completion_tokens"] == details["reasoning_tokens"] + count_tokens(obj["choices"][0]["message"]["content"])
    obj = httpx.post(u, headers=OPENAI_KEY, json={"model": "o3", "messages": msgs, "max_completion_tokens": 5}).json()
    assert obj["choices"][0]["finish_reason"] == "length" and obj["choices"][0]["message"]["content"] == ""
    obj = httpx.post(u, headers=OPENAI_KEY, json={"model": "gpt-4.1", "messages": msgs, "max_tokens": 3}).json()
    assert obj["choices"][0]["finish_reason"] == "length" and obj["usage"]["completion_tokens"] == 3


def test_deepseek_reasoning_content_and_cache(fake_deepseek):
    u = f"{fake_deepseek.url}/chat/completions"  # no /v1
    msgs = [{"role": "system", "content": long_doc(400)}, {"role": "user", "content": "summarise"}]
    body = {"model": "deepseek-v4-pro", "stream": True, "stream_options": {"include_usage": True}, "messages": msgs}
    data = sse_data(httpx.post(u, headers=OPENAI_KEY, json=body).text)
    chunks = [json.loads(d) for d in data[:-1]]
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"])
    assert reasoning.startswith("Okay")
    usage = chunks[-1]["usage"]
    assert usage["prompt_cache_hit_tokens"] == 0 and usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == count_tokens(reasoning)
    body["messages"] = msgs[:1] + [{"role": "user", "content": "now in French"}]
    usage = json.loads(sse_data(httpx.post(u, headers=OPENAI_KEY, json=body).text)[-2])["usage"]
    sys_tokens = count_tokens(msgs[0]["content"]) + 4
    assert usage["prompt_cache_hit_tokens"] == sys_tokens // 64 * 64 > 0
    assert usage["prompt_cache_hit_tokens"] + usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_cache_hit_tokens"]


def test_ollama_flavor_reasoning_and_silent_cut():
    with FakeOpenAI({"qwen3:8b": 4096}, api_key=None, flavor="ollama", reasoning={"qwen3:8b": "thinking hard"}) as s:
        body = {"model": "qwen3:8b", "stream": True, "messages": [{"role": "user", "content": long_doc(6000)}],
                "stream_options": {"include_usage": True}}
        data = sse_data(httpx.post(f"{s.url}/v1/chat/completions", json=body).text)
        chunks = [json.loads(d) for d in data[:-1]]
        assert "".join(c["choices"][0]["delta"].get("reasoning") or "" for c in chunks if c["choices"]) == "thinking hard"
        assert chunks[-1]["usage"]["prompt_tokens"] <= 4096
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert "ALPHA" not in text


def test_openai_faults(fake_openai):
    u = f"{fake_openai.url}/v1/chat/completions"
    body = {"model": "gpt-4.1", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "a b c d e f g h i j k l m n o p"}]}
    fake_openai.push_fault(Fault(status=429, message="Rate limit reached", retry_after="1", retry_after_ms="1500"))
    r = httpx.post(u, headers=OPENAI_KEY, json=body)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1" and r.headers["retry-after-ms"] == "1500"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"

    fake_openai.push_fault(Fault(mid_stream=True, message="The server had an error"))
    r = httpx.post(u, headers=OPENAI_KEY, json=body)
    assert r.status_code == 200
    data = sse_data(r.text)
    assert "[DONE]" not in data
    assert json.loads(data[-1])["error"]["message"] == "The server had an error"
    assert not any("usage" in json.loads(d) and json.loads(d)["usage"] for d in data)

    fake_openai.push_fault(Fault(drop=True))
    received = []
    with httpx.stream("POST", u, headers=OPENAI_KEY, json=body) as resp:
        with pytest.raises(httpx.RemoteProtocolError):
            for line in resp.iter_lines():
                received.append(line)
    assert received and "[DONE]" not in "".join(received) and '"usage":{' not in "".join(received)


# ---------------------------------------------------------------------------------------- Anthropic


def test_anthropic_request_validation(fake_anthropic):
    u = f"{fake_anthropic.url}/v1/messages"
    ok = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(u, json=ok, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json() == {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    r = httpx.post(u, json=ok, headers={"x-api-key": "test-key"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(u, json={k: v for k, v in ok.items() if k != "max_tokens"}, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    r = httpx.post(u, json={**ok, "messages": [{"role": "system", "content": "x"}, *ok["messages"]]}, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 400 and "system" in r.json()["error"]["message"]
    r = httpx.post(u, json={**ok, "model": "claude-9"}, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    with FakeAnthropic({"tiny": 500}) as s:
        r = httpx.post(f"{s.url}/v1/messages", headers=ANTHROPIC_HEADERS,
                       json={**ok, "model": "tiny", "messages": [{"role": "user", "content": long_doc(1000)}]})
        assert r.status_code == 400
        assert r.json()["error"]["message"].startswith("prompt is too long: ") and "> 500 maximum" in r.json()["error"]["message"]
    r = httpx.post(u, json={**ok, "system": [{"type": "text", "text": "be brief"}]}, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200 and r.json()["content"][0]["type"] == "text"


def test_anthropic_stream_events(fake_anthropic):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 4000, "stream": True, "system": "be brief",
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "messages": [{"role": "user", "content": "why is the sky blue today"}]}
    r = httpx.post(f"{fake_anthropic.url}/v1/messages", headers=ANTHROPIC_HEADERS, json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "ping" in names
    assert names[-2] == "message_delta"
    usage = events[0][1]["message"]["usage"]
    assert usage["input_tokens"] == message_tokens([{"content": "be brief"}, body["messages"][0]])
    assert usage["cache_read_input_tokens"] == 0 and usage["output_tokens"] == 1
    starts = [d for n, d in events if n == "content_block_start"]
    assert starts[0]["index"] == 0 and starts[0]["content_block"]["type"] == "thinking"
    assert starts[1]["index"] == 1 and starts[1]["content_block"]["type"] == "text"
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    thinking = "".join(d.get("thinking", "") for d in deltas if d["type"] == "thinking_delta")
    text = "".join(d["text"] for d in deltas if d["type"] == "text_delta")
    assert thinking and text.startswith("[claude-sonnet-4-5] saw")
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] == count_tokens(thinking) + count_tokens(text)
    # max_tokens stop
    body2 = {"model": "claude-haiku-4-5", "max_tokens": 3, "stream": True, "messages": body["messages"]}
    events = sse_events(httpx.post(f"{fake_anthropic.url}/v1/messages", headers=ANTHROPIC_HEADERS, json=body2).text)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens" and events[-2][1]["usage"]["output_tokens"] == 3


def test_anthropic_prompt_cache(fake_anthropic):
    system = [{"type": "text", "text": long_doc(1500), "cache_control": {"type": "ephemeral"}}]
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": system,
            "messages": [{"role": "user", "content": "question one"}]}
    u1 = httpx.post(f"{fake_anthropic.url}/v1/messages", headers=ANTHROPIC_HEADERS, json=body).json()["usage"]
    cached = count_tokens(system[0]["text"]) + 4
    assert u1["cache_creation_input_tokens"] == cached and u1["cache_read_input_tokens"] == 0
    body["messages"] = [{"role": "user", "content": "another question"}]
    u2 = httpx.post(f"{fake_anthropic.url}/v1/messages", headers=ANTHROPIC_HEADERS, json=body).json()["usage"]
    assert u2["cache_read_input_tokens"] == cached and u2["cache_creation_input_tokens"] == 0
    assert u2["input_tokens"] == count_tokens("another question") + 4  # excludes cache reads


def test_anthropic_faults(fake_anthropic):
    u = f"{fake_anthropic.url}/v1/messages"
    body = {"model": "claude-sonnet-4-5", "max_tokens": 500, "stream": True,
            "messages": [{"role": "user", "content": "a b c d e f g h i j k l m n o p"}]}
    fake_anthropic.push_fault(Fault(status=529, message="Overloaded"))
    r = httpx.post(u, headers=ANTHROPIC_HEADERS, json=body)
    assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
    fake_anthropic.push_fault(Fault(status=429, message="slow down", retry_after="3"))
    r = httpx.post(u, headers=ANTHROPIC_HEADERS, json=body)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error" and r.headers["retry-after"] == "3"
    fake_anthropic.push_fault(Fault(mid_stream=True))
    r = httpx.post(u, headers=ANTHROPIC_HEADERS, json=body)
    events = sse_events(r.text)
    assert r.status_code == 200 and events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert "message_stop" not in [n for n, _ in events] and any(n == "content_block_delta" for n, _ in events)
    fake_anthropic.push_fault(Fault(drop=True))
    got = []
    with httpx.stream("POST", u, headers=ANTHROPIC_HEADERS, json=body) as resp:
        with pytest.raises(httpx.RemoteProtocolError):
            for line in resp.iter_lines():
                got.append(line)
    assert "event: message_start" in got and "event: message_stop" not in got


# ---------------------------------------------------------------------------------------- Gemini


def _gem(model: str, method: str = "streamGenerateContent") -> str:
    return f"/v1beta/models/{model}:{method}" + ("?alt=sse" if method == "streamGenerateContent" else "")


def test_gemini_auth(fake_gemini):
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = httpx.post(fake_gemini.url + _gem("gemini-2.5-flash"), json=body, headers={"x-goog-api-key": "bad"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["message"], err["status"]) == (400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT")
    r = httpx.post(fake_gemini.url + _gem("gemini-2.5-flash", "generateContent") + "?key=test-key", json=body)
    assert r.status_code == 200 and r.json()["candidates"][0]["finishReason"] == "STOP"
    r = httpx.post(fake_gemini.url + _gem("gemini-2.5-flash"), json=body)
    assert r.status_code == 403


def test_gemini_stream_running_usage(fake_gemini):
    body = {"systemInstruction": {"parts": [{"text": "be brief"}]},
            "contents": [{"role": "user", "parts": [{"text": "explain the tides in detail please"}]}],
            "generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    r = httpx.post(fake_gemini.url + _gem("gemini-2.5-pro"), json=body, headers=GEMINI_KEY)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.text.endswith("\r\n\r\n") and "[DONE]" not in r.text
    chunks = [json.loads(d) for d in sse_data(r.text)]
    assert len(chunks) > 2
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    thoughts = "".join(p["text"] for p in parts if p.get("thought"))
    text = "".join(p["text"] for p in parts if not p.get("thought"))
    assert thoughts and text.startswith("[gemini-2.5-pro] saw")
    assert [c["candidates"][0].get("finishReason") for c in chunks][-1] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    totals = [c["usageMetadata"]["totalTokenCount"] for c in chunks]
    assert totals == sorted(totals)  # running totals
    last = chunks[-1]["usageMetadata"]
    assert last["candidatesTokenCount"] == count_tokens(text) and last["thoughtsTokenCount"] == count_tokens(thoughts)
    assert last["promptTokenCount"] == count_tokens("be brief") + 4 + count_tokens(body["contents"][0]["parts"][0]["text"]) + 4
    assert chunks[0]["modelVersion"] == "gemini-2.5-pro"
    # thoughts are billed even when not shown; a small limit is eaten by thinking
    body["generationConfig"] = {"maxOutputTokens": 5}
    chunks = [json.loads(d) for d in sse_data(httpx.post(fake_gemini.url + _gem("gemini-2.5-flash"), json=body, headers=GEMINI_KEY).text)]
    assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert chunks[-1]["usageMetadata"]["thoughtsTokenCount"] == 5 and "candidatesTokenCount" not in chunks[-1]["usageMetadata"]


def test_gemini_errors_and_faults(fake_gemini):
    body = {"contents": [{"role": "user", "parts": [{"text": "a b c d e f g h i j k l m n o p"}]}]}
    r = httpx.post(fake_gemini.url + _gem("gemini-9"), json=body, headers=GEMINI_KEY)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    assert r.json()["error"]["message"].startswith("models/gemini-9 is not found for API version v1beta")
    with FakeGemini({"g": 100}) as s:
        r = httpx.post(s.url + _gem("g"), json={"contents": [{"parts": [{"text": long_doc(200)}]}]}, headers=GEMINI_KEY)
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    u = fake_gemini.url + _gem("gemini-2.5-flash")
    fake_gemini.push_fault(Fault(status=429, message="Resource has been exhausted"))
    r = httpx.post(u, json=body, headers=GEMINI_KEY)
    assert r.status_code == 429 and r.json()["error"] == {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}
    fake_gemini.push_fault(Fault(error_type="blocked"))
    r = httpx.post(u, json=body, headers=GEMINI_KEY)
    chunks = [json.loads(d) for d in sse_data(r.text)]
    assert r.status_code == 200 and len(chunks) == 1
    assert chunks[0]["promptFeedback"]["blockReason"] == "SAFETY" and "candidates" not in chunks[0]
    fake_gemini.push_fault(Fault(mid_stream=True, message="internal"))
    chunks = [json.loads(d) for d in sse_data(httpx.post(u, json=body, headers=GEMINI_KEY).text)]
    assert "candidates" in chunks[0] and chunks[-1]["error"]["status"] == "INTERNAL"
    fake_gemini.push_fault(Fault(drop=True))
    got = []
    with httpx.stream("POST", u, json=body, headers=GEMINI_KEY) as resp:
        with pytest.raises(httpx.RemoteProtocolError):
            for line in resp.iter_lines():
                got.append(line)
    assert got and "finishReason" not in "".join(got)


# ---------------------------------------------------------------------------------------- transport


def test_keep_alive_and_recording(fake_openai):
    with httpx.Client(base_url=fake_openai.url, headers=OPENAI_KEY) as client:
        for i in range(5):
            r = client.post("/v1/chat/completions?x=1", json={"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": f"n{i}"}]})
            assert r.status_code == 200
    reqs = fake_openai.requests
    assert len(reqs) == 5 and len({r.conn for r in reqs}) == 1 and fake_openai.connections_opened == 1
    assert reqs[0].method == "POST" and reqs[0].path == "/v1/chat/completions" and reqs[0].query == {"x": "1"}
    assert reqs[0].headers["authorization"] == "Bearer test-key"
    assert reqs[3].json["messages"][0]["content"] == "n3"
    assert reqs[0].time <= reqs[4].time
    assert fake_openai.errors == []


def test_chunks_are_flushed_as_written():
    with FakeOllama(ttft_s=0.15, chunk_delay_s=0.05) as s:
        t0 = time.monotonic()
        stamps = []
        body = {"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "a b c d e f g h i j k l"}]}
        with httpx.stream("POST", f"{s.url}/api/chat", json=body) as resp:
            t_headers = time.monotonic() - t0
            for line in resp.iter_lines():
                if line:
                    stamps.append(time.monotonic() - t0)
        assert t_headers < 0.1
        assert stamps[0] >= 0.14
        assert len(stamps) >= 4 and stamps[-1] - stamps[0] >= 0.05 * (len(stamps) - 1) * 0.9
        last = ndjson(line)[0]
        assert last["prompt_eval_duration"] >= 140_000_000  # real elapsed time, in ns
        assert last["eval_duration"] >= 0.05 * (len(stamps) - 2) * 0.9 * 1e9


def test_header_delay():
    with FakeAnthropic(header_delay_s=0.2) as s:
        t0 = time.monotonic()
        r = httpx.post(f"{s.url}/v1/messages", headers=ANTHROPIC_HEADERS,
                       json={"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200 and time.monotonic() - t0 >= 0.2


def test_fifty_concurrent_streams():
    with FakeOpenAI({"m": 100_000}, chunk_delay_s=0.02) as s:
        async def one(client, i):
            body = {"model": "m", "stream": True, "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": f"request number {i} with some more words here"}]}
            async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                assert resp.status_code == 200
                data = [line[6:] async for line in resp.aiter_lines() if line.startswith("data: ")]
            assert data[-1] == "[DONE]"
            text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or "" for d in data[:-2])
            assert f"number {i} with" in text

        async def main():
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(base_url=s.url, headers=OPENAI_KEY, limits=limits, timeout=10) as client:
                await asyncio.gather(*(one(client, i) for i in range(50)))

        t0 = time.monotonic()
        asyncio.run(main())
        assert time.monotonic() - t0 < 3
        assert s.max_concurrent_seen == 50
        assert len(s.requests) == 50 and s.errors == []


def test_stop_frees_port_and_closes_idle_connections():
    s = FakeGemini().start()
    with httpx.Client() as client:
        assert client.get(f"{s.url}/v1beta/models", headers=GEMINI_KEY).status_code == 200
        port = s.port
        s.stop()
        with pytest.raises(httpx.TransportError):
            client.get(f"http://127.0.0.1:{port}/v1beta/models", headers=GEMINI_KEY)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0

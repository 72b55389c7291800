"""The gateway keeps the pipeline's promises: fallback, privacy, limits shared by all clients,
the run log, disconnects, keys (its own and the providers')."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from runner.serve.auth import load_keys
from tests.fakes import Fault

from .conftest import profile

MESSAGES = [{"role": "user", "content": "hello there gateway"}]


def sdk(served, key: str = "anything", **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0, timeout=30, **kwargs)


def chat_requests(fake) -> list:
    return [r for r in fake.requests if r.path.endswith(("/chat/completions", "/messages", "/api/chat"))
            or "Generate" in r.path]


# --- fallback ---------------------------------------------------------------------------


def test_first_candidate_fails_the_second_answers(use, fake_openai, fake_anthropic, serve, home, runs):
    use(fake_openai, "openai")
    use(fake_anthropic, "anthropic")
    profile(home, "pair", "openai/gpt-4.1", "anthropic/claude-sonnet-4-6")
    served = serve()
    fake_openai.push_fault(Fault(status=500))
    fake_openai.push_fault(Fault(status=500))
    raw = sdk(served).chat.completions.with_raw_response.create(model="pair", messages=MESSAGES)
    assert raw.parse().choices[0].message.content.startswith("[claude-sonnet-4-6] saw ")
    assert raw.headers["x-runner-model"] == "anthropic/claude-sonnet-4-6"
    assert raw.headers["x-runner-attempts"] == "3"
    run = runs()[0]
    assert [a["outcome"] for a in run["attempts"]] == ["failed", "failed", "ok"]


def test_streamed_fallback_before_the_first_token_is_invisible(use, fake_openai, fake_anthropic, serve, home):
    use(fake_openai, "openai")
    use(fake_anthropic, "anthropic")
    profile(home, "pair", "openai/gpt-4.1", "anthropic/claude-sonnet-4-6")
    served = serve()
    fake_openai.push_fault(Fault(status=503))
    fake_openai.push_fault(Fault(status=503))
    chunks = list(sdk(served).chat.completions.create(model="pair", messages=MESSAGES, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[claude-sonnet-4-6] saw ") and "gpt-4.1" not in text
    assert chunks[-1].model_extra["runner"]["attempts"] == 3


def test_a_stream_that_fails_after_text_ends_with_an_error_not_a_second_answer(
        use, fake_openai, fake_anthropic, serve, home, runs):
    use(fake_openai, "openai")
    use(fake_anthropic, "anthropic")
    profile(home, "pair", "openai/gpt-4.1", "anthropic/claude-sonnet-4-6")
    fake_openai.replies["gpt-4.1"] = "one two three four five six seven eight nine ten eleven twelve"
    served = serve()
    fake_openai.push_fault(Fault(mid_stream=True, message="upstream broke"))
    got = []
    with pytest.raises(openai.APIError) as info:
        for c in sdk(served).chat.completions.create(model="pair", messages=MESSAGES, stream=True):
            got.append(c.choices[0].delta.content or "" if c.choices else "")
    assert "".join(got).startswith("one two")  # the part that was streamed, live
    assert "upstream broke" in info.value.message and "not retried" in info.value.message
    assert not chat_requests(fake_anthropic)  # no second answer was even asked for
    run = runs()[0]
    assert run["outcome"] == "failed" and "after part of its answer was streamed" in run["error"]
    assert len(chat_requests(fake_openai)) == 1


def test_not_streamed_a_mid_answer_failure_falls_back_to_one_whole_answer(use, fake_openai, fake_anthropic, serve, home):
    use(fake_openai, "openai")
    use(fake_anthropic, "anthropic")
    profile(home, "pair", "openai/gpt-4.1", "anthropic/claude-sonnet-4-6")
    served = serve()
    fake_openai.push_fault(Fault(mid_stream=True))
    fake_openai.push_fault(Fault(mid_stream=True))
    resp = sdk(served).chat.completions.create(model="pair", messages=MESSAGES)
    assert resp.choices[0].message.content.startswith("[claude-sonnet-4-6] saw ")


# --- privacy ----------------------------------------------------------------------------


def test_local_only_header_keeps_everything_on_this_machine(use, fake_openai, fake_ollama, serve, home):
    use(fake_openai, "openai")
    use(fake_ollama, "ollama")
    profile(home, "mixed", "openai/gpt-4.1", "ollama/qwen2.5:7b")
    served = serve()
    raw = sdk(served, default_headers={"X-Runner-Privacy": "local-only"}).chat.completions.with_raw_response.create(
        model="mixed", messages=MESSAGES)
    assert raw.headers["x-runner-model"] == "ollama/qwen2.5:7b"
    stream = sdk(served, default_headers={"X-Runner-Privacy": "local-only"}).chat.completions.create(
        model="mixed", messages=MESSAGES, stream=True)
    assert "qwen2.5:7b" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    with pytest.raises(openai.InternalServerError) as info:  # only a hosted model named: refused, not sent
        sdk(served, default_headers={"X-Runner-Privacy": "local-only"}).chat.completions.create(
            model="openai/gpt-4.1", messages=MESSAGES)
    assert info.value.status_code == 503 and "local-only" in info.value.message
    assert not fake_openai.requests  # the hosted fake received nothing at all
    with pytest.raises(openai.BadRequestError):
        sdk(served, default_headers={"X-Runner-Privacy": "cloud-please"}).chat.completions.create(
            model="mixed", messages=MESSAGES)


def test_a_local_only_task_never_leaves_even_when_local_fails(use, fake_openai, fake_ollama, serve, home):
    use(fake_openai, "openai")
    use(fake_ollama, "ollama")
    profile(home, "secret", "ollama/qwen2.5:7b", "openai/gpt-4.1", extra="privacy: local-only\n")
    served = serve()
    for _ in range(2):
        fake_ollama.push_fault(Fault(status=500))
    with pytest.raises(openai.InternalServerError):
        sdk(served).chat.completions.create(model="secret", messages=MESSAGES)
    assert not fake_openai.requests


# --- limits shared by every client -------------------------------------------------------


def test_per_provider_limits_are_shared_across_clients(use, fake_ollama, serve, home):
    use(fake_ollama, "ollama")
    (home / "config.yaml").write_text("retries: 0\nollama: {num_parallel: 2}\n")
    fake_ollama.chunk_delay_s = 0.02
    served = serve()

    import concurrent.futures

    def ask(i):
        return sdk(served).chat.completions.create(model="ollama/qwen2.5:7b",
                                                   messages=[{"role": "user", "content": f"client {i}"}])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert all(a.choices[0].message.content.startswith("[qwen2.5:7b]") for a in answers)
    assert fake_ollama.max_concurrent_answers == 2  # eight clients, one limit


# --- the run log ------------------------------------------------------------------------


def test_runs_are_logged_as_serve_with_the_client_and_log_source_filters(use, fake_openai, serve, runs, cli, tmp_path):
    use(fake_openai, "openai")
    keys = tmp_path / "keys.yaml"
    keys.write_text('alice: "alice-key-0123456789"\nbob: "bob-key-0123456789ab"\n')
    served = serve(keys=load_keys(keys_file=keys))
    sdk(served, key="alice-key-0123456789").chat.completions.create(model="openai/gpt-4.1", messages=MESSAGES)
    httpx.post(served.url + "/api/chat", headers={"authorization": "Bearer bob-key-0123456789ab"},
               json={"model": "openai/gpt-4.1", "stream": False, "messages": MESSAGES}).raise_for_status()
    assert [r["client"] for r in runs()] == ["bob", "alice"]
    assert {r["kind"] for r in runs()} == {"serve"}
    assert cli("ask", "-m", "openai/gpt-4.1", "hi").code == 0
    logged = cli("log", "--source", "serve", "--json").json()
    assert [r["client"] for r in logged] == ["bob", "alice"] and {r["kind"] for r in logged} == {"serve"}
    assert [r["kind"] for r in cli("log", "--source", "ask", "--json").json()] == ["ask"]
    assert any("client=alice" in line for line in served.lines)


# --- a client that leaves ------------------------------------------------------------------


def wait_until(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_a_client_disconnect_mid_stream_cancels_the_upstream_call(use, fake_openai, serve, runs):
    use(fake_openai, "openai")
    fake_openai.replies["gpt-4.1"] = "word " * 400  # 100 chunks
    fake_openai.chunk_delay_s = 0.05  # about 5 s in all
    served = serve()
    body = {"model": "openai/gpt-4.1", "stream": True, "messages": MESSAGES}
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", served.url + "/v1/chat/completions", json=body) as resp:
            lines = resp.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
    left = time.monotonic()
    assert wait_until(lambda: fake_openai._in_flight == 0, 3.0), "the upstream stream went on"
    assert time.monotonic() - left < 3.0
    assert wait_until(lambda: runs()[0]["outcome"] == "failed")
    assert runs()[0]["error"] == "client disconnected"


def test_a_client_that_leaves_a_non_streamed_request_cancels_it_too(use, fake_openai, serve, runs):
    use(fake_openai, "openai")
    fake_openai.replies["gpt-4.1"] = "word " * 400
    fake_openai.chunk_delay_s = 0.05
    served = serve()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(served.url + "/v1/chat/completions", timeout=0.5,
                   json={"model": "openai/gpt-4.1", "messages": MESSAGES})
    assert wait_until(lambda: runs() and runs()[0]["outcome"] == "failed", 3.0)
    assert runs()[0]["error"] == "client disconnected"
    assert wait_until(lambda: fake_openai._in_flight == 0, 2.0)


# --- keys -----------------------------------------------------------------------------------


def test_keys_are_required_when_configured_and_compared_per_client(use, fake_openai, serve, tmp_path):
    use(fake_openai, "openai")
    served = serve(keys=load_keys(api_key="the-one-key-0123456789"))
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(served, key="wrong-key-0123456789").chat.completions.create(model="openai/gpt-4.1", messages=MESSAGES)
    assert "wrong-key" not in info.value.message and "the-one-key" not in info.value.message
    with pytest.raises(openai.AuthenticationError):
        sdk(served, key="wrong").models.list()
    r = httpx.get(served.url + "/api/tags")
    assert r.status_code == 401 and "error" in r.json()
    assert sdk(served, key="the-one-key-0123456789").models.list().data
    r = httpx.get(served.url + "/api/tags", headers={"x-api-key": "the-one-key-0123456789"})
    assert r.status_code == 200
    assert not fake_openai.requests


def test_keys_file_mistakes_are_one_line_and_never_show_a_key(tmp_path):
    from runner.errors import UserError

    bad = tmp_path / "keys.yaml"
    bad.write_text('alice: "short-secret"\n')
    with pytest.raises(UserError) as info:
        load_keys(keys_file=bad)
    assert "line 1" in str(info.value) and "short-secret" not in str(info.value)
    bad.write_text('alice: "same-key-0123456789"\nbob: "same-key-0123456789"\n')
    with pytest.raises(UserError) as info:
        load_keys(keys_file=bad)
    assert "line 2" in str(info.value) and "same-key" not in str(info.value)


UPSTREAM_KEY = "sk-upstream-SECRET-7f3a9c"


def test_upstream_keys_never_appear_in_a_response(use, serve, home, monkeypatch):
    from tests.fakes import FakeAnthropic, FakeOpenAI

    with FakeOpenAI({"gpt-4.1": 1_000_000}, api_key=UPSTREAM_KEY) as oa, FakeAnthropic(api_key=UPSTREAM_KEY) as an:
        use(oa, "openai", key=UPSTREAM_KEY)
        use(an, "anthropic", key=UPSTREAM_KEY)
        monkeypatch.setenv("OLLAMA_HOST", f"http://admin:{UPSTREAM_KEY}@127.0.0.1:9")
        profile(home, "pair", "openai/gpt-4.1", "anthropic/claude-sonnet-4-5")
        served = serve()
        seen: list[str] = []

        def record(r: httpx.Response) -> None:
            seen.append(r.text)
            seen.append(json.dumps(dict(r.headers)))

        with httpx.Client(base_url=served.url, timeout=30) as c:
            record(c.post("/v1/chat/completions", json={"model": "pair", "messages": MESSAGES}))
            # an upstream error that quotes the key (a 400: not retried): redacted on the way
            oa.push_fault(Fault(status=400, message=f"bad key {UPSTREAM_KEY} rejected"))
            an.push_fault(Fault(status=400, message=f"bad key {UPSTREAM_KEY} rejected"))
            r = c.post("/v1/chat/completions", json={"model": "pair", "messages": MESSAGES})
            assert r.status_code == 400 and "***" in r.text
            record(r)
            oa.push_fault(Fault(mid_stream=True, message=f"boom {UPSTREAM_KEY}"))
            with c.stream("POST", "/v1/chat/completions",
                          json={"model": "openai/gpt-4.1", "stream": True, "messages": MESSAGES}) as s:
                seen.append(s.read().decode())
            record(c.post("/v1/chat/completions", json={"model": "ollama/qwen2.5:7b", "messages": MESSAGES}))
            record(c.post("/api/chat", json={"model": "general", "messages": MESSAGES, "stream": False}))
            record(c.get("/v1/models"))
            record(c.get("/api/tags"))
            record(c.post("/api/show", json={"model": "pair"}))
        everything = "\n".join(seen + served.lines)
        assert UPSTREAM_KEY not in everything
        assert "boom ***" in everything  # the mid-stream error did reach the client, redacted
        assert "127.0.0.1:9" in everything  # the Ollama skip reason names the server, not its password


# --- the body -------------------------------------------------------------------------------


def test_bad_json_and_wrong_paths_are_protocol_shaped(serve):
    served = serve()
    r = httpx.post(served.url + "/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(served.url + "/api/chat", content=b"{not json")
    assert r.status_code == 400 and isinstance(r.json()["error"], str)
    r = httpx.get(served.url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["message"].startswith("no such endpoint")
    r = httpx.get(served.url + "/v1/chat/completions")
    assert r.status_code == 405


def test_an_oversized_body_is_refused_while_reading(serve, use, fake_openai):
    use(fake_openai, "openai")
    served = serve(max_body_bytes=1024 * 1024)

    def chunks():  # no content-length: the limit is enforced as the body arrives
        for _ in range(64):
            yield b"x" * 65536

    r = httpx.post(served.url + "/v1/chat/completions", content=chunks())
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(served.url + "/api/chat", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert r.status_code == 413 and "1 MiB" in r.json()["error"]


# --- a slow first token ---------------------------------------------------------------------


def test_a_slow_first_token_gets_keep_alive_comments_then_the_answer(use, fake_openai, serve):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.6
    served = serve()
    served.gateway.header_wait_s, served.gateway.ping_s = 0.1, 0.1
    with httpx.stream("POST", served.url + "/v1/chat/completions", timeout=10,
                      json={"model": "openai/gpt-4.1", "stream": True, "messages": MESSAGES}) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    pings = [i for i, line in enumerate(lines) if line.startswith(":")]
    first = next(i for i, line in enumerate(lines) if line.startswith("data: {"))
    assert pings and max(pings) < first and lines[-1] == "data: [DONE]"


def test_a_failure_after_the_status_was_sent_is_an_error_chunk(use, fake_openai, serve):
    use(fake_openai, "openai")
    served = serve()
    served.gateway.header_wait_s, served.gateway.ping_s = 0.1, 0.1
    fake_openai.push_fault(Fault(status=400, hang_s=0.5, message="refused late"))
    with pytest.raises(openai.APIError) as info:
        list(sdk(served).chat.completions.create(model="openai/gpt-4.1", messages=MESSAGES, stream=True))
    assert "refused late" in info.value.message


def test_the_bind_check():
    from runner.errors import UserError
    from runner.serve.auth import Keys
    from runner.serve.server import check_bind

    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_bind(host, Keys())
    with pytest.raises(UserError):
        check_bind("0.0.0.0", Keys())
    check_bind("0.0.0.0", load_keys(api_key="a-long-enough-key-123"))

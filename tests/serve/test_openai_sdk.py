"""The official `openai` SDK against `runner serve`, with the protocol fakes behind it: what
it parses is the contract (shapes, chunks, usage, errors into the SDK's exception types)."""

from __future__ import annotations

import openai
import pytest

from tests.fakes import Fault

from .conftest import profile

MESSAGES = [{"role": "user", "content": "hello there gateway"}]


def sdk(served, key: str = "anything") -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_not_streamed_answer_usage_and_runner_headers(use, fake_openai, serve, runs):
    use(fake_openai, "openai")
    served = serve()
    raw = sdk(served).chat.completions.with_raw_response.create(model="openai/gpt-4.1", messages=MESSAGES)
    resp = raw.parse()
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content.startswith("[gpt-4.1] saw ")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.model == "openai/gpt-4.1"
    h = raw.headers
    assert h["x-runner-model"] == "openai/gpt-4.1"
    assert h["x-runner-attempts"] == "1"
    assert float(h["x-runner-cost-usd"]) > 0
    assert float(h["x-runner-latency-ms"]) >= float(h["x-runner-ttft-ms"]) > 0
    [run] = runs()
    assert run["kind"] == "serve" and run["outcome"] == "ok" and run["prompt"] == "hello there gateway"
    assert str(run["id"]) == h["x-runner-run-id"]


def test_streamed_chunks_usage_and_runner_field(use, fake_openai, serve):
    use(fake_openai, "openai")
    served = serve()
    stream = sdk(served).chat.completions.create(model="openai/gpt-4.1", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[gpt-4.1] saw ") and "hello there gateway" in text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens > 0
    meta = last.model_extra["runner"]
    assert meta["model"] == "openai/gpt-4.1" and meta["attempts"] == 1 and meta["cost_usd"] > 0
    assert len({c.id for c in chunks}) == 1


def test_streamed_without_usage_puts_runner_on_the_finishing_chunk(use, fake_openai, serve):
    use(fake_openai, "openai")
    served = serve()
    chunks = list(sdk(served).chat.completions.create(model="openai/gpt-4.1", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["runner"]["model"] == "openai/gpt-4.1"
    assert all(c.usage is None for c in chunks)


def test_a_task_name_routes_by_its_profile(use, fake_openai, fake_anthropic, serve, home):
    use(fake_openai, "openai")
    use(fake_anthropic, "anthropic")
    profile(home, "review", "anthropic/claude-sonnet-4-6", "openai/gpt-4.1",
            extra="system: You review code.\noptions: {temperature: 0.3}\n")
    served = serve()
    for name in ("review", "task/review", "review:latest"):
        resp = sdk(served).chat.completions.create(model=name, messages=MESSAGES)
        assert resp.model == "anthropic/claude-sonnet-4-6"
    sent = fake_anthropic.requests[-1].json
    assert sent["system"] == "You review code." and sent["temperature"] == 0.3
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]


def test_a_client_system_message_replaces_the_profile_s(use, fake_anthropic, serve, home):
    use(fake_anthropic, "anthropic")
    profile(home, "review", "anthropic/claude-sonnet-4-6", extra="system: You review code.\n")
    served = serve()
    sdk(served).chat.completions.create(model="review", messages=[
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "again"}])
    sent = fake_anthropic.requests[-1].json
    assert sent["system"] == "Be terse."
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_generation_options_reach_the_model(use, fake_openai, serve):
    use(fake_openai, "openai")
    served = serve()
    sdk(served).chat.completions.create(
        model="openai/gpt-4.1", messages=[{"role": "user", "content": "answer in json"}], temperature=0.4, top_p=0.9,
        max_completion_tokens=77, stop=["END"], seed=7, response_format={"type": "json_object"}, user="alice")
    sent = fake_openai.requests[-1].json
    assert (sent["temperature"], sent["top_p"], sent["max_completion_tokens"], sent["stop"], sent["seed"]) == (
        0.4, 0.9, 77, ["END"], 7)
    assert sent["response_format"] == {"type": "json_object"}
    sdk(served).chat.completions.create(model="openai/gpt-4.1", messages=MESSAGES, max_tokens=12, stop="X")
    sent = fake_openai.requests[-1].json
    assert sent["max_completion_tokens"] == 12 and sent["stop"] == ["X"]


def test_the_client_s_user_is_logged(use, fake_openai, serve, runs):
    use(fake_openai, "openai")
    served = serve()
    sdk(served).chat.completions.create(model="openai/gpt-4.1", messages=MESSAGES, user="editor-42")
    assert runs()[0]["client"] == "editor-42"


# --- errors, parsed into the SDK's own exception types ----------------------------------


def test_unknown_model_is_not_found_listing_the_tasks(use, fake_openai, serve):
    use(fake_openai, "openai")
    served = serve()
    with pytest.raises(openai.NotFoundError) as info:
        sdk(served).chat.completions.create(model="gpt-4.1", messages=MESSAGES)
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert "coding" in info.value.message and "general" in info.value.message


def test_bad_fields_are_bad_requests_naming_the_field(use, fake_openai, serve):
    use(fake_openai, "openai")
    served = serve()
    client = sdk(served)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="general", messages=[])
    assert info.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="general", messages=MESSAGES, temperature=5)
    assert info.value.param == "temperature" and "from 0 to 2" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="general", messages=[{"role": "robot", "content": "x"}])
    assert info.value.param == "messages[0].role"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="general", messages=MESSAGES, n=3)
    assert not fake_openai.requests


def test_rate_limited_everywhere_is_429(use, fake_openai, serve, home):
    use(fake_openai, "openai")
    served = serve()
    fake_openai.push_fault(Fault(status=429, retry_after="90", message="slow down"))
    with pytest.raises(openai.RateLimitError) as info:
        sdk(served).chat.completions.create(model="openai/gpt-4.1", messages=MESSAGES)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "90"
    assert "slow down" in info.value.message


def test_every_model_failing_is_502_with_the_reasons(use, fake_openai, fake_anthropic, serve, home):
    use(fake_openai, "openai")
    use(fake_anthropic, "anthropic")
    profile(home, "pair", "openai/gpt-4.1", "anthropic/claude-sonnet-4-6")
    served = serve()
    for _ in range(2):  # retries: 1 in the tests' config, so two tries each
        fake_openai.push_fault(Fault(status=500, message="openai exploded"))
        fake_anthropic.push_fault(Fault(status=500, message="anthropic exploded"))
    with pytest.raises(openai.InternalServerError) as info:
        sdk(served).chat.completions.create(model="pair", messages=MESSAGES)
    assert info.value.status_code == 502
    assert "openai exploded" in info.value.message and "anthropic exploded" in info.value.message
    assert info.value.response.headers["x-runner-attempts"] == "4"


def test_nothing_available_is_503_with_each_skip_reason(serve):
    served = serve()  # no keys, Ollama on a closed port
    with pytest.raises(openai.InternalServerError) as info:
        sdk(served).chat.completions.create(model="coding", messages=MESSAGES)
    assert info.value.status_code == 503
    assert "no ANTHROPIC_API_KEY" in info.value.message and "Ollama not reachable" in info.value.message


def test_a_prompt_too_long_for_every_model_is_400_context_length(use, fake_openai, serve, home):
    use(fake_openai, "openai")
    (home / "config.yaml").write_text("retries: 0\nmodels:\n  openai/gpt-4.1: {context: 4096}\n")
    served = serve()
    with pytest.raises(openai.BadRequestError) as info:
        sdk(served).chat.completions.create(model="openai/gpt-4.1", messages=[{"role": "user", "content": "word " * 20000}])
    assert info.value.code == "context_length_exceeded"
    assert not fake_openai.requests


def test_a_body_over_the_limit_is_413(use, fake_openai, serve):
    use(fake_openai, "openai")
    served = serve(max_body_bytes=64 * 1024)
    with pytest.raises(openai.APIStatusError) as info:
        sdk(served).chat.completions.create(model="openai/gpt-4.1", messages=[{"role": "user", "content": "x" * 200_000}])
    assert info.value.status_code == 413 and "limit" in info.value.message
    assert not fake_openai.requests


def test_models_list_tasks_first_then_what_is_available(use, fake_openai, fake_ollama, serve):
    use(fake_openai, "openai")
    use(fake_ollama, "ollama")
    served = serve()
    ids = [m.id for m in sdk(served).models.list()]
    tasks = ["general", "coding", "fast", "long-doc", "private", "realtime", "reasoning"]
    assert ids[: len(tasks)] == tasks
    rest = ids[len(tasks):]
    assert "ollama/qwen2.5:7b" in rest and "openai/gpt-4.1" in rest
    assert not [i for i in rest if i.startswith(("anthropic/", "gemini/"))]  # no key: not available
    assert sdk(served).models.retrieve("coding").owned_by == "runner"
    with pytest.raises(openai.NotFoundError):
        sdk(served).models.retrieve("nope")

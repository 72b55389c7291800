"""The official `ollama` client against `runner serve`: a tool configured for Ollama works
unchanged (chat streamed and not, list, show) and gains routing, fallback and metering."""

from __future__ import annotations

import httpx
import ollama
import pytest

from tests.fakes import Fault

from .conftest import profile

MESSAGES = [{"role": "user", "content": "hello from an ollama tool"}]


def client(served) -> ollama.Client:
    return ollama.Client(host=served.url, timeout=30)


def last_chat(fake) -> dict:
    return [r for r in fake.requests if r.path == "/api/chat"][-1].json


def raw_lines(served, body: dict) -> list[dict]:
    """The NDJSON lines as sent (the client's models drop fields they don't know, like `runner`)."""
    import json

    with httpx.stream("POST", served.url + "/api/chat", json=body, timeout=30) as r:
        return [json.loads(line) for line in r.iter_lines() if line]


def test_chat_not_streamed(use, fake_ollama, serve, runs):
    use(fake_ollama, "ollama")
    served = serve()
    resp = client(served).chat(model="ollama/qwen2.5:7b", messages=MESSAGES, stream=False)
    assert resp.message.role == "assistant"
    assert resp.message.content.startswith("[qwen2.5:7b] saw ")
    assert resp.done and resp.done_reason == "stop"
    assert resp.prompt_eval_count > 0 and resp.eval_count > 0 and resp.total_duration > 0
    assert runs()[0]["kind"] == "serve"


def test_chat_streamed_with_the_runner_field_on_the_last_line(use, fake_ollama, serve):
    use(fake_ollama, "ollama")
    served = serve()
    parts = list(client(served).chat(model="general", messages=MESSAGES, stream=True))
    text = "".join(p.message.content or "" for p in parts)
    thinking = "".join(p.message.thinking or "" for p in parts)
    assert text.startswith("[qwen3:8b] saw ") and thinking  # general: qwen3:8b first, a thinking model
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].model == "general"
    last = raw_lines(served, {"model": "general", "messages": MESSAGES})[-1]
    assert last["done"] and last["runner"]["model"] == "ollama/qwen3:8b" and last["runner"]["attempts"] == 1


def test_hosted_fallback_for_an_ollama_client(use, fake_ollama, fake_openai, serve, home):
    use(fake_ollama, "ollama")
    use(fake_openai, "openai")
    profile(home, "local-first", "ollama/qwen2.5:7b", "openai/gpt-4.1")
    served = serve()
    fake_ollama.push_fault(Fault(status=500))
    fake_ollama.push_fault(Fault(status=500))
    parts = list(client(served).chat(model="local-first", messages=MESSAGES, stream=True))
    assert "".join(p.message.content or "" for p in parts).startswith("[gpt-4.1] saw ")
    fake_ollama.push_fault(Fault(status=500))
    fake_ollama.push_fault(Fault(status=500))
    last = raw_lines(served, {"model": "local-first", "messages": MESSAGES})[-1]
    assert last["runner"]["model"] == "openai/gpt-4.1" and last["runner"]["attempts"] == 3


def test_options_and_num_ctx_as_a_floor(use, fake_ollama, serve):
    use(fake_ollama, "ollama")
    served = serve()
    c = client(served)
    c.chat(model="ollama/qwen2.5:7b", messages=MESSAGES, stream=False,
           options={"temperature": 0.1, "top_p": 0.8, "seed": 3, "stop": ["END"], "num_predict": 50, "num_ctx": 16384},
           format="json")
    sent = last_chat(fake_ollama)
    assert sent["options"]["num_ctx"] == 16384  # the client's window, though the prompt needs 4096
    assert (sent["options"]["temperature"], sent["options"]["top_p"], sent["options"]["seed"]) == (0.1, 0.8, 3)
    assert sent["options"]["stop"] == ["END"] and sent["options"]["num_predict"] == 50
    assert sent["format"] == "json"
    c.chat(model="ollama/qwen2.5:7b", messages=MESSAGES, stream=False, options={"num_ctx": 512})
    assert last_chat(fake_ollama)["options"]["num_ctx"] == 4096  # a smaller one never cuts the prompt
    big = [{"role": "user", "content": "word " * 12000}]
    c.chat(model="ollama/qwen2.5:7b", messages=big, stream=False, options={"num_ctx": 4096})
    assert last_chat(fake_ollama)["options"]["num_ctx"] >= 16384  # sized to the prompt anyway


def test_list_has_tasks_first_then_models(use, fake_ollama, serve):
    use(fake_ollama, "ollama")
    served = serve()
    names = [m.model for m in client(served).list().models]
    assert names[:2] == ["general", "coding"]
    assert "ollama/qwen2.5:7b" in names and names.index("ollama/qwen2.5:7b") > names.index("reasoning")


def test_show_a_task_and_a_model(use, fake_ollama, fake_openai, serve):
    use(fake_ollama, "ollama")
    use(fake_openai, "openai")
    served = serve()
    c = client(served)
    task = c.show("general")
    assert "completion" in task.capabilities
    assert task.modelinfo["runner.context_length"] == 1_047_576  # the largest window behind the task
    model = c.show("ollama/qwen2.5:7b")
    assert model.modelinfo["runner.context_length"] == 32768 and "tools" in model.capabilities
    with pytest.raises(ollama.ResponseError) as info:
        c.show("nope")
    assert info.value.status_code == 404


def test_version_and_errors(use, fake_ollama, serve):
    use(fake_ollama, "ollama")
    served = serve()
    assert httpx.get(served.url + "/api/version").json()["version"]
    with pytest.raises(ollama.ResponseError) as info:
        client(served).chat(model="qwen2.5:7b", messages=MESSAGES)
    assert info.value.status_code == 404
    assert "did you mean 'ollama/qwen2.5:7b'" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client(served).chat(model="general", messages=[{"role": "user", "content": "x", "images": ["aGk="]}])
    assert info.value.status_code == 400


def test_a_load_request_without_messages_is_answered_without_a_model_call(use, fake_ollama, serve):
    use(fake_ollama, "ollama")
    served = serve()
    resp = client(served).chat(model="general", messages=[], stream=False)
    assert resp.done and resp.done_reason == "load"
    assert not [r for r in fake_ollama.requests if r.path == "/api/chat"]


def test_a_mid_stream_failure_reaches_the_ollama_client_as_an_error(use, fake_ollama, serve):
    use(fake_ollama, "ollama")
    fake_ollama.replies["qwen2.5:7b"] = "one two three four five six seven eight nine ten eleven twelve"
    served = serve()
    fake_ollama.push_fault(Fault(mid_stream=True, message="GPU fell over"))
    got = []
    with pytest.raises(ollama.ResponseError) as info:
        for part in client(served).chat(model="ollama/qwen2.5:7b", messages=MESSAGES, stream=True):
            got.append(part.message.content)
    assert "".join(got).startswith("one two") and "GPU fell over" in info.value.error


def test_a_model_pulled_while_serving_shows_up(use, fake_ollama, serve):
    from tests.fakes import FakeModel

    use(fake_ollama, "ollama")
    served = serve()
    c = client(served)
    assert "ollama/llama3.2:3b" not in [m.model for m in c.list().models]
    fake_ollama.models["llama3.2:3b"] = FakeModel(131072, "llama")
    served.gateway.session.availability_ttl_s = 0  # the next request probes again
    names = [m.model for m in c.list().models]
    assert "ollama/llama3.2:3b" in names
    assert c.chat(model="ollama/llama3.2:3b", messages=MESSAGES, stream=False).message.content.startswith("[llama3.2:3b]")

"""`runner ask` end to end, through the real CLI, against loopback fakes of each protocol."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.fakes import Fault
from tests.fakes.tokens import count_tokens

JSON_FIELDS = {"model", "task", "text", "thinking", "input_tokens", "output_tokens", "ttft_ms", "latency_ms",
               "tokens_per_s", "cost_usd", "attempts"}


def chat_requests(fake):
    return [r for r in fake.requests if r.path.endswith("/api/chat") or "completions" in r.path
            or r.path.endswith("/messages") or "GenerateContent" in r.path]


# --- Ollama -------------------------------------------------------------------------------


def test_ollama_streams_with_footer_and_sized_window(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "hello there")
    assert r.code == 0, r.stderr
    assert "[qwen2.5:7b] saw" in r.stdout and "hello there" in r.stdout
    footer = r.stderr.strip().splitlines()[-1]
    for part in ("ollama/qwen2.5:7b", "first token", "total", " in / ", " out", "tok/s", "$0 (local)"):
        assert part in footer
    (req,) = chat_requests(fake_ollama)
    assert req.json["stream"] is True
    assert req.json["options"]["num_ctx"] == 4096  # sized to the prompt, never the server's default
    assert req.json["truncate"] is False and req.json["shift"] is False


def test_json_contract(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    r = cli("ask", "--task", "private", "--json", "what is 2+2?")
    assert r.code == 0, r.stderr
    data = r.json()
    assert JSON_FIELDS <= set(data)
    assert data["model"] == "ollama/qwen3:8b" and data["task"] == "private"
    assert data["thinking"]  # qwen3 thinks; the thinking is separated from the answer
    assert "<think>" not in data["text"]
    assert data["cost_usd"] == 0.0
    assert data["input_tokens"] == count_tokens("what is 2+2?") + 4
    assert data["ttft_ms"] > 0 and data["latency_ms"] >= data["ttft_ms"]
    (att,) = data["attempts"]
    assert att == {"model": "ollama/qwen3:8b", "outcome": "ok", "finish_reason": "stop",
                   "input_tokens": data["input_tokens"], "output_tokens": data["output_tokens"],
                   "tokens_estimated": False, "ttft_ms": data["ttft_ms"], "answer_ms": att["answer_ms"],
                   "queue_ms": att["queue_ms"], "latency_ms": data["latency_ms"], "cost_usd": 0.0,
                   "host": fake_ollama.url}  # the server that answered (a pool has several)
    assert data["finish_reason"] == "stop"


def test_old_think_tags_are_split_from_the_answer(cli, fake_ollama, use):
    from tests.fakes.ollama import FakeModel

    fake_ollama.models["oldthinker:7b"] = FakeModel(32768, "qwen2", ["completion"], thinking_style="tags",
                                                    thinking="step one, step two")
    use(fake_ollama, "ollama")
    data = cli("ask", "--model", "ollama/oldthinker:7b", "--json", "hi").json()
    assert data["thinking"].strip() == "step one, step two"
    assert "<think>" not in data["text"] and "</think>" not in data["text"]


def test_model_not_pulled_is_explained(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    r = cli("ask", "--model", "ollama/llama9:70b", "hi")
    assert r.code == 1
    assert "not pulled (ollama pull llama9:70b)" in r.stderr
    assert "Traceback" not in r.stderr
    assert not chat_requests(fake_ollama)


def test_ollama_down_is_one_clear_line(cli):
    r = cli("ask", "--task", "private", "hi")
    assert r.code == 1
    assert "Ollama not reachable at http://127.0.0.1:" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_mid_stream_error_is_a_failure_then_fallback(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    fake_ollama.push_fault(Fault(mid_stream=True, message="llama runner process has terminated"), model="qwen3:8b")
    fake_ollama.push_fault(Fault(mid_stream=True, message="llama runner process has terminated"), model="qwen3:8b")
    data = cli("ask", "--task", "private", "--json", "hi").json()
    assert data["model"] == "ollama/deepseek-r1:8b"
    failed = [a for a in data["attempts"] if a["outcome"] == "failed"]
    assert [a["model"] for a in failed] == ["ollama/qwen3:8b", "ollama/qwen3:8b"]  # retried once, then fell back
    assert "llama runner process has terminated" in failed[0]["error"]
    assert data["text"].startswith("[deepseek-r1:8b]")


def test_explain_sends_nothing(cli, fake_ollama, fake_openai, use):
    use(fake_ollama, "ollama")
    use(fake_openai, "openai")
    r = cli("ask", "--task", "reasoning", "--explain", "--json", "prove it")
    assert r.code == 0, r.stderr
    plan = r.json()
    assert [a["model"] for a in plan["attempts"]] == ["openai/o3", "openai/o4-mini", "ollama/deepseek-r1:8b"]
    assert {"model": "deepseek/deepseek-v4-pro", "reason": "no DEEPSEEK_API_KEY"} in plan["skipped"]
    assert plan["estimate"]["input_tokens"] > 0
    assert not chat_requests(fake_ollama) and not chat_requests(fake_openai)
    human = cli("ask", "--task", "reasoning", "--explain", "prove it")
    assert "skip: no DEEPSEEK_API_KEY" in human.stdout and "try first" in human.stdout


# --- hosted protocols ---------------------------------------------------------------------


def test_openai_usage_and_cost(cli, fake_openai, use):
    use(fake_openai, "openai")
    data = cli("ask", "--model", "openai/gpt-4.1", "--json", "--max-tokens", "300", "hello").json()
    assert data["model"] == "openai/gpt-4.1" and data["text"]
    assert data["input_tokens"] == count_tokens("hello") + 4
    assert data["tokens_estimated"] is False
    expected = (data["input_tokens"] * 2.0 + data["output_tokens"] * 8.0) / 1e6  # gpt-4.1: $2 / $8 per M
    assert data["cost_usd"] == pytest.approx(expected)
    (req,) = chat_requests(fake_openai)
    assert req.json["max_completion_tokens"] == 300 and "max_tokens" not in req.json
    assert req.json["stream_options"] == {"include_usage": True}


def test_anthropic_for_coding(cli, fake_anthropic, use):
    use(fake_anthropic, "anthropic")
    data = cli("ask", "--task", "coding", "--json", "write fizzbuzz").json()
    assert data["model"] == "anthropic/claude-sonnet-4-6"
    assert data["cost_usd"] == pytest.approx((data["input_tokens"] * 3 + data["output_tokens"] * 15) / 1e6)
    (req,) = chat_requests(fake_anthropic)
    assert req.json["system"].startswith("You are a careful senior engineer")
    assert req.json["max_tokens"] == 4096


def test_gemini(cli, fake_gemini, use):
    use(fake_gemini, "gemini")
    r = cli("ask", "--model", "gemini/gemini-2.5-flash", "hi")
    assert r.code == 0, r.stderr
    assert "[gemini-2.5-flash]" in r.stdout
    assert "gemini/gemini-2.5-flash" in r.stderr and "price unknown" not in r.stderr


def test_deepseek_reasoning_is_thinking(cli, fake_deepseek, use):
    use(fake_deepseek, "deepseek")
    data = cli("ask", "--model", "deepseek/deepseek-v4-pro", "--json", "think hard").json()
    assert data["thinking"] and data["text"] and data["thinking"] not in data["text"]
    assert data["cost_usd"] is not None and data["cost_usd"] > 0


@pytest.mark.parametrize("provider,fixture,model", [("xai", "fake_xai", "grok-4.3"),
                                                    ("mistral", "fake_mistral", "mistral-small-latest")])
def test_other_openai_compatible(cli, use, request, provider, fixture, model):
    fake = request.getfixturevalue(fixture)
    use(fake, provider)
    data = cli("ask", "--model", f"{provider}/{model}", "--json", "hi").json()
    assert data["model"] == f"{provider}/{model}" and data["text"]
    (req,) = chat_requests(fake)
    assert req.json["max_tokens"] == 2048  # the general profile's cap, as these servers name it


def test_custom_endpoint_from_config(cli, home, use):
    from tests.fakes.openai import FakeOpenAI

    with FakeOpenAI(models={"qwen2.5-7b-instruct": 32768}, api_key=None) as lm:
        (home / "config.yaml").write_text(
            f"retries: 0\nendpoints:\n  lmstudio: {{base_url: '{lm.url}/v1', local: true}}\n"
            "models:\n  lmstudio/qwen2.5-7b-instruct: {context: 32768}\n")
        data = cli("ask", "--model", "lmstudio/qwen2.5-7b-instruct", "--json", "hi").json()
        assert data["model"] == "lmstudio/qwen2.5-7b-instruct" and data["cost_usd"] == 0.0


# --- failures, retries, fallback ----------------------------------------------------------


def test_retry_after_is_honoured_then_succeeds(cli, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.push_fault(Fault(status=429, retry_after="1", message="Rate limit reached"))
    start = time.monotonic()
    data = cli("ask", "--model", "openai/gpt-4.1", "--json", "hi").json()
    assert time.monotonic() - start >= 1.0
    assert data["model"] == "openai/gpt-4.1"
    assert [a["outcome"] for a in data["attempts"]] == ["failed", "ok"]
    assert "429" in data["attempts"][0]["error"]


def test_fallback_across_protocols_and_all_failed_message(cli, fake_anthropic, fake_ollama, fake_openai, use):
    use(fake_anthropic, "anthropic")
    use(fake_ollama, "ollama")
    use(fake_openai, "openai")
    for _ in range(2):
        fake_anthropic.push_fault(Fault(status=529, error_type="overloaded_error", message="Overloaded"))
    fake_anthropic.push_fault(Fault(status=401, error_type="authentication_error", message="invalid x-api-key"))
    fake_ollama.push_fault(Fault(status=500, message="out of memory"))
    fake_ollama.push_fault(Fault(status=500, message="out of memory"))
    fake_openai.push_fault(Fault(drop=True))
    fake_openai.push_fault(Fault(drop=True))
    r = cli("ask", "--task", "coding", "--json", "fix it")
    assert r.code == 1
    data = r.json()
    assert data["ok"] is False and data["model"] == "openai/gpt-4.1"  # the last model tried
    assert data["error"].startswith("every model failed: anthropic/claude-sonnet-4-6: HTTP 529")
    assert "ollama/qwen2.5:14b: HTTP 500: out of memory" in data["error"]
    models = [a["model"] for a in data["attempts"]]
    assert models[:3] == ["anthropic/claude-sonnet-4-6"] * 2 + ["anthropic/claude-sonnet-4-5"]
    human = cli("ask", "--task", "coding", "fix it")
    assert human.code in (0, 1) and "Traceback" not in human.stderr


def test_dropped_stream_is_not_a_short_answer(cli, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.push_fault(Fault(drop=True))
    fake_openai.push_fault(Fault(drop=True))
    r = cli("ask", "--model", "openai/gpt-4.1", "--json", "hi")
    data = r.json()
    assert r.code == 1 and data["ok"] is False and data["text"] is None


# --- privacy and secrets ------------------------------------------------------------------


def test_local_only_never_reaches_hosted(cli, fake_openai, fake_anthropic, fake_gemini, fake_deepseek, use):
    for fake, name in ((fake_openai, "openai"), (fake_anthropic, "anthropic"), (fake_gemini, "gemini"),
                       (fake_deepseek, "deepseek")):
        use(fake, name)
    # Ollama is down: the private task must fail rather than leave the machine.
    r = cli("ask", "--task", "private", "secret plans")
    assert r.code == 1
    r = cli("ask", "--task", "general", "--local-only", "secret plans")
    assert r.code == 1
    r = cli("ask", "--model", "openai/gpt-4.1", "--local-only", "secret plans")
    assert r.code == 1 and "task is local-only" in r.stderr
    for fake in (fake_openai, fake_anthropic, fake_gemini, fake_deepseek):
        assert fake.requests == []


def test_api_key_never_in_log_or_output(cli, home, fake_openai, fake_anthropic, use):
    secret = "test-key-SECRET-0123456789"
    use(fake_openai, "openai", key=secret)  # the fake expects "test-key": every call is a 401
    use(fake_anthropic, "anthropic", key=secret)
    fake_openai.api_key = secret  # now one provider accepts it
    # A careless server (or proxy) that echoes the key back, in an error and mid-stream.
    fake_openai.push_fault(Fault(status=500, message=f"upstream rejected Bearer {secret}"))
    fake_openai.push_fault(Fault(mid_stream=True, message=f"key {secret} over quota"))
    outputs = [cli("ask", "--model", "openai/gpt-4.1", "--json", "hi"), cli("ask", "--task", "coding", "--json", "hi"), cli("ask", "--model", "openai/gpt-4.1", "hi"),
               cli("log", "--json"), cli("log"), cli("stats", "--json")]
    for out in outputs:
        assert secret not in out.stdout and secret not in out.stderr
    db = (home / "runs.db").read_bytes() + b"".join(p.read_bytes() for p in home.glob("runs.db*"))
    assert secret.encode() not in db
    assert "upstream rejected Bearer ***" in outputs[0].stdout  # the echo was logged, redacted
    assert "401" in outputs[1].stdout  # the anthropic failure was logged, without the key


# --- inputs and the log -------------------------------------------------------------------


def test_files_stdin_and_system(cli, fake_ollama, use, tmp_path):
    use(fake_ollama, "ollama")
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nThe launch slipped to March.\n")
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "-f", str(notes), "--system", "Be brief.", "What slipped?",
            input="stack trace: boom\n")
    assert r.code == 0, r.stderr
    (req,) = chat_requests(fake_ollama)
    msgs = req.json["messages"]
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    content = msgs[1]["content"]
    assert f'<document name="{notes}">' in content and "launch slipped" in content
    assert '<document name="stdin">' in content and "boom" in content
    assert content.rstrip().endswith("What slipped?")


def test_stdin_alone_is_the_prompt(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    r = cli("ask", "--model", "ollama/qwen2.5:7b", input="Explain this stack trace\n")
    assert r.code == 0
    (req,) = chat_requests(fake_ollama)
    assert req.json["messages"][-1]["content"] == "Explain this stack trace"


@pytest.mark.parametrize("args,message", [
    (["ask", "-f", "/nonexistent/file.txt", "q"], "/nonexistent/file.txt: no such file"),
    (["ask", "--task", "nope", "q"], "unknown task 'nope'"),
    (["ask", "--model", "nope/x", "q"], "unknown provider 'nope'"),
    (["ask", "--model", "gpt-4.1", "q"], "must be written provider/model"),
    (["ask"], "no prompt"),
])
def test_user_errors_are_one_line(cli, args, message):
    r = cli(*args)
    assert r.code == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_log_records_every_attempt(cli, home, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.push_fault(Fault(status=500, message="boom"))
    cli("ask", "--model", "openai/gpt-4.1", "first question")
    cli("ask", "--model", "openai/gpt-4.1", "second question")
    records = cli("log", "--json").json()
    assert [r["prompt"] for r in records] == ["second question", "first question"]
    first = records[1]
    assert JSON_FIELDS | {"id", "time"} <= set(first)
    assert [a["outcome"] for a in first["attempts"]] == ["failed", "ok"]
    assert first["text"] and first["cost_usd"] > 0
    db = sqlite3.connect(home / "runs.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
    assert db.execute("SELECT count(*) FROM attempts").fetchone()[0] == 3
    table = cli("log")
    assert "first question" in table.stdout and "openai/gpt-4.1" in table.stdout


def test_stats_shows_local_savings(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    cli("ask", "--model", "ollama/qwen2.5:7b", "hello " * 50)
    data = cli("stats", "--json").json()
    (m,) = data["models"]
    assert m["model"] == "ollama/qwen2.5:7b" and m["calls"] == 1 and m["cost_usd"] == 0.0
    assert data["local_savings"]["calls"] == 1 and data["local_savings"]["versus_cost_usd"] > 0
    human = cli("stats")
    assert "would have cost" in human.stdout


def test_models_and_profiles(cli, fake_ollama, use, monkeypatch):
    use(fake_ollama, "ollama")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "test-key")
    data = cli("models", "--json").json()
    by = {m["model"]: m for m in data["models"]}
    assert by["ollama/qwen2.5:7b"]["context"] == 32768 and by["ollama/qwen2.5:7b"]["ready"]
    assert by["deepseek/deepseek-flash"]["ready"] and by["openai/gpt-4.1"]["status"] == "no OPENAI_API_KEY"
    assert data["ollama"][0]["reachable"] is True
    profiles = {p["name"]: p for p in cli("profiles", "--json").json()}
    assert {"general", "long-doc", "coding", "reasoning", "fast", "realtime", "private"} <= set(profiles)
    assert profiles["private"]["privacy"] == "local-only"


def test_first_token_timeout_falls_back(cli, home, fake_openai, fake_deepseek, use):
    (home / "config.yaml").write_text("retries: 0\ntimeouts: {connect_s: 2, first_token_s: 0.5, total_s: 30}\n")
    use(fake_openai, "openai")
    use(fake_deepseek, "deepseek")
    fake_deepseek.ttft_s = 3.0  # headers arrive, then nothing: a stalled server
    start = time.monotonic()
    data = cli("ask", "--task", "fast", "--json", "hi").json()
    assert time.monotonic() - start < 2.5
    assert [a["outcome"] for a in data["attempts"]] == ["failed", "ok"]
    assert data["attempts"][0]["model"] == "deepseek/deepseek-flash"
    assert data["attempts"][0]["error"] == "no first token within 0.5s"
    assert data["model"] == "openai/gpt-4.1-mini"


def test_no_stream_prints_once_with_footer(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "--no-stream", "hi")
    assert r.code == 0
    assert r.stdout.strip().startswith("[qwen2.5:7b] saw")
    assert "ollama/qwen2.5:7b · first token" in r.stderr


def test_unknown_price_is_said_not_zero(cli, fake_openai, use):
    fake_openai.models["gpt-9-preview"] = 128000
    use(fake_openai, "openai")
    r = cli("ask", "--model", "openai/gpt-9-preview", "hi")
    assert r.code == 0
    assert "price unknown" in r.stderr and "$0" not in r.stderr
    assert cli("ask", "--model", "openai/gpt-9-preview", "--json", "hi").json()["cost_usd"] is None


def test_mistral_usage_without_stream_options(cli, fake_mistral, use):
    use(fake_mistral, "mistral")
    data = cli("ask", "--model", "mistral/mistral-large-latest", "--json", "hi").json()
    assert data["ok"], data["error"]
    assert data["tokens_estimated"] is False and data["input_tokens"] == count_tokens("hi") + 4
    assert data["cost_usd"] is not None


def test_reasoning_models_get_no_temperature(cli, fake_openai, use):
    fake_openai.models["gpt-5"] = 400000
    use(fake_openai, "openai")
    for model in ("o3", "gpt-5"):  # the general profile sets temperature 0.7; these take only 1
        r = cli("ask", "--model", f"openai/{model}", "--json", "hi")
        assert r.code == 0, r.stdout
    assert all("temperature" not in q.json for q in chat_requests(fake_openai))


def test_retried_answer_is_printed_once(cli, fake_anthropic, use):
    use(fake_anthropic, "anthropic")
    fake_anthropic.push_fault(Fault(mid_stream=True))
    r = cli("ask", "--model", "anthropic/claude-sonnet-4-6", "please tell me a long answer")
    assert r.code == 0
    # Into a pipe, only the complete answer: the partial one from the failed stream is held back.
    assert r.stdout.count("[claude-sonnet-4-6] saw") == 1
    assert "claude-sonnet-4-6 failed" in r.stderr


def test_partial_answer_on_a_terminal_is_marked_discarded(capsys):
    from runner.backends import TextDelta
    from runner.meter import AttemptResult
    from runner.render.stream import StreamPrinter

    p = StreamPrinter(hold=False)
    p.on_event("m", TextDelta("partial "))
    p.on_attempt(AttemptResult("m", "failed", "t", error="overloaded"))
    p.on_event("m", TextDelta("whole answer\n"))
    p.on_attempt(AttemptResult("m", "ok", "t"))
    out, err = capsys.readouterr()
    assert out == "partial \nwhole answer\n"
    assert "(the partial answer above is discarded)" in err


def test_garbled_ollama_stream_falls_back(cli, fake_ollama, fake_openai, use, monkeypatch):
    from tests.fakes.server import StreamReply

    use(fake_ollama, "ollama")
    use(fake_openai, "openai")
    original = fake_ollama._chat

    async def garbled(req):
        if req.json.get("model") == "qwen3:8b":
            def lines():
                yield b'{"model":"qwen3:8b","message":{"role":"assistant","content":"Hel'
                yield b'lo"}, not json at all\n'
            return StreamReply(lines(), 200, "application/x-ndjson")
        return await original(req)

    monkeypatch.setattr(fake_ollama, "_chat", garbled)
    data = cli("ask", "--task", "general", "--json", "hi").json()
    assert data["ok"] and data["model"] == "ollama/qwen2.5:7b"
    bad = [a for a in data["attempts"] if a["model"] == "ollama/qwen3:8b"]
    assert bad and all("malformed reply" in a["error"] for a in bad)

"""An answer is complete only when the protocol says it finished; anything else is a failed
attempt. Each behaviour here was seen on a real server or in a vendor's own payloads, and is
played by the fakes (tests/fakes/); every test goes through the CLI."""

from __future__ import annotations

import time

import pytest

from tests.fakes import Fault
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI


def chat(fake):
    return [r for r in fake.requests if "completions" in r.path or r.path.endswith("/messages")
            or "GenerateContent" in r.path or r.path.endswith("/api/chat")]


def llama_endpoint(home, url: str, *, context: int | None = 2048, extra: str = "", retries: int = 1,
                   first_token_s: float = 10) -> None:
    models = f"models:\n  llama/tiny: {{context: {context}}}\n" if context else ""
    (home / "config.yaml").write_text(
        f"retries: {retries}\ntimeouts: {{connect_s: 2, first_token_s: {first_token_s}, total_s: 30}}\n"
        f"endpoints:\n  llama: {{base_url: \"{url}/v1\", local: true}}\n{models}{extra}")


# --- OpenAI-compatible: llama.cpp's server -----------------------------------------------------


def test_done_without_finish_reason_is_a_failed_attempt_and_retried(cli, home):
    with FakeOpenAI({"tiny": 2048}, api_key=None, flavor="llamacpp") as fake:
        llama_endpoint(home, fake.url)
        fake.push_fault(Fault(cut=True))
        data = cli("ask", "--model", "llama/tiny", "--json", "hello").json()
    first, second = data["attempts"]
    assert first["outcome"] == "failed" and "without a finish_reason" in first["error"]
    assert second["outcome"] == "ok" and data["ok"] and data["text"]
    assert data["finish_reason"] == "stop"


def test_a_cut_stream_is_never_an_answer_even_without_retries(cli, home):
    with FakeOpenAI({"tiny": 2048}, api_key=None, flavor="llamacpp") as fake:
        llama_endpoint(home, fake.url, retries=0)
        fake.push_fault(Fault(cut=True))
        r = cli("ask", "--model", "llama/tiny", "--json", "hello")
    assert r.code == 1 and r.json()["ok"] is False and r.json()["text"] is None


def test_empty_200_is_an_overflow_not_a_dropped_stream_and_not_retried(cli, home, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("The plan changed again this week and nobody knew why. " * 400)  # ~4K tokens
    with FakeOpenAI({"tiny": 2048}, api_key=None, flavor="llamacpp") as fake:
        llama_endpoint(home, fake.url, context=None)  # the window is not configured: nothing to re-plan with
        r = cli("ask", "--model", "llama/tiny", "--json", "-f", str(doc), "What changed?")
        sent = len(chat(fake))
    data = r.json()
    assert r.code == 1 and data["ok"] is False
    assert "empty reply" in data["attempts"][0]["error"] and "context window" in data["attempts"][0]["error"]
    assert sent == 1  # recognised as too long: never a retry loop


def test_empty_200_overflow_is_replanned_into_a_split(cli, home, tmp_path):
    """The configured window is too generous (the server was started with a smaller one): the
    first call overflows, the estimate is corrected and the document is split to fit."""
    doc = tmp_path / "notes.md"
    doc.write_text("".join(f"## Part {i}\n\n" + "The plan changed again this week. " * 40 + "\n\n" for i in range(12)))
    profile = ("name: tiny-doc\ndescription: x\ntoo_long: split\noptions: {max_output_tokens: 200}\n"
               "candidates: [llama/tiny]\n")
    (home / "profiles").mkdir()
    (home / "profiles" / "tiny-doc.yaml").write_text(profile)
    with FakeOpenAI({"tiny": 2048}, api_key=None, flavor="llamacpp") as fake:
        llama_endpoint(home, fake.url, context=8192)
        r = cli("ask", "--task", "tiny-doc", "--json", "-f", str(doc), "What changed?")
    data = r.json()
    outcomes = [(a.get("part"), a["outcome"]) for a in data["attempts"]]
    assert data["attempts"][0]["outcome"] == "failed" and "empty reply" in data["attempts"][0]["error"]
    if data["ok"]:  # the split fitted the server's real window
        assert data["chunks"] and data["text"], outcomes
    else:  # or it said why not; never an empty answer taken as one
        assert data["text"] is None and data["error"], outcomes


@pytest.mark.parametrize("style", ["llama-server", "vllm"])
def test_other_overflow_wordings_are_context_errors(cli, home, style):
    with FakeOpenAI({"tiny": 64}, flavor="openai", api_key=None, overflow=style) as fake:
        llama_endpoint(home, fake.url, context=None)
        r = cli("ask", "--model", "llama/tiny", "--json", "a prompt that is long enough " * 20)
        sent = len(chat(fake))
    data = r.json()
    assert r.code == 1 and sent == 1
    assert "context" in data["attempts"][0]["error"]


def test_keep_alive_comments_do_not_defeat_the_first_token_limit(cli, home, fake_openai, use):
    use(fake_openai, "openai")
    with FakeOpenAI({"tiny": 2048}, api_key=None, flavor="llamacpp", ping_interval_s=0.1, ttft_s=3.0) as fake:
        llama_endpoint(home, fake.url, retries=0, first_token_s=0.5)
        (home / "profiles").mkdir()
        (home / "profiles" / "t.yaml").write_text(
            "name: t\ndescription: x\ncandidates: [llama/tiny, openai/gpt-4.1]\n")
        start = time.monotonic()
        data = cli("ask", "--task", "t", "--json", "hi").json()
        took = time.monotonic() - start
    assert took < 2.5  # not the 3 s the server took, and far from total_s
    assert data["attempts"][0]["error"] == "no first token within 0.5s"
    assert data["ok"] and data["model"] == "openai/gpt-4.1"


def test_stopped_at_max_tokens_is_an_answer_that_says_so(cli, fake_openai, use):
    use(fake_openai, "openai")
    data = cli("ask", "--model", "openai/gpt-4.1", "--max-tokens", "3", "--json",
               "tell me a long story about the sea").json()
    assert data["ok"] and data["finish_reason"] == "length"
    assert data["attempts"][0]["finish_reason"] == "length"


def test_openai_cache_writes_are_priced(cli, fake_openai, use):
    from genai_prices import Usage, calc_price

    use(fake_openai, "openai")
    fake_openai.push_fault(Fault(usage={"prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1200}}))
    data = cli("ask", "--model", "openai/gpt-4.1", "--json", "hi").json()
    want = calc_price(Usage(input_tokens=data["input_tokens"], output_tokens=data["output_tokens"],
                            cache_write_tokens=1200), "gpt-4.1", provider_id="openai")
    assert data["cost_usd"] == pytest.approx(float(want.total_price))


# --- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_one_hour_cache_writes_cost_the_one_hour_rate(cli, fake_anthropic, use):
    from genai_prices import Usage, calc_price

    use(fake_anthropic, "anthropic")
    fake_anthropic.push_fault(Fault(usage={"cache_creation": {"ephemeral_5m_input_tokens": 1000,
                                                              "ephemeral_1h_input_tokens": 3000}}))
    data = cli("ask", "--model", "anthropic/claude-sonnet-4-5", "--json", "hi").json()
    assert data["ok"], data["error"]
    rest = data["input_tokens"] - 4000
    want = calc_price(Usage(input_tokens=data["input_tokens"], output_tokens=data["output_tokens"],
                            cache_write_tokens=4000, cache_write_5m_tokens=1000, cache_write_1h_tokens=3000),
                      "claude-sonnet-4-5", provider_id="anthropic")
    at_5m = calc_price(Usage(input_tokens=data["input_tokens"], output_tokens=data["output_tokens"],
                             cache_write_tokens=4000), "claude-sonnet-4-5", provider_id="anthropic")
    assert rest >= 0 and data["cost_usd"] == pytest.approx(float(want.total_price))
    assert data["cost_usd"] > float(at_5m.total_price)  # not priced as 5-minute writes


@pytest.mark.parametrize("reason, kind", [("refusal", "blocked"), ("pause_turn", "stream"),
                                          ("model_context_window_exceeded", "context"), ("new_reason", "stream")])
def test_anthropic_stop_reasons_that_are_not_an_answer(cli, fake_anthropic, use, reason, kind):
    use(fake_anthropic, "anthropic")
    for _ in range(3):
        fake_anthropic.push_fault(Fault(finish_reason=reason))
    r = cli("ask", "--model", "anthropic/claude-sonnet-4-5", "--json", "hi")
    data = r.json()
    assert r.code == 1 and data["ok"] is False and data["text"] is None
    assert reason in data["attempts"][0]["error"]


# --- Gemini ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["MALFORMED_RESPONSE", "OTHER", "SAFETY", "RECITATION", "BLOCKLIST",
                                    "PROHIBITED_CONTENT", "SPII", "NEW_REASON_2027"])
def test_gemini_finish_reasons_that_are_not_an_answer(cli, fake_gemini, use, reason):
    use(fake_gemini, "gemini")
    for _ in range(3):
        fake_gemini.push_fault(Fault(finish_reason=reason))
    r = cli("ask", "--model", "gemini/gemini-2.5-flash", "--json", "hi")
    data = r.json()
    assert r.code == 1 and data["ok"] is False and data["text"] is None
    assert reason in data["attempts"][0]["error"]


def test_gemini_continuation_is_followed_and_metered_whole(cli, fake_gemini, use):
    use(fake_gemini, "gemini")
    whole = cli("ask", "--model", "gemini/gemini-2.5-flash", "--json", "say something").json()
    fake_gemini.push_fault(Fault(finish_reason="CONTINUATION"))
    data = cli("ask", "--model", "gemini/gemini-2.5-flash", "--json", "say something").json()
    assert data["ok"] and data["finish_reason"] == "stop"
    assert data["text"] == whole["text"]  # the rest was fetched with the token
    legs = [r for r in fake_gemini.requests if "GenerateContent" in r.path][-2:]
    assert "continuationToken" not in legs[0].json and legs[1].json.get("continuationToken")
    assert data["input_tokens"] == 2 * whole["input_tokens"]  # each leg is billed for its prompt
    assert data["output_tokens"] >= whole["output_tokens"]


# --- Ollama ------------------------------------------------------------------------------------


def test_ollama_load_reply_is_not_an_answer(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    for _ in range(3):
        fake_ollama.push_fault(Fault(finish_reason="load"))
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "hi")
    assert r.code == 1 and "done_reason 'load'" in r.json()["attempts"][0]["error"]


def test_old_ollama_count_reaching_the_window_is_a_cut_even_when_the_estimate_ran_low(cli, home, tmp_path, use):
    """The estimate ran low (the log taught a factor under 1), so num_ctx was sized too small; an
    old server cut the prompt to it and counted exactly num_ctx: a cut, never an answer."""
    from runner.store import open_store

    store = open_store(home)
    run = store.start_run(kind="ask", task="general", prompt="x", system=None)
    for _ in range(5):  # real/estimated = 0.6 for qwen2.5 on this machine
        store.add_attempt(run, {"model": "ollama/qwen2.5:7b", "outcome": "ok", "input_tokens": 6000,
                                "est_input_tokens": 10000, "text_kind": "prose"})
    store.close()
    doc = tmp_path / "notes.txt"
    doc.write_text("The plan changed again this week and nobody knew why. " * 700)  # ~8.5K tokens
    with FakeOllama(version="0.11.0", truncated_prompt_count="window") as fake:
        (home / "config.yaml").write_text("retries: 0\n")
        use(fake, "ollama")
        r = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "-f", str(doc), "What changed?")
        (req,) = chat(fake)
    data = r.json()
    assert r.code == 1 and data["ok"] is False
    assert "truncated by the server" in data["attempts"][0]["error"]
    assert f"the whole {req.json['options']['num_ctx']:,} window" in data["attempts"][0]["error"]


def test_ollama_retry_after_is_honoured(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    fake_ollama.push_fault(Fault(status=503, message="busy", retry_after_ms="400"))
    data = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "hi").json()
    first, second = [r.time for r in chat(fake_ollama)]
    assert data["ok"] and second - first >= 0.4


def test_ollama_proxy_html_page_is_one_clean_line(cli, fake_ollama, use):
    from tests.fakes import nginx_502

    use(fake_ollama, "ollama")
    for _ in range(3):
        fake_ollama.push_fault(nginx_502())
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "hi")
    assert r.code == 1
    last = r.stderr.strip().splitlines()[-1]
    assert "502 Bad Gateway" in last and "HTML" in last and "<" not in last


def test_ollama_host_that_serves_no_chat_says_what_to_try(cli, use):
    with FakeOllama(tags_only=True) as fake:
        use(fake, "ollama")
        r = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "hi")
    error = r.json()["attempts"][0]["error"]
    assert "does not serve Ollama's /api/chat" in error and "endpoints:" in error


def test_openai_endpoint_without_v1_says_so(cli, home):
    with FakeOpenAI({"tiny": 2048}, api_key=None, flavor="llamacpp") as fake:
        (home / "config.yaml").write_text(
            f"retries: 0\nendpoints:\n  llama: {{base_url: \"{fake.url}\", local: true}}\n")
        r = cli("ask", "--model", "llama/tiny", "--json", "hi")
    error = r.json()["attempts"][0]["error"]
    assert "404" in error and "base_url" in error and "/v1" in error


def test_json_reply_to_a_streamed_request_names_the_content_type(cli, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.push_fault(Fault(json_body=True))
    fake_openai.push_fault(Fault(json_body=True))
    data = cli("ask", "--model", "openai/gpt-4.1", "--json", "hi").json()
    assert "application/json, not an event stream" in data["attempts"][0]["error"]

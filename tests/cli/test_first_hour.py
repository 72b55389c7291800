"""What a new user trips over in the first hour (issue 10): input, flags and help, ranges, messages."""

from __future__ import annotations

import pytest

from runner.store import open_store
from tests.fakes import Fault
from tests.fakes.openai import FakeOpenAI
from tests.helpers import one_line_error


def chats(fake):
    return [r for r in fake.requests if r.path.endswith("/api/chat") or "completions" in r.path]


# --- standard input -----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"caf\xe9 au lait", bytes(range(128, 256)) * 4])
def test_stdin_that_is_not_utf8_is_refused_like_a_file(cli, fake_ollama, use, data):
    use(fake_ollama, "ollama")
    for args in (("ask", "what is this"), ("ask",), ("compare", "what is this", "-m", "ollama/qwen2.5:7b")):
        r = cli(*args, input=data)
        assert r.code == 2
        one_line_error(r, "standard input: not UTF-8 text")
    assert not chats(fake_ollama)


def test_binary_stdin_is_refused(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    r = cli("ask", "what is this", input=b"\x7fELF\x02\x01\x01\x00\x00\x00")
    assert r.code == 2
    one_line_error(r, "standard input: looks like a binary file, not text")
    assert not chats(fake_ollama)


def test_utf8_stdin_still_reads(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    r = cli("ask", "-m", "ollama/qwen2.5:7b", input="café au lait".encode())
    assert r.code == 0, r.stderr
    assert "café au lait" in str(chats(fake_ollama)[-1].json["messages"])


# --- flags and help -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["ask", "batch", "compare", "log", "stats", "models", "profiles"])
def test_help_shows_flags_as_flags(cli, command):
    r = cli(command, "--help")
    assert r.code == 0
    assert "<bool>" not in r.stdout and "<str>" not in r.stdout and "{" not in r.stdout.split("\n", 1)[0]
    if command not in ("models", "profiles", "log", "stats"):
        assert "--max-tokens N" in r.stdout


def test_usage_lines_name_arguments_plainly(cli):
    assert "batch [OPTIONS] FILE" in cli("batch", "--help").stdout.splitlines()[0]
    assert "ask [OPTIONS] [PROMPT]" in cli("ask", "--help").stdout.splitlines()[0]


def test_a_flag_takes_no_value(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    r = cli("ask", "--json", "-m", "ollama/qwen2.5:7b", "hello")
    assert r.code == 0 and r.json()["ok"]
    assert "--json " in cli("ask", "--help").stdout and "--json <bool>" not in cli("ask", "--help").stdout


@pytest.mark.parametrize("args, message", [
    (("ask", "--json", "true", "hello"), "Got unexpected extra argument(s) (hello) (see `runner ask --help`)"),
    (("ask", "--jsn", "hello"), "No such option: --jsn"),
    (("nosuch",), "No such command 'nosuch' (see `runner --help`)"),
    (("batch",), "Missing argument 'FILE' (see `runner batch --help`)"),
])
def test_usage_mistakes_are_one_line_too(cli, args, message):
    r = cli(*args)
    assert r.code == 2
    one_line_error(r, message)


def test_log_counts_rows_with_last_and_keeps_limit(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    for i in range(3):
        assert cli("ask", "-m", "ollama/qwen2.5:7b", f"question {i}").code == 0
    assert len(cli("log", "--json", "-n", "2").json()) == 2
    assert len(cli("log", "--json", "--last", "1").json()) == 1
    assert len(cli("log", "--json", "--limit", "2").json()) == 2  # the old name still works
    assert "-n, --last N" in cli("log", "--help").stdout


@pytest.mark.parametrize("args, message", [
    (("log", "-n", "0"), "--last must be a whole number, 1 or more, not 0"),
    (("log", "-n", "-5"), "--last must be a whole number, 1 or more, not -5"),
    (("log", "--limit", "0"), "--limit must be a whole number, 1 or more, not 0"),
    (("ask", "--temperature", "7", "hi"), "--temperature must be a number from 0 to 2, not 7.0"),
    (("ask", "--max-tokens", "0", "hi"), "--max-tokens must be a whole number of tokens, 1 or more, not 0"),
    (("compare", "hi", "-m", "ollama/qwen2.5:7b", "-m", "openai/gpt-4.1", "--temperature", "2.5"),
     "--temperature must be a number from 0 to 2, not 2.5"),
])
def test_ranges_one_wording_everywhere(cli, fake_ollama, use, args, message):
    use(fake_ollama, "ollama")
    r = cli(*args)
    assert r.code == 2
    one_line_error(r, message)
    assert not chats(fake_ollama)


# --- messages -------------------------------------------------------------------------------------


def test_empty_filters_say_what_is_empty(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    assert cli("ask", "-m", "ollama/qwen2.5:7b", "hello").code == 0
    r = cli("log", "--group", "b-nothing")
    assert r.code == 0 and r.stdout.strip() == "no runs in group b-nothing"
    r = cli("stats", "--since", "2030-01-01")
    assert r.code == 0 and r.stdout.strip() == "no calls since 2030-01-01"
    assert cli("log", "--json", "--group", "b-nothing").json() == []


def test_a_failed_ask_shows_the_model_it_tried_in_the_log(cli, fake_openai, use):
    use(fake_openai, "openai")
    for _ in range(2):
        fake_openai.push_fault(Fault(status=500, message="boom"))
    assert cli("ask", "-m", "openai/gpt-4.1", "hello").code == 1
    row = cli("log").stdout.splitlines()[-1]
    assert "openai/gpt-4.1" in row and "failed" in row


# --- the footer: estimates and an answer cut at the output limit -------------------------------------


@pytest.fixture
def llama(home, monkeypatch):
    """llama-cpp-python's server as two endpoints: one local, one priced like a hosted API."""
    with FakeOpenAI({"tiny": 4096}, flavor="llamacpp") as server:
        monkeypatch.setenv("LLAMA_KEY", "test-key")
        (home / "config.yaml").write_text(
            "retries: 1\nendpoints:\n"
            f"  llama: {{base_url: '{server.url}/v1', local: true, key_env: LLAMA_KEY}}\n"
            f"  paid: {{base_url: '{server.url}/v1', key_env: LLAMA_KEY}}\n"
            "models:\n  llama/tiny: {context: 4096}\n"
            "  paid/tiny: {context: 4096, price: {input_per_mtok: 1, output_per_mtok: 2}}\n")
        yield server


def test_footer_marks_estimates_and_the_output_limit(cli, llama):
    r = cli("ask", "-m", "paid/tiny", "--max-tokens", "3", "hello there, how are you today?")
    assert r.code == 0, r.stderr
    footer = r.stderr.strip().splitlines()[-1]
    assert "in / ~" in footer and " · ~$" in footer and footer.endswith("stopped at max tokens")
    local = cli("ask", "-m", "llama/tiny", "hello there, how are you today?").stderr.strip().splitlines()[-1]
    assert "~" in local and "$0 (local)" in local and "~$" not in local  # local calls are priced by time
    assert "stopped at max tokens" not in local


def test_log_and_stats_mark_estimates(cli, llama):
    assert cli("ask", "-m", "paid/tiny", "hello there").code == 0
    log = cli("log").stdout
    assert "~" in log.splitlines()[-1]
    stats = cli("stats")
    assert "~$" in stats.stdout and "~ marks estimates: 1 call got no token counts" in stats.stdout
    data = cli("stats", "--json").json()
    assert data["estimated_share"] == {"tokens": 1.0, "cost_usd": 1.0} and data["estimated_calls"] == 1
    assert data["models"][0]["estimated_share"]["tokens"] == 1.0


def test_stats_share_of_estimates_is_a_share(cli, llama, home):
    assert cli("ask", "-m", "paid/tiny", "hello there").code == 0
    store = open_store(home)
    run = store.start_run(kind="ask", task="general", prompt="x", system=None)
    store.add_attempt(run, {"model": "paid/tiny", "outcome": "ok", "input_tokens": 1000, "output_tokens": 1000,
                            "tokens_estimated": False, "cost_usd": 0.003, "latency_ms": 10.0})
    store.close()
    data = cli("stats", "--json").json()
    share = data["estimated_share"]
    assert 0 < share["tokens"] < 0.05 and 0 < share["cost_usd"] < 0.05

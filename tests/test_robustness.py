"""Mistakes and accidents a user can cause end in one sentence and a non-zero exit, never a
traceback: a broken run log, a run log opened by several processes at once, bad config values,
keys with stray characters, credentials in base URLs, a negative budget."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runner.config import load_config
from runner.errors import UserError
from runner.store import SCHEMA_VERSION, open_store

from .conftest import closed_port_url

ROOT = Path(__file__).resolve().parent.parent


def one_line_error(r, *needles: str) -> None:
    assert r.code != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:"), r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


# --- the run log ------------------------------------------------------------------------------

LOG_COMMANDS = [("log",), ("log", "--json"), ("stats",), ("ask", "--explain", "--task", "private", "hi")]


@pytest.mark.parametrize("args", LOG_COMMANDS)
def test_garbage_run_log_is_one_line(cli, home, args):
    (home / "runs.db").write_bytes(b"this is not sqlite at all\x00\xff" * 200)
    r = cli(*args)
    one_line_error(r, f"the run log {home / 'runs.db'} is not a SQLite database (move it away to start a new one)")


@pytest.mark.parametrize("args", LOG_COMMANDS)
def test_run_log_without_tables_is_one_line(cli, home, args):
    db = sqlite3.connect(home / "runs.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    db.close()
    r = cli(*args)
    one_line_error(r, f"the run log {home / 'runs.db'} is damaged", "move it away")


@pytest.mark.parametrize("args", [("log",), ("stats",), ("ask", "--task", "private", "hi")])
def test_runner_home_that_is_a_file(cli, tmp_path, monkeypatch, args):
    home = tmp_path / "not-a-folder"
    home.write_text("oops")
    monkeypatch.setenv("RUNNER_HOME", str(home))
    r = cli(*args)
    one_line_error(r, f"{home} is a file, not a folder")


def test_runner_home_that_cannot_be_created(cli, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    monkeypatch.setenv("RUNNER_HOME", str(blocker / "home"))
    one_line_error(cli("log"), f"cannot use the run log {blocker / 'home' / 'runs.db'}")


def test_run_log_that_is_a_folder(cli, home):
    (home / "runs.db").mkdir()
    one_line_error(cli("stats"), f"the run log {home / 'runs.db'} is a folder")


def test_run_log_from_a_newer_runner(cli, home):
    db = sqlite3.connect(home / "runs.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    one_line_error(cli("log"), "written by a newer runner")


def test_store_errors_after_opening_are_user_errors(home):
    store = open_store(home)
    store.start_run(kind="ask", task="t", prompt="p", system=None)
    store.db.execute("DROP TABLE attempts")
    with pytest.raises(UserError, match="is damaged"):
        store.runs()
    store.close()


_OPENER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from runner.store import open_store
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    store = open_store(Path(sys.argv[1]))
    run = store.start_run(kind="ask", task="t", prompt="p", system=None)
    store.finish_run(run, {"outcome": "ok", "text": "x"})
    mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
    store.close()
    print(mode)
""")


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_first_use_of_a_new_run_log(tmp_path, round_):
    home = tmp_path / "fresh"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, str(home), str(go), str(ROOT)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    time.sleep(0.5)  # every process imported and waiting
    go.write_text("go")
    results = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.strip() == "wal"
    store = open_store(home)
    assert len(store.runs(limit=100)) == 6
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()


def test_concurrent_first_use_in_threads(tmp_path):
    import threading

    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            barrier.wait()
            store = open_store(tmp_path / "fresh")
            store.start_run(kind="ask", task="t", prompt="p", system=None)
            store.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# --- config values ------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("providers:\n  box:\n    protocol: openai\n    base_url: 42\n", "line 4: providers.box.base_url: must be text"),
    ("providers:\n  box:\n    protocol: openai\n    base_url: localhost:8080\n",
     "line 4: providers.box.base_url: must be an http(s) URL"),
    ("providers:\n  box:\n    protocol: openai\n    base_url: 'http://[::1'\n",
     "line 4: providers.box.base_url: must be an http(s) URL"),
    ("providers:\n  box:\n    protocol: openai\n    base_url: ftp://x.example\n", "line 4: providers.box.base_url: must be an http(s) URL"),
    ("endpoints:\n  box:\n    base_url: http://127.0.0.1:9/v1\n    key_env: [A]\n", "line 4: endpoints.box.key_env: must be text"),
    ("endpoints:\n  box:\n    base_url: http://127.0.0.1:9/v1\n    max_tokens_field: max_output\n",
     "line 4: endpoints.box.max_tokens_field: must be max_tokens or max_completion_tokens"),
    ("endpoints:\n  box:\n    base_url: http://127.0.0.1:9/v1\n    local: 'no'\n", "line 4: endpoints.box.local: must be true or false"),
    ("models:\n  nobody/model-x:\n    context: 8000\n", "line 2: models.nobody/model-x: unknown provider 'nobody'"),
    ("models:\n  openai/gpt-4.1:\n    price: {input_per_mtok: -1, output_per_mtok: 2}\n",
     "line 3: models.openai/gpt-4.1.price.input_per_mtok: must be a number of US dollars, 0 or more"),
    ("models:\n  openai/gpt-4.1:\n    context: 0\n", "line 3: models.openai/gpt-4.1.context: must be a whole number of tokens"),
    ("timeouts: {connect_s: 0}\n", "line 1: timeouts.connect_s: must be a number of seconds, more than 0"),
    ("timeouts:\n  total_s: -5\n", "line 2: timeouts.total_s: must be a number of seconds, more than 0"),
    ("retries: -1\n", "line 1: retries: must be a whole number, 0 or more"),
    ("hosted_concurrency: 0\n", "line 1: hosted_concurrency: must be a whole number, 1 or more"),
    ("local_cost_per_hour_usd: -0.5\n", "line 1: local_cost_per_hour_usd: must be a number of US dollars, 0 or more"),
    ("ollama:\n  num_parallel: 0\n", "line 2: ollama.num_parallel: must be a whole number, 1 or more"),
    ("ollama:\n  max_num_ctx: 100\n", "line 2: ollama.max_num_ctx: must be a whole number of tokens, 512 or more"),
])
def test_bad_config_values_name_file_line_and_key(home, text, expected):
    (home / "config.yaml").write_text(text)
    with pytest.raises(UserError) as err:
        load_config()
    assert f"{home / 'config.yaml'}, {expected}" in str(err.value)


@pytest.mark.parametrize("options,expected", [
    ("{max_output_tokens: 0}", "options.max_output_tokens: must be a whole number of tokens, 1 or more"),
    ("{max_output_tokens: 2.5}", "options.max_output_tokens: must be a whole number of tokens"),
    ("{temperature: -0.1}", "options.temperature: must be a number, 0 or more"),
    ("{think: maybe}", "options.think: must be true, false, low, medium or high"),
    ("{think: 3}", "options.think: must be true, false, low, medium or high"),
])
def test_bad_profile_options(home, options, expected):
    (home / "profiles").mkdir()
    (home / "profiles" / "x.yaml").write_text(f"name: x\ncandidates: [openai/gpt-4.1]\noptions: {options}\n")
    with pytest.raises(UserError) as err:
        load_config()
    assert f"x.yaml, line 3: {expected}" in str(err.value)


def test_good_profile_options_and_provider_values_load(home):
    (home / "profiles").mkdir()
    (home / "profiles" / "x.yaml").write_text(
        "name: x\ncandidates: [openai/gpt-4.1]\noptions: {think: high, temperature: 0, max_output_tokens: 10}\n")
    (home / "config.yaml").write_text(
        "endpoints:\n  box:\n    base_url: https://box.example/v1\n    local: true\n"
        "    max_tokens_field: max_completion_tokens\nmodels:\n  box/m:\n    context: 4096\n"
        "ollama: {max_num_ctx: 512, num_parallel: 1}\nretries: 0\n")
    config = load_config()
    assert config.providers["box"].local is True
    assert config.models["box/m"].context == 4096
    assert config.profile("x").options["think"] == "high"


def test_bad_base_url_from_the_environment_names_the_variable_not_the_value(home, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "api.example.com/v1?key=hunter2")
    with pytest.raises(UserError) as err:
        load_config()
    assert str(err.value).startswith("OPENAI_BASE_URL: must be an http(s) URL")
    assert "hunter2" not in str(err.value)


def test_bad_config_value_through_the_cli(cli, home):
    (home / "config.yaml").write_text("endpoints:\n  box:\n    base_url: http://127.0.0.1:9/v1\n    local: 'no'\n")
    one_line_error(cli("models"), "line 4: endpoints.box.local: must be true or false")


# --- API keys -----------------------------------------------------------------------------------


def test_key_from_a_crlf_env_file_is_stripped(cli, fake_openai, use, monkeypatch):
    use(fake_openai, "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key\r\n")
    r = cli("ask", "--model", "openai/gpt-4.1", "--json", "hello")
    assert r.code == 0, r.stderr
    assert r.json()["text"]
    assert load_config().providers["openai"].api_key() == "test-key"


def test_non_ascii_key_is_one_line_without_the_key(cli, fake_openai, use, home, monkeypatch):
    use(fake_openai, "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc\u2019def")
    r = cli("ask", "--model", "openai/gpt-4.1", "hello")
    one_line_error(r, "OPENAI_API_KEY contains a character that cannot be sent (non-ASCII); check the value")
    assert "sk-abc" not in r.stderr + r.stdout
    db = home / "runs.db"
    assert not db.exists() or b"sk-abc" not in db.read_bytes()


def test_key_with_a_control_character_inside(home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc\ndef")
    with pytest.raises(UserError) as err:
        load_config().providers["openai"].api_key()
    assert "control character" in str(err.value) and "sk-abc" not in str(err.value)


def test_redact_masks_escaped_forms():
    from runner.backends.redact import redact

    key = "sk-secret\n"
    h11_style = f"Illegal header value {'Bearer ' + key!r} and {('Bearer ' + key).encode()!r}"
    out = redact(h11_style, [key])
    assert "sk-secret" not in out and "***" in out
    assert redact("x sk-%E2%80%99y z", ["sk-\u2019y"]) == "x *** z"
    assert redact('{"k": "a\\"b"}', ['a"b']) == '{"k": "***"}'


# --- credentials in base URLs -------------------------------------------------------------------


def test_display_url_drops_credentials_and_query():
    from runner.backends.redact import display_url

    assert display_url("http://user:pw@host:11434") == "http://host:11434"
    assert display_url("https://api.example/v1?key=abc#frag") == "https://api.example/v1"
    assert display_url("http://us:p/w@box:1/v1") == "http://box:1/v1"
    assert display_url("http://[::1]:5000/x") == "http://[::1]:5000/x"


def test_ollama_host_password_never_shown_or_logged(cli, home, monkeypatch):
    port_url = closed_port_url()
    monkeypatch.setenv("OLLAMA_HOST", port_url.replace("http://", "http://alice:pa55word@") + "/?token=tok3n")
    outputs = []
    for args in (("ask", "--task", "private", "hi"), ("ask", "--task", "private", "--json", "hi"),
                 ("ask", "--explain", "--json", "--task", "private", "hi"), ("ask", "--explain", "hi"),
                 ("log", "--json")):
        r = cli(*args)
        outputs.append(r.stdout + r.stderr)
    joined = "\n".join(outputs)
    assert f"Ollama not reachable at {port_url}" in joined
    assert "pa55word" not in joined and "alice" not in joined and "tok3n" not in joined
    assert b"pa55word" not in (home / "runs.db").read_bytes()


def test_ollama_backend_messages_hide_credentials():
    from runner.backends.base import BackendError, Call, Timeouts
    from runner.backends.ollama import OllamaBackend

    url = closed_port_url().replace("http://", "http://alice:pa55word@")
    backend = OllamaBackend(url)

    async def go():
        try:
            async for _ in backend.stream(Call(model="m", messages=[{"role": "user", "content": "hi"}],
                                               timeouts=Timeouts(connect=2, first_token=2))):
                pass
        finally:
            await backend.aclose()

    with pytest.raises(BackendError) as err:
        asyncio.run(go())
    assert "Ollama not reachable at http://127.0.0.1:" in str(err.value)
    assert "pa55word" not in str(err.value)


def test_hosted_base_url_credentials_never_shown_or_logged(cli, home, monkeypatch):
    port_url = closed_port_url()
    monkeypatch.setenv("OPENAI_BASE_URL", port_url.replace("http://", "http://bob:s3cr3tpw@") + "/v1?key=qk3y")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    r = cli("ask", "--model", "openai/gpt-4.1", "--json", "hi")
    assert r.code == 1
    errors = " ".join(a.get("error") or "" for a in r.json()["attempts"])
    assert f"cannot connect to {port_url}/v1" in errors
    text = r.stdout + r.stderr + cli("log", "--json").stdout
    assert "s3cr3tpw" not in text and "qk3y" not in text
    assert b"s3cr3tpw" not in (home / "runs.db").read_bytes()


# --- budgets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_negative_max_cost_is_one_line(cli, value):
    r = cli("ask", "--max-cost", value, "--explain", "hi")
    one_line_error(r, "--max-cost must be zero or more US dollars")


def test_a_mangled_key_skips_only_its_provider(cli, fake_ollama, use, monkeypatch):
    use(fake_ollama, "ollama")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-\u2019pasted")
    r = cli("ask", "--task", "general", "--json", "hi")  # a local model still answers
    assert r.code == 0 and r.json()["model"].startswith("ollama/")
    plan = cli("ask", "--task", "reasoning", "--explain", "--json", "hi").json()
    reasons = {s["model"]: s["reason"] for s in plan["skipped"]}
    assert reasons["openai/o3"] == "OPENAI_API_KEY contains a character that cannot be sent (non-ASCII); check the value"


def test_models_never_shows_url_credentials(cli, fake_ollama, monkeypatch, home):
    host = fake_ollama.url.replace("http://", "http://user:hunter2@")
    monkeypatch.setenv("OLLAMA_HOST", host)
    for args in (("models",), ("models", "--json")):
        r = cli(*args)
        assert "hunter2" not in r.stdout + r.stderr
    cache = home / "cache" / "ollama-show.json"
    assert cache.exists() and "hunter2" not in cache.read_text()

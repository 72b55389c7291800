"""Keys and credentials in URLs never reach a message, the log or the output; a mangled key skips only its provider."""

from __future__ import annotations

import asyncio

import pytest

from runner.config import load_config
from runner.errors import UserError

from .conftest import closed_port_url
from .helpers import one_line_error

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
    from runner.redact import redact

    key = "sk-secret\n"
    h11_style = f"Illegal header value {'Bearer ' + key!r} and {('Bearer ' + key).encode()!r}"
    out = redact(h11_style, [key])
    assert "sk-secret" not in out and "***" in out
    assert redact("x sk-%E2%80%99y z", ["sk-\u2019y"]) == "x *** z"
    assert redact('{"k": "a\\"b"}', ['a"b']) == '{"k": "***"}'


# --- credentials in base URLs -------------------------------------------------------------------


def test_display_url_drops_credentials_and_query():
    from runner.redact import display_url

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

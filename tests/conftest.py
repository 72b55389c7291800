"""Test isolation: every test gets its own RUNNER_HOME and an environment with no real keys,
no real base URLs, and Ollama pointed at a closed port unless a test starts a fake."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import pytest

import importlib.util
pytest_plugins = ["tests.fakes.fixtures"] if importlib.util.find_spec("tests.fakes.fixtures") else []

KEY_VARS = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY", "XAI_API_KEY", "MISTRAL_API_KEY"]
URL_VARS = ["OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GEMINI_BASE_URL", "DEEPSEEK_BASE_URL", "XAI_BASE_URL", "MISTRAL_BASE_URL"]


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    home = tmp_path / "runner-home"
    home.mkdir()
    monkeypatch.setenv("RUNNER_HOME", str(home))
    for var in KEY_VARS + URL_VARS + ["OLLAMA_API_KEY"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", closed_port_url())
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    # Keep tests quick: short back-off is decided by Retry-After in tests that need it.
    (home / "config.yaml").write_text("retries: 1\ntimeouts: {connect_s: 2, first_token_s: 10, total_s: 30}\n")
    return home


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def cli():
    """Run the real `runner` app in-process; returns exit code, stdout and stderr."""
    from typer.testing import CliRunner

    from runner.cli import app

    def invoke(*args: str, input: str | None = None) -> CliResult:
        result = CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def use(monkeypatch):
    """Point a provider at a fake: use(fake_openai, "openai") sets OPENAI_BASE_URL and a key."""

    def point(fake, provider: str, key: str | None = "test-key") -> None:
        if provider == "ollama":
            monkeypatch.setenv("OLLAMA_HOST", fake.url)
            return
        base = fake.url + ("/v1" if provider in ("openai", "xai", "mistral") else "")
        monkeypatch.setenv(f"{provider.upper()}_BASE_URL", base)
        if key is not None:
            monkeypatch.setenv(f"{provider.upper()}_API_KEY", key)

    return point

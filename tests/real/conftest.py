"""The real-server tier: `runner` run as a subprocess against llama-cpp-python's server.

The server (`python -m llama_cpp.server`) lives in its own venv outside the clone, built by
.ci/run: `RUNNER_LLAMA_PYTHON` names its python, else the newest `/opt/runner-real/llama-*/bin/python`
is used. Without one the whole tier is skipped with one line, unless `RUNNER_REQUIRE_REAL=1`
(set by .ci/run), which makes it fail instead. The model is a tiny random-weight GGUF written
by tests/real/make_tiny_gguf.py with that python (gguf and numpy live there).

Every test that drives the runner gets its own server (it starts in under a second), so request
counts and the server's log belong to that test alone.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .harness import HERE, REQUIRE_ENV, LlamaServer, Runner, PROBE, find_llama_python


@pytest.fixture(scope="session")
def llama_python() -> str:
    python, why = find_llama_python()
    if python is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{why} — and {REQUIRE_ENV}=1 demands the real-server tier", pytrace=False)
        pytest.skip(why)
    return python


def pytest_terminal_summary(terminalreporter):
    """The tier's skip reason once, even without -rs."""
    if "python" in PROBE and PROBE["python"] is None and terminalreporter.stats.get("skipped"):
        terminalreporter.write_line(str(PROBE["why"]))


# --- the model, the server and the runner ---------------------------------------------------


@pytest.fixture(scope="session")
def tiny_gguf(llama_python, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.gguf"
    r = subprocess.run([llama_python, str(HERE / "make_tiny_gguf.py"), str(path)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"writing the tiny GGUF failed:\n{r.stderr[-2000:]}", pytrace=False)
    return path


@pytest.fixture
def start_server(llama_python, tiny_gguf, tmp_path):
    """start_server(*extra_flags) → a started LlamaServer, stopped after the test."""
    servers: list[LlamaServer] = []

    def start(*extra: str) -> LlamaServer:
        server = LlamaServer(llama_python, tiny_gguf, tmp_path / f"server-{len(servers)}.log", *extra)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server) -> LlamaServer:
    """A fresh server with llama-cpp-python's defaults (it interrupts a stream for a new request)."""
    return start_server()


@pytest.fixture
def runner(server, tmp_path) -> Runner:
    return Runner(tmp_path / "runner-home", server)

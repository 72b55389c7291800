"""The real-server tier's harness: finding llama-cpp-python, running its server, running the
runner as a user would, and checking what came back. Fixtures are in conftest.py."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY_ENV = "RUNNER_LLAMA_PYTHON"
REQUIRE_ENV = "RUNNER_REQUIRE_REAL"
DEFAULT_GLOB = "/opt/runner-real/llama-*/bin/python"
NOT_FOUND = "real-server tier skipped: llama-cpp-python not found (set RUNNER_LLAMA_PYTHON, or run .ci/run which builds it)"

N_CTX = 2048
MAX_TOKENS = 24  # the profiles' max_output_tokens; every complete answer is exactly this long


# --- finding the llama python -----------------------------------------------------------------

PROBE: dict[str, object] = {}  # the one search's result: {"python": path or None, "why": str}


def _version_key(path: str) -> tuple:
    m = re.search(r"llama-([0-9][0-9.]*)", path)
    return tuple(int(p) for p in m.group(1).strip(".").split(".")) if m else ()


def _importable(python: str) -> tuple[bool, str]:
    try:
        r = subprocess.run([python, "-c", "import llama_cpp, llama_cpp.server, gguf, numpy; print(llama_cpp.__version__)"],
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines()
        return False, lines[-1] if lines else f"exit {r.returncode}"
    return True, r.stdout.strip()


def find_llama_python() -> tuple[str | None, str]:
    """(python, version) or (None, the one-line reason)."""
    if "python" in PROBE:
        return PROBE["python"], PROBE["why"]  # type: ignore[return-value]
    python, why = None, NOT_FOUND
    given = os.environ.get(PY_ENV)
    if given:
        ok, detail = _importable(given)
        if ok:
            python, why = given, detail
        else:
            why = f"real-server tier skipped: {PY_ENV}={given} cannot import llama_cpp.server, gguf, numpy ({detail})"
    else:
        for candidate in sorted(glob.glob(DEFAULT_GLOB), key=_version_key, reverse=True):
            ok, detail = _importable(candidate)
            if ok:
                python, why = candidate, detail
                break
    PROBE.update(python=python, why=why)
    return python, why


# --- the server ------------------------------------------------------------------------------


SERVER_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "LD_LIBRARY_PATH")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 is never proxied


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One `python -m llama_cpp.server` process on a free port, logging to a file."""

    def __init__(self, python: str, model: Path, log_path: Path, *extra: str) -> None:
        self.python, self.model, self.log_path, self.extra = python, model, log_path, extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "LlamaServer":
        cmd = [self.python, "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", str(N_CTX), "--chat_format", "chatml", *self.extra]
        # The server's settings are pydantic BaseSettings: MODEL, PORT, API_KEY, CONFIG_FILE... in the
        # environment would change it. Give it only what a process needs.
        env = {k: v for k, v in os.environ.items() if k in SERVER_ENV}
        env["PYTHONUNBUFFERED"] = "1"  # its prints ("Disconnected from client") reach the log at once
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with NO_PROXY.open(self.url + "/v1/models", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama_cpp.server not ready after {timeout:.0f}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's clean shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def chat_posts(self) -> int:
        """Chat requests the server answered (uvicorn's access log: one line per response)."""
        return len(re.findall(r'"POST /v1/chat/completions HTTP/1\.1" \d{3}', self.log()))

    def cut_streams(self) -> int:
        """Streams the server ended early: interrupted by a newer request, or the client left."""
        return self.log().count("Disconnected from client")

    def overflows(self) -> list[int]:
        """Prompt sizes (real tokens) of the streamed requests the server refused as longer than
        its window (each logs a traceback ending in this line; a refused unstreamed one logs nothing)."""
        return [int(n) for n in re.findall(r"^ValueError: Requested tokens \((\d+)\) exceed context window",
                                           self.log(), re.MULTILINE)]

    def post(self, path: str, body: dict, timeout: float = 30.0) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        try:
            with NO_PROXY.open(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def count_tokens(self, text: str) -> int:
        """The model's own count (without BOS), from llama-cpp-python's /extras/tokenize/count."""
        status, body = self.post("/extras/tokenize/count", {"input": text})
        assert status == 200, body
        return json.loads(body)["count"] - 1


# --- the runner, as a user runs it ------------------------------------------------------------


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    args: tuple

    def json(self):
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise AssertionError(f"not JSON: {self}") from None

    def __str__(self) -> str:
        return (f"runner {' '.join(a if len(a) < 80 else a[:77] + '...' for a in self.args)} → exit {self.code}\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}")


PROFILE = """\
name: {name}
description: the tiny random model of the real-server tier
candidates:
  - model: llama/tiny
options: {{temperature: 0.8, max_output_tokens: {max_tokens}}}
too_long: {too_long}
"""


class Runner:
    """`python -m runner` with its own RUNNER_HOME pointed at one llama server."""

    def __init__(self, home: Path, server: LlamaServer) -> None:
        self.home = home
        self.server = server
        self.work = home / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        (home / "profiles").mkdir(exist_ok=True)
        self.write_config()
        self.profile("tiny", too_long="fail")
        self.profile("tiny-split", too_long="split")

    def write_config(self) -> None:
        (self.home / "config.yaml").write_text(
            "default_task: tiny\n"
            "retries: 2\n"
            "timeouts: {connect_s: 5, first_token_s: 30, total_s: 60}\n"
            "endpoints:\n"
            f'  llama: {{base_url: "{self.server.base_url}", local: true}}\n'
            "models:\n"
            f"  llama/tiny: {{context: {N_CTX}}}\n"
            f"  llama/tiny2: {{context: {N_CTX}}}\n"
        )

    def profile(self, name: str, *, too_long: str = "fail", max_tokens: int = MAX_TOKENS) -> None:
        (self.home / "profiles" / f"{name}.yaml").write_text(
            PROFILE.format(name=name, too_long=too_long, max_tokens=max_tokens))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
        closed = free_port()  # nothing listens there: no real Ollama is ever asked
        no_proxy = ",".join(filter(None, [env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost"]))
        env.update(RUNNER_HOME=str(self.home), OLLAMA_HOST=f"http://127.0.0.1:{closed}", NO_COLOR="1",
                   COLUMNS="160", PYTHONUNBUFFERED="1", NO_PROXY=no_proxy, no_proxy=no_proxy)
        return env

    def __call__(self, *args: str, input: str | None = None, timeout: float = 150.0) -> Result:
        cmd = [sys.executable, "-m", "runner", *args]
        try:
            r = subprocess.run(cmd, input=input if input is not None else "", capture_output=True, text=True,
                               env=self.env(), cwd=self.work, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"runner {' '.join(args)} still running after {timeout:.0f}s\n"
                                 f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}") from None
        return Result(r.returncode, r.stdout, r.stderr, args)

    def attempts(self) -> list[dict]:
        """Every attempt in the run log ($RUNNER_HOME/runs.db), oldest first."""
        db = self.home / "runs.db"
        if not db.exists():
            return []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute("SELECT * FROM attempts ORDER BY id")]
        finally:
            con.close()


def complete(text: str | None, max_tokens: int = MAX_TOKENS) -> bool:
    """A whole answer of the tiny model: it always runs to max_tokens one-character tokens."""
    return text is not None and len(text) == max_tokens


def unfinished_ok_attempts(attempts: list[dict]) -> list[dict]:
    """Attempts the run log calls ok though the protocol never said they finished."""
    return [a for a in attempts if a["outcome"] == "ok" and not a.get("finish_reason")]


class Expect:
    """Collects every broken expectation of a test, so one run reports all of them."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __call__(self, ok: object, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
        return bool(ok)

    def check(self, *context: object) -> None:
        if self.problems:
            lines = "\n".join(f"- {p}" for p in self.problems)
            raise AssertionError(f"{len(self.problems)} problem(s):\n{lines}\n\n" + "\n\n".join(map(str, context)))


def attempt_summary(attempts: list[dict]) -> str:
    keys = ("part", "outcome", "error_kind", "finish_reason", "output_tokens", "error")
    return "\n".join("  " + ", ".join(f"{k}={a.get(k)!r}" for k in keys if a.get(k) is not None) for a in attempts)

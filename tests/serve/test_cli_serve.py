"""`runner serve` as a user runs it: the real command in its own process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx

from runner.store import open_store

KEY = "serve-test-key-0123456789"


def test_a_non_loopback_bind_without_a_key_is_refused(cli):
    for host in ("0.0.0.0", "192.168.1.20", "::", "my-laptop.local"):
        r = cli("serve", "--host", host)
        assert r.code == 2
        assert r.stderr.strip().count("\n") == 0 and "refusing to listen" in r.stderr and "--api-key" in r.stderr


def test_a_weak_key_is_refused_without_being_repeated(cli):
    r = cli("serve", "--host", "0.0.0.0", "--api-key", "tiny-secret")
    assert r.code == 2 and "at least 16 characters" in r.stderr and "tiny-secret" not in r.stderr


def test_help_loads_no_web_stack():
    probe = ("import sys, runner.cli\n"
             "for args in (['--help'], ['serve', '--help']):\n"
             "    try:\n        runner.cli.app(args)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in ('starlette', 'uvicorn', 'openai', 'runner.serve.app') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


class Process:
    """`runner serve` in a subprocess, on a free port."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "runner", "serve", "--port", "0", *args],
                                     stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line + self.proc.stderr.read()
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def stream_in_thread(url: str, body: dict, headers: dict) -> tuple[threading.Thread, list[str], threading.Event]:
    lines: list[str] = []
    first = threading.Event()

    def read() -> None:
        try:
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
                for line in r.iter_lines():
                    if line:
                        lines.append(line)
                        first.set()
        except httpx.HTTPError as exc:
            lines.append(f"transport error: {type(exc).__name__}")
        first.set()

    t = threading.Thread(target=read)
    t.start()
    return t, lines, first


def test_keys_then_sigterm_lets_the_stream_in_flight_finish(use, fake_openai, home):
    use(fake_openai, "openai")
    fake_openai.replies["gpt-4.1"] = "word " * 60  # 15 chunks
    fake_openai.chunk_delay_s = 0.1  # ~1.5 s
    server = Process("--api-key", KEY, "--grace", "20")
    try:
        assert httpx.get(server.url + "/v1/models").status_code == 401
        headers = {"authorization": f"Bearer {KEY}"}
        assert httpx.get(server.url + "/v1/models", headers=headers).status_code == 200
        body = {"model": "openai/gpt-4.1", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        thread, lines, first = stream_in_thread(server.url, body, headers)
        assert first.wait(10)
        code, err = server.stop(signal.SIGTERM)
        thread.join(30)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert code == 0, err
    assert lines[-1] == "data: [DONE]"  # the whole answer arrived after the signal
    text = "".join(json.loads(x[6:])["choices"][0]["delta"].get("content") or ""
                   for x in lines if x.startswith("data: {") and json.loads(x[6:]).get("choices"))
    assert text == "word " * 60
    assert "stopping" in err and "stopped" in err
    assert KEY not in err
    [run] = open_store(home).runs()
    assert run["outcome"] == "ok" and run["kind"] == "serve"


def test_past_the_grace_period_a_stream_is_cut_and_logged_as_such(use, fake_openai, home):
    use(fake_openai, "openai")
    fake_openai.replies["gpt-4.1"] = "word " * 400  # 100 chunks
    fake_openai.chunk_delay_s = 0.1  # ~10 s
    server = Process("--grace", "1")
    try:
        body = {"model": "openai/gpt-4.1", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        thread, lines, first = stream_in_thread(server.url, body, {})
        assert first.wait(10)
        started = time.monotonic()
        code, err = server.stop(signal.SIGTERM)
        stopped_in = time.monotonic() - started
        thread.join(30)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert code == 0, err
    assert stopped_in < 6  # the grace period, not the whole answer
    assert "data: [DONE]" not in lines
    [run] = open_store(home).runs()
    assert run["outcome"] == "failed" and run["error"] == "server shut down before the answer was complete"
    assert not [t for t in threading.enumerate() if t.name == "runner-serve"]
    assert os.environ.get("RUNNER_HOME")

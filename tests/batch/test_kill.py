"""`runner batch` as a real process: killed with SIGKILL mid-flight, or interrupted with Ctrl-C,
then resumed — every id ends up in the results exactly once, and no line is ever half written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from runner.config import load_config
from runner.store import open_store

ROOT = Path(__file__).resolve().parents[2]
N_ROWS = 60

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "runner", "batch", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the batch ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.01)
    raise AssertionError(f"fewer than {n} results after {timeout}s")


def complete_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "a half-written last line"
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.fixture
def prompts(tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.05
    fake_openai.chunk_delay_s = 0.005
    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps({"id": f"row-{i:03d}", "prompt": f"question number {i}"}) + "\n"
                           for i in range(N_ROWS)))
    return src


def test_sigkill_mid_flight_then_resume_loses_nothing(tmp_path, prompts, fake_openai):
    out = tmp_path / "results.jsonl"
    args = [str(prompts), "--out", str(out), "--model", "openai/gpt-4.1", "--concurrency", "6"]
    proc = start(args)
    wait_for_lines(out, 12, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    before = complete_lines(out)  # every line written before the kill is whole
    assert 12 <= len(before) < N_ROWS
    assert all(r["ok"] for r in before) and len({r["id"] for r in before}) == len(before)
    sent_before = len([q for q in fake_openai.requests if "completions" in q.path])
    assert sent_before > len(before)  # rows were in flight when it died

    # A death inside a write leaves a torn tail: the resume must cut it, not choke on it.
    with open(out, "ab") as f:
        f.write(b'{"id": "row-999", "ok": true, "text": "half a li')

    proc = start(args)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    final = complete_lines(out)
    ok = Counter(r["id"] for r in final if r["ok"])
    assert ok == {f"row-{i:03d}": 1 for i in range(N_ROWS)}  # each id exactly once
    assert len(final) == N_ROWS
    assert final[:len(before)] == before  # finished rows were kept, not redone
    sent = len([q for q in fake_openai.requests if "completions" in q.path])
    assert sent == sent_before + (N_ROWS - len(before))  # the resume sent only what was missing
    assert f"{len(before)} already done" in stdout

    # The rows in flight at the kill are closed in the run log, not left `running` for good.
    runs = open_store(load_config().home).runs(group_id=final[0]["batch_id"], limit=1000)
    assert not [r for r in runs if r["outcome"] == "running"]
    killed = [r for r in runs if r["error"] == "interrupted (the process was killed)"]
    assert killed and all(r["outcome"] == "failed" for r in killed)


def test_a_second_ctrl_c_logs_the_abandoned_rows_with_their_model(tmp_path, prompts, fake_openai):
    fake_openai.chunk_delay_s = 0.2  # rows are mid-answer when they are abandoned
    out = tmp_path / "results.jsonl"
    proc = start([str(prompts), "--out", str(out), "--model", "openai/gpt-4.1", "--concurrency", "4"])
    deadline = time.monotonic() + 30
    while not [q for q in fake_openai.requests if "completions" in q.path] and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # their first tokens have arrived
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    runs = open_store(load_config().home).runs(limit=1000)
    assert not [r for r in runs if r["outcome"] == "running"]
    abandoned = [r for r in runs if r["error"] == "interrupted"]
    assert abandoned
    for r in abandoned:  # sent, so logged with the model and the call that was cut off
        assert r["model"] == "openai/gpt-4.1"
        assert [(a["model"], a["outcome"]) for a in r["attempts"]] == [("openai/gpt-4.1", "failed")]


def test_ctrl_c_finishes_running_rows_and_says_how_to_resume(tmp_path, prompts):
    out = tmp_path / "results.jsonl"
    args = [str(prompts), "--out", str(out), "--model", "openai/gpt-4.1", "--concurrency", "4"]
    proc = start(args)
    wait_for_lines(out, 8, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Resume with: runner batch" in stderr
    assert "Traceback" not in stderr
    done = complete_lines(out)
    assert 8 <= len(done) < N_ROWS and all(r["ok"] for r in done)  # running rows finished, none lost
    proc = start(args)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert Counter(r["id"] for r in complete_lines(out) if r["ok"]) == {f"row-{i:03d}": 1 for i in range(N_ROWS)}

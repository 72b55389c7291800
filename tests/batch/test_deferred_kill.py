"""`runner batch --deferred` as a real process, killed with SIGKILL at each stage — while the rows
upload, after the provider created the job but before its id was written down, while polling,
while fetching the results, while writing them — and interrupted with Ctrl-C while waiting. The
next run must submit every row exactly once (counted by the fake), write one line per row and
log one deferred run per row."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.batch_openai import FakeOpenAIBatch

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "runner", "batch", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(what, check, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.002)
    raise AssertionError(f"no {what} after {timeout}s")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


def jobs_state(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())["jobs"]
    except (FileNotFoundError, ValueError):
        return []


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "a half-written last line"
    return [json.loads(x) for x in data.decode().splitlines()]


def deferred_runs(home: Path) -> Counter:
    db = sqlite3.connect(home / "runs.db")
    try:
        rows = db.execute("SELECT r.item_id FROM attempts a JOIN runs r ON r.id = a.run_id WHERE a.deferred = 1").fetchall()
    finally:
        db.close()
    return Counter(r[0] for r in rows)


@pytest.fixture
def setup(tmp_path, home, use, request):
    n = getattr(request, "param", 40)
    with open(home / "config.yaml", "a") as f:
        f.write("deferred: {poll_s: 0.02, max_poll_s: 0.1}\n")
    fake = FakeOpenAIBatch({"gpt-4.1": 1_047_576}).start()
    request.addfinalizer(fake.stop)
    use(fake, "openai")
    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps({"id": f"row-{i:05d}", "prompt": f"question number {i}"}) + "\n" for i in range(n)))
    out = tmp_path / "answers.jsonl"
    args = [str(src), "--out", str(out), "--model", "openai/gpt-4.1", "--deferred"]
    return fake, out, tmp_path / "answers.jsonl.jobs.json", args, n


def finish_and_check(setup, home, *, created: int = 1) -> list[dict]:
    fake, out, state, args, n = setup
    proc = start(args)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    recs = lines(out)
    assert Counter(r["id"] for r in recs) == {f"row-{i:05d}": 1 for i in range(n)}  # one line per row
    assert all(r["ok"] and r["deferred"] for r in recs)
    assert fake.received == Counter({f"question number {i}": 1 for i in range(n)})  # one submission per row
    assert len(fake.created) == created
    assert deferred_runs(home) == {f"row-{i:05d}": 1 for i in range(n)}  # one deferred run per row in the log
    assert not state.exists()
    return recs


def test_killed_while_uploading(setup, home):
    fake, out, state, args, n = setup
    fake.upload_delay_s = 30  # the file is stored, the reply never reaches the killed client
    proc = start(args)
    wait_until("an upload", lambda: fake.files, proc)
    kill(proc)
    jobs = jobs_state(state)
    assert len(jobs) == 1 and jobs[0]["status"] == "submitting" and jobs[0]["input_file"] is None
    assert len(jobs[0]["rows"]) == n  # the rows were written down before anything was sent
    fake.upload_delay_s = 0
    finish_and_check(setup, home)


def test_killed_after_the_provider_created_the_job(setup, home):
    fake, out, state, args, n = setup
    fake.create_delay_s = 30  # the job exists; its id never reaches the killed client
    proc = start(args)
    wait_until("a created job", lambda: fake.created, proc)
    kill(proc)
    jobs = jobs_state(state)
    assert jobs[0]["status"] == "submitting" and jobs[0]["input_file"] and jobs[0]["job_id"] is None
    fake.create_delay_s = 0
    finish_and_check(setup, home)  # found again by its input file: still one job


def test_killed_while_polling(setup, home):
    fake, out, state, args, n = setup
    fake.schedule = (1, 60, 1)  # long enough to be killed while waiting
    proc = start(args)
    wait_until("a submitted job", lambda: any(j["status"] == "submitted" for j in jobs_state(state)), proc)
    wait_until("a few polls", lambda: len([r for r in fake.requests if r.path.startswith("/v1/batches/")]) >= 3, proc)
    kill(proc)
    assert not lines(out)
    for job in fake.jobs.values():
        job.schedule = (1, 2, 1)
    finish_and_check(setup, home)


def test_killed_while_fetching_the_results(setup, home):
    fake, out, state, args, n = setup
    fake.download_delay_s = 30
    proc = start(args)
    wait_until("a results download", lambda: any(r.path.endswith("/content") for r in fake.requests), proc)
    kill(proc)
    assert not lines(out) and jobs_state(state)[0]["status"] == "submitted"
    fake.download_delay_s = 0
    finish_and_check(setup, home)


@pytest.mark.parametrize("setup", [6000], indirect=True)
def test_killed_while_writing_the_results(setup, home):
    fake, out, state, args, n = setup
    proc = start(args)
    wait_until("the first result line", lambda: out.exists() and out.stat().st_size > 0, proc, timeout=120)
    kill(proc)
    before = lines(out)
    assert 0 < len(before) < n, "the kill came after the whole job was written: nothing was tested"
    recs = finish_and_check(setup, home)
    assert recs[:len(before)] == before  # what was written stays, unchanged


def test_ctrl_c_while_waiting_leaves_the_jobs_running(setup, home):
    fake, out, state, args, n = setup
    fake.schedule = (1, 500, 1)
    proc = start(args)
    wait_until("a submitted job", lambda: any(j["status"] == "submitted" for j in jobs_state(state)), proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "keep running" in stderr and "Collect them with: runner batch" in stderr and "--deferred" in stderr
    job = fake.jobs[fake.created[0]]
    assert job.state != "ended" and job.cancel_at is None  # nothing was cancelled
    assert jobs_state(state)[0]["job_id"] == job.id
    job.schedule = (1, 2, 1)
    finish_and_check(setup, home)

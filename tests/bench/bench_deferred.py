"""Benchmark for `runner batch --deferred`. Run: python tests/bench/bench_deferred.py [--rows N]

Prints, from one run, against the OpenAI batch fake (in this process; the runner is a real
`python -m runner batch` process, measured with wait4):

1. Submitting: the runner's peak RSS for 10,000 rows and for N (100,000) rows, and the size of
   what it uploaded. Streaming means the peak stays flat while the upload grows ten times.
   100,000 rows are two jobs (OpenAI takes 50,000 requests a job).
2. Collecting: the jobs are driven to their end inside the fake, then one run collects them —
   polls, downloads the output files, writes 100,000 result lines and 100,000 runs to the run
   log. Wall time of that whole process (Python start-up included; target < 10 s) and its peak
   RSS (target < 150 MB), with the time per row.

The fake answers rows with a canned completion (its own validation of the input file, the
custom ids and the single model still applies): what is measured is the runner, not the fake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.fakes.batch_openai import FakeOpenAIBatch  # noqa: E402


class InstantBatchFake(FakeOpenAIBatch):
    """Answers each row at once with a canned chat.completion whose usage follows the prompt."""

    async def _answer(self, body):  # noqa: D401 - overrides the fake's live endpoint for speed
        prompt = body["messages"][-1]["content"]
        n_in = len(prompt) // 4 + 4
        text = f"The answer to: {prompt}"
        return 200, {"id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": n_in, "completion_tokens": 12, "total_tokens": n_in + 12,
                               "prompt_tokens_details": {"cached_tokens": 0}}}


def write_prompts(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i:06d}", "prompt": f"Question {i}: what is {i} plus {i}?"}) + "\n")


def env_for(home: Path, url: str) -> dict[str, str]:
    env = dict(os.environ, RUNNER_HOME=str(home), OPENAI_BASE_URL=url + "/v1", OPENAI_API_KEY="test-key",
               OLLAMA_HOST="http://127.0.0.1:9", PYTHONPATH=str(ROOT), NO_COLOR="1")
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY", "XAI_API_KEY", "MISTRAL_API_KEY"):
        env.pop(var, None)
    return env


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, int, str, float]:
    """(wall s, peak RSS MB, exit code, stderr, CPU s) of one `runner batch` process. Its peak RSS is
    wait4's: a forked child starts with its parent's resident size as its high-water mark, so
    this process stays small (the fake lives in a process of its own)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "runner", "batch", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    reader.join()
    return (wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), b"".join(err).decode(),
            usage.ru_utime + usage.ru_stime)


class FakeProcess:
    """The batch fake in a process of its own, driven over its stdin."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-fake"], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def serve_fake() -> None:
    fake = InstantBatchFake({"gpt-4.1": 1_047_576}).start()
    print(fake.url, flush=True)
    for line in sys.stdin:
        if line.strip() == "finish":  # run every job to its end, as the provider would meanwhile
            async def go() -> None:
                for job in fake.jobs.values():
                    job.schedule = (1, 1, 0)
                    while job.state != "ended":
                        await job.step(fake._answer, time.time())
                    fake._write_files(job)

            asyncio.run_coroutine_threadsafe(go(), fake._loop).result(600)
        uploaded = sum(len(f["content"]) for f in fake.files.values() if f["purpose"] == "batch")
        print(json.dumps({"rows": fake.rows_received, "jobs": len(fake.created), "uploaded": uploaded}), flush=True)
    fake.stop()


def submit(n: int, tmp: Path) -> tuple[float, float, dict, Path, Path, FakeProcess]:
    home = tmp / f"home-{n}"
    home.mkdir()
    (home / "config.yaml").write_text("deferred: {poll_s: 0.05, max_poll_s: 0.2}\n")
    src = tmp / f"prompts-{n}.jsonl"
    write_prompts(src, n)
    fake = FakeProcess()
    out = tmp / f"answers-{n}.jsonl"
    args = [str(src), "--out", str(out), "--model", "openai/gpt-4.1", "--deferred"]
    wall, rss, code, err, _ = run(args + ["--no-wait"], env_for(home, fake.url))
    if code != 4:
        raise SystemExit(f"submitting {n:,} rows: exit {code}: {err[-2000:]}")
    return wall, rss, fake.ask("stats"), home, out, fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve_fake:
        serve_fake()
        return
    n = opts.rows
    small = max(1, n // 10)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        w_small, rss_small, st_small, _, _, fake_small = submit(small, tmp)
        fake_small.stop()
        w_big, rss_big, st_big, home, out, fake = submit(n, tmp)
        up_small, up_big = st_small["uploaded"], st_big["uploaded"]
        print(f"submit {small:>7,} rows: {w_small:6.2f} s, peak RSS {rss_small:6.1f} MB, uploaded {up_small / 1e6:6.1f} MB")
        print(f"submit {n:>7,} rows: {w_big:6.2f} s, peak RSS {rss_big:6.1f} MB, uploaded {up_big / 1e6:6.1f} MB "
              f"in {st_big['jobs']} jobs")
        print(f"  upload grew {up_big / up_small:.1f}x, peak RSS {rss_big - rss_small:+.1f} MB ({rss_big / rss_small:.2f}x): "
              f"{'flat: the upload is streamed' if rss_big < rss_small * 1.5 else 'NOT flat'}")
        assert st_big["rows"] == n, st_big

        fake.ask("finish")
        src = tmp / f"prompts-{n}.jsonl"
        args = [str(src), "--out", str(out), "--model", "openai/gpt-4.1", "--deferred"]
        wall, rss, code, err, cpu = run(args, env_for(home, fake.url))
        if code != 0:
            raise SystemExit(f"collecting: exit {code}: {err[-2000:]}")
        with open(out, "rb") as f:
            written = sum(1 for _ in f)
        ok = written == n
        print(f"collect {n:,} deferred results: {wall:.2f} s wall, {cpu:.2f} s CPU ({wall / n * 1e6:.0f} µs/row, "
              f"start-up included; target < 10 s: {'ok' if wall < 10 else 'MISSED'}), peak RSS {rss:.1f} MB "
              f"(target < 150 MB: {'ok' if rss < 150 else 'MISSED'}), {written:,} lines written ({'ok' if ok else 'WRONG'})")
        print(f"  load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
              "(wall time counts the time other processes took the CPU)")
        fake.stop()


if __name__ == "__main__":
    main()

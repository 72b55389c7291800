"""Benchmarks for `runner batch`. Run: python tests/bench/bench_batch.py [--quick]

Prints, from one run:
1. wall time of 1,000 prompts against a fake backend with a fixed 100 ms latency and a limit of
   32 at once, as a ratio of the ideal 1,000 × 0.1 / 32 = 3.125 s (target ≤ 1.2×). The runner
   is a real `python -m runner batch` process; the fake runs in this process.
2. 100,000 prompts from a file against an instant fake: the runner's peak RSS (target < 150 MB),
   its RSS sampled along the way (flat means streaming works), and its CPU time per row — the
   runner's own cost per row, HTTP client included.
3. In-process, against an instant backend (no HTTP at all): the runner's own overhead per row
   (read the row, route it, execute, meter, log it to SQLite, write the result line); target < 1 ms.
4. What durability costs: appending a result line with and without fsync, and the SQLite run
   log's writes per row.
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


def write_prompts(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i:06d}", "prompt": f"Question {i}: what is {i} plus {i}?"}) + "\n")


def runner_env(home: str, fake_url: str) -> dict[str, str]:
    env = dict(os.environ, RUNNER_HOME=home, OPENAI_BASE_URL=fake_url + "/v1", OPENAI_API_KEY="test-key",
               OLLAMA_HOST="http://127.0.0.1:9", PYTHONPATH=str(ROOT), NO_COLOR="1")
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY", "XAI_API_KEY", "MISTRAL_API_KEY"):
        env.pop(var, None)
    return env


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_batch(args: list[str], env: dict[str, str], sample: bool = False):
    """Run `runner batch` as a child; returns (wall s, summary json, rusage, rss samples)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "runner", "batch", *args, "--json"], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    samples: list[tuple[float, float]] = []
    out_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    err_chunks: list[bytes] = []
    err_reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    err_reader.start()
    while True:  # wait4, not poll(): the child's own rusage (peak RSS, CPU) comes with it
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG if sample else 0)
        if pid:
            break
        r = rss_mb(proc.pid)
        if r:
            samples.append((time.perf_counter() - t, r))
        time.sleep(0.25)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    err_reader.join()
    if proc.returncode != 0:
        raise SystemExit(f"runner batch failed ({proc.returncode}): {b''.join(err_chunks).decode()[-2000:]}")
    return wall, json.loads(b"".join(out_chunks)), usage, samples


class FakeProcess:
    """The fake in a process of its own, so neither the runner nor the direct client shares its CPU."""

    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-fake", str(latency)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def stats(self) -> dict:
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def serve_fake(latency: float) -> None:
    from tests.fakes.openai import FakeOpenAI

    fake = FakeOpenAI(models={"gpt-4.1": 1_047_576}, ttft_s=latency).start()
    print(fake.url, flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps({"max_concurrent": fake.max_concurrent_seen, "connections": fake.connections_opened,
                              "requests": len(fake.requests)}), flush=True)
            fake.clear()
            fake.connections_opened = 0
    fake.stop()


async def direct_client(url: str, n: int, limit: int) -> float:
    """The floor: a bare httpx client, `limit` streams at once, each read to its end."""
    import httpx

    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Question 1: what is 1 plus 1?"}],
            "stream": True, "stream_options": {"include_usage": True}}
    sem = asyncio.Semaphore(limit)
    limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        async def one() -> None:
            async with sem:
                async with client.stream("POST", url + "/v1/chat/completions", json=body,
                                         headers={"Authorization": "Bearer test-key"}) as resp:
                    async for _ in resp.aiter_lines():
                        pass

        t = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - t


def bench_latency(n: int = 1000, latency: float = 0.1, limit: int = 32, repeat: int = 3) -> None:
    fake = FakeProcess(latency)
    tmp = Path(tempfile.mkdtemp())
    write_prompts(tmp / "p.jsonl", n)
    env = runner_env(str(tmp / "home"), fake.url)
    ideal = n * latency / limit
    runs, directs, walls = [], [], []
    try:
        for i in range(repeat):  # interleaved, so both see the same machine load
            directs.append(asyncio.run(direct_client(fake.url, n, limit)))
            fake.stats()
            wall, summary, _, _ = run_batch([str(tmp / "p.jsonl"), "--out", str(tmp / "o.jsonl"), "--overwrite",
                                             "--model", "openai/gpt-4.1", "--limit", f"openai={limit}"], env)
            stats = fake.stats()
            assert summary["ok"] == n and stats["max_concurrent"] == limit, (summary, stats)
            runs.append(summary["elapsed_s"])
            walls.append(wall)
    finally:
        fake.stop()
    best, d = min(runs), min(directs)
    print(f"1. {n:,} prompts, {latency * 1000:.0f} ms each, limit {limit} (ideal {n} × {latency} / {limit} = {ideal:.3f} s), "
          f"best of {repeat}:")
    print(f"   runner batch {best:.2f} s → {best / ideal:.2f}x the ideal (target ≤ 1.2x; runs: "
          f"{', '.join(f'{x:.2f}' for x in runs)}); the whole process incl. Python start-up {min(walls):.2f} s")
    print(f"   a bare httpx client, same fake, same limit: {d:.2f} s → {d / ideal:.2f}x; runner vs bare client "
          f"{best / d:.2f}x; last run: {stats['connections']} connections, at most {stats['max_concurrent']} at once")


def bench_flat(n: int = 100_000) -> None:
    from tests.fakes.openai import FakeOpenAI

    fake = FakeOpenAI(models={"gpt-4.1": 1_047_576}).start()
    tmp = Path(tempfile.mkdtemp())
    write_prompts(tmp / "p.jsonl", n)
    env = runner_env(str(tmp / "home"), fake.url)
    try:
        wall, summary, usage, samples = run_batch([str(tmp / "p.jsonl"), "--out", str(tmp / "o.jsonl"),
                                                   "--model", "openai/gpt-4.1"], env, sample=True)
    finally:
        fake.stop()
    peak = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime
    picks = [samples[int(len(samples) * q)] for q in (0.1, 0.25, 0.5, 0.75)] + [samples[-1]] if samples else []
    along = ", ".join(f"{t:.0f}s {r:.0f} MB" for t, r in picks)
    print(f"2. {n:,} prompts from a file, instant fake: peak RSS {peak:.0f} MB (target < 150 MB); "
          f"RSS along the way: {along}")
    print(f"   wall {wall:.1f} s = {wall / n * 1000:.2f} ms per row (fake server included); runner CPU "
          f"{cpu:.1f} s = {cpu / n * 1000:.2f} ms per row (HTTP client, routing, log, results); "
          f"{summary['ok']:,} ok, results file {os.path.getsize(tmp / 'o.jsonl') / 1e6:.0f} MB")


class InstantBackend:
    """The Backend protocol (runner/backends/base.py) with nothing behind it."""

    def warm(self, timeouts) -> None:
        return None

    async def stream(self, call):
        from runner.backends import Done, TextDelta, Usage

        yield TextDelta("Four, ")
        yield TextDelta("as it always was.")
        yield Done(Usage(input_tokens=16, output_tokens=9), "stop")

    async def aclose(self) -> None:
        return None


def bench_overhead(n: int = 20_000) -> None:
    tmp = Path(tempfile.mkdtemp())
    write_prompts(tmp / "p.jsonl", n)
    os.environ.update(RUNNER_HOME=str(tmp / "home"), OPENAI_API_KEY="test-key", OLLAMA_HOST="http://127.0.0.1:9")
    from runner.batch import Batch, BatchOptions
    from runner.config import load_config

    async def main() -> tuple[float, float]:
        batch = Batch(load_config(), BatchOptions(file=tmp / "p.jsonl", out=str(tmp / "o.jsonl"), model="openai/gpt-4.1"))
        batch.session.pool._backends["openai"] = InstantBackend()
        t = time.perf_counter()
        batch.read()
        scanned = time.perf_counter() - t
        code = await batch.run()
        assert code == 0 and batch.ok == n, (code, batch.ok)
        return time.perf_counter() - t, scanned

    total, scanned = asyncio.run(main())
    print(f"3. runner overhead, in-process against an instant backend: {total / n * 1000:.3f} ms per row "
          f"(target < 1 ms; {n:,} rows in {total:.2f} s, of which validating the file first {scanned / n * 1e6:.0f} µs/row)")


def bench_durability(n: int = 2000) -> None:
    from runner.batch.results import ResultsWriter
    from runner.store import Store

    tmp = Path(tempfile.mkdtemp())
    rec = {"id": "x", "ok": True, "model": "openai/gpt-4.1", "text": "an answer " * 30, "cost_usd": 0.0001}
    w = ResultsWriter(tmp / "a.jsonl", "jsonl")
    w.open()
    t = time.perf_counter()
    for i in range(n):
        w.write({**rec, "id": str(i)})
    plain = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(n):
        w.write({**rec, "id": f"s{i}"})
        os.fsync(w.fd)
    synced = (time.perf_counter() - t) / n
    w.close()
    store = Store(tmp / "runs.db")
    t = time.perf_counter()
    for i in range(n):
        run_id = store.start_run(kind="batch", task="general", prompt="a prompt " * 10, system=None, group_id="b", item_id=str(i))
        store.add_attempt(run_id, {"model": "openai/gpt-4.1", "outcome": "ok", "input_tokens": 10, "output_tokens": 20,
                                   "ttft_ms": 1.0, "latency_ms": 2.0, "cost_usd": 0.0001})
        store.finish_run(run_id, {"model": "openai/gpt-4.1", "outcome": "ok", "text": "an answer " * 30})
    logged = (time.perf_counter() - t) / n
    print(f"4. appending one result line: {plain * 1e6:.0f} µs; with fsync after every line {synced * 1e6:.0f} µs "
          f"({synced / plain:.0f}x) — kill -9 loses nothing either way, so runner fsyncs once a second and on close; "
          f"run log (3 SQLite writes per row, WAL, synchronous=NORMAL): {logged * 1e6:.0f} µs per row")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10,000 rows instead of 100,000 for the memory run")
    ap.add_argument("--rows", type=int, default=None, help="rows for the memory run")
    ap.add_argument("--serve-fake", type=float, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_fake is not None:
        serve_fake(a.serve_fake)
        raise SystemExit(0)
    bench_latency()
    bench_flat(a.rows or (10_000 if a.quick else 100_000))
    bench_overhead()
    bench_durability()

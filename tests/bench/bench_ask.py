"""Benchmarks for `runner ask` (issue 2). Run: python tests/bench/bench_ask.py

Prints, from one run:
1. `runner --help` wall time vs `python -c pass` (median of several runs), and whether the help
   path imported ollama, pydantic or genai_prices;
2. time the runner adds to time-to-first-token and to total latency, vs a direct httpx call to
   the same fake server in the same run (medians, interleaved);
3. plan() decision time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def median_run(cmd: list[str], n: int = 9, env=None) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_help() -> None:
    env = dict(os.environ, RUNNER_HOME=tempfile.mkdtemp())
    base = median_run([sys.executable, "-c", "pass"], env=env)
    helped = median_run([sys.executable, "-m", "runner", "--help"], env=env)
    probe = ("import sys, runner.cli\n"
             "try:\n    runner.cli.app(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('ollama', 'pydantic', 'genai_prices') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT).stdout.strip().splitlines()[-1]
    print(f"runner --help: {helped * 1000:.0f} ms median vs python -c pass {base * 1000:.0f} ms "
          f"(ratio {helped / base:.1f}x, +{(helped - base) * 1000:.0f} ms); heavy modules loaded: {loaded}")


async def direct_call(url: str, client) -> tuple[float, float]:
    """The floor: a bare httpx stream of the same request, reading SSE lines until [DONE]."""
    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hello"}], "stream": True,
            "stream_options": {"include_usage": True}, "max_completion_tokens": 200}
    start = time.perf_counter()
    first = None
    async with client.stream("POST", url + "/v1/chat/completions", json=body,
                             headers={"Authorization": "Bearer test-key"}) as resp:
        async for line in resp.aiter_lines():
            if first is None and '"content":"' in line and '"content":""' not in line:
                first = time.perf_counter()
            if line == "data: [DONE]":
                break
    end = time.perf_counter()
    return (first - start) * 1000, (end - start) * 1000


async def bench_overhead(n: int = 40) -> None:
    import httpx

    from runner.config import load_config
    from runner.request import Request
from runner.session import Session
    from tests.fakes.openai import FakeOpenAI

    fake = FakeOpenAI(models={"gpt-4.1": 1_047_576})
    fake.ttft_s = 0.030
    fake.chunk_delay_s = 0.002
    fake.start()
    os.environ["OPENAI_BASE_URL"] = fake.url + "/v1"
    os.environ["OPENAI_API_KEY"] = "test-key"
    os.environ["RUNNER_HOME"] = tempfile.mkdtemp()
    config = load_config()
    session = Session(config)
    direct_ttft, direct_total, run_ttft, run_total = [], [], [], []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(n + 3):
            d = await direct_call(fake.url, client)
            prepared = await session.prepare(Request(prompt="hello", task="general", model="openai/gpt-4.1",
                                                     options={"max_output_tokens": 200}))
            t0 = time.perf_counter()
            first = []
            result, _ = await session.answer(prepared, on_event=lambda ref, ev: first or first.append(time.perf_counter()))
            t1 = time.perf_counter()
            assert result.ok, result.error
            if i >= 3:  # warm-up: connection set-up, price cache
                direct_ttft.append(d[0])
                direct_total.append(d[1])
                run_ttft.append((first[0] - t0) * 1000)
                run_total.append((t1 - t0) * 1000)
    await session.aclose()
    fake.stop()
    med = statistics.median
    print(f"time to first token: runner {med(run_ttft):.2f} ms vs direct httpx {med(direct_ttft):.2f} ms "
          f"→ added {med(run_ttft) - med(direct_ttft):+.2f} ms (median of {n})")
    print(f"total latency:       runner {med(run_total):.2f} ms vs direct httpx {med(direct_total):.2f} ms "
          f"→ added {med(run_total) - med(direct_total):+.2f} ms (includes writing the run log)")


def bench_plan(n: int = 20000) -> None:
    from runner.config import load_config
    from runner.pricing import Pricing
    from runner.availability import Availability, LocalModel, OllamaStatus
from runner.router import Need, plan

    config = load_config()
    avail = Availability(
        ollama={"ollama": OllamaStatus("http://127.0.0.1:11434", True, None, "0.12.6",
                                       {"qwen2.5:14b": LocalModel(32768), "qwen2.5:7b": LocalModel(32768)})},
        keys=frozenset({"openai", "gemini", "deepseek"}))
    profile = config.profile("long-doc")
    pricer = Pricing(config).estimate
    need = Need(20_000, 2048)
    plan(need, profile, config, avail, pricer)
    t = time.perf_counter()
    for _ in range(n):
        plan(need, profile, config, avail, pricer)
    per = (time.perf_counter() - t) / n * 1000
    print(f"plan() for long-doc (5 candidates): {per:.4f} ms per decision ({n} runs; target < 0.2 ms)")


if __name__ == "__main__":
    bench_help()
    asyncio.run(bench_overhead())
    bench_plan()

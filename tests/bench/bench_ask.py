"""Benchmarks for `runner ask` (issues 2 and 10). Run: python tests/bench/bench_ask.py [--quick]

Prints, from one run (medians, the two sides interleaved so machine load hits both alike):
1. `runner --help` against `python -c "import typer"`, whole processes (goal: at most 1.6x), and
   whether the help path imported ollama, pydantic or genai_prices;
2. one prompt to a local model, whole processes against the same fake Ollama: `runner ask` against
   a direct httpx streaming script; the first byte of the answer on stdout counted from process
   start, and the whole process (goals: at most 1.5x each). Both write to a pseudo-terminal, as a
   user sees them (into a pipe, runner holds an attempt's text until it completes);
3. time the runner adds to time-to-first-token and to total latency inside one process, against a
   direct httpx call to the same fake server;
4. plan() decision time.
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

QUICK = "--quick" in sys.argv
RUNS = 7 if QUICK else 15


def base_env(**extra: str) -> dict[str, str]:
    """The environment of every measured process: bytecode cached, as in an installed package
    (pip compiles it; a checkout run with PYTHONDONTWRITEBYTECODE would compile runner's modules
    at every start), kept out of the source tree."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=PYCACHE, RUNNER_HOME=tempfile.mkdtemp(), **extra)
    return env


PYCACHE = tempfile.mkdtemp(prefix="runner-bench-pycache-")


def timed(cmd: list[str], env=None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
                   check=True, cwd=ROOT)
    return time.perf_counter() - t


def interleaved(commands: dict[str, list[str]], n: int, env=None, warm: int = 2) -> dict[str, float]:
    """Median wall time of each command, run in turn n times (after `warm` unmeasured rounds)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(warm + n):
        for name, cmd in commands.items():
            t = timed(cmd, env)
            if i >= warm:
                times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_help() -> None:
    env = base_env()
    med = interleaved({"typer": [sys.executable, "-c", "import typer"],
                       "help": [sys.executable, "-m", "runner", "--help"]}, RUNS, env)
    probe = ("import sys, runner.cli\n"
             "try:\n    runner.cli.app(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('ollama', 'pydantic', 'genai_prices', 'rich') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT).stdout.strip().splitlines()[-1]
    ratio = med["help"] / med["typer"]
    print(f"runner --help: {med['help'] * 1000:.0f} ms vs python -c 'import typer' {med['typer'] * 1000:.0f} ms "
          f"→ {ratio:.2f}x (goal ≤ 1.6x; median of {RUNS}); loaded beyond typer: {loaded}")


DIRECT = r"""
import json, sys
import httpx
body = {"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "hello"}], "stream": True}
with httpx.stream("POST", sys.argv[1] + "/api/chat", json=body, timeout=30) as resp:
    for line in resp.iter_lines():
        if line:
            data = json.loads(line)
            sys.stdout.write(data.get("message", {}).get("content") or "")
            sys.stdout.flush()
            if data.get("done"):
                break
sys.stdout.write("\n")
"""


def first_byte(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first byte on stdout, seconds to the end of the process), stdout a pty."""
    import pty

    master, slave = pty.openpty()
    t0 = time.perf_counter()
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=slave, stderr=errors, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    os.close(slave)
    first = None
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            if first is None and chunk.strip():
                first = time.perf_counter()
    finally:
        os.close(master)
    proc.wait()
    end = time.perf_counter()
    if proc.returncode or first is None:
        errors.seek(0)
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}): {errors.read().decode(errors='replace')[-2000:]}")
    return first - t0, end - t0


def bench_process(ttft_s: float = 0.25) -> None:
    """One prompt to a local model: runner against a direct httpx script, whole processes."""
    from tests.fakes.ollama import FakeOllama

    fake = FakeOllama()
    fake.ttft_s, fake.chunk_delay_s = ttft_s, 0.005
    fake.start()
    env = base_env(OLLAMA_HOST=fake.url, NO_COLOR="1", COLUMNS="100")
    commands = {"runner": [sys.executable, "-m", "runner", "ask", "-m", "ollama/qwen2.5:7b", "hello"],
                "direct": [sys.executable, "-c", DIRECT, fake.url]}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for i in range(2 + RUNS):
        for name, cmd in commands.items():
            t = first_byte(cmd, env)
            if i >= 2:  # the first rounds fill the disk caches (the model's /api/show, .pyc files)
                times[name].append(t)
    fake.stop()
    med = {name: (statistics.median(a for a, _ in ts), statistics.median(b for _, b in ts)) for name, ts in times.items()}
    (rf, rt), (df, dt) = med["runner"], med["direct"]
    print(f"local ask, whole process (fake Ollama, first token after {ttft_s * 1000:.0f} ms; median of {RUNS}):")
    print(f"  first byte on stdout: runner {rf * 1000:.0f} ms vs direct httpx {df * 1000:.0f} ms → {rf / df:.2f}x (goal ≤ 1.5x)")
    print(f"  whole process:        runner {rt * 1000:.0f} ms vs direct httpx {dt * 1000:.0f} ms → {rt / dt:.2f}x (goal ≤ 1.5x)")


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
    from runner.options import GenerationOptions
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
                                                     options=GenerationOptions(max_output_tokens=200)))
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
    bench_process()
    asyncio.run(bench_overhead(10 if QUICK else 40))
    bench_plan(2000 if QUICK else 20000)

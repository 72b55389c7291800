"""Benchmark for `runner compare`. Run: python tests/bench/bench_compare.py [--prompts 50]

A 50-prompt × 4-model comparison against loopback fakes (in a child process, as servers would be)
with fixed latencies (50/100/150/200 ms, one model per provider) and known limits: Ollama `num_parallel: 4`, hosted providers 8 each, and
the global `--concurrency`. The ideal wall time is the largest of
  - per provider: ceil(cells / provider limit) × the model's latency (the slowest lane), and
  - globally: the sum of every cell's latency / concurrency,
and the benchmark prints the measured time over it (target ≤ 1.3), for the default concurrency
(16, where the global limit binds) and for 64 (where the slowest provider's lane binds), plus how
long building and rendering the reports took.

The first run in the process is "cold", as a fresh `runner compare` is: before any call it imports
the price data and builds each provider's HTTP client (compare's warm-up,
so that no cell's latency includes them); that one-time cost is printed apart. Later runs are warm
(their warm-up only builds new HTTP clients); the median of those is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODELS = [  # (ref, provider, fixed latency in seconds)
    ("ollama/qwen2.5:7b", "ollama", 0.050),
    ("deepseek/deepseek-flash", "deepseek", 0.100),
    ("anthropic/claude-haiku-4-5", "anthropic", 0.150),
    ("openai/gpt-4.1", "openai", 0.200),
]
OLLAMA_PARALLEL = 4
HOSTED = 8


def ideal_seconds(n_prompts: int, concurrency: int) -> tuple[float, str]:
    lanes = {}
    for ref, provider, latency in MODELS:
        limit = OLLAMA_PARALLEL if provider == "ollama" else HOSTED
        lanes[ref] = math.ceil(n_prompts / limit) * latency
    slowest = max(lanes, key=lanes.get)
    overall = n_prompts * sum(latency for _, _, latency in MODELS) / concurrency
    if overall >= lanes[slowest]:
        return overall, f"global: {n_prompts} × {sum(x for _, _, x in MODELS) * 1000:.0f} ms / {concurrency}"
    limit = OLLAMA_PARALLEL if slowest.startswith("ollama/") else HOSTED
    return lanes[slowest], f"{slowest}: ceil({n_prompts}/{limit}) × {dict((r, x) for r, _, x in MODELS)[slowest] * 1000:.0f} ms"


def serve() -> None:
    """Child process: run the fakes, print their URLs, serve until stdin closes. In their own
    process the fakes do not compete with the runner for the GIL, as real servers would not."""
    import json

    from tests.fakes import FakeAnthropic, FakeOllama, FakeOpenAI
    from tests.fakes.ollama import default_models

    fakes = {
        "ollama": FakeOllama(default_models()),
        "deepseek": FakeOpenAI({"deepseek-flash": 1_000_000}, flavor="deepseek"),
        "anthropic": FakeAnthropic({"claude-haiku-4-5": 200_000}),
        "openai": FakeOpenAI({"gpt-4.1": 1_047_576}),
    }
    for ref, provider, latency in MODELS:
        fakes[provider].ttft_s = latency  # the whole answer arrives at once after this
        fakes[provider].start()
    print(json.dumps({name: fake.url for name, fake in fakes.items()}), flush=True)
    sys.stdin.read()
    print(json.dumps({name: fake.max_concurrent_seen for name, fake in fakes.items()}), flush=True)
    for fake in fakes.values():
        fake.stop()


def start_fakes():
    import json
    import subprocess

    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=ROOT)
    urls = json.loads(child.stdout.readline())
    os.environ["OLLAMA_HOST"] = urls["ollama"]
    os.environ["OPENAI_BASE_URL"] = urls["openai"] + "/v1"
    for name in ("deepseek", "anthropic"):
        os.environ[f"{name.upper()}_BASE_URL"] = urls[name]
    for name in ("openai", "deepseek", "anthropic"):
        os.environ[f"{name.upper()}_API_KEY"] = "test-key"
    return child


def stop_fakes(child) -> dict:
    import json

    child.stdin.close()
    seen = json.loads(child.stdout.readline() or "{}")
    child.wait(timeout=30)
    return seen


WARM_UP: list[float] = []


def time_warm_up() -> None:
    import runner.compare.run as compare

    original = compare._warm_up

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            WARM_UP.append(time.perf_counter() - start)

    compare._warm_up = timed


async def one_run(n_prompts: int, concurrency: int) -> tuple[float, float, int, int]:
    from runner.compare.model import Column, Plan, PromptItem
    from runner.compare.report import build_report
    from runner.compare.run import run_comparison
    from runner.config import load_config
    from runner.limits import Limits
    from runner.render.compare_html import render_html
    from runner.render.compare_md import render_markdown
    from runner.session import Session

    os.environ["RUNNER_HOME"] = tempfile.mkdtemp(prefix="bench-compare-")
    Path(os.environ["RUNNER_HOME"], "config.yaml").write_text(
        f"retries: 0\nhosted_concurrency: {HOSTED}\nollama: {{num_parallel: {OLLAMA_PARALLEL}}}\n")
    config = load_config()
    plan = Plan(prompts=[PromptItem(f"Question {i}: what is {i} + {i}?") for i in range(n_prompts)],
                columns=[Column.for_model(ref) for ref, _, _ in MODELS], default_task="general",
                concurrency=concurrency)
    session = Session(config, limits=Limits(config))
    try:
        start = time.perf_counter()
        comp = await run_comparison(session, plan)
        wall = time.perf_counter() - start
    finally:
        await session.aclose()
    start = time.perf_counter()
    report = build_report(comp, config.is_local)
    render_html(report)
    render_markdown(report)
    rendered = time.perf_counter() - start
    ok = sum(c.ok for c in comp.cells.values())
    return wall, rendered, ok, len(comp.cells)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="runs per setting; the median is reported")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    child = start_fakes()
    time_warm_up()
    try:
        ideal, why = ideal_seconds(args.prompts, 16)
        wall, _, ok, cells = asyncio.run(one_run(args.prompts, 16))
        once = WARM_UP[-1]
        print(f"cold (first run in a fresh process), --concurrency 16: {wall:.2f} s vs ideal {ideal:.2f} s → ratio "
              f"{wall / ideal:.2f}; of which one-time warm-up before any call {once:.2f} s (imports, HTTP clients) → "
              f"{(wall - once) / ideal:.2f} without it; {ok}/{cells} answers")
        for concurrency in (16, 64):
            ideal, why = ideal_seconds(args.prompts, concurrency)
            results = sorted((asyncio.run(one_run(args.prompts, concurrency)) for _ in range(args.runs)), key=lambda r: r[0])
            wall, rendered, ok, cells = results[len(results) // 2]
            print(f"warm: {args.prompts} prompts × {len(MODELS)} models, --concurrency {concurrency}: "
                  f"{wall:.2f} s (median of {args.runs}) vs ideal {ideal:.2f} s [{why}] → "
                  f"ratio {wall / ideal:.2f} (target ≤ 1.30); {ok}/{cells} answers; "
                  f"report build + HTML + Markdown {rendered * 1000:.0f} ms")
    finally:
        seen = stop_fakes(child)
    print(f"most concurrent requests seen per provider: {seen} (limits: ollama {OLLAMA_PARALLEL}, hosted {HOSTED})")


if __name__ == "__main__":
    main()

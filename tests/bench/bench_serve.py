"""Benchmarks for `runner serve` (issue 11). Run: python tests/bench/bench_serve.py [--quick]

Prints, from one run:
1. the time the gateway adds to time-to-first-token and to total latency: the same streamed
   request to the same fake, directly, through `runner serve`, and through the floor — a bare
   Starlette + uvicorn + aiohttp proxy that forwards the bytes and does nothing else, so the cost of
   one more local HTTP hop on this machine is in the same run; interleaved, one at a time; p50 and
   p95 of the per-request differences (goal: under 2 ms at p50);
2. 200 concurrent streamed clients through the gateway, five rounds: every answer complete and
   equal to what the fake says when asked directly, no error, the added latency at p50/p95 (vs
   the same 200 streams sent directly), and the gateway's RSS after each round (flat) and peak.

The fake (FakeOpenAI, OpenAI protocol) runs in a process of its own and so does the gateway
(`runner serve --port 0 --quiet`, as a user starts it); the clients run here, with httpx. The
gateway's run log is a fresh $RUNNER_HOME; `hosted_concurrency` is raised to 256 there so the
provider limit (8 by default) does not queue the 200 clients: this measures the gateway, not the
limit.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

FAKE = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.fakes.openai import FakeOpenAI
fake = FakeOpenAI({"gpt-4.1": 1_047_576})
fake.ttft_s, fake.chunk_delay_s = float(sys.argv[2]), float(sys.argv[3])
fake.start()
print(fake.url, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
fake.stop()
"""


# The floor: one more HTTP hop on the gateway's own stack (uvicorn, Starlette, aiohttp as the
# upstream client, as runner serve uses it) that forwards the bytes and does nothing else.
FLOOR = r"""
import socket, sys
import aiohttp, uvicorn
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

upstream = sys.argv[1]
session = None


async def chat(request):
    global session
    if session is None:
        session = aiohttp.ClientSession()
    resp = await session.post(upstream + "/v1/chat/completions", data=await request.body(),
                              headers={"authorization": "Bearer test-key", "content-type": "application/json"})

    async def body():
        async for chunk in resp.content.iter_any():
            yield chunk
        resp.release()

    return StreamingResponse(body(), media_type="text/event-stream")


sock = socket.create_server(("127.0.0.1", 0))
print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]),
                                       log_level="warning", access_log=False))
server.run(sockets=[sock])
"""


class Proc:
    def __init__(self, cmd: list[str], env: dict[str, str], pattern: str, stream: str) -> None:
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = getattr(self.proc, stream).readline()
        match = re.search(pattern, line)
        if not match:
            raise RuntimeError(f"{cmd[:4]} did not start: {line}{self.proc.stderr.read()}")
        self.url = match.group(1)

    def rss_kib(self) -> tuple[int, int]:
        """(current RSS, peak RSS) in KiB, from /proc."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
        return int(values["VmRSS"]), int(values["VmHWM"])

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start(ttft_s: float, gap_s: float, floor: bool = False) -> tuple[Proc, ...]:
    home = tempfile.mkdtemp(prefix="bench-serve-")
    Path(home, "config.yaml").write_text("hosted_concurrency: 256\nretries: 0\n")
    env = dict(os.environ, RUNNER_HOME=home, PYTHONPATH=str(ROOT))
    fake = Proc([sys.executable, "-c", FAKE, str(ROOT), str(ttft_s), str(gap_s)], env, r"(http://\S+)", "stdout")
    env.update(OPENAI_BASE_URL=fake.url + "/v1", OPENAI_API_KEY="test-key", OLLAMA_HOST="http://127.0.0.1:9")
    gateway = Proc([sys.executable, "-m", "runner", "serve", "--port", "0", "--quiet"], env,
                   r"(http://127\.0\.0\.1:\d+)", "stderr")
    if not floor:
        return fake, gateway
    return fake, gateway, Proc([sys.executable, "-c", FLOOR, fake.url], env, r"(http://\S+)", "stdout")


async def one(client, url: str, model: str, prompt: str, key: str = "test-key") -> tuple[float, float, str]:
    """(ms to the first content, ms to [DONE], the text) of one streamed chat completion."""
    import json

    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    start = time.perf_counter()
    first = None
    text = []
    async with client.stream("POST", url + "/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {key}"}) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {(await resp.aread())[:300]!r}")
        async for line in resp.aiter_lines():
            if line == "data: [DONE]":
                break
            if not line.startswith("data: "):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("error"):
                raise RuntimeError(chunk["error"]["message"])
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if first is None:
                        first = time.perf_counter()
                    text.append(piece)
    end = time.perf_counter()
    return (first - start) * 1000, (end - start) * 1000, "".join(text)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


async def bench_added(n: int) -> None:
    import httpx

    fake, gateway, floor = start(ttft_s=0.0, gap_s=0.0, floor=True)
    times: dict[str, list[tuple[float, float]]] = {"direct": [], "serve": [], "floor": []}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for i in range(n + 10):
                a = await one(client, fake.url, "gpt-4.1", "hello there")
                b = await one(client, gateway.url, "openai/gpt-4.1", "hello there")
                c = await one(client, floor.url, "gpt-4.1", "hello there")
                assert a[2] == b[2] == c[2], (a[2], b[2], c[2])  # the same answer, whole
                if i >= 10:  # warm-up: connections, the first run-log writes
                    for name, t in (("direct", a), ("serve", b), ("floor", c)):
                        times[name].append(t[:2])
    finally:
        for proc in (floor, gateway, fake):
            proc.stop()
    med = statistics.median
    print(f"1. one client at a time, {n} streamed requests each way, interleaved (fake: no delay):")
    for k, what in ((0, "time to first token"), (1, "total latency")):
        d = [t[k] for t in times["direct"]]
        added = [t[k] - x for t, x in zip(times["serve"], d)]
        floor_added = [t[k] - x for t, x in zip(times["floor"], d)]
        own = med(added) - med(floor_added)
        print(f"   {what}: direct {med(d):.2f} ms; runner serve adds p50 {med(added):.2f} ms, p95 "
              f"{pct(added, 95):.2f} ms (goal < 2 ms at p50: {'met' if med(added) < 2 else 'not met'}); "
              f"the bare-proxy floor adds p50 {med(floor_added):.2f} ms, p95 {pct(floor_added, 95):.2f} ms "
              f"→ runner's own work {own:+.2f} ms ({med(added) / med(floor_added):.2f}x the floor)")


async def bench_concurrent(clients: int, rounds: int) -> None:
    import httpx

    fake, gateway = start(ttft_s=0.05, gap_s=0.005)
    # One httpx client (one connection) per simulated client, as 200 separate tools would be:
    # a single pool of hundreds of connections costs httpcore 1.0.9 time quadratic in their number.
    gw_clients = [httpx.AsyncClient(timeout=60) for _ in range(clients)]
    direct_clients = [httpx.AsyncClient(timeout=60) for _ in range(clients)]
    prompts = [f"client {i} asks question number {i}" for i in range(clients)]
    errors = wrong = 0
    g_ttft: list[float] = []
    g_total: list[float] = []
    d_ttft: list[float] = []
    d_total: list[float] = []
    try:
        # What the fake says to each client, asked directly (this round also warms the fake up).
        direct = await asyncio.gather(*(one(c, fake.url, "gpt-4.1", p) for c, p in zip(direct_clients, prompts)))
        expected = [t for _, _, t in direct]
        rss = [gateway.rss_kib()[0]]
        for r in range(rounds):
            results = await asyncio.gather(*(one(c, gateway.url, "openai/gpt-4.1", p)
                                             for c, p in zip(gw_clients, prompts)), return_exceptions=True)
            for res, want in zip(results, expected):
                if isinstance(res, BaseException):
                    errors += 1
                elif res[2] != want:
                    wrong += 1
                elif r > 0:  # round 0 warms up the gateway's connections
                    g_ttft.append(res[0])
                    g_total.append(res[1])
            rss.append(gateway.rss_kib()[0])
            more = await asyncio.gather(*(one(c, fake.url, "gpt-4.1", p) for c, p in zip(direct_clients, prompts)))
            if r > 0:
                d_ttft += [d[0] for d in more]
                d_total += [d[1] for d in more]
        peak = gateway.rss_kib()[1]
    finally:
        for c in gw_clients + direct_clients:
            await c.aclose()
        gateway.stop()
        fake.stop()
    med = statistics.median
    n = clients * rounds
    print(f"2. {clients} concurrent streamed clients × {rounds} rounds ({n} answers; fake: first token after "
          f"50 ms, then a chunk every 5 ms):")
    print(f"   complete and correct: {n - errors - wrong}/{n}; errors {errors}; wrong or cut answers {wrong}")
    print(f"   time to first token: gateway p50 {med(g_ttft):.1f} ms / p95 {pct(g_ttft, 95):.1f} ms vs direct "
          f"p50 {med(d_ttft):.1f} ms / p95 {pct(d_ttft, 95):.1f} ms → added p50 {med(g_ttft) - med(d_ttft):.1f} ms, "
          f"p95 {pct(g_ttft, 95) - pct(d_ttft, 95):.1f} ms")
    print(f"   total latency:       gateway p50 {med(g_total):.1f} ms / p95 {pct(g_total, 95):.1f} ms vs direct "
          f"p50 {med(d_total):.1f} ms / p95 {pct(d_total, 95):.1f} ms → added p50 {med(g_total) - med(d_total):.1f} ms, "
          f"p95 {pct(g_total, 95) - pct(d_total, 95):.1f} ms")
    mib = [k / 1024 for k in rss]
    growth = mib[-1] - mib[1]
    print(f"   gateway RSS (MiB) at start, after each round: {', '.join(f'{m:.1f}' for m in mib)}; "
          f"peak {peak / 1024:.1f} MiB; after round 1 → after round {rounds}: {growth:+.1f} MiB "
          f"({'flat' if abs(growth) < 0.1 * mib[1] else 'GROWING'})")


def load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def main() -> None:
    quick = "--quick" in sys.argv
    print(f"machine: {os.cpu_count()} CPUs; load average {load()} at the start (the fake, the gateway and the "
          "clients share them)")
    asyncio.run(bench_added(100 if quick else 300))
    asyncio.run(bench_concurrent(200, 3 if quick else 5))
    print(f"load average {load()} at the end")


if __name__ == "__main__":
    main()

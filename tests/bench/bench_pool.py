"""Benchmark for host pools (issue 13). Run: python tests/bench/bench_pool.py [--rows N]

A real `python -m runner batch` process against Ollama fakes (threads of this process), each
taking LATENCY_S per answer and NUM_PARALLEL answers at once. Prints, from one run:

1. one host alone, two, and three equal hosts as one pool: the three-host wall time as a ratio of
   one third of the one-host time (target ≤ 1.2×);
2. three hosts with one killed mid-run (when it has taken a sixth of the rows): the wall time as a
   ratio of the two-host time (target ≤ 1.2×), and how its rows were answered (each once).

Times are the batch's own `elapsed_s` (Python start-up excluded); each run is checked: every row
answered once, no host above its num_parallel. LATENCY_S and NUM_PARALLEL keep the pool's rate (60
rows/s with three hosts) well below what the runner's own CPU per row allows on a small machine,
so the ratios measure the pool, not that cost (bench_batch.py measures it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

LATENCY_S = 0.1
NUM_PARALLEL = 2
MODEL = "qwen2.5:7b"


def write_prompts(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i:04d}", "prompt": f"Question {i}: what is {i} plus {i}?"}) + "\n")


def start_hosts(n: int):
    from tests.fakes.ollama import default_models
    from tests.fakes.pool import OllamaHost

    return [OllamaHost({MODEL: default_models()[MODEL]}, num_parallel=NUM_PARALLEL, ttft_s=LATENCY_S).start()
            for _ in range(n)]


def run_batch(hosts, rows: int, tmp: Path, kill_at: int | None = None) -> tuple[float, list[dict]]:
    """`runner batch` over `hosts` (the first killed once it took `kill_at` chats); returns the
    batch's elapsed seconds and the results."""
    from tests.fakes.pool import kill_after, write_pool_config

    home = Path(tempfile.mkdtemp(dir=tmp))
    write_pool_config(home, hosts)
    env = dict(os.environ, RUNNER_HOME=str(home), OLLAMA_HOST="http://127.0.0.1:9", PYTHONPATH=str(ROOT), NO_COLOR="1")
    out = home / "out.jsonl"
    killer = kill_after(hosts[0], kill_at, timeout_s=120) if kill_at else None
    proc = subprocess.run([sys.executable, "-m", "runner", "batch", str(tmp / "p.jsonl"), "--out", str(out),
                           "--model", f"ollama/{MODEL}", "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
    if killer is not None:
        killer.join(10)
    if proc.returncode != 0:
        raise SystemExit(f"runner batch failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)
    results = [json.loads(line) for line in out.read_text().splitlines()]
    ids = Counter(r["id"] for r in results)
    assert len(ids) == rows and set(ids.values()) == {1} and all(r["ok"] for r in results), "a row missing or twice"
    for h in hosts:
        assert h.max_chats_at_once <= NUM_PARALLEL, f"{h.url} ran {h.max_chats_at_once} at once"
    return summary["elapsed_s"], results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600)
    rows = parser.parse_args().rows
    tmp = Path(tempfile.mkdtemp())
    write_prompts(tmp / "p.jsonl", rows)
    ideal_one = rows * LATENCY_S / NUM_PARALLEL
    print(f"{rows} rows, {LATENCY_S * 1000:.0f} ms an answer, num_parallel {NUM_PARALLEL} a host "
          f"(one host, ideally: {ideal_one:.2f} s)")
    times = {}
    for n in (1, 2, 3):
        hosts = start_hosts(n)
        try:
            times[n], results = run_batch(hosts, rows, tmp)
        finally:
            for h in hosts:
                h.stop()
        spread = sorted(Counter(r["attempts"][-1]["host"] for r in results).values())
        print(f"  {n} host{'s' if n > 1 else ' '}: {times[n]:6.2f} s  (rows per host {spread})")
    ratio = times[3] / (times[1] / 3)
    print(f"1. three hosts vs one third of one host: {times[3]:.2f} / {times[1] / 3:.2f} s = {ratio:.2f}x "
          f"(target ≤ 1.2x)")

    hosts = start_hosts(3)
    kill_at = rows // 6
    try:
        killed, results = run_batch(hosts, rows, tmp, kill_at=kill_at)
    finally:
        for h in hosts:
            h.stop()
    dead = hosts[0].url
    moved = sum(any(a.get("host") == dead and a["outcome"] != "ok" for a in r["attempts"]) for r in results)
    on_dead = sum(r["attempts"][-1].get("host") == dead for r in results)
    ratio = killed / times[2]
    print(f"2. three hosts, one killed after {kill_at} of its calls: {killed:.2f} s vs two hosts {times[2]:.2f} s "
          f"= {ratio:.2f}x (target ≤ 1.2x); {on_dead} rows answered by it before, {moved} in flight went to "
          f"the others, every row once")


if __name__ == "__main__":
    main()

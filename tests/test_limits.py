"""The adaptive per-provider limiter: ceilings, halving on 429, Retry-After pauses, growth."""

from __future__ import annotations

import asyncio
import time

from runner.config import load_config
from runner.limits import GROW_AFTER, Limits


def test_limits_concurrency_and_adapts(home):
    config = load_config()

    async def main():
        lim = Limits(config, overrides={"openai": 4})
        running = peak = 0

        async def job():
            nonlocal running, peak
            await lim.acquire("openai")
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            lim.release("openai")
            lim.on_success("openai")

        await asyncio.gather(*(job() for _ in range(40)))
        assert peak == 4
        # A 429 halves the limit and pauses new calls for Retry-After.
        lim.on_rate_limit("openai", 0.2)
        assert lim.states["openai"].limit == 2
        t = time.monotonic()
        await lim.acquire("openai")
        assert time.monotonic() - t >= 0.19
        lim.release("openai")
        peak = 0
        await asyncio.gather(*(job() for _ in range(GROW_AFTER * 3)))
        assert lim.states["openai"].limit > 2  # grew back after successes
        assert lim.states["openai"].in_use == 0
        # Ollama's ceiling comes from ollama.num_parallel (default 1).
        assert lim.ceiling("ollama") == 1

    asyncio.run(main())

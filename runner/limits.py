"""Per provider, one state: how many calls may be in flight, a short pause after a rate limit,
and a longer cool-down during which routing skips the provider.

Ollama serves a few requests at a time (its OLLAMA_NUM_PARALLEL), hosted APIs more. On a 429
or 529 a provider's limit halves and new calls wait out its Retry-After (up to
MAX_RETRY_WAIT_S); after a run of successes it grows back by one, up to the configured ceiling
(additive increase, multiplicative decrease, as TCP does). A longer Retry-After is a cool-down:
calls fall back to other models instead of queueing for it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from .config import Config

GROW_AFTER = 8  # successes in a row before a shrunk limit grows by one
MAX_RETRY_WAIT_S = 30.0  # a longer Retry-After means: fall back now, cool this provider down


class ProviderState:
    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = self.ceiling
        self.in_use = 0
        self.streak = 0
        self.paused_until = 0.0  # new calls wait until then (a short Retry-After)
        self.cooling_until = 0.0  # routing skips the provider until then (a long Retry-After)
        self.waiters: deque[asyncio.Future] = deque()  # FIFO: first to wait is first served


class Limits:
    def __init__(self, config: Config, overrides: dict[str, int] | None = None) -> None:
        self.config = config
        self.overrides = overrides or {}
        self.states: dict[str, ProviderState] = {}

    def ceiling(self, provider: str) -> int:
        """Calls in flight at once: `--limit`, else the sum of its hosts' (one host for most)."""
        if provider in self.overrides:
            return self.overrides[provider]
        if provider not in self.config.providers:
            return self.config.settings.hosted_concurrency
        return sum(slots for _, slots, _ in self.host_specs(provider))

    def host_specs(self, provider: str) -> list[tuple[str, int, float]]:
        """Each host of the provider: (URL, calls it takes at once, weight). A host's own
        num_parallel, else the provider's: Ollama's from ollama.num_parallel (the server's
        OLLAMA_NUM_PARALLEL), an endpoint's num_parallel, hosted_concurrency for hosted APIs."""
        p = self.config.providers[provider]
        if p.protocol == "ollama":
            default = self.config.settings.ollama_num_parallel
        elif p.num_parallel is not None:
            default = p.num_parallel
        else:  # a local server (llama.cpp) may serve one request and cut the others
            default = 1 if p.local else self.config.settings.hosted_concurrency
        return [(h.url, h.num_parallel or default, h.weight) for h in p.host_list]

    def current_limit(self, provider: str) -> int:
        """How many calls the provider may have in flight right now (after any halving)."""
        return self.state(provider).limit

    def state(self, provider: str) -> ProviderState:
        st = self.states.get(provider)
        if st is None:
            st = self.states[provider] = ProviderState(self.ceiling(provider))
        return st

    # --- cool-downs ---------------------------------------------------------------------

    def cool_down(self, provider: str, seconds: float) -> None:
        st = self.state(provider)
        st.cooling_until = max(st.cooling_until, time.monotonic() + seconds)

    def cooling_until(self, provider: str) -> float:
        st = self.states.get(provider)
        return st.cooling_until if st is not None else 0.0

    def cooling(self) -> dict[str, str]:
        """Providers cooling down now, each with the reason routing gives."""
        now = time.monotonic()
        return {p: f"{p} is cooling down after rate limits" for p, st in self.states.items() if st.cooling_until > now}

    # --- slots --------------------------------------------------------------------------

    async def acquire(self, provider: str) -> None:
        st = self.state(provider)
        if st.in_use < st.limit and not st.waiters and time.monotonic() >= st.paused_until:
            st.in_use += 1
            return
        fut = asyncio.get_running_loop().create_future()
        st.waiters.append(fut)
        self._schedule(st)
        try:
            await fut  # resolved by _dispatch, which has already counted us in
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                st.in_use -= 1
                self._dispatch(st)
            raise

    def release(self, provider: str) -> None:
        st = self.state(provider)
        st.in_use -= 1
        self._dispatch(st)

    def on_rate_limit(self, provider: str, retry_after: float | None) -> None:
        st = self.state(provider)
        st.limit = max(1, st.limit // 2)
        st.streak = 0
        if retry_after:
            pause = min(retry_after, MAX_RETRY_WAIT_S)
            st.paused_until = max(st.paused_until, time.monotonic() + pause)

    def on_success(self, provider: str) -> None:
        st = self.state(provider)
        st.streak += 1
        if st.limit < st.ceiling and st.streak >= GROW_AFTER:
            st.limit += 1
            st.streak = 0
            self._dispatch(st)

    def _dispatch(self, st: ProviderState) -> None:
        if time.monotonic() < st.paused_until:
            self._schedule(st)
            return
        while st.waiters and st.in_use < st.limit:
            fut = st.waiters.popleft()
            if fut.done():  # cancelled while waiting
                continue
            st.in_use += 1
            fut.set_result(None)

    def _schedule(self, st: ProviderState) -> None:
        """Wake waiters when a Retry-After pause ends (nothing else would)."""
        wait = st.paused_until - time.monotonic()
        if wait > 0:
            asyncio.get_running_loop().call_later(wait + 0.001, self._dispatch, st)

"""Per-backend concurrency that adapts to rate limits.

Ollama serves a few requests at a time (its OLLAMA_NUM_PARALLEL), hosted APIs more. On a 429
or 529 a provider's limit halves and new calls wait out its Retry-After; after a run of
successes it grows back by one, up to the configured ceiling (additive increase,
multiplicative decrease, as TCP does).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from .config import Config
from .execute import MAX_RETRY_WAIT_S, Limiter

GROW_AFTER = 8  # successes in a row before a shrunk limit grows by one


class _Slot:
    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = self.ceiling
        self.in_use = 0
        self.streak = 0
        self.paused_until = 0.0
        self.waiters: deque[asyncio.Future] = deque()  # FIFO: first to wait is first served


class AdaptiveLimiter(Limiter):
    def __init__(self, config: Config, overrides: dict[str, int] | None = None) -> None:
        self.config = config
        self.overrides = overrides or {}
        self.slots: dict[str, _Slot] = {}

    def ceiling(self, provider: str) -> int:
        if provider in self.overrides:
            return self.overrides[provider]
        p = self.config.providers.get(provider)
        if p is not None and p.protocol == "ollama":
            return self.config.settings.ollama_num_parallel
        return self.config.settings.hosted_concurrency

    def current_limit(self, provider: str) -> int:
        """How many calls the provider may have in flight right now (after any halving)."""
        return self._slot(provider).limit

    def _slot(self, provider: str) -> _Slot:
        slot = self.slots.get(provider)
        if slot is None:
            slot = self.slots[provider] = _Slot(self.ceiling(provider))
        return slot

    async def acquire(self, provider: str) -> None:
        slot = self._slot(provider)
        if slot.in_use < slot.limit and not slot.waiters and time.monotonic() >= slot.paused_until:
            slot.in_use += 1
            return
        fut = asyncio.get_running_loop().create_future()
        slot.waiters.append(fut)
        self._schedule(slot)
        try:
            await fut  # resolved by _dispatch, which has already counted us in
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                slot.in_use -= 1
                self._dispatch(slot)
            raise

    def release(self, provider: str) -> None:
        slot = self._slot(provider)
        slot.in_use -= 1
        self._dispatch(slot)

    def on_rate_limit(self, provider: str, retry_after: float | None) -> None:
        slot = self._slot(provider)
        slot.limit = max(1, slot.limit // 2)
        slot.streak = 0
        if retry_after:
            # A longer wait is the executor's cooldown: rows fall back instead of queueing for it.
            pause = min(retry_after, MAX_RETRY_WAIT_S)
            slot.paused_until = max(slot.paused_until, time.monotonic() + pause)

    def on_success(self, provider: str) -> None:
        slot = self._slot(provider)
        slot.streak += 1
        if slot.limit < slot.ceiling and slot.streak >= GROW_AFTER:
            slot.limit += 1
            slot.streak = 0
            self._dispatch(slot)

    def _dispatch(self, slot: _Slot) -> None:
        if time.monotonic() < slot.paused_until:
            self._schedule(slot)
            return
        while slot.waiters and slot.in_use < slot.limit:
            fut = slot.waiters.popleft()
            if fut.done():  # cancelled while waiting
                continue
            slot.in_use += 1
            fut.set_result(None)

    def _schedule(self, slot: _Slot) -> None:
        """Wake waiters when a Retry-After pause ends (nothing else would)."""
        wait = slot.paused_until - time.monotonic()
        if wait > 0:
            asyncio.get_running_loop().call_later(wait + 0.001, self._dispatch, slot)

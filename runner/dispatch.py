"""Which host of a provider takes a call: several machines serving the same models as one pool.

A provider may list several hosts (`ollama: {hosts: [...]}`, an endpoint's list of `base_url`s),
each with its own `num_parallel` and weight. For each call the dispatcher picks, among the hosts
the router found able to take it (the model pulled there, its window large enough):

1. a host that is not cooling down after a failure and has a free slot (its `num_parallel`);
2. one where the model is already loaded with the planned window, then loaded with another
   window (Ollama's /api/ps, cached PS_TTL_S, and updated by our own calls), so no reload;
3. the least loaded relative to its slots and weight: (calls in flight + 1) / (slots × weight).

When every able host is busy the call waits for a slot, first come first served; when every able
host is cooling down (or was tried already) there is none, and the executor falls back.

A host that fails (refused connection, 5xx, timeout) cools down for HOST_COOL_DOWN_S, doubling
with each new failure up to MAX_HOST_COOL_DOWN_S; after that it takes one call at a time until
one succeeds. A provider with a single host is passed straight through: its limit is the
provider's (runner/limits.py) and its failures are the executor's retries, as before pools.

No I/O here except through the `loaded` function the executor passes in (a backend's /api/ps).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Sequence

from .backends.errors import ErrorKind
from .redact import display_url

HOST_COOL_DOWN_S = 5.0
MAX_HOST_COOL_DOWN_S = 60.0
PS_TTL_S = 2.0  # how long a host's list of loaded models is trusted

# A failure of the host rather than of the request: the call goes to another host. The first
# three also cool the host down; a broken stream may be a one-off, a missing model is one model.
FAIL_OVER = frozenset({ErrorKind.CONNECT, ErrorKind.TIMEOUT, ErrorKind.SERVER, ErrorKind.OVERLOADED,
                       ErrorKind.STREAM, ErrorKind.NOT_FOUND})
COOL_DOWN = frozenset({ErrorKind.CONNECT, ErrorKind.TIMEOUT, ErrorKind.SERVER})

HostSpec = tuple[str, int, float]  # (url, num_parallel, weight)
Loaded = Callable[[str, str], Awaitable["dict[str, int | None] | None"]]  # (provider, url) → model → window


def base_name(model: str) -> str:
    """Ollama names a model `name:tag`; `name` alone means `name:latest`."""
    return model if ":" in model else model + ":latest"


@dataclass
class Lease:
    """A slot on one host, held for one call."""

    provider: str
    url: str
    model: str
    num_ctx: int | None = None
    pooled: bool = False  # the provider has several hosts (only then is the slot counted)

    @property
    def shown(self) -> str:
        """The host fit for the log and the screen: no credentials, no query."""
        return display_url(self.url)


class HostState:
    def __init__(self, url: str, slots: int, weight: float, index: int) -> None:
        self.url = url
        self.slots = max(1, int(slots))
        self.weight = weight if weight > 0 else 1.0
        self.index = index  # the config's order breaks ties
        self.in_flight = 0
        self.failures = 0  # in a row; while > 0 the host takes one call at a time
        self.cooling_until = 0.0
        self.error: str | None = None  # the last failure, for messages
        self.missing: set[str] = set()  # models this host answered 404 for
        self.loaded: dict[str, int | None] = {}  # model → allocated window
        self.loaded_at = float("-inf")
        self.calls = 0  # calls it answered

    @property
    def shown(self) -> str:
        return display_url(self.url)

    def cooling(self, now: float) -> bool:
        return self.cooling_until > now

    def has_room(self) -> bool:
        return self.in_flight < (1 if self.failures else self.slots)

    def warmth(self, model: str, num_ctx: int | None) -> int:
        """2: loaded with this window; 1: loaded with another (a reload); 0: not loaded."""
        name = base_name(model)
        if name not in self.loaded:
            return 0
        window = self.loaded[name]
        return 2 if num_ctx is None or window is None or window == num_ctx else 1

    def load(self) -> float:
        return (self.in_flight + 1) / (self.slots * self.weight)


class _Waiter:
    __slots__ = ("future", "model", "eligible", "num_ctx", "avoid")

    def __init__(self, future: asyncio.Future, model: str, eligible: frozenset[str], num_ctx: int | None,
                 avoid: frozenset[str]) -> None:
        self.future, self.model, self.eligible, self.num_ctx, self.avoid = future, model, eligible, num_ctx, avoid


class _Pool:
    def __init__(self, name: str, specs: Sequence[HostSpec]) -> None:
        self.name = name
        self.hosts = [HostState(url, slots, weight, i) for i, (url, slots, weight) in enumerate(specs)]
        self.by_url = {h.url: h for h in self.hosts}
        self.waiters: deque[_Waiter] = deque()
        self.refreshing: dict[str, asyncio.Task] = {}


_WAIT = object()


class Dispatcher:
    def __init__(self, specs: Callable[[str], Sequence[HostSpec]], *, loaded: Loaded | None = None,
                 clock: Callable[[], float] = time.monotonic, ps_ttl_s: float = PS_TTL_S) -> None:
        """`specs(provider)` lists its hosts; `loaded(provider, url)` asks a host which models it
        has loaded (None when it can't say, or for protocols without such a list)."""
        self._specs = specs
        self._loaded = loaded
        self._clock = clock
        self.ps_ttl_s = ps_ttl_s
        self._pools: dict[str, _Pool] = {}

    def pool(self, provider: str) -> _Pool:
        pool = self._pools.get(provider)
        if pool is None:
            pool = self._pools[provider] = _Pool(provider, list(self._specs(provider)))
        return pool

    def hosts(self, provider: str) -> list[HostState]:
        return self.pool(provider).hosts

    def pooled(self, provider: str) -> bool:
        return len(self.pool(provider).hosts) > 1

    # --- asking for a host ------------------------------------------------------------------

    async def acquire(self, provider: str, model: str, eligible: Iterable[str] = (), num_ctx: int | None = None,
                      avoid: Iterable[str] = ()) -> Lease | None:
        """A slot on the best host for this call, waiting while every able host is busy; None
        when every able host is cooling down, was tried already (`avoid`) or lacks the model.
        `eligible`: the hosts the router found able (empty: all of the provider's)."""
        pool = self.pool(provider)
        if len(pool.hosts) == 1:
            return Lease(provider, pool.hosts[0].url, model, num_ctx)
        want, skip = frozenset(eligible), frozenset(avoid)
        await self._refresh_loaded(pool, self._candidates(pool, model, want, skip))
        pick = self._pick(pool, model, want, num_ctx, skip)
        if pick is None:
            return None
        if pick is not _WAIT:
            return self._take(pool, pick, model, num_ctx)
        fut = asyncio.get_running_loop().create_future()
        pool.waiters.append(_Waiter(fut, model, want, num_ctx, skip))
        try:
            return await fut  # resolved by _wake with a lease already counted, or None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result() is not None:
                self.release(fut.result())
            raise

    def release(self, lease: Lease, failure: ErrorKind | None = None, error: str | None = None) -> None:
        """The call is over: `failure` None for an answer, else its kind (and message)."""
        if not lease.pooled:
            return
        pool = self.pool(lease.provider)
        host = pool.by_url[lease.url]
        host.in_flight -= 1
        now = self._clock()
        if failure is None:
            host.failures, host.error = 0, None
            host.calls += 1
            host.loaded[base_name(lease.model)] = lease.num_ctx  # it is loaded now, with this window
        elif failure == ErrorKind.NOT_FOUND:
            host.missing.add(base_name(lease.model))
        elif failure in COOL_DOWN:
            host.error = error or str(failure)
            if not host.cooling(now):  # calls failing together are one failure, not many
                host.failures += 1
                wait = min(MAX_HOST_COOL_DOWN_S, HOST_COOL_DOWN_S * 2 ** (host.failures - 1))
                host.cooling_until = now + wait
                self._wake_later(pool, wait)
        self._wake(pool)

    # --- what the executor and the engine ask -------------------------------------------------

    def can_take(self, provider: str, model: str, eligible: Iterable[str] = (), avoid: Iterable[str] = ()) -> bool:
        """Is some able host not cooling down, not tried yet and not missing the model?"""
        pool = self.pool(provider)
        if len(pool.hosts) == 1:
            return not set(avoid) & {pool.hosts[0].url}
        now = self._clock()
        return any(not h.cooling(now) for h in self._candidates(pool, model, frozenset(eligible), frozenset(avoid)))

    def capacity(self, provider: str, eligible: Iterable[str] = ()) -> int | None:
        """Calls the able hosts can take at once, the cooling ones counting for nothing. None when
        the hosts do not bound it: a single host (the provider's limit is its), or every able host
        cooling down (each call then falls back at once, within the next model's limits)."""
        pool = self.pool(provider)
        if len(pool.hosts) == 1:
            return None
        want, now = frozenset(eligible), self._clock()
        able = [h for h in pool.hosts if not want or h.url in want]
        return sum(0 if h.cooling(now) else (1 if h.failures else h.slots) for h in able) or None

    def why_none(self, provider: str, model: str, eligible: Iterable[str] = ()) -> str:
        """One sentence for a call no host could take."""
        pool = self.pool(provider)
        want, now = frozenset(eligible), self._clock()
        hosts = [h for h in pool.hosts if not want or h.url in want]
        parts = []
        for h in hosts:
            if base_name(model) in h.missing:
                parts.append(f"{h.shown}: does not have {model}")
            elif h.cooling(now):
                parts.append(f"{h.shown}: {h.error or 'failed'}, retried in {h.cooling_until - now:.0f}s")
            else:
                parts.append(f"{h.shown}: tried already")
        return f"no host of {provider} can take {model} now ({'; '.join(parts)})"

    # --- inside -------------------------------------------------------------------------------

    @staticmethod
    def _candidates(pool: _Pool, model: str, want: frozenset[str], skip: frozenset[str]) -> list[HostState]:
        name = base_name(model)
        return [h for h in pool.hosts if (not want or h.url in want) and h.url not in skip and name not in h.missing]

    def _pick(self, pool: _Pool, model: str, want: frozenset[str], num_ctx: int | None, skip: frozenset[str]):
        now = self._clock()
        usable = [h for h in self._candidates(pool, model, want, skip) if not h.cooling(now)]
        if not usable:
            return None
        free = [h for h in usable if h.has_room()]
        if not free:
            return _WAIT
        return min(free, key=lambda h: (-h.warmth(model, num_ctx), h.load(), -h.weight, h.index))

    def _take(self, pool: _Pool, host: HostState, model: str, num_ctx: int | None) -> Lease:
        host.in_flight += 1
        return Lease(pool.name, host.url, model, num_ctx, pooled=True)

    def _wake(self, pool: _Pool) -> None:
        """Hand freed slots to the waiters, in the order they came; end the wait of those whose
        every able host is cooling down."""
        kept: deque[_Waiter] = deque()
        while pool.waiters:
            w = pool.waiters.popleft()
            if w.future.done():
                continue
            pick = self._pick(pool, w.model, w.eligible, w.num_ctx, w.avoid)
            if pick is None:
                w.future.set_result(None)
            elif pick is _WAIT:
                kept.append(w)
            else:
                w.future.set_result(self._take(pool, pick, w.model, w.num_ctx))
        pool.waiters = kept

    def _wake_later(self, pool: _Pool, seconds: float) -> None:
        try:
            asyncio.get_running_loop().call_later(seconds + 0.001, self._wake, pool)
        except RuntimeError:  # no loop (a unit test calling release directly): nothing waits
            pass

    async def _refresh_loaded(self, pool: _Pool, hosts: list[HostState]) -> None:
        """Ask the hosts with a free slot what they have loaded, when the last answer is stale.
        Only worth it when there is a choice; one question per host at a time."""
        if self._loaded is None:
            return
        now = self._clock()
        free = [h for h in hosts if not h.cooling(now) and h.has_room()]
        if len(free) < 2:
            return
        tasks = []
        for h in free:
            if now - h.loaded_at < self.ps_ttl_s:
                continue
            task = pool.refreshing.get(h.url)
            if task is None:
                task = pool.refreshing[h.url] = asyncio.ensure_future(self._ask_loaded(pool, h))
            tasks.append(task)
        if tasks:
            await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)

    async def _ask_loaded(self, pool: _Pool, host: HostState) -> None:
        try:
            loaded = await self._loaded(pool.name, host.url)
        except Exception:  # noqa: BLE001 - a preference only: without an answer, keep what we knew
            loaded = None
        finally:
            pool.refreshing.pop(host.url, None)
        host.loaded_at = self._clock()
        if loaded is not None:
            host.loaded = {base_name(name): window for name, window in loaded.items()}

"""Host choice within a provider's pool (runner/dispatch.py): pure, with a fake clock and a fake
/api/ps; no server."""

from __future__ import annotations

import asyncio

import pytest

from runner.backends.errors import ErrorKind
from runner.dispatch import HOST_COOL_DOWN_S, MAX_HOST_COOL_DOWN_S, Dispatcher

A, B, C = "http://a:11434", "http://b:11434", "http://c:11434"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(specs, loaded=None, clock=None):
    return Dispatcher(lambda provider: specs[provider], loaded=loaded, clock=clock or Clock())


def run(coro):
    return asyncio.run(coro)


def test_least_loaded_relative_to_slots_and_weight():
    d = make({"ollama": [(A, 1, 1.0), (B, 2, 2.0)]})

    async def main():
        picks = [await d.acquire("ollama", "m") for _ in range(3)]
        assert [p.url for p in picks] == [B, B, A]  # B: 2 slots, weight 2; then A once B is full
        assert all(p.pooled for p in picks)
        waiting = asyncio.ensure_future(d.acquire("ollama", "m"))
        await asyncio.sleep(0)
        assert not waiting.done()  # every slot taken: the call waits, it does not overbook
        d.release(picks[2])
        lease = await asyncio.wait_for(waiting, 1)
        assert lease.url == A and [h.in_flight for h in d.hosts("ollama")] == [1, 2]

    run(main())


def test_loaded_model_preferred_then_same_window():
    asked = []

    async def loaded(provider, url):
        asked.append(url)
        return {A: {}, B: {"m:latest": 8192}, C: {"m:latest": 4096}}[url]

    d = make({"ollama": [(A, 2, 1.0), (B, 2, 1.0), (C, 2, 1.0)]}, loaded=loaded)

    async def main():
        first = await d.acquire("ollama", "m", num_ctx=4096)
        assert first.url == C  # loaded with the planned window: no reload at all
        other = await d.acquire("ollama", "m", num_ctx=16384)
        assert other.url == B  # loaded with another window beats not loaded (B ties C's warmth, is less busy)
        cold = await d.acquire("ollama", "other:7b")
        assert cold.url == A  # nobody has it loaded: the least loaded
        assert sorted(asked) == [A, B, C]  # asked once each, then cached
        await d.acquire("ollama", "m")
        assert len(asked) == 3

    run(main())


def test_a_loaded_host_that_is_full_does_not_hold_calls_back():
    async def loaded(provider, url):
        return {"m:latest": None} if url == A else {}

    d = make({"ollama": [(A, 1, 1.0), (B, 1, 1.0)]}, loaded=loaded)

    async def main():
        assert (await d.acquire("ollama", "m")).url == A
        assert (await d.acquire("ollama", "m")).url == B  # A is busy: B takes it now, waiting would idle B

    run(main())


def test_failed_host_cools_down_then_takes_one_call_until_it_answers():
    clock = Clock()
    d = make({"ollama": [(A, 2, 1.0), (B, 2, 1.0)]}, clock=clock)

    async def main():
        a = await d.acquire("ollama", "m")
        assert a.url == A
        d.release(a, ErrorKind.CONNECT, "connection refused")
        assert [(await d.acquire("ollama", "m")).url for _ in range(2)] == [B, B]
        assert d.capacity("ollama") == 2  # A counts for nothing while it cools
        assert d.capacity("ollama", eligible=[A]) is None  # its calls fall back at once: no bound here
        waiting = asyncio.ensure_future(d.acquire("ollama", "m"))
        await asyncio.sleep(0)
        assert not waiting.done()  # B is full and A is cooling: wait for B
        waiting.cancel()
        # Only A can take the model, and it is cooling: no host (the executor falls back).
        assert not d.can_take("ollama", "m", eligible=[A])
        assert await d.acquire("ollama", "m", eligible=[A]) is None
        assert "connection refused" in d.why_none("ollama", "m", eligible=[A])
        clock.now += HOST_COOL_DOWN_S + 0.1
        probe = await d.acquire("ollama", "m", eligible=[A])
        assert probe.url == A
        waiting = asyncio.ensure_future(d.acquire("ollama", "m", eligible=[A]))
        await asyncio.sleep(0)
        assert not waiting.done()  # on probation: one call at a time, though it has two slots
        d.release(probe)  # it answered: back to its two slots
        second = await asyncio.wait_for(waiting, 1)
        assert second.url == A
        assert (await d.acquire("ollama", "m", eligible=[A])).url == A

    run(main())


def test_calls_failing_together_are_one_failure_and_cool_downs_grow():
    clock = Clock()
    d = make({"ollama": [(A, 4, 1.0), (B, 1, 1.0)]}, clock=clock)

    async def main():
        leases = [await d.acquire("ollama", "m", eligible=[A]) for _ in range(4)]
        for lease in leases:  # the host died under four calls at once
            d.release(lease, ErrorKind.STREAM if lease is leases[0] else ErrorKind.CONNECT, "refused")
        host = d.hosts("ollama")[0]
        assert host.failures == 1 and host.cooling_until == pytest.approx(clock.now + HOST_COOL_DOWN_S)
        for _ in range(6):  # each probe after a cool-down fails again: the cool-down doubles, to a ceiling
            clock.now = host.cooling_until + 0.01
            d.release(await d.acquire("ollama", "m", eligible=[A]), ErrorKind.SERVER, "HTTP 500")
        assert host.cooling_until - clock.now == MAX_HOST_COOL_DOWN_S

    run(main())


def test_a_waiting_call_gets_none_when_its_hosts_fail():
    d = make({"ollama": [(A, 1, 1.0), (B, 1, 1.0)]})

    async def main():
        a = await d.acquire("ollama", "m", eligible=[A])
        waiting = asyncio.ensure_future(d.acquire("ollama", "m", eligible=[A]))
        await asyncio.sleep(0)
        d.release(a, ErrorKind.TIMEOUT, "timed out")
        assert await asyncio.wait_for(waiting, 1) is None

    run(main())


def test_avoid_and_missing_models():
    d = make({"ollama": [(A, 1, 1.0), (B, 1, 1.0)]})

    async def main():
        a = await d.acquire("ollama", "m")
        d.release(a, ErrorKind.STREAM, "broke off")  # no cool-down for one broken stream
        assert (await d.acquire("ollama", "m", avoid=[A])).url == B
        assert not d.can_take("ollama", "m", avoid=[A, B])
        lease = await d.acquire("ollama", "x", eligible=[A])
        d.release(lease, ErrorKind.NOT_FOUND, "model 'x' not found")
        assert not d.can_take("ollama", "x", eligible=[A])  # that model, on that host
        assert d.can_take("ollama", "m", eligible=[A])
        assert "does not have x" in d.why_none("ollama", "x", eligible=[A])

    run(main())


def test_a_single_host_passes_straight_through():
    d = make({"vllm": [(A, 1, 1.0)]})

    async def main():
        leases = [await d.acquire("vllm", "m") for _ in range(5)]  # the provider's limit applies, not this
        assert {(lease.url, lease.pooled) for lease in leases} == {(A, False)}
        d.release(leases[0], ErrorKind.CONNECT, "refused")
        assert d.can_take("vllm", "m") and d.capacity("vllm") is None  # its failures are retries, not cool-downs

    run(main())


def test_a_cancelled_waiter_gives_its_slot_back():
    d = make({"ollama": [(A, 1, 1.0), (B, 1, 1.0)]})

    async def main():
        held = [await d.acquire("ollama", "m") for _ in range(2)]
        waiting = asyncio.ensure_future(d.acquire("ollama", "m"))
        await asyncio.sleep(0)
        d.release(held[0])  # the slot goes to the waiter...
        waiting.cancel()  # ...which is cancelled before it runs: the slot must come back
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert sum(h.in_flight for h in d.hosts("ollama")) == 1

    run(main())

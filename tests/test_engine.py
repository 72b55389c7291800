"""The concurrent engine (`run_jobs`) as `batch` and `compare` use it, against loopback fakes."""

from __future__ import annotations

import asyncio
import time

import pytest

from runner.engine import Engine, Job, run_jobs
from runner.config import load_config
from runner.limits import Limits
from runner.request import Request
from runner.session import Session


def session_for(overrides=None) -> Session:
    config = load_config()
    return Session(config, limits=Limits(config, overrides=overrides))


def jobs(n: int, model: str = "openai/gpt-4.1"):
    for i in range(n):
        yield Job(Request(prompt=f"question {i}", task="general", model=model), item_id=str(i), key=i)


def test_results_arrive_once_each_within_the_limits(fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.05
    seen = []

    async def main():
        session = session_for({"openai": 3})
        try:
            engine = await run_jobs(session, jobs(12), 8, lambda o: seen.append((o.job.key, o.ok)), group_id="g-1")
        finally:
            await session.aclose()
        return engine

    engine = asyncio.run(main())
    assert sorted(seen) == [(i, True) for i in range(12)]
    assert fake_openai.max_concurrent_seen == 3 and engine.started == 12 and engine.stopped is None


def test_a_failing_on_result_stops_everything_and_is_raised(fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.02
    calls = []

    def on_result(outcome):
        calls.append(outcome.job.key)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")

    async def main():
        session = session_for()
        try:
            await run_jobs(session, jobs(100), 4, on_result)
        finally:
            await session.aclose()

    with pytest.raises(OSError, match="No space left"):
        asyncio.run(main())
    sent = [r for r in fake_openai.requests if "completions" in r.path]
    assert len(calls) == 3 and len(sent) <= 3 + 4  # nothing new after the failure


def test_admit_refusal_stops_new_jobs_and_running_ones_finish(fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.05
    done = []

    async def main():
        session = session_for()
        admitted = []

        def admit(job, prepared):
            if len(admitted) == 5:
                return False
            admitted.append(job.key)
            return True

        try:
            engine = Engine(session, concurrency=4)
            await engine.run(jobs(20), lambda o: done.append(o.job.key), admit=admit)
        finally:
            await session.aclose()
        return engine

    engine = asyncio.run(main())
    assert engine.stopped == "admit" and sorted(done) == [0, 1, 2, 3, 4]


def test_a_job_whose_only_model_is_cooling_down_waits_instead_of_failing(fake_openai, use):
    use(fake_openai, "openai")
    results = []

    async def main():
        session = session_for()
        session.limits.cool_down("openai", 0.3)  # as after a long Retry-After
        t = time.monotonic()
        try:
            await run_jobs(session, jobs(2), 4, lambda o: results.append(o))
        finally:
            await session.aclose()
        return time.monotonic() - t

    waited = asyncio.run(main())
    assert waited >= 0.3 and all(o.ok for o in results) and len(results) == 2


def test_unprepared_jobs_are_reported_not_raised(fake_openai, use):
    use(fake_openai, "openai")
    results = []

    async def main():
        session = session_for()
        bad = Job(Request(prompt="x", task="nosuch"), item_id="bad", key="bad")
        try:
            await run_jobs(session, [bad, *jobs(1)], 2, results.append)
        finally:
            await session.aclose()

    asyncio.run(main())
    by_key = {o.job.key: o for o in results}
    assert not by_key["bad"].ok and "unknown task 'nosuch'" in by_key["bad"].message
    assert by_key[0].ok


def test_async_job_sources_are_read_lazily(fake_openai, use):
    use(fake_openai, "openai")
    pulled = []

    async def source():
        for job in jobs(300):
            pulled.append(job.key)
            yield job

    async def main():
        session = session_for()
        engine = Engine(session, concurrency=2, lookahead=16)
        first = []

        def on_result(o):
            if not first:
                first.append(len(pulled))  # how much had been read when the first result came
            if len(pulled) > 40:
                engine.stop()

        try:
            await engine.run(source(), on_result)
        finally:
            await session.aclose()
        return first[0]

    read_at_first_result = asyncio.run(main())
    assert read_at_first_result <= 16 + 2 + 1  # bounded read-ahead, not the whole source
    assert len(pulled) < 300

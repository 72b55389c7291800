"""The three batch adapters against the batch fakes, below the CLI: states, results in the real
shapes, partial failure, expiry, cancellation, size limits, finding a job again, keys kept out of
errors; the jobs file; the fast row pricer against genai-prices."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from runner.backends import Usage
from runner.batch.deferred.anthropic import AnthropicBatches, headers
from runner.batch.deferred.api import Api, BatchApiError
from runner.batch.deferred.cost import RowPricer
from runner.batch.deferred.gemini import INLINE_MAX_BYTES, GeminiBatches
from runner.batch.deferred.openai import OpenAIBatches
from runner.batch.deferred.protocols import timeout
from runner.batch.deferred.state import JobsFile
from runner.config import Settings, load_config
from runner.errors import UserError
from runner.pricing import Pricing
from tests.fakes import Fault
from tests.fakes.batch_anthropic import FakeAnthropicBatch
from tests.fakes.batch_gemini import FakeGeminiBatch
from tests.fakes.batch_openai import FakeOpenAIBatch

KEY = "test-key"


def openai_adapter(fake, key=KEY):
    return OpenAIBatches(None, Api("openai", fake.url + "/v1", {"authorization": f"Bearer {key}"}, [key],
                                   timeout(Settings())))


def anthropic_adapter(fake, key=KEY):
    return AnthropicBatches(None, Api("anthropic", fake.url, headers(key), [key], timeout(Settings())))


def gemini_adapter(fake, key=KEY):
    return GeminiBatches(None, Api("gemini", fake.url, {"x-goog-api-key": key}, [key], timeout(Settings())))


BODIES = {
    "openai": lambda i, text: {"model": "gpt-4.1", "messages": [{"role": "user", "content": text or f"question {i}"}],
                               "max_completion_tokens": 60},
    "anthropic": lambda i, text: {"model": "claude-haiku-4-5", "max_tokens": 60,
                                  "messages": [{"role": "user", "content": text or f"question {i}"}]},
    "gemini": lambda i, text: {"contents": [{"role": "user", "parts": [{"text": text or f"question {i}"}]}],
                               "generationConfig": {"maxOutputTokens": 60}},
}
MODELS = {"openai": "gpt-4.1", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}


def make_job(tmp_path, adapter, kind, n, text=None):
    lines = tmp_path / f"{kind}.jsonl"
    with open(lines, "wb") as f:
        for i in range(n):
            f.write(adapter.line(f"r{i}", BODIES[kind](i, text)))
    jobs = JobsFile(tmp_path / "answers.jsonl.jobs.json")
    job = jobs.new_job(kind, MODELS[kind], [f"row-{i}" for i in range(n)], "2026-01-01T00:00:00.000+00:00", 0.0)
    return jobs, job, lines


async def run_to_end(adapter, job, *, cancel_after: int | None = None, limit: int = 50):
    seen = []
    for n in range(limit):
        if cancel_after is not None and n == cancel_after:
            await adapter.cancel(job)
        st = await adapter.poll(job)
        seen.append(st.state)
        if st.ended:
            return st, seen
    raise AssertionError(f"the job never ended: {seen}")


async def results(adapter, job, st, tmp_path):
    dest = tmp_path / "results.jsonl"
    await adapter.fetch(job, st, dest)
    return dict(adapter.parse(raw) for raw in dest.read_bytes().splitlines(keepends=True))


def test_openai_job_states_output_and_error_files(tmp_path):
    async def main():
        with FakeOpenAIBatch({"gpt-4.1": 1_000_000}) as fake:
            fake.push_fault(Fault(status=500, message="the server had an error"), model="gpt-4.1")
            a = openai_adapter(fake)
            jobs, job, lines = make_job(tmp_path, a, "openai", 6)
            saved = []
            await a.submit(job, lines, "runner-b-j1", lambda: saved.append((job.input_file, job.job_id)))
            assert saved[0][0] and saved[0][1] is None  # the file id is saved before the job exists
            assert saved[-1][1] == job.job_id and job.status == "submitted"
            st, seen = await run_to_end(a, job)
            assert seen[:1] == ["in_progress"] and "finalizing" in seen and st.outcome == "completed"
            assert (st.total, st.done, st.failed) == (6, 5, 1)
            assert st.extra["output_file_id"] and st.extra["error_file_id"]
            got = await results(a, job, st, tmp_path)
            assert set(got) == {f"r{i}" for i in range(6)}
            bad = [r for r in got.values() if not r.ok]
            assert len(bad) == 1 and "HTTP 500" in bad[0].error and bad[0].kind == "errored"
            ok = got["r1"]
            assert ok.ok and "question 1" in ok.text and ok.usage.input_tokens > 0 and ok.finish_reason == "stop"
            assert fake.rows_received == 6 and fake.created == [job.job_id]
            await a.api.aclose()

    asyncio.run(main())


def test_openai_refusals_are_definite_and_keep_the_key_out(tmp_path):
    async def main():
        with FakeOpenAIBatch({"gpt-4.1": 1_000_000}, max_file_bytes=200) as fake:
            a = openai_adapter(fake)
            jobs, job, lines = make_job(tmp_path, a, "openai", 5)
            with pytest.raises(BatchApiError) as exc:
                await a.submit(job, lines, "runner-b-j1", jobs.save)
            assert exc.value.definite and exc.value.status == 413 and "too large" in str(exc.value)
            assert fake.created == [] and fake.rows_received == 0
            wrong = openai_adapter(fake, key="sk-secret-wrong-key-123456")
            with pytest.raises(BatchApiError) as exc:
                await wrong.poll(job)
            assert exc.value.status == 401 and "sk-secret-wrong-key-123456" not in str(exc.value)
            await a.api.aclose()
            await wrong.api.aclose()

    asyncio.run(main())


def test_openai_validation_failure_and_expiry(tmp_path):
    async def main():
        with FakeOpenAIBatch({"gpt-4.1": 1_000_000}) as fake:
            a = openai_adapter(fake)
            fake.next_job = {"fail_validation": "invalid_request: line 3 is not a valid request"}
            jobs, job, lines = make_job(tmp_path, a, "openai", 4)
            await a.submit(job, lines, "runner-b-j1", jobs.save)
            st, _ = await run_to_end(a, job)
            assert st.outcome == "failed" and "line 3" in st.error
            assert await results(a, job, st, tmp_path) == {}

            fake.next_job = {"expire_after": 2}
            job2 = jobs.new_job("openai", "gpt-4.1", [f"x{i}" for i in range(4)], "2026-01-01T00:00:00+00:00", 0.0)
            await a.submit(job2, lines, "runner-b-j2", jobs.save)
            st, _ = await run_to_end(a, job2)
            assert st.outcome == "expired"
            got = await results(a, job2, st, tmp_path)
            assert sorted(r.kind for r in got.values()) == ["expired", "expired", "succeeded", "succeeded"]
            await a.api.aclose()

    asyncio.run(main())


def test_openai_finds_a_job_created_by_a_killed_run(tmp_path):
    async def main():
        with FakeOpenAIBatch({"gpt-4.1": 1_000_000}) as fake:
            a = openai_adapter(fake)
            jobs, job, lines = make_job(tmp_path, a, "openai", 3)
            await a.submit(job, lines, "runner-b-j1", jobs.save)
            lost = jobs.new_job("openai", "gpt-4.1", job.rows, job.intent_at, 0.0)
            assert not await a.find(lost, "runner-b-j2", set())  # no input file known: nothing can exist
            lost.input_file = job.input_file
            assert await a.find(lost, "runner-b-j2", set()) and lost.job_id == job.job_id
            again = jobs.new_job("openai", "gpt-4.1", job.rows, job.intent_at, 0.0)
            again.input_file = job.input_file
            assert not await a.find(again, "runner-b-j3", {job.job_id})  # already one of ours
            await a.api.aclose()

    asyncio.run(main())


def test_anthropic_results_partial_failure_and_cancel(tmp_path):
    async def main():
        with FakeAnthropicBatch({"claude-haiku-4-5": 200_000}, schedule=(1, 3, 0)) as fake:
            a = anthropic_adapter(fake)
            fake.push_fault(Fault(status=529, message="Overloaded", error_type="overloaded_error"),
                            model="claude-haiku-4-5")
            jobs, job, lines = make_job(tmp_path, a, "anthropic", 6)
            await a.submit(job, lines, "runner-b-j1", jobs.save)
            body = json.loads(next(r for r in fake.requests if r.path == "/v1/messages/batches").body)
            assert [x["custom_id"] for x in body["requests"]] == [f"r{i}" for i in range(6)]
            st, seen = await run_to_end(a, job, cancel_after=2)
            assert "cancelling" in seen and st.outcome == "cancelled"
            got = await results(a, job, st, tmp_path)
            kinds = sorted(r.kind for r in got.values())
            assert kinds.count("errored") == 1 and "canceled" in kinds and "succeeded" in kinds
            err = next(r for r in got.values() if r.kind == "errored")
            assert "overloaded_error" in err.error and err.error_kind == "overloaded"
            assert fake.rows_received == 6
            await a.api.aclose()

    asyncio.run(main())


def test_anthropic_limits_and_finding_a_lost_batch(tmp_path):
    async def main():
        with FakeAnthropicBatch({"claude-haiku-4-5": 200_000}, max_bytes=300) as fake:
            a = anthropic_adapter(fake)
            jobs, job, lines = make_job(tmp_path, a, "anthropic", 5)
            with pytest.raises(BatchApiError) as exc:
                await a.submit(job, lines, "runner-b-j1", jobs.save)
            assert exc.value.definite and exc.value.status == 413 and "maximum allowed" in str(exc.value)
            fake.max_bytes = 10 ** 9
            await a.submit(job, lines, "runner-b-j1", jobs.save)
            lost = jobs.new_job("anthropic", "claude-haiku-4-5", job.rows, job.intent_at, 0.0)
            assert await a.find(lost, "x", set()) and lost.job_id == job.job_id
            other = jobs.new_job("anthropic", "claude-haiku-4-5", job.rows[:2], job.intent_at, 0.0)
            assert not await a.find(other, "x", set())  # a batch of another size is not ours
            await a.api.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("big", [False, True], ids=["inline", "uploaded-file"])
def test_gemini_inline_and_file_jobs(tmp_path, big):
    async def main():
        with FakeGeminiBatch({"gemini-2.5-flash": 10_000_000}, schedule=(1, 2, 0)) as fake:
            a = gemini_adapter(fake)
            fake.push_fault(Fault(status=429, message="Resource has been exhausted"), model="gemini-2.5-flash")
            text = ("word " * (INLINE_MAX_BYTES // 10)) if big else None
            jobs, job, lines = make_job(tmp_path, a, "gemini", 3, text)
            await a.submit(job, lines, "runner-b-j1", jobs.save)
            assert (fake.file_jobs, fake.inline_jobs) == ((1, 0) if big else (0, 1))
            assert bool(job.input_file) == big
            assert await a.find(jobs.new_job("gemini", "gemini-2.5-flash", job.rows, "", 0.0), "runner-b-j1", set())
            st, seen = await run_to_end(a, job)
            assert st.outcome == "completed" and st.done == 2 and st.failed == 1
            got = await results(a, job, st, tmp_path)
            assert sorted(r.kind for r in got.values()) == ["errored", "succeeded", "succeeded"]
            assert next(r for r in got.values() if not r.ok).error_kind == "rate_limit"
            await a.api.aclose()

    asyncio.run(main())


def test_gemini_cancel_and_expiry(tmp_path):
    async def main():
        with FakeGeminiBatch({"gemini-2.5-flash": 1_000_000}, schedule=(1, 4, 0)) as fake:
            a = gemini_adapter(fake)
            jobs, job, lines = make_job(tmp_path, a, "gemini", 8)
            await a.submit(job, lines, "runner-b-j1", jobs.save)
            st, _ = await run_to_end(a, job, cancel_after=2)
            assert st.raw == "BATCH_STATE_CANCELLED" and st.outcome == "cancelled" and 0 < st.done < 8
            fake.next_job = {"expire_after": 1}
            job2 = jobs.new_job("gemini", "gemini-2.5-flash", job.rows, "", 0.0)
            await a.submit(job2, lines, "runner-b-j2", jobs.save)
            st, _ = await run_to_end(a, job2)
            assert st.raw == "BATCH_STATE_EXPIRED" and st.done == 1
            await a.api.aclose()

    asyncio.run(main())


def test_jobs_file_round_trip_and_a_foreign_file(tmp_path):
    jobs = JobsFile(tmp_path / "a.jsonl.jobs.json", batch_id="b-1")
    job = jobs.new_job("openai", "gpt-4.1", ["x", "y"], "2026-01-01T00:00:00+00:00", 0.25)
    jobs.save()
    again = JobsFile.load(jobs.path)
    assert again.batch_id == "b-1" and again.jobs == [job] and again.rows_waiting() == {"x", "y"}
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed over, not left behind
    jobs.path.write_text('{"hello": 1}')
    with pytest.raises(UserError, match="is not a runner jobs file"):
        JobsFile.load(jobs.path)


@pytest.mark.parametrize("ref", ["openai/gpt-4.1", "anthropic/claude-sonnet-4-6", "gemini/gemini-2.5-pro",
                                 "deepseek/deepseek-flash"])
def test_the_fast_row_pricer_agrees_with_genai_prices(ref):
    pricing = Pricing(load_config())
    rng = random.Random(7)
    for batch in (True, False):
        pricer = RowPricer(pricing, ref, batch=batch)
        for _ in range(200):
            inp = rng.randint(0, 250_000)  # above LINEAR_BELOW the exact path is taken
            usage = Usage(input_tokens=inp, output_tokens=rng.randint(0, 8000), cache_read_tokens=rng.randint(0, inp // 3),
                          cache_write_tokens=rng.randint(0, inp // 4) if "anthropic" in ref else 0)
            exact = pricing.cost(ref, usage.input_tokens, usage.output_tokens, cache_read_tokens=usage.cache_read_tokens,
                                 cache_write_tokens=usage.cache_write_tokens, batch=batch)
            assert pricer.cost(usage) == pytest.approx(exact, rel=1e-9, abs=1e-12)

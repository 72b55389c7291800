"""Session.answer sends the request first and writes the run's row while the model reads it
(issue 11: the log costs the first token nothing). Whatever ends before the row exists is
still logged, and a run stopped at any point is closed, never left "running"."""

from __future__ import annotations

import asyncio

import pytest

from runner.config import load_config
from runner.errors import UserError
from runner.request import Request
from runner.session import Session
from runner.store import Store


def two_candidates(home) -> None:
    (home / "profiles").mkdir()
    (home / "profiles" / "pair.yaml").write_text(
        "name: pair\ndescription: two hosted models\ncandidates: [anthropic/claude-sonnet-4-5, openai/gpt-4.1]\n")


def test_an_attempt_that_ends_before_the_row_is_written_is_logged_with_the_run(fake_openai, fake_anthropic,
                                                                                 use, home):
    use(fake_openai, "openai")
    use(fake_anthropic, "anthropic")
    two_candidates(home)

    async def main():
        session = Session(load_config())
        prepared = await session.prepare(Request(prompt="hello", task="pair"))
        # Anthropic starts cooling down after routing: its attempt fails at once, before any I/O.
        session.limits.cool_down("anthropic", 60)
        result, run_id = await session.answer(prepared)
        runs = session.store.runs(limit=5)
        await session.aclose()
        return result, run_id, runs

    result, run_id, runs = asyncio.run(main())
    assert result.ok and result.answer.model == "openai/gpt-4.1"
    (run,) = runs
    assert run["id"] == run_id and run["outcome"] == "ok" and run["model"] == "openai/gpt-4.1"
    assert [(a["model"], a["outcome"]) for a in run["attempts"]] == [
        ("anthropic/claude-sonnet-4-5", "failed"), ("openai/gpt-4.1", "ok")]
    assert "cooling down" in run["attempts"][0]["error"]
    assert fake_anthropic.requests == [] and len(fake_openai.requests) == 1


def test_a_run_cancelled_while_its_request_is_out_is_closed_with_the_reason(fake_openai, use, home):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 5.0  # the model takes its time: the cancel comes while it reads

    async def main():
        session = Session(load_config())
        prepared = await session.prepare(Request(prompt="hello", task="general", model="openai/gpt-4.1"))
        task = asyncio.ensure_future(session.answer(prepared))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if fake_openai.requests:
                break
        task.cancel("client disconnected")
        try:
            await task
        except asyncio.CancelledError:
            pass
        runs = session.store.runs(limit=5)
        await session.aclose()
        return runs

    (run,) = asyncio.run(main())
    assert run["outcome"] == "failed" and "client disconnected" in run["error"]
    assert run["model"] == "openai/gpt-4.1"


class UnwritableLog(Store):
    """A run log whose rows cannot be written (a full disk, say), as the user would meet it."""

    def start_run(self, **kwargs):
        raise UserError(f"cannot write the run log {self.path}: database or disk is full")


def test_a_row_that_cannot_be_written_stops_the_call_and_says_why(fake_openai, use, home):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 5.0  # were the call not stopped, the test would wait for it

    async def main():
        session = Session(load_config(), store=UnwritableLog(home / "runs.db"))
        prepared = await session.prepare(Request(prompt="hello", task="general", model="openai/gpt-4.1"))
        started = asyncio.get_running_loop().time()
        with pytest.raises(UserError, match="disk is full"):
            await session.answer(prepared)
        took = asyncio.get_running_loop().time() - started
        await session.aclose()
        return took

    assert asyncio.run(main()) < 2.0  # stopped at once, not after the model's 5 s

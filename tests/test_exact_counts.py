"""Exact counts near a window boundary: where a candidate's fit rests on the estimate's margin,
its server counts the request (Anthropic count_tokens, Gemini countTokens, llama.cpp's tokenizer)
and routing takes that count with no margin; a count that fails leaves the estimate in charge."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from runner.backends import BackendError
from runner.backends.anthropic import AnthropicBackend
from runner.config import load_config
from runner.estimate import margin_dependent
from runner.request import Request
from runner.session import Session
from runner.tokens import ESTIMATE_MARGIN, MESSAGE_OVERHEAD, text_stats, tokenizer_family, tokens_for
from tests.fakes import count_tokens
from tests.fakes.openai import FakeOpenAI

OUT = 1024
SHORT = "the a of to in it is on at by we do go so up no my as or if be an he me us".split()
MID = "report budget second review figure margin answer window server thread".split()


def prompt_text(mid_share: float, words: int = 20000) -> str:
    """Short words (the fakes' tokenizer and the estimate agree within a few %), or with a share
    of 6-letter words (the fakes count 2 tokens each: the estimate runs low beyond its margin)."""
    rng = random.Random(3)
    return " ".join(rng.choice(MID) if rng.random() < mid_share else rng.choice(SHORT) for _ in range(words)) + "."


def estimate(ref: str, text: str) -> int:
    return tokens_for(text_stats(text), tokenizer_family(ref)) + MESSAGE_OVERHEAD


def exact(text: str) -> int:
    return count_tokens(text) + MESSAGE_OVERHEAD  # what the fakes count: content + the template


def setup(home, models: dict[str, int], candidates: list[str], endpoints: str = "") -> None:
    lines = "".join(f"  {ref}: {{context: {ctx}}}\n" for ref, ctx in models.items())
    with open(home / "config.yaml", "a") as f:
        f.write(f"models:\n{lines}{endpoints}")
    (home / "profiles").mkdir(exist_ok=True)
    (home / "profiles" / "edge.yaml").write_text(
        f"name: edge\ndescription: near the window\ncandidates: [{', '.join(candidates)}]\n"
        f"options: {{max_output_tokens: {OUT}}}\n")


def prepare(text: str, count: bool = True):
    async def go():
        session = Session(load_config())
        try:
            return await session.prepare(Request(text, task="edge"), count=count)
        finally:
            await session.aclose()

    return asyncio.run(go())


def counted(fake, path_end: str) -> list:
    return [q for q in fake.requests if q.path.endswith(path_end)]


def test_a_prompt_over_the_window_by_its_estimate_fits_by_the_exact_count(home, use, fake_anthropic, fake_gemini):
    ref = "anthropic/claude-haiku-4-5"
    text = prompt_text(0.0)
    est, real = estimate(ref, text), exact(text)
    assert abs(real / est - 1) < ESTIMATE_MARGIN  # the estimate is right within its margin...
    window = real + OUT  # ...and the window holds the prompt exactly, not its high end
    assert int(est * (1 + ESTIMATE_MARGIN)) + OUT > window + 256
    setup(home, {ref: window}, [ref, "gemini/gemini-2.5-flash"])
    use(fake_anthropic, "anthropic")
    use(fake_gemini, "gemini")

    by_estimate = prepare(text, count=False)
    assert by_estimate.plan.attempts[0].ref == "gemini/gemini-2.5-flash"
    assert margin_dependent(by_estimate.plan) == [ref]

    prepared = prepare(text)
    first = prepared.plan.attempts[0]
    assert first.ref == ref and first.est_input_tokens == real
    assert first.options["max_output_tokens"] == OUT  # not capped: the exact count left room
    assert prepared.need.exact_for(ref) and prepared.need.raw_for(ref) == est  # the log keeps the estimate
    sent = counted(fake_anthropic, "/v1/messages/count_tokens")
    assert len(sent) == 1 and set(sent[0].json) <= {"model", "messages", "system", "tools", "tool_choice", "thinking"}
    assert not counted(fake_gemini, ":countTokens")  # gemini fits either way: nothing to count


def test_a_prompt_the_estimate_would_squeeze_in_does_not_fit_by_the_exact_count(home, use, fake_gemini, fake_anthropic):
    ref = "gemini/gemini-2.5-flash"
    text = prompt_text(0.2)
    est, real = estimate(ref, text), exact(text)
    high = int(est * (1 + ESTIMATE_MARGIN))
    assert real > high  # this text runs beyond the margin: the estimate would send it, capped
    window = high + 600
    assert real + 256 > window
    setup(home, {ref: window}, [ref, "anthropic/claude-sonnet-4-5"])
    use(fake_gemini, "gemini")
    use(fake_anthropic, "anthropic")

    by_estimate = prepare(text, count=False)
    assert by_estimate.plan.attempts[0].ref == ref
    assert by_estimate.plan.attempts[0].options["max_output_tokens"] < OUT  # squeezed in

    prepared = prepare(text)
    assert prepared.plan.attempts[0].ref == "anthropic/claude-sonnet-4-5"
    skip = next(s for s in prepared.plan.skipped if s.ref == ref)
    assert skip.too_small and f"prompt {real:,} (exact count) tokens" in skip.reason
    sent = counted(fake_gemini, ":countTokens")
    assert len(sent) == 1 and sent[0].json["generateContentRequest"]["model"] == f"models/{ref.split('/')[1]}"


def test_explain_sends_nothing_not_even_a_count(home, use, cli, fake_gemini, fake_anthropic):
    """--explain shows the estimate's decision: asking a count endpoint would send the prompt
    off the machine, which --explain promises not to do."""
    ref = "gemini/gemini-2.5-flash"
    text = prompt_text(0.2)
    setup(home, {ref: int(estimate(ref, text) * (1 + ESTIMATE_MARGIN)) + 600}, [ref, "anthropic/claude-sonnet-4-5"])
    use(fake_gemini, "gemini")
    use(fake_anthropic, "anthropic")
    r = cli("ask", "--task", "edge", "--explain", "--json", text)
    assert r.code == 0, r.stderr
    assert not fake_gemini.requests and not fake_anthropic.requests
    decisions = {c["model"]: c["decision"] for c in r.json()["candidates"]}
    assert "(exact count)" not in decisions[ref]


@pytest.mark.parametrize("failure", ["error", "timeout"])
def test_a_count_that_fails_leaves_the_estimate_in_charge(home, use, fake_anthropic, fake_gemini, monkeypatch, failure):
    ref = "anthropic/claude-haiku-4-5"
    text = prompt_text(0.0)
    setup(home, {ref: exact(text) + OUT}, [ref, "gemini/gemini-2.5-flash"])
    use(fake_anthropic, "anthropic")
    use(fake_gemini, "gemini")

    async def broken(self, call):
        if failure == "timeout":
            await asyncio.sleep(5)
        raise BackendError("count_tokens is down")

    monkeypatch.setattr(AnthropicBackend, "count_tokens", broken)
    monkeypatch.setattr("runner.session.COUNT_TIMEOUT_S", 0.3)
    started = time.monotonic()
    prepared = prepare(text)
    assert time.monotonic() - started < 3
    assert prepared.plan.attempts[0].ref == "gemini/gemini-2.5-flash"  # as the estimate decided
    assert not prepared.need.exact_for(ref)
    assert "prompt ~" in next(s for s in prepared.plan.skipped if s.ref == ref).reason


def test_a_llamacpp_count_waits_for_the_slot_and_cuts_no_stream(home):
    """llama-cpp-python cuts a running stream when any request arrives, /extras/tokenize included:
    the count holds the server's one slot like a chat call, so it waits for the answer to end."""
    text = prompt_text(0.0)
    ref = "llama/tiny"
    with FakeOpenAI({"tiny": 100_000}, api_key=None, flavor="llamacpp", chunk_delay_s=0.15) as fake:
        setup(home, {ref: exact(text) + OUT}, [ref],
              endpoints=f"endpoints:\n  llama: {{base_url: \"{fake.url}/v1\", local: true}}\n")

        async def go():
            session = Session(load_config())
            try:
                short = await session.prepare(Request("Say hello in a few words.", task="edge"))
                answering = asyncio.create_task(session.answer(short, log=False))
                while not counted(fake, "/chat/completions"):
                    await asyncio.sleep(0.01)
                long = await session.prepare(Request(text, task="edge"))
                return (await answering)[0], long
            finally:
                await session.aclose()

        result, long = asyncio.run(go())
        assert result.ok and result.answer.text
        assert fake.streams_interrupted == 0
        chat, count = counted(fake, "/chat/completions")[0], counted(fake, "/extras/tokenize/count")
        assert len(count) == 1 and count[0].time > chat.time
        assert long.plan.attempts and long.plan.attempts[0].ref == ref  # fits by the exact count
        assert long.need.exact_for(ref) and long.need.input_for(ref) == exact(text)


def test_llama_server_tokenize_and_servers_without_a_count(home):
    """llama.cpp's own server counts at /tokenize; a hosted OpenAI-compatible API is never asked."""
    text = prompt_text(0.0)
    with FakeOpenAI({"tiny": 100_000}, api_key=None, flavor="llama-server") as fake:
        setup(home, {"llama/tiny": exact(text) + OUT}, ["llama/tiny"],
              endpoints=f"endpoints:\n  llama: {{base_url: \"{fake.url}/v1\", local: true}}\n")
        prepared = prepare(text)
        assert prepared.plan.attempts and prepared.need.input_for("llama/tiny") == exact(text)
        assert [q.path for q in fake.requests if "tokenize" in q.path] == ["/extras/tokenize/count", "/tokenize"]

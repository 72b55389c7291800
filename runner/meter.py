"""What one attempt measured: time to first token, total latency, tokens, tokens/s and cost.

Every figure is the server's where it sent one; an estimate is flagged (`tokens_estimated`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from .backends import Done
from .backends.errors import ErrorKind
from .pricing import Pricing
from .tokens import estimate_tokens


@dataclass
class AttemptResult:
    model: str
    outcome: str  # ok | failed
    time: str
    error: str | None = None
    error_kind: ErrorKind | None = None
    finish_reason: str | None = None
    text: str = ""
    thinking: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    est_input_tokens: int | None = None
    num_ctx: int | None = None
    ttft_ms: float | None = None  # the first token of any kind, thinking included
    answer_ms: float | None = None  # the first token of the answer itself
    queue_ms: float | None = None  # waiting for the provider's slot, before the call was sent
    latency_ms: float | None = None
    tokens_per_s: float | None = None
    cost_usd: float | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    part: str | None = None
    host: str | None = None  # the server that took the call, without credentials (a pool has several)
    text_kind: str | None = None  # what the estimate's correction is learned per
    retry_after: float | None = None
    retryable: bool = False

    def record(self) -> dict[str, Any]:
        """The run log's columns for this attempt."""
        skip = ("text", "thinking", "retry_after", "retryable")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


class Clock:
    """Marks of one attempt: the request sent, the first streamed token, the end."""

    def __init__(self) -> None:
        self.wall = datetime.now(timezone.utc)  # prices may depend on the time of day
        self.start = time.perf_counter()
        self.first: float | None = None  # the first token of any kind
        self.answer: float | None = None  # the first token of the answer (after any thinking)
        self.end: float | None = None

    def token(self, answer: bool = True) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        if answer and self.answer is None:
            self.answer = now

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def stop(self) -> None:
        self.end = time.perf_counter()


def measure(res: AttemptResult, clock: Clock, done: Done | None, ref: str, est_input: int, pricing: Pricing) -> None:
    """Fill in res's timings, tokens and cost from the clock and the protocol's Done."""
    end = clock.end if clock.end is not None else time.perf_counter()
    res.latency_ms = (end - clock.start) * 1000.0
    res.ttft_ms = (clock.first - clock.start) * 1000.0 if clock.first is not None else None
    res.answer_ms = (clock.answer - clock.start) * 1000.0 if clock.answer is not None else None
    if done is None:
        return
    usage = done.usage
    res.input_tokens, res.output_tokens = usage.input_tokens, usage.output_tokens
    res.cache_read_tokens, res.cache_write_tokens = usage.cache_read_tokens, usage.cache_write_tokens
    if res.outcome == "ok":
        res.finish_reason = done.finish_reason
        if res.input_tokens is None:
            res.input_tokens, res.tokens_estimated = est_input, True
        if res.output_tokens is None:
            res.output_tokens, res.tokens_estimated = estimate_tokens(res.text + res.thinking), True
        res.tokens_per_s = tokens_per_s(done, res, clock.start, clock.first, end)
    # A failure after a complete stream (e.g. a prompt the server cut) still has real tokens.
    res.cost_usd = pricing.cost(ref, res.input_tokens, res.output_tokens,
                                cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
                                cache_write_1h_tokens=usage.cache_write_1h_tokens,
                                seconds=end - clock.start, when=clock.wall)


def tokens_per_s(done: Done, res: AttemptResult, start: float, first: float | None, end: float) -> float | None:
    """Output tokens per second of generation.

    Ollama measures its own generation time (eval_duration, ns): the truest figure. Otherwise the
    clock runs from the first streamed token — or from the request, when the model reasoned
    without streaming its reasoning (o-series, Gemini without thoughts), since those tokens were
    generated before the first visible one.
    """
    m = done.metrics
    if m.get("eval_count") and m.get("eval_duration"):
        return m["eval_count"] / m["eval_duration"] * 1e9
    hidden = bool(done.usage.reasoning_tokens) and not res.thinking
    begin = start if hidden or first is None else first
    seconds = end - begin
    return res.output_tokens / seconds if res.output_tokens and seconds > 0 else None

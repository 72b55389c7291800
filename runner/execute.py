"""Run a RoutePlan: try each attempt in order, retry what may pass on a second try, fall back
on failure, and meter every attempt (time to first token, latency, tokens, tokens/s, cost).

Storage and rendering stay outside: callers pass `on_event` (each streamed event) and
`on_attempt` (each finished attempt, ok or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from .backends import BackendError, BackendPool, Call, Done, TextDelta, ThinkingDelta, Timeouts
from .config import Config
from .pricing import Pricing
from .router import Attempt, RoutePlan
from .store import now_iso
from .tokens import estimate_tokens

MAX_RETRY_WAIT_S = 30.0  # a longer Retry-After means: fall back now, cool this provider down


@dataclass
class AttemptResult:
    model: str
    outcome: str  # ok | failed
    time: str
    error: str | None = None
    error_kind: str | None = None
    finish_reason: str | None = None
    text: str = ""
    thinking: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    est_input_tokens: int | None = None
    num_ctx: int | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    tokens_per_s: float | None = None
    cost_usd: float | None = None
    part: str | None = None
    retry_after: float | None = None
    retryable: bool = False

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("text", "thinking", "retry_after", "retryable")}


@dataclass
class RunResult:
    ok: bool
    attempts: list[AttemptResult] = field(default_factory=list)
    error: str | None = None

    @property
    def answer(self) -> AttemptResult | None:
        return next((a for a in reversed(self.attempts) if a.outcome == "ok"), None)


OnEvent = Callable[[str, Any], None]
OnAttempt = Callable[[AttemptResult], Any]


class Limiter:
    """Concurrency slots per provider; `None` limits mean unlimited. Batch swaps in an adaptive one."""

    async def acquire(self, provider: str) -> None:  # pragma: no cover - trivial
        return None

    def release(self, provider: str) -> None:  # pragma: no cover - trivial
        return None

    def on_rate_limit(self, provider: str, retry_after: float | None) -> None:
        return None

    def on_success(self, provider: str) -> None:
        return None


class Executor:
    def __init__(self, config: Config, pool: BackendPool, pricing: Pricing, *,
                 limiter: Limiter | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self.pool = pool
        self.pricing = pricing
        self.limiter = limiter or Limiter()
        self.sleep = sleep
        self.cooldown: dict[str, float] = {}  # provider → monotonic time it may be used again

    def timeouts(self) -> Timeouts:
        s = self.config.settings
        return Timeouts(connect=s.connect_timeout_s, first_token=s.first_token_timeout_s, total=s.total_timeout_s)

    async def run(self, plan: RoutePlan, messages: list[dict], system: str | None, *,
                  on_event: OnEvent | None = None, on_attempt: OnAttempt | None = None,
                  part: str | None = None, est_input_tokens: int | None = None) -> RunResult:
        result = RunResult(ok=False)
        retries = self.config.settings.retries
        est = est_input_tokens if est_input_tokens is not None else plan.need.input_tokens
        for attempt in plan.attempts:
            tries = 0
            while True:
                until = self.cooldown.get(attempt.provider, 0.0)
                if until > time.monotonic():
                    res = AttemptResult(attempt.ref, "failed", now_iso(), part=part, error_kind="rate_limit",
                                        error=f"{attempt.provider} is cooling down after rate limits ({until - time.monotonic():.0f}s left)")
                    result.attempts.append(res)
                    await _maybe_await(on_attempt, res)
                    break
                res = await self._one(attempt, messages, system, est, on_event, part)
                result.attempts.append(res)
                await _maybe_await(on_attempt, res)
                if res.outcome == "ok":
                    result.ok = True
                    return result
                if res.retryable and tries < retries:
                    wait = res.retry_after if res.retry_after is not None else _backoff(tries)
                    if wait <= MAX_RETRY_WAIT_S:
                        tries += 1
                        await self.sleep(wait)
                        continue
                    self.cooldown[attempt.provider] = time.monotonic() + wait
                elif res.error_kind in ("rate_limit", "overloaded") and res.retry_after:
                    self.cooldown[attempt.provider] = time.monotonic() + res.retry_after
                break
        failures = [a for a in result.attempts if a.outcome != "ok"]
        if not plan.attempts:
            result.error = "no model can take this request"
        else:
            # One reason per model: the last failure of each, in the order they were tried.
            last: dict[str, str] = {}
            for a in failures:
                last[a.model] = a.error or "failed"
            result.error = "every model failed: " + "; ".join(f"{m}: {e}" for m, e in last.items())
        return result

    async def _one(self, attempt: Attempt, messages: list[dict], system: str | None, est: int,
                   on_event: OnEvent | None, part: str | None) -> AttemptResult:
        opts = attempt.options
        # The model's own estimate (its tokenizer family, learned correction) checks the call;
        # the log keeps the uncorrected figure beside the real count, to learn from.
        raw_est = attempt.est_raw_tokens if attempt.est_raw_tokens is not None else est
        est = attempt.est_input_tokens if attempt.est_input_tokens is not None else est
        call = Call(
            model=attempt.model,
            messages=messages,
            system=system,
            max_output_tokens=opts.get("max_output_tokens"),
            temperature=opts.get("temperature"),
            seed=opts.get("seed"),
            think=opts.get("think"),
            backend_options=attempt.backend_options,
            timeouts=self.timeouts(),
            est_input_tokens=est,
        )
        res = AttemptResult(attempt.ref, "failed", now_iso(), part=part, est_input_tokens=raw_est,
                            num_ctx=attempt.backend_options.get("num_ctx"))
        wall_start = datetime.now(timezone.utc)
        text: list[str] = []
        thinking: list[str] = []
        done: Done | None = None
        backend = self.pool.get(attempt.provider)
        backend.warm(call.timeouts)  # one-time client set-up is ours, not the model's latency
        await self.limiter.acquire(attempt.provider)
        start = time.perf_counter()
        first = None
        try:
            # aclosing: a timeout or cancel mid-stream releases the connection at once.
            async with asyncio.timeout(call.timeouts.total), contextlib.aclosing(backend.stream(call)) as events:
                async for event in events:
                    if isinstance(event, (TextDelta, ThinkingDelta)):
                        if first is None:
                            first = time.perf_counter()
                        (text if isinstance(event, TextDelta) else thinking).append(event.text)
                    elif isinstance(event, Done):
                        done = event
                    if on_event is not None:
                        try:
                            on_event(attempt.ref, event)
                        except Exception as exc:  # the caller's failure (a closed pipe), not the model's
                            raise _ConsumerError() from exc
            if done is None:
                raise BackendError("the stream ended without usage or an end marker", kind="stream", retryable=True)
        except BackendError as exc:
            res.error, res.error_kind, res.retry_after, res.retryable = exc.message, exc.kind, exc.retry_after, exc.retryable
            if exc.kind in ("rate_limit", "overloaded"):
                self.limiter.on_rate_limit(attempt.provider, exc.retry_after)
        except TimeoutError:
            res.error, res.error_kind = f"no complete answer within {call.timeouts.total:.0f}s", "timeout"
            res.retryable = True
        except _ConsumerError as exc:
            raise exc.__cause__ from None
        except Exception as exc:  # a backend bug or an unforeseen reply: fail this attempt, try the next
            from .backends.redact import redact

            key = self.config.providers[attempt.provider].usable_key() if attempt.provider in self.config.providers else None
            res.error = redact(f"unexpected failure: {type(exc).__name__}: {exc}", [key])
            res.error_kind = "internal"
        finally:
            self.limiter.release(attempt.provider)
        end = time.perf_counter()
        res.text, res.thinking = "".join(text), "".join(thinking)
        res.latency_ms = (end - start) * 1000.0
        res.ttft_ms = (first - start) * 1000.0 if first is not None else None
        if done is not None and res.error is None:
            res.outcome = "ok"
            res.finish_reason = done.finish_reason
            self.limiter.on_success(attempt.provider)
            usage = done.usage
            res.input_tokens, res.output_tokens = usage.input_tokens, usage.output_tokens
            if res.input_tokens is None:
                res.input_tokens, res.tokens_estimated = est, True
            if res.output_tokens is None:
                res.output_tokens, res.tokens_estimated = estimate_tokens(res.text + res.thinking), True
            res.tokens_per_s = _tokens_per_s(done, res, start, first, end)
            res.cost_usd = self.pricing.cost(attempt.ref, res.input_tokens, res.output_tokens,
                                             cache_read_tokens=usage.cache_read_tokens,
                                             cache_write_tokens=usage.cache_write_tokens,
                                             seconds=end - start, when=wall_start)
        elif done is not None:
            # Failed after a complete stream (e.g. truncated by the server): tokens are real.
            res.input_tokens, res.output_tokens = done.usage.input_tokens, done.usage.output_tokens
            res.cost_usd = self.pricing.cost(attempt.ref, res.input_tokens, res.output_tokens,
                                             cache_read_tokens=done.usage.cache_read_tokens,
                                             cache_write_tokens=done.usage.cache_write_tokens,
                                             seconds=end - start, when=wall_start)
        return res


class _ConsumerError(Exception):
    """Carries an exception raised by the caller's on_event out of the backend's stream."""


def _tokens_per_s(done: Done, res: AttemptResult, start: float, first: float | None, end: float) -> float | None:
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


def _backoff(tries: int) -> float:
    return min(8.0, 0.5 * (2 ** tries)) * (0.75 + random.random() * 0.5)


async def _maybe_await(fn: Callable | None, arg: Any) -> None:
    if fn is None:
        return
    out = fn(arg)
    if asyncio.iscoroutine(out):
        await out

"""Run a RoutePlan: try each attempt in order, retry what may pass on a second try, fall back
on failure, and meter every attempt (meter.py).

Storage and rendering stay outside: callers pass `on_event` (each streamed event) and
`on_attempt` (each finished attempt, ok or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .aio import maybe_await
from .backends import BackendError, BackendPool, Call, Done, ErrorKind, TextDelta, ThinkingDelta, ToolCallDelta, Timeouts
from .backends.errors import RATE_LIMITED
from .config import Config
from .dispatch import FAIL_OVER, Dispatcher
from .limits import MAX_RETRY_WAIT_S, Limits
from .meter import AttemptResult, Clock, measure
from .pricing import Pricing
from .router import Attempt, RoutePlan
from .store import now_iso


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


class Executor:
    def __init__(self, config: Config, pool: BackendPool, pricing: Pricing, limits: Limits, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self.pool = pool
        self.pricing = pricing
        self.limits = limits
        self.sleep = sleep
        # Which host of a provider takes each call (a provider may have several machines).
        self.dispatch = Dispatcher(limits.host_specs, loaded=self._loaded)

    async def _loaded(self, provider: str, url: str) -> dict[str, int | None] | None:
        """The models a host has loaded now, where its protocol can say (Ollama's /api/ps)."""
        ask = getattr(self.pool.get(provider, url), "loaded_models", None)
        return await ask() if ask is not None else None

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
            failed_hosts: set[str] = set()  # of this model's pool, this try: the next goes elsewhere
            while True:
                until = self.limits.cooling_until(attempt.provider)
                if until > time.monotonic():
                    res = AttemptResult(attempt.ref, "failed", now_iso(), part=part, error_kind=ErrorKind.RATE_LIMIT,
                                        error=f"{attempt.provider} is cooling down after rate limits ({until - time.monotonic():.0f}s left)")
                    result.attempts.append(res)
                    await maybe_await(on_attempt and on_attempt(res))
                    break
                res = await self._one(attempt, messages, system, est, on_event, part, plan.need.text_kind,
                                      avoid=failed_hosts)
                result.attempts.append(res)
                await maybe_await(on_attempt and on_attempt(res))
                if res.outcome == "ok":
                    result.ok = True
                    return result
                if failed_hosts and res.error_kind in FAIL_OVER and \
                        self.dispatch.can_take(attempt.provider, attempt.model, attempt.hosts, failed_hosts):
                    continue  # another host of the same provider, at once: neither a retry nor a fallback
                failed_hosts.clear()
                if res.retryable and tries < retries:
                    wait = res.retry_after if res.retry_after is not None else _backoff(tries)
                    if wait <= MAX_RETRY_WAIT_S:
                        tries += 1
                        await self.sleep(wait)
                        continue
                    self.limits.cool_down(attempt.provider, wait)
                elif res.error_kind in RATE_LIMITED and res.retry_after:
                    self.limits.cool_down(attempt.provider, res.retry_after)
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
                   on_event: OnEvent | None, part: str | None, kind: str,
                   avoid: set[str] | None = None) -> AttemptResult:
        """One call. `avoid`: hosts of the provider not to use; a host that fails this call is
        added to it."""
        # The model's own estimate (its tokenizer family, learned correction) checks the call;
        # the log keeps the uncorrected figure beside the real count, to learn from.
        raw_est = attempt.est_raw_tokens if attempt.est_raw_tokens is not None else est
        est = attempt.est_input_tokens if attempt.est_input_tokens is not None else est
        call = call_for(attempt, messages, system, timeouts=self.timeouts(), est_input_tokens=est)
        res = AttemptResult(attempt.ref, "failed", now_iso(), part=part, est_input_tokens=raw_est,
                            num_ctx=attempt.backend_options.get("num_ctx"), text_kind=kind)
        text: list[str] = []
        thinking: list[str] = []
        done: Done | None = None
        queued = time.perf_counter()
        yielded = False
        # A host first (waiting while the able ones are busy), then the provider's slot.
        lease = await self.dispatch.acquire(attempt.provider, attempt.model, attempt.hosts,
                                            attempt.backend_options.get("num_ctx"), avoid or ())
        if lease is None:  # every able host is cooling down after failures, or was tried
            res.error = self.dispatch.why_none(attempt.provider, attempt.model, attempt.hosts)
            res.error_kind = ErrorKind.CONNECT
            return res
        res.host = lease.shown
        backend = self.pool.get(attempt.provider, lease.url)
        backend.warm(call.timeouts)  # one-time client set-up is ours, not the model's latency
        try:
            await self.limits.acquire(attempt.provider)
        except BaseException:
            self.dispatch.release(lease, ErrorKind.INTERNAL)
            raise
        clock = Clock()
        res.queue_ms = (clock.start - queued) * 1000.0
        t = call.timeouts
        try:
            # The first-token limit counts to the first event that carries content, not to any
            # byte: keep-alive comments (llama.cpp's `: ping`) must not extend it. After the first
            # token the whole-call limit applies. aclosing: a timeout or cancel mid-stream
            # releases the connection at once.
            async with asyncio.timeout(min(t.first_token, t.total)) as limit, \
                    contextlib.aclosing(backend.stream(call)) as events:
                async for event in events:
                    if isinstance(event, (TextDelta, ThinkingDelta, ToolCallDelta)):  # a tool call answers too
                        if clock.first is None:
                            limit.reschedule(asyncio.get_running_loop().time() + max(0.0, t.total - clock.elapsed()))
                        clock.token(answer=not isinstance(event, ThinkingDelta))
                        if not isinstance(event, ToolCallDelta):
                            (text if isinstance(event, TextDelta) else thinking).append(event.text)
                    elif isinstance(event, Done):
                        done = event
                    if on_event is not None:
                        try:
                            on_event(attempt.ref, event)
                        except Exception as exc:  # the caller's failure (a closed pipe), not the model's
                            raise _ConsumerError() from exc
                        if clock.first is not None and not yielded:
                            # The first token may arrive with the rest of the answer in one read:
                            # let the consumer (serve's stream) forward it before the rest is parsed.
                            yielded = True
                            await asyncio.sleep(0)
            if done is None:
                raise BackendError("the stream ended without usage or an end marker", kind=ErrorKind.STREAM, retryable=True)
        except BackendError as exc:
            res.error, res.error_kind, res.retry_after, res.retryable = exc.message, exc.kind, exc.retry_after, exc.retryable
            if exc.kind in RATE_LIMITED:
                self.limits.on_rate_limit(attempt.provider, exc.retry_after)
        except TimeoutError:
            if clock.first is None and t.first_token < t.total:
                res.error = f"no first token within {t.first_token:g}s"
            else:
                res.error = f"no complete answer within {t.total:g}s"
            res.error_kind, res.retryable = ErrorKind.TIMEOUT, True
        except _ConsumerError as exc:
            raise exc.__cause__ from None
        except Exception as exc:  # a backend bug or an unforeseen reply: fail this attempt, try the next
            from .redact import redact

            key = self.config.providers[attempt.provider].usable_key() if attempt.provider in self.config.providers else None
            res.error = redact(f"unexpected failure: {type(exc).__name__}: {exc}", [key])
            res.error_kind = ErrorKind.INTERNAL
        finally:
            self.limits.release(attempt.provider)
            failure = None if done is not None and res.error is None else (res.error_kind or ErrorKind.INTERNAL)
            self.dispatch.release(lease, failure, res.error)
            if lease.pooled and failure in FAIL_OVER and avoid is not None:
                avoid.add(lease.url)
        clock.stop()
        res.text, res.thinking = "".join(text), "".join(thinking)
        if done is not None and res.error is None:
            res.outcome = "ok"
            self.limits.on_success(attempt.provider)
        measure(res, clock, done, attempt.ref, est, self.pricing)
        return res


def call_for(attempt: Attempt, messages: list[dict], system: str | None, *, timeouts: Timeouts | None = None,
             est_input_tokens: int | None = None) -> Call:
    """The provider-neutral call for one attempt: its model, messages and generation options.
    Live attempts stream it; `runner batch --deferred` puts the same body in a provider batch."""
    opts = attempt.options
    return Call(
        model=attempt.model,
        messages=messages,
        system=system,
        max_output_tokens=opts.get("max_output_tokens"),
        temperature=opts.get("temperature"),
        seed=opts.get("seed"),
        think=opts.get("think"),
        top_p=opts.get("top_p"),
        stop=[opts["stop"]] if isinstance(opts.get("stop"), str) else opts.get("stop"),
        json_mode=bool(opts.get("json_mode")),
        tools=opts.get("tools"),
        tool_choice=opts.get("tool_choice"),
        backend_options=attempt.backend_options,
        timeouts=timeouts or Timeouts(),
        est_input_tokens=est_input_tokens,
    )


class _ConsumerError(Exception):
    """Carries an exception raised by the caller's on_event out of the backend's stream."""


def _backoff(tries: int) -> float:
    return min(8.0, 0.5 * (2 ** tries)) * (0.75 + random.random() * 0.5)

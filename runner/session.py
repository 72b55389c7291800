"""The pipeline every command drives: request → profile → availability → plan → execute → log.

`ask`, `batch`, `compare` and `serve` all go through `Session.answer`, so routing, retries,
metering and the run log behave the same everywhere.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any, Callable

from .availability import Availability, gather_availability
from .backends import BackendPool, Call, ErrorKind, Timeouts
from .config import Candidate, Config, Profile
from .estimate import Planner, margin_dependent, request_stats
from .execute import Executor, OnEvent, RunResult
from .limits import Limits
from .meter import AttemptResult
from .pricing import Pricing
from .records import run_summary
from .request import Prepared, Request, user_content
from .router import RoutePlan
from .store import Store, open_store
from .tokens import learning_key

DEFAULT_OUTPUT_TOKENS = 1024
MAX_REPLANS = 2
OVERFLOW_MARGIN = 1.1
COUNT_TIMEOUT_S = 5.0  # an exact count near a window boundary: waiting for a slot included
MAX_EXACT_COUNTS = 3  # candidates counted per request, the first ones in the plan


class StopRun(Exception):
    """Raised by an `on_event` or `on_attempt` callback to end a run at once, trying no other
    model (e.g. the gateway's client already has part of an answer that just failed). The run is
    logged as failed with `reason`; `Session.answer` returns normally."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Session:
    def __init__(self, config: Config, *, limits: Limits | None = None, store: Store | None = None,
                 availability_ttl_s: float | None = None, wire: Callable[[], Any] | None = None) -> None:
        """`availability_ttl_s`: probe keys and Ollama servers again once the last probe is this
        old (a long-lived server sees models pulled later); None probes once per session.
        `wire`: makes what carries each backend's streams (None: httpx; the gateway's aiohttp)."""
        self.config = config
        self.pricing = Pricing(config)
        self.pool = BackendPool(config.providers, config.settings, wire)
        self.limits = limits or Limits(config)
        self.executor = Executor(config, self.pool, self.pricing, self.limits)
        self._store = store
        self._availability: Availability | None = None
        self._probed_at = 0.0
        self.availability_ttl_s = availability_ttl_s
        self._factors: dict[str, float] | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.config.home)
        return self._store

    async def aclose(self) -> None:
        await self.pool.aclose()
        if self._store is not None:
            self._store.close()
            self._store = None

    def profile_for(self, request: Request) -> Profile:
        profile = self.config.profile(request.task)
        if request.model:
            self.config.split_ref(request.model)  # a clear error for a malformed or unknown ref
            # --model bypasses the candidate list but keeps the task's options, system and privacy.
            profile = replace(profile, candidates=(Candidate(request.model),), max_cost_usd=None)
        return profile

    async def availability(self, refs: list[str]) -> Availability:
        """Probed once per session and provider: a batch of many rows asks Ollama once."""
        ttl = self.availability_ttl_s
        if self._availability is not None and ttl is not None and time.monotonic() - self._probed_at > ttl:
            self._availability = None
        if self._availability is None:
            self._probed_at = time.monotonic()
            self._availability = await gather_availability(self.config, refs)
        else:
            known, providers = self._availability.ollama, self.config.providers
            # Only an Ollama server not asked yet needs a probe; keys were read on the first call.
            new = [r for r in refs if r.partition("/")[0] not in known
                   and getattr(providers.get(r.partition("/")[0]), "protocol", None) == "ollama"]
            extra = await gather_availability(self.config, new) if new else None
            if extra is not None and extra.ollama:
                self._availability = replace(self._availability, ollama={**known, **extra.ollama})
        cooling = self.limits.cooling()
        return replace(self._availability, cooling=cooling) if cooling else self._availability

    def token_factors(self) -> dict[str, float]:
        """Estimate corrections learned from the run log (real/estimated input tokens per model
        family); read once per session, and never creates the log just to read it."""
        if self._factors is None:
            self._factors = {}
            if self._store is not None or (self.config.home / "runs.db").exists():
                from .estimate import learned_factors
                from .tokens import LEARN_MIN_ESTIMATE

                self._factors = learned_factors(self.config, self.store.token_counts(min_estimate=LEARN_MIN_ESTIMATE))
        return self._factors

    async def prepare(self, request: Request, availability: Availability | None = None,
                      factors: dict[str, float] | None = None, count: bool = True) -> Prepared:
        """Size and route a request. `count`: where a candidate's fit rests on the estimate's
        margin, ask its server for an exact count first (see `exact_counts`)."""
        profile = self.profile_for(request)
        system = request.system if request.system is not None else profile.system
        messages = request.messages or [{"role": "user", "content": user_content(request.prompt, request.documents)}]
        given = request.options.as_dict()
        output = {**profile.options, **given}.get("max_output_tokens") or DEFAULT_OUTPUT_TOKENS
        if availability is None:
            availability = await self.availability([c.model for c in profile.candidates])
        planner = Planner(self.config, profile, availability, self.pricing.estimate,
                          self.token_factors() if factors is None else factors, int(output),
                          request.local_only, request.max_cost_usd, given)
        history = request.messages
        if history and request.options.tools:  # the tool definitions are read by the model too
            history = [*history, {"role": "system", "content": json.dumps(request.options.tools)}]
        stats = request_stats(request.prompt, request.documents, system, history)
        route = planner.plan(stats)
        if count:
            exact = await self.exact_counts(route, messages, system, request.options.tools)
            if exact:
                route = planner.plan(stats, exact)
        prepared = Prepared(request, profile, messages, system, route, stats, planner)
        if route.too_long and profile.too_long == "split" and request.documents:
            from .longdoc import plan_split

            prepared.split, prepared.split_error = plan_split(prepared)
        return prepared

    async def exact_counts(self, route: RoutePlan, messages: list[dict], system: str | None,
                           tools: list | None = None) -> dict[str, int]:
        """The servers' own input counts of this request, for the candidates whose routing rests on
        the estimate's margin (estimate.margin_dependent: near their window, or an Ollama num_ctx
        step), where counting is free: Anthropic count_tokens, Gemini countTokens, a local
        llama.cpp server's tokenizer. Ollama and hosted OpenAI-compatible APIs have none. Each
        count holds the provider's concurrency slot like a chat call (llama-cpp-python cuts a
        running stream when any request arrives) and has COUNT_TIMEOUT_S, waiting included; a
        count that fails or times out leaves the estimate in charge."""
        refs = [r for r in margin_dependent(route) if self._can_count(r)][:MAX_EXACT_COUNTS]
        if not refs:
            return {}

        async def one(ref: str) -> int | None:
            provider, _, model = ref.partition("/")
            backend = self.pool.get(provider)
            count = getattr(backend, "count_tokens", None)
            if count is None:
                return None
            t = Timeouts(connect=min(COUNT_TIMEOUT_S, self.config.settings.connect_timeout_s),
                         first_token=COUNT_TIMEOUT_S, total=COUNT_TIMEOUT_S)
            call = Call(model=model, messages=messages, system=system, tools=tools or None, timeouts=t)
            try:
                async with asyncio.timeout(COUNT_TIMEOUT_S):
                    await self.limits.acquire(provider)
                    try:
                        n = await count(call)
                    finally:
                        self.limits.release(provider)
            except Exception:  # BackendError, a timeout, an odd reply: the estimate stays
                return None
            return n if isinstance(n, int) and n > 0 else None

        counts = await asyncio.gather(*(one(r) for r in refs))
        return {ref: n for ref, n in zip(refs, counts) if n is not None}

    def _can_count(self, ref: str) -> bool:
        provider = self.config.providers.get(ref.partition("/")[0])
        if provider is None or provider.protocol == "ollama":
            return False
        return provider.protocol != "openai" or provider.local  # llama.cpp servers are local ones

    async def answer(self, prepared: Prepared, *, kind: str = "ask", group_id: str | None = None,
                     item_id: str | None = None, on_event: OnEvent | None = None,
                     on_attempt=None, log: bool = True, on_progress=None,
                     client: str | None = None) -> tuple[RunResult, int | None]:
        """Run a prepared request and log it. `client` names who asked (the gateway's client),
        stored with the run. A callback may raise StopRun to end the run at once."""
        req = prepared.request
        run_id = None
        early: list[dict] = []  # attempts that ended before the run's row was written
        tried: list[AttemptResult] = []
        streaming: list[str] = []  # the model streaming now, if any: its request was sent

        def record(att: AttemptResult) -> None:
            tried.append(att)
            streaming.clear()
            if run_id is not None:
                self.store.add_attempt(run_id, att.record())
            elif log:
                early.append(att.record())
            if on_attempt is not None:
                on_attempt(att)

        def seen(ref: str, event) -> None:
            if not streaming:
                streaming.append(ref)
            if on_event is not None:
                on_event(ref, event)

        async def run(prep: Prepared) -> RunResult:
            if prep.split is not None:
                from .longdoc import run_split

                return await run_split(prep, self.executor, on_event=seen, on_attempt=record,
                                       on_progress=on_progress)
            return await self.executor.run(prep.plan, prep.messages, prep.system, on_event=seen, on_attempt=record)

        current = [prepared]  # the plan now: an overflow plans again

        async def attempts() -> RunResult:
            result = await run(current[0])
            for _ in range(MAX_REPLANS):
                again = None if result.ok else await self._replan_after_overflow(current[0], result)
                if again is None:
                    break
                current[0] = again
                more = await run(again)
                more.attempts = result.attempts + more.attempts
                result = more
            return result

        # The request goes out first and the run's row is written while the model reads it (the
        # first await after sending): the log costs the first token nothing (issue 11). A row
        # that cannot be written cancels the call at once.
        me = asyncio.current_task()
        row_error: list[BaseException] = []

        def write_row(cancel: bool = True) -> None:
            nonlocal run_id
            try:
                run_id = self.store.start_run(
                    kind=kind, task=prepared.profile.name, prompt=req.prompt, system=prepared.system,
                    files=[d.name for d in req.documents], group_id=group_id, item_id=item_id,
                    est_input_tokens=prepared.need.input_tokens, client=client)
                for rec in early:
                    self.store.add_attempt(run_id, rec)
            except BaseException as exc:  # noqa: BLE001 - raised again in the task below
                row_error.append(exc)
                if cancel and me is not None:  # the task is waiting on the model: stop it
                    me.cancel()

        pending_row = asyncio.get_running_loop().call_soon(write_row) if log else None
        try:
            try:
                result = await attempts()
            except asyncio.CancelledError:
                if row_error and me is not None:
                    me.uncancel()
                    raise row_error[0] from None
                raise
            finally:
                if pending_row is not None and run_id is None and not row_error:
                    pending_row.cancel()  # nothing awaited at all: write it now
                    write_row(cancel=False)
            if row_error:
                raise row_error[0]
            prepared = current[0]
        except StopRun as exc:
            result = RunResult(ok=False, attempts=tried, error=exc.reason)
            if run_id is not None:
                self.store.finish_run(run_id, run_summary(result))
            return result, run_id
        except BaseException as exc:
            # Ctrl-C, a cancelled batch, or a bug: the run is closed as failed, never left "running".
            if run_id is not None:
                self._close_abandoned(run_id, exc, current[0], tried, streaming)
            raise
        if not prepared.plan.attempts and prepared.split is None and not result.attempts:
            result.error = no_route_message(prepared.plan)
            if prepared.split_error:
                result.error += f"; splitting the documents did not help: {prepared.split_error}"
        if run_id is not None:
            self.store.finish_run(run_id, run_summary(result))
        return result, run_id

    def _close_abandoned(self, run_id: int, exc: BaseException, prepared: Prepared,
                         recorded: list[AttemptResult], streaming: list[str]) -> None:
        """Close a run that stopped mid-way with what is known: the model that was streaming (its
        request was sent: logged as an interrupted attempt of unknown cost), else the last one
        tried, else the one planned first; the cost of the attempts that finished."""
        why = _why_stopped(exc)
        if streaming:
            self.store.add_attempt(run_id, {"model": streaming[0], "outcome": "failed", "error": why})
        planned = prepared.plan.attempts[0].ref if prepared.plan.attempts else None
        model = streaming[0] if streaming else (recorded[-1].model if recorded else planned)
        costs = [a.cost_usd for a in recorded if a.cost_usd is not None]
        self.store.finish_run(run_id, {"outcome": "failed", "error": why, "model": model,
                                       "cost_usd": sum(costs) if costs else None})

    async def _replan_after_overflow(self, prepared: Prepared, result: RunResult) -> Prepared | None:
        """A model refused a prompt that the estimate said would fit, so the estimate was low for
        that model's tokenizer. Raise its correction past what the refusal proved and plan again:
        the request then goes to a larger window, or is split — never answered from a cut.

        A cut (kind "truncated") is not evidence against the estimate: it is usually a server
        that ignored num_ctx, which a bigger estimate would not fix."""
        factors = dict(prepared.factors)
        changed = False
        for att in result.attempts:
            if att.error_kind != ErrorKind.CONTEXT or not att.est_input_tokens:
                continue
            if att.model.partition("/")[0] not in self.config.providers:
                continue
            if att.num_ctx:
                window = att.num_ctx
            else:
                context = self.config.model_info(att.model).context
                window = (context or 0) - prepared.need.output_tokens
            if window <= 0:
                continue
            key = learning_key(att.model, self.config.is_local(att.model), prepared.need.text_kind)
            old = factors.get(key) or 1.0
            # The real count is above the window: aim past it, and at least 25% past the old guess.
            new = max(old * 1.25, OVERFLOW_MARGIN * window / att.est_input_tokens)
            if new > factors.get(key, 0.0):
                factors[key] = new
                changed = True
        if not changed:
            return None
        again = await self.prepare(prepared.request, prepared.availability, factors=factors, count=False)
        if not again.plan.attempts and again.split is None:
            return None
        return again


def _why_stopped(exc: BaseException) -> str:
    """What the log says of a run that ended by an exception: a cancellation's own message
    (`task.cancel("client disconnected")`), "interrupted", or the bug's name."""
    if isinstance(exc, asyncio.CancelledError):
        return exc.args[0] if exc.args and isinstance(exc.args[0], str) and exc.args[0] else "interrupted"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"internal error: {type(exc).__name__}"


def no_route_message(route: RoutePlan) -> str:
    reasons = "; ".join(f"{s.ref}: {s.reason}" for s in route.skipped)
    return f"no model can take this request for task '{route.task}' ({reasons})"

"""The pipeline every command drives: request → profile → availability → plan → execute → log.

`ask`, `batch` and `compare` all go through `Session.answer`, so routing, retries, metering and
the run log behave the same everywhere.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from .availability import Availability, gather_availability
from .backends import BackendPool, ErrorKind
from .config import Candidate, Config, Profile
from .estimate import Planner, request_stats
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


class Session:
    def __init__(self, config: Config, *, limits: Limits | None = None, store: Store | None = None) -> None:
        self.config = config
        self.pricing = Pricing(config)
        self.pool = BackendPool(config.providers, config.settings)
        self.limits = limits or Limits(config)
        self.executor = Executor(config, self.pool, self.pricing, self.limits)
        self._store = store
        self._availability: Availability | None = None
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
        if self._availability is None:
            self._availability = await gather_availability(self.config, refs)
        else:
            known = self._availability.ollama
            new = [r for r in refs if r.partition("/")[0] not in known]
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
                      factors: dict[str, float] | None = None) -> Prepared:
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
        stats = request_stats(request.prompt, request.documents, system, request.messages)
        route = planner.plan(stats)
        prepared = Prepared(request, profile, messages, system, route, stats, planner)
        if route.too_long and profile.too_long == "split" and request.documents:
            from .longdoc import plan_split

            prepared.split, prepared.split_error = plan_split(prepared)
        return prepared

    async def answer(self, prepared: Prepared, *, kind: str = "ask", group_id: str | None = None,
                     item_id: str | None = None, on_event: OnEvent | None = None,
                     on_attempt=None, log: bool = True, on_progress=None) -> tuple[RunResult, int | None]:
        req = prepared.request
        run_id = None
        if log:
            run_id = self.store.start_run(kind=kind, task=prepared.profile.name, prompt=req.prompt,
                                          system=prepared.system, files=[d.name for d in req.documents],
                                          group_id=group_id, item_id=item_id,
                                          est_input_tokens=prepared.need.input_tokens)

        def record(att: AttemptResult) -> None:
            if run_id is not None:
                self.store.add_attempt(run_id, att.record())
            if on_attempt is not None:
                on_attempt(att)

        async def run(prep: Prepared) -> RunResult:
            if prep.split is not None:
                from .longdoc import run_split

                return await run_split(prep, self.executor, on_event=on_event, on_attempt=record,
                                       on_progress=on_progress)
            return await self.executor.run(prep.plan, prep.messages, prep.system, on_event=on_event, on_attempt=record)

        try:
            result = await run(prepared)
            for _ in range(MAX_REPLANS):
                again = None if result.ok else await self._replan_after_overflow(prepared, result)
                if again is None:
                    break
                prepared = again
                more = await run(again)
                more.attempts = result.attempts + more.attempts
                result = more
        except BaseException as exc:
            # Ctrl-C, a cancelled batch, or a bug: the run is closed as failed, never left "running".
            if run_id is not None:
                why = ("interrupted" if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError))
                       else f"internal error: {type(exc).__name__}")
                self.store.finish_run(run_id, {"outcome": "failed", "error": why})
            raise
        if not prepared.plan.attempts and prepared.split is None and not result.attempts:
            result.error = no_route_message(prepared.plan)
            if prepared.split_error:
                result.error += f"; splitting the documents did not help: {prepared.split_error}"
        if run_id is not None:
            self.store.finish_run(run_id, run_summary(result))
        return result, run_id

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
            key = learning_key(att.model, self.config.is_local(att.model))
            old = factors.get(key) or 1.0
            # The real count is above the window: aim past it, and at least 25% past the old guess.
            new = max(old * 1.25, OVERFLOW_MARGIN * window / att.est_input_tokens)
            if new > factors.get(key, 0.0):
                factors[key] = new
                changed = True
        if not changed:
            return None
        again = await self.prepare(prepared.request, prepared.availability, factors=factors)
        if not again.plan.attempts and again.split is None:
            return None
        return again


def no_route_message(route: RoutePlan) -> str:
    reasons = "; ".join(f"{s.ref}: {s.reason}" for s in route.skipped)
    return f"no model can take this request for task '{route.task}' ({reasons})"

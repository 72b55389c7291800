"""The pipeline every command drives: request → profile → availability → plan → execute → log.

`ask`, `batch` and `compare` all go through `Session.answer`, so routing, retries, metering and
the run log behave the same everywhere.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

from .availability import gather_availability
from .backends import BackendPool
from .config import Candidate, Config, Profile
from .documents import Document
from .errors import UserError
from .execute import AttemptResult, Executor, Limiter, OnEvent, RunResult
from .pricing import Pricing
from .router import Availability, Need, RoutePlan, plan
from .store import Store, open_store

DEFAULT_OUTPUT_TOKENS = 1024


@dataclass
class Request:
    prompt: str
    task: str
    documents: list[Document] = field(default_factory=list)
    system: str | None = None  # --system; otherwise the profile's
    model: str | None = None  # --model: bypass routing
    local_only: bool = False
    max_cost_usd: float | None = None
    options: dict = field(default_factory=dict)  # command-line generation options


def user_content(prompt: str, documents: list[Document]) -> str:
    parts = [f'<document name="{d.name}">\n{d.text}\n</document>' for d in documents]
    parts.append(prompt)
    return "\n\n".join(p for p in parts if p)


@dataclass
class Prepared:
    request: Request
    profile: Profile
    messages: list[dict]
    system: str | None
    need: Need
    plan: RoutePlan
    # Long documents: the size scan, the learned estimate corrections, and the split (map-reduce)
    # when nothing can read the whole and the profile says `too_long: split`.
    stats: Any = None
    factors: dict = field(default_factory=dict)
    availability: Availability | None = None
    split: Any = None  # longdoc.SplitPlan
    split_error: str | None = None


class Session:
    def __init__(self, config: Config, *, limiter: Limiter | None = None, store: Store | None = None) -> None:
        self.config = config
        self.pricing = Pricing(config)
        self.pool = BackendPool(config)
        self.executor = Executor(config, self.pool, self.pricing, limiter=limiter)
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
        now = time.monotonic()
        cooling = {p: f"{p} is cooling down after rate limits" for p, until in self.executor.cooldown.items() if until > now}
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
        from .estimate import build_need, request_stats

        profile = self.profile_for(request)
        system = request.system if request.system is not None else profile.system
        messages = [{"role": "user", "content": user_content(request.prompt, request.documents)}]
        options = {**profile.options, **{k: v for k, v in request.options.items() if v is not None}}
        stats = request_stats(request.prompt, request.documents, system)
        factors = self.token_factors() if factors is None else factors
        need = build_need(stats, [c.model for c in profile.candidates], self.config, factors,
                          int(options.get("max_output_tokens") or DEFAULT_OUTPUT_TOKENS))
        if availability is None:
            availability = await self.availability([c.model for c in profile.candidates])
        route = plan(need, profile, self.config, availability, self.pricing.estimate,
                     local_only=request.local_only, max_cost_usd=request.max_cost_usd, options=request.options)
        prepared = Prepared(request, profile, messages, system, need, route, stats, factors, availability)
        if route.too_long and profile.too_long == "split" and request.documents:
            from .longdoc import plan_split

            prepared.split, prepared.split_error = plan_split(prepared, self, availability, factors)
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

                return await run_split(self, prep, on_event=on_event, on_attempt=record, on_progress=on_progress)
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
        from .tokens import learning_key

        factors = dict(prepared.factors)
        changed = False
        for att in result.attempts:
            if att.error_kind != "context" or not att.est_input_tokens:
                continue
            provider = self.config.providers.get(att.model.partition("/")[0])
            if provider is None:
                continue
            if att.num_ctx:
                window = att.num_ctx
            else:
                context = self.config.model_info(att.model).context
                window = (context or 0) - prepared.need.output_tokens
            if window <= 0:
                continue
            key = learning_key(att.model, provider.local)
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


MAX_REPLANS = 2
OVERFLOW_MARGIN = 1.1


def no_route_message(route: RoutePlan) -> str:
    reasons = "; ".join(f"{s.ref}: {s.reason}" for s in route.skipped)
    return f"no model can take this request for task '{route.task}' ({reasons})"


def run_summary(result: RunResult) -> dict[str, Any]:
    """The run's row: the answering attempt's figures, cost summed over every attempt."""
    ans = result.answer
    known = [a.cost_usd for a in result.attempts if a.cost_usd is not None]
    out: dict[str, Any] = {"outcome": "ok" if result.ok else "failed", "error": None if result.ok else result.error}
    if ans is not None:
        out.update(model=ans.model, text=ans.text, thinking=ans.thinking or None,
                   input_tokens=ans.input_tokens, output_tokens=ans.output_tokens,
                   tokens_estimated=ans.tokens_estimated, ttft_ms=ans.ttft_ms, latency_ms=ans.latency_ms,
                   tokens_per_s=ans.tokens_per_s,
                   cost_usd=None if ans.cost_usd is None else sum(known))
    totals = getattr(result, "totals", None)
    if totals:  # a split document: the run's sums over every chunk and combine call
        out.update(totals)
    return out


def result_json(task: str, result: RunResult, run_id: int | None = None) -> dict[str, Any]:
    """The script contract of `ask --json` (and each row of `log --json`)."""
    s = run_summary(result)
    return {
        "id": run_id,
        "model": s.get("model"),
        "task": task,
        "ok": result.ok,
        "error": s.get("error"),
        "text": s.get("text"),
        "thinking": s.get("thinking"),
        "input_tokens": s.get("input_tokens"),
        "output_tokens": s.get("output_tokens"),
        "tokens_estimated": bool(s.get("tokens_estimated")),
        "ttft_ms": _round(s.get("ttft_ms")),
        "latency_ms": _round(s.get("latency_ms")),
        "tokens_per_s": _round(s.get("tokens_per_s")),
        "cost_usd": s.get("cost_usd"),
        "attempts": [attempt_json(a.record()) for a in result.attempts],
        **({"chunks": result.chunks} if getattr(result, "chunks", None) else {}),
    }


def attempt_json(a: dict[str, Any]) -> dict[str, Any]:
    out = {"model": a["model"], "outcome": a["outcome"]}
    if a.get("error"):
        out["error"] = a["error"]
    if a.get("part"):
        out["part"] = a["part"]
    for key in ("input_tokens", "output_tokens", "ttft_ms", "latency_ms", "cost_usd"):
        out[key] = _round(a.get(key)) if key.endswith("_ms") else a.get(key)
    return out


def _round(v: Any) -> Any:
    return round(v, 1) if isinstance(v, float) else v


def ensure_prompt(prompt: str) -> str:
    if not prompt.strip():
        raise UserError("no prompt: give one as an argument, with -f files, or on standard input")
    return prompt

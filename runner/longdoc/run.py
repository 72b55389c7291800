"""Running a split document: the chunk calls go through the executor (same retries and
fallbacks) at most as many at a time as the provider allows; the partial answers are combined in
a final call, in rounds when even the partial answers are too long for one call. The run log
holds one run (`chunks` = n) whose attempts carry `part` ("chunk 3/8", "combine 1/2", "combine").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from ..aio import maybe_await
from ..backends import TextDelta, ThinkingDelta
from ..estimate import RequestStats, estimator_for
from ..execute import Executor, RunResult
from ..meter import AttemptResult
from ..router import RoutePlan, Skip
from ..tokens import MESSAGE_OVERHEAD, text_stats
from .plan import SAFETY_TOKENS, SplitPlan
from .prompts import COMBINE_INSTRUCTIONS, MERGE_INSTRUCTIONS

if TYPE_CHECKING:
    from ..request import Prepared

MAX_COMBINE_ROUNDS = 6


# --- running --------------------------------------------------------------------------------


class SplitResult(RunResult):
    """A map-reduce run: every chunk and combine attempt, and the run's summed figures."""

    def __init__(self, chunks: int) -> None:
        super().__init__(ok=False)
        self.chunks = chunks
        self.totals: dict[str, Any] = {}
        self.final: AttemptResult | None = None

    @property
    def answer(self) -> AttemptResult | None:
        return self.final

    def total_attempt(self) -> AttemptResult | None:
        """The run's figures in an attempt's shape (for the footer)."""
        if self.final is None:
            return None
        t = self.totals
        return replace(self.final, input_tokens=t.get("input_tokens"), output_tokens=t.get("output_tokens"),
                       ttft_ms=t.get("ttft_ms"), latency_ms=t.get("latency_ms"),
                       tokens_estimated=bool(t.get("tokens_estimated")), cost_usd=t.get("cost_usd"))


Progress = Callable[[str], None]


class _FirstToken:
    """Passes streamed events on, noting when the first token of the final answer arrived."""

    def __init__(self, on_event) -> None:
        self.on_event = on_event
        self.at: float | None = None

    def __call__(self, ref: str, event: Any) -> None:
        if self.at is None and isinstance(event, (TextDelta, ThinkingDelta)):
            self.at = time.perf_counter()
        if self.on_event is not None:
            self.on_event(ref, event)


async def run_split(prepared: "Prepared", executor: Executor, *, on_event=None, on_attempt=None,
                    on_progress: Progress | None = None) -> SplitResult:
    split: SplitPlan = prepared.split
    req = prepared.request
    n = split.n
    result = SplitResult(n)
    start = time.perf_counter()
    say = on_progress or (lambda _msg: None)

    async def record(att: AttemptResult) -> None:
        result.attempts.append(att)
        await maybe_await(on_attempt and on_attempt(att))

    limit = executor.limits.ceiling(split.plans[0].attempts[0].provider)
    say(f"reading {n} chunks with {split.ref}, {limit} at a time")

    if n == 1:  # the documents fit once the question moved after them: no combining needed
        chunk = split.chunks[0]
        messages = [{"role": "user", "content": chunk.content(1, 1, req.prompt)}]
        first = _FirstToken(on_event)
        res = await executor.run(split.plans[0], messages, prepared.system, on_event=first, on_attempt=record, part="chunk 1/1")
        return _finish(result, res, start, first.at)

    partials: list[tuple[str, str] | None] = [None] * n
    done = 0

    async def one(i: int) -> tuple[int, RunResult]:
        nonlocal done
        chunk = split.chunks[i]
        messages = [{"role": "user", "content": chunk.content(i + 1, n, req.prompt)}]
        t0 = time.perf_counter()
        res = await executor.run(split.plans[i], messages, prepared.system, on_attempt=record, part=f"chunk {i + 1}/{n}")
        if res.ok:
            done += 1
            partials[i] = (chunk.label(), res.answer.text)
            say(f"chunk {i + 1} of {n} done ({done}/{n}) · {res.answer.model} · {time.perf_counter() - t0:.1f} s")
        return i, res

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    failed: tuple[int, RunResult] | None = None
    try:
        for fut in asyncio.as_completed(tasks):
            i, res = await fut
            if not res.ok:
                failed = (i, res)  # the rest would answer for only part of the documents
                break
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if failed is not None:
        i, res = failed
        result.error = (f"chunk {i + 1} of {n} ({split.chunks[i].label()}) could not be read, so no answer "
                        f"covers the whole of the documents: {res.error}")
        return _finish(result, None, start, None)

    notes = [p for p in partials if p is not None]
    first = _FirstToken(on_event)
    error, final = await _combine(prepared, executor, notes, n, first, record, say)
    if final is None:
        result.error = error
        return _finish(result, None, start, None)
    return _finish(result, final, start, first.at)


async def _combine(prepared, executor: Executor, notes: list[tuple[str, str]], n: int,
                   on_event, record, say) -> tuple[str | None, RunResult | None]:
    """Combine the notes in one call, or in rounds of groups when they are too long together."""
    req = prepared.request
    for round_no in range(1, MAX_COMBINE_ROUNDS + 1):
        content = _notes_content(COMBINE_INSTRUCTIONS, notes, n, req.prompt)
        route = _plan_for(prepared, content)
        if route.attempts:
            say(f"combining {len(notes)} partial answers with {route.attempts[0].ref}")
            res = await executor.run(route, [{"role": "user", "content": content}], prepared.system,
                                     on_event=on_event, on_attempt=record, part="combine")
            if not res.ok:
                return f"the {len(notes)} partial answers could not be combined: {res.error}", None
            return None, res
        groups = _group_notes(prepared, route, notes, n)
        if groups is None or len(groups) >= len(notes):
            return ("the partial answers are too long to combine: "
                    + "; ".join(f"{s.ref}: {s.reason}" for s in route.skipped)), None
        say(f"combining {len(notes)} partial answers in {len(groups)} groups (round {round_no})")
        merged: list[tuple[str, str] | None] = [None] * len(groups)

        async def merge(j: int, group: list[tuple[str, str]]) -> RunResult:
            text = _notes_content(MERGE_INSTRUCTIONS, group, n, req.prompt)
            res = await executor.run(_plan_for(prepared, text), [{"role": "user", "content": text}],
                                     prepared.system, on_attempt=record, part=f"combine {j + 1}/{len(groups)}")
            if res.ok:
                first, last = group[0][0], group[-1][0]
                merged[j] = (first if first == last else f"{first} … {last}", res.answer.text)
            return res

        results = await asyncio.gather(*(merge(j, g) for j, g in enumerate(groups)))
        bad = next((r for r in results if not r.ok), None)
        if bad is not None:
            return f"the partial answers could not be combined: {bad.error}", None
        notes = [m for m in merged if m is not None]
    return "the partial answers could not be combined in a few rounds", None


def _notes_content(instructions: str, notes: list[tuple[str, str]], n: int, prompt: str) -> str:
    body = "\n\n".join(f'<notes from="{label}">\n{text.strip()}\n</notes>' for label, text in notes)
    return f"{instructions.format(n=n)}\n\n{body}\n\nQuestion: {prompt}"


def _plan_for(prepared, content: str) -> RoutePlan:
    stats = RequestStats((), text_stats(content) + text_stats(prepared.system or ""), prepared.stats.messages)
    return prepared.planner.plan(stats)


def _group_notes(prepared, route: RoutePlan, notes, n) -> list[list[tuple[str, str]]] | None:
    """Consecutive notes in groups that each fit the first candidate that failed only on size."""
    skip: Skip | None = next((s for s in route.skipped if s.too_small and s.context), None)
    if skip is None:
        return None
    est = estimator_for(skip.ref, prepared.planner.config, prepared.factors, prepared.need.text_kind)
    out_tokens = prepared.split.output_tokens
    fixed = est(text_stats(MERGE_INSTRUCTIONS.format(n=n) + prepared.request.prompt + (prepared.system or "")))
    budget = int((skip.context - out_tokens) / (1 + route.need.margin)) - fixed - SAFETY_TOKENS - 2 * MESSAGE_OVERHEAD
    groups: list[list[tuple[str, str]]] = []
    cur: list[tuple[str, str]] = []
    total = 0
    for label, text in notes:
        t = est(text_stats(text)) + 16
        if t > budget:
            return None
        if cur and total + t > budget:
            groups.append(cur)
            cur, total = [], 0
        cur.append((label, text))
        total += t
    if cur:
        groups.append(cur)
    return groups


def _finish(result: SplitResult, final: RunResult | None, start: float, first_token: float | None) -> SplitResult:
    end = time.perf_counter()
    atts = result.attempts
    ans = final.answer if final is not None and final.ok else None
    result.ok = ans is not None
    result.final = ans
    if final is not None and not final.ok and result.error is None:
        result.error = final.error
    known_in = [a.input_tokens for a in atts if a.input_tokens is not None]
    known_out = [a.output_tokens for a in atts if a.output_tokens is not None]
    unknown_cost = any(a.outcome == "ok" and a.cost_usd is None for a in atts)
    t: dict[str, Any] = {
        "chunks": result.chunks,
        "input_tokens": sum(known_in) if known_in else None,
        "output_tokens": sum(known_out) if known_out else None,
        "tokens_estimated": any(a.tokens_estimated for a in atts),
        "latency_ms": (end - start) * 1000.0,
        "cost_usd": None if unknown_cost else sum(a.cost_usd for a in atts if a.cost_usd is not None),
    }
    if ans is not None:
        t.update(model=ans.model, text=ans.text, thinking=ans.thinking or None, tokens_per_s=ans.tokens_per_s,
                 ttft_ms=None if first_token is None else (first_token - start) * 1000.0)
    result.totals = t
    return result

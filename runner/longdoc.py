"""Long documents that no candidate can read at once: split them on their structure, ask each
part, combine the partial answers (map-reduce).

Splitting happens before anything is sent (so `--explain` can say "split into 8 chunks for
MODEL"): each document that doesn't fit is cut at the strongest boundary near the size the
chosen model can take — a PDF page, a Markdown heading, a blank line, a line, a sentence, a
space; a hard cut only inside a run with none of these. Every cut is found by a regex search
in one window of the text, and each chunk is counted once more to check it fits: linear in the
document's size, no per-character Python loop.

Running: the chunk calls go through the session's executor (same retries and fallbacks) at
most as many at a time as the provider allows; the partial answers are combined in a final
call, in rounds when even the partial answers are too long for one call. The run log holds
one run (`chunks` = n) whose attempts carry `part` ("chunk 3/8", "combine 1/2", "combine").
"""

from __future__ import annotations

import asyncio
import re
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from .estimate import Estimator, RequestStats, build_need, document_tag, estimator_for
from .backends import TextDelta, ThinkingDelta
from .execute import AttemptResult, Executor, Limiter, RunResult
from .router import Attempt, RoutePlan, Skip, fmt_tokens, plan
from .tokens import MESSAGE_OVERHEAD, TextStats, text_stats

if TYPE_CHECKING:
    from .session import Prepared, Session

MIN_CHUNK_TOKENS = 512  # below this, a split would mostly repeat the question
SAFETY_TOKENS = 32  # rounding between the chunk's own count and the router's
MAX_COMBINE_ROUNDS = 6

MAP_INSTRUCTIONS = (
    "The documents were too long to read at once, so they are read in {n} parts; this is part {i} "
    "of {n}, and notes from every part will be combined afterwards. From this part only, note what "
    "answers the question below: the relevant facts, figures and short quotes, each with its "
    "document name (and pages where given). If this part holds nothing relevant, say only: "
    "Nothing relevant in this part."
)
COMBINE_INSTRUCTIONS = (
    "The documents were too long to read at once, so they were read in {n} parts and notes were "
    "taken from each part for the question below. The notes follow, in document order. Answer the "
    "question from these notes alone: keep the document names (and pages) they cite, say where "
    "they disagree, and ignore parts with nothing relevant."
)
MERGE_INSTRUCTIONS = (
    "The documents were too long to read at once, so they were read in {n} parts and notes were "
    "taken from each part for the question below. Merge the notes that follow into one set of "
    "notes for that question: keep every relevant fact, figure and quote with its document name "
    "(and pages); drop repetition and parts with nothing relevant. Do not answer yet."
)

# Cut points, strongest first. Each is searched only inside the window where a cut may fall.
_HEADING = re.compile(r"\n(?=#{1,6}[ \t])")  # before a Markdown heading (HTML headings become these)
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*[ \t]+|[\u3002\uff01\uff1f\uff0e][\u300d\u300f\uff09]*")
_CLAUSE = re.compile(r"[,;:\u3001\uff0c\uff1b][ \t]*")
_SPACE = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Piece:
    """A whole document, or one part of a document that was split."""

    name: str
    text: str
    stats: TextStats
    tokens: int  # for the chosen model, tags included
    part: tuple[int, int] | None = None  # (k, m): part k of m of this document
    pages: tuple[int, int] | None = None  # PDF pages (1-based, inclusive)

    def attrs(self) -> str:
        out = ""
        if self.part:
            out += f' part="{self.part[0]} of {self.part[1]}"'
        if self.pages:
            a, b = self.pages
            out += f' pages="{a}"' if a == b else f' pages="{a}-{b}"'
        return out

    def render(self) -> str:
        head, tail = document_tag(self.name, self.attrs())
        return head + self.text.strip("\n") + tail

    def label(self) -> str:
        where = self.name
        if self.pages:
            a, b = self.pages
            where += f" p. {a}" if a == b else f" pp. {a}-{b}"
        elif self.part:
            where += f" part {self.part[0]}/{self.part[1]}"
        return where


@dataclass
class Chunk:
    pieces: list[Piece]
    tokens: int = 0  # documents only, for the chosen model

    def label(self) -> str:
        names = [p.label() for p in self.pieces]
        return names[0] if len(names) == 1 else f"{names[0]} … {names[-1]} ({len(names)} documents)"

    def content(self, i: int, n: int, prompt: str) -> str:
        docs = "\n\n".join(p.render() for p in self.pieces)
        return f"{docs}\n\n{MAP_INSTRUCTIONS.format(i=i, n=n)}\n\nQuestion: {prompt}"


@dataclass
class SplitPlan:
    ref: str  # the model the chunks are sized for
    window: int
    budget: int  # document tokens per chunk, at most
    output_tokens: int
    chunks: list[Chunk]
    plans: list[RoutePlan]  # one per chunk: the model first, then others that fit
    est_cost_usd: float | None
    skipped: list[str] = field(default_factory=list)  # models considered for the split and why not

    @property
    def n(self) -> int:
        return len(self.chunks)


# --- splitting ------------------------------------------------------------------------------


def _last_end(pattern: re.Pattern, text: str, lo: int, hi: int) -> int | None:
    end = None
    for m in pattern.finditer(text, lo, hi):
        end = m.end()
    return end


def find_cut(text: str, lo: int, hi: int, pages: tuple[int, ...] = ()) -> int:
    """Where to end a chunk that must end in (lo, hi]: the strongest boundary, latest first."""
    if pages:
        k = bisect_right(pages, hi) - 1
        if k >= 0 and pages[k] > lo:
            return pages[k]
    for pattern in (_HEADING, _PARAGRAPH, _LINE, _SENTENCE, _CLAUSE, _SPACE):
        end = _last_end(pattern, text, lo, hi)
        if end is not None and end > lo:
            return end
    return hi  # one unbroken run (a hash, a base64 blob): nothing better exists


def split_spans(text: str, tokens: int, target: int, pages: tuple[int, ...] = ()) -> list[tuple[int, int]]:
    """Cut `text` (about `tokens` tokens) into spans of about `target` tokens, on structure."""
    n = len(text)
    if tokens <= target or n < 2:
        return [(0, n)]
    per_char = tokens / n
    size = max(1, int(target / per_char))
    spans, pos = [], 0
    while n - pos > size:
        hi = pos + size
        cut = find_cut(text, pos + max(1, int(size * 0.6)), hi, pages)
        if cut <= pos:
            cut = hi
        spans.append((pos, cut))
        pos = cut
    spans.append((pos, n))
    return spans


def _pages_of(pages: tuple[int, ...], a: int, b: int) -> tuple[int, int] | None:
    if not pages:
        return None
    return bisect_right(pages, a) or 1, bisect_right(pages, max(a, b - 1)) or 1


def split_document(name: str, text: str, stats: TextStats, pages: tuple[int, ...], budget: int,
                   est: Estimator) -> list[Piece]:
    """A document as pieces of at most `budget` tokens (tags included) for `est`'s model."""
    head, tail = document_tag(name, ' part="00 of 00" pages="0000-0000"')
    tag = est(text_stats(head + tail)) + 2
    whole = est(stats) + tag
    if whole <= budget:
        return [Piece(name, text, stats, whole, None, _pages_of(pages, 0, len(text)) if pages else None)]
    room = budget - tag
    parts = -(-whole // room)
    target = min(room, int(whole / parts * 1.08))
    out: list[tuple[int, int, TextStats, int]] = []
    todo = [(0, len(text), whole, target)]
    while todo:
        a, b, tokens, tgt = todo.pop(0)
        sub = text[a:b]
        local_pages = tuple(p - a for p in pages[bisect_left(pages, a):bisect_left(pages, b)]) if pages else ()
        for x, y in split_spans(sub, tokens, tgt, local_pages):
            s = text_stats(sub[x:y])
            t = est(s) + tag
            if t > budget and y - x > 1:
                # Denser than the average (code in prose, a table of figures): cut finer.
                todo.insert(0, (a + x, a + y, t, max(1, int(tgt * room / t * 0.9))))
            else:
                out.append((a + x, a + y, s, t))
    out.sort(key=lambda r: r[0])
    m = len(out)
    return [Piece(name, text[a:b], s, t, (k, m), _pages_of(pages, a, b)) for k, (a, b, s, t) in enumerate(out, 1)]


def pack(pieces: list[Piece], budget: int) -> list[Chunk]:
    """Consecutive pieces into chunks of at most `budget` tokens (small files share a chunk)."""
    chunks: list[Chunk] = []
    cur: list[Piece] = []
    total = 0
    for p in pieces:
        if cur and total + p.tokens > budget:
            chunks.append(Chunk(cur, total))
            cur, total = [], 0
        cur.append(p)
        total += p.tokens
    if cur:
        chunks.append(Chunk(cur, total))
    return chunks


# --- planning -------------------------------------------------------------------------------


def plan_split(prepared: "Prepared", session: "Session", availability, factors: dict[str, float]) -> tuple[SplitPlan | None, str | None]:
    """Size chunks for the first candidate that failed only on size; None and why when none can."""
    req, profile, route = prepared.request, prepared.profile, prepared.plan
    config = session.config
    stats: RequestStats = prepared.stats
    why: list[str] = []
    opts_cli = {k: v for k, v in req.options.items() if v is not None}
    max_cost = req.max_cost_usd if req.max_cost_usd is not None else profile.max_cost_usd
    for skip in route.skipped:
        if not skip.too_small or not skip.context:
            continue
        cand = next((c for c in profile.candidates if c.model == skip.ref), None)
        opts = {**profile.options, **(cand.options if cand else {}), **opts_cli}
        out_tokens = int(opts.get("max_output_tokens") or route.need.output_tokens)
        est = estimator_for(skip.ref, config, factors)
        fixed = text_stats(MAP_INSTRUCTIONS.format(i=99, n=99) + "\n\nQuestion: " + req.prompt + "\n\n") + text_stats(prepared.system or "")
        overhead = est(fixed) + stats.messages * MESSAGE_OVERHEAD + SAFETY_TOKENS
        budget = int((skip.context - out_tokens) / (1 + route.need.margin)) - overhead
        if budget < MIN_CHUNK_TOKENS:
            why.append(f"{skip.ref}: its {fmt_tokens(skip.context)} window leaves no room for the documents "
                       f"beside the question and {fmt_tokens(out_tokens)} of answer")
            continue
        pieces: list[Piece] = []
        for doc, dstats in zip(req.documents, stats.docs):
            pieces.extend(split_document(doc.name, doc.text, dstats, doc.pages, budget, est))
        chunks = pack(pieces, budget)
        plans = [_chunk_plan(prepared, session, availability, factors, c, i, len(chunks))
                 for i, c in enumerate(chunks, 1)]
        bad = next((p for p in plans if all(a.ref != skip.ref for a in p.attempts)), None)
        if bad is not None:
            reason = next((s.reason for s in bad.skipped if s.ref == skip.ref), "not available")
            why.append(f"{skip.ref}: a chunk is still too long ({reason})")
            continue
        # The chunks were sized for this model: it goes first, the others that fit are fallbacks.
        plans = [replace(p, attempts=tuple(sorted(p.attempts, key=lambda a: a.ref != skip.ref))) for p in plans]
        plans = _same_window(plans)
        cost = _estimate_cost(session, plans, skip.ref, len(chunks), out_tokens)
        if max_cost is not None and cost is not None and cost > max_cost:
            why.append(f"{skip.ref}: {len(chunks)} chunks and the combining call would cost ~${cost:.2f}, over max_cost_usd {max_cost:.2f}")
            continue
        return SplitPlan(skip.ref, skip.context, budget, out_tokens, chunks, plans, cost, why), None
    return None, "; ".join(why) or "no candidate can take even a part of the documents"


def _chunk_plan(prepared: "Prepared", session: "Session", availability, factors, chunk: Chunk, i: int, n: int) -> RoutePlan:
    req = prepared.request
    wrap = text_stats(MAP_INSTRUCTIONS.format(i=i, n=n) + "\n\nQuestion: " + req.prompt) + text_stats(prepared.system or "")
    for p in chunk.pieces:
        head, tail = document_tag(p.name, p.attrs())
        wrap = wrap + text_stats(head + tail + "\n\n")
    cstats = RequestStats(tuple(p.stats for p in chunk.pieces), wrap, prepared.stats.messages)
    need = build_need(cstats, [c.model for c in prepared.profile.candidates], session.config, factors,
                      prepared.plan.need.output_tokens)
    return plan(need, prepared.profile, session.config, availability, session.pricing.estimate,
                local_only=req.local_only, max_cost_usd=req.max_cost_usd, options=req.options)


def _same_window(plans: list[RoutePlan]) -> list[RoutePlan]:
    """One num_ctx per model for every chunk: Ollama reloads a model whenever num_ctx changes."""
    biggest: dict[str, int] = {}
    for p in plans:
        for a in p.attempts:
            if "num_ctx" in a.backend_options:
                biggest[a.ref] = max(biggest.get(a.ref, 0), a.backend_options["num_ctx"])
    return [replace(p, attempts=tuple(_with_num_ctx(a, biggest) for a in p.attempts)) for p in plans]


def _with_num_ctx(a: Attempt, biggest: dict[str, int]) -> Attempt:
    if a.ref in biggest and "num_ctx" in a.backend_options and a.context:
        return replace(a, backend_options={**a.backend_options, "num_ctx": min(biggest[a.ref], a.context)})
    return a


def _estimate_cost(session: "Session", plans: list[RoutePlan], ref: str, n: int, out_tokens: int) -> float | None:
    total = 0.0
    for p in plans:
        c = p.attempts[0].est_cost_usd
        if c is None:
            return None
        total += c
    combine = session.pricing.estimate(ref, n * out_tokens + 500, out_tokens)
    return None if combine is None else total + combine * (1 + (n > 20))


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


async def run_split(session: "Session", prepared: "Prepared", *, on_event=None, on_attempt=None,
                    on_progress: Progress | None = None) -> SplitResult:
    split: SplitPlan = prepared.split
    req = prepared.request
    n = split.n
    result = SplitResult(n)
    start = time.perf_counter()
    executor = _bounded_executor(session)
    say = on_progress or (lambda _msg: None)

    async def record(att: AttemptResult) -> None:
        result.attempts.append(att)
        if on_attempt is not None:
            out = on_attempt(att)
            if asyncio.iscoroutine(out):
                await out

    limit = executor.limiter.ceiling(split.plans[0].attempts[0].provider) if hasattr(executor.limiter, "ceiling") else None
    say(f"reading {n} chunks with {split.ref}" + (f", {limit} at a time" if limit else ""))

    if n == 1:  # the documents fit once the question moved after them: no combining needed
        chunk = split.chunks[0]
        messages = [{"role": "user", "content": chunk.content(1, 1, req.prompt)}]
        first_token: list[float] = []

        def stream1(ref: str, event: Any) -> None:
            if not first_token and isinstance(event, (TextDelta, ThinkingDelta)):
                first_token.append(time.perf_counter())
            if on_event is not None:
                on_event(ref, event)

        res = await executor.run(split.plans[0], messages, prepared.system, on_event=stream1, on_attempt=record, part="chunk 1/1")
        return _finish(result, res, start, first_token[0] if first_token else None)

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
    first_token: list[float] = []

    def stream(ref: str, event: Any) -> None:
        if not first_token and isinstance(event, (TextDelta, ThinkingDelta)):
            first_token.append(time.perf_counter())
        if on_event is not None:
            on_event(ref, event)

    error, final = await _combine(session, prepared, executor, notes, n, stream, record, say)
    if final is None:
        result.error = error
        return _finish(result, None, start, None)
    return _finish(result, final, start, first_token[0] if first_token else None)


async def _combine(session, prepared, executor: Executor, notes: list[tuple[str, str]], n: int,
                   on_event, record, say) -> tuple[str | None, RunResult | None]:
    """Combine the notes in one call, or in rounds of groups when they are too long together."""
    req = prepared.request
    for round_no in range(1, MAX_COMBINE_ROUNDS + 1):
        content = _notes_content(COMBINE_INSTRUCTIONS, notes, n, req.prompt)
        route = _plan_for(session, prepared, content)
        if route.attempts:
            say(f"combining {len(notes)} partial answers with {route.attempts[0].ref}")
            res = await executor.run(route, [{"role": "user", "content": content}], prepared.system,
                                     on_event=on_event, on_attempt=record, part="combine")
            if not res.ok:
                return f"the {len(notes)} partial answers could not be combined: {res.error}", None
            return None, res
        groups = _group_notes(session, prepared, route, notes, n)
        if groups is None or len(groups) >= len(notes):
            return ("the partial answers are too long to combine: "
                    + "; ".join(f"{s.ref}: {s.reason}" for s in route.skipped)), None
        say(f"combining {len(notes)} partial answers in {len(groups)} groups (round {round_no})")
        merged: list[tuple[str, str] | None] = [None] * len(groups)

        async def merge(j: int, group: list[tuple[str, str]]) -> RunResult:
            text = _notes_content(MERGE_INSTRUCTIONS, group, n, req.prompt)
            res = await executor.run(_plan_for(session, prepared, text), [{"role": "user", "content": text}],
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


def _plan_for(session, prepared, content: str) -> RoutePlan:
    req = prepared.request
    stats = RequestStats((), text_stats(content) + text_stats(prepared.system or ""), prepared.stats.messages)
    need = build_need(stats, [c.model for c in prepared.profile.candidates], session.config, prepared.factors,
                      prepared.plan.need.output_tokens)
    return plan(need, prepared.profile, session.config, prepared.availability, session.pricing.estimate,
                local_only=req.local_only, max_cost_usd=req.max_cost_usd, options=req.options)


def _group_notes(session, prepared, route: RoutePlan, notes, n) -> list[list[tuple[str, str]]] | None:
    """Consecutive notes in groups that each fit the first candidate that failed only on size."""
    skip: Skip | None = next((s for s in route.skipped if s.too_small and s.context), None)
    if skip is None:
        return None
    est = estimator_for(skip.ref, session.config, prepared.factors)
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


def _bounded_executor(session: "Session") -> Executor:
    """The session's executor, or one sharing its backends with per-provider limits (Ollama
    serves `ollama.num_parallel` requests at a time) when the session has none."""
    ex = session.executor
    if type(ex.limiter) is not Limiter:
        return ex
    from .limits import AdaptiveLimiter

    bounded = Executor(session.config, ex.pool, ex.pricing, limiter=AdaptiveLimiter(session.config), sleep=ex.sleep)
    bounded.cooldown = ex.cooldown
    return bounded


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

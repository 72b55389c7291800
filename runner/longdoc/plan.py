"""Sizing the chunks for a model and routing each: happens before anything is sent, so
`--explain` can say "split into 8 chunks for MODEL"."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..estimate import RequestStats, document_tag, estimator_for
from ..router import Attempt, RoutePlan
from ..tokens import MESSAGE_OVERHEAD, fmt_tokens, text_stats
from .prompts import MAP_INSTRUCTIONS
from .split import Chunk, Piece, pack, split_document

if TYPE_CHECKING:
    from ..request import Prepared

MIN_CHUNK_TOKENS = 512  # below this, a split would mostly repeat the question
SAFETY_TOKENS = 32  # rounding between the chunk's own count and the router's


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


# --- planning -------------------------------------------------------------------------------


def plan_split(prepared: "Prepared") -> tuple[SplitPlan | None, str | None]:
    """Size chunks for the first candidate that failed only on size; None and why when none can."""
    req, profile, route, planner = prepared.request, prepared.profile, prepared.plan, prepared.planner
    config, factors = planner.config, planner.factors
    stats: RequestStats = prepared.stats
    why: list[str] = []
    opts_cli = req.options.as_dict()
    max_cost = req.max_cost_usd if req.max_cost_usd is not None else profile.max_cost_usd
    for skip in route.skipped:
        if not skip.too_small or not skip.context:
            continue
        cand = next((c for c in profile.candidates if c.model == skip.ref), None)
        opts = {**profile.options, **(cand.options if cand else {}), **opts_cli}
        out_tokens = int(opts.get("max_output_tokens") or route.need.output_tokens)
        est = estimator_for(skip.ref, config, factors, route.need.text_kind)
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
        plans = [_chunk_plan(prepared, c, i, len(chunks))
                 for i, c in enumerate(chunks, 1)]
        bad = next((p for p in plans if all(a.ref != skip.ref for a in p.attempts)), None)
        if bad is not None:
            reason = next((s.reason for s in bad.skipped if s.ref == skip.ref), "not available")
            why.append(f"{skip.ref}: a chunk is still too long ({reason})")
            continue
        # The chunks were sized for this model: it goes first, the others that fit are fallbacks.
        plans = [replace(p, attempts=tuple(sorted(p.attempts, key=lambda a: a.ref != skip.ref))) for p in plans]
        plans = _same_window(plans)
        cost = _estimate_cost(planner.pricer, plans, skip.ref, len(chunks), out_tokens)
        if max_cost is not None and cost is not None and cost > max_cost:
            why.append(f"{skip.ref}: {len(chunks)} chunks and the combining call would cost ~${cost:.2f}, over max_cost_usd {max_cost:.2f}")
            continue
        return SplitPlan(skip.ref, skip.context, budget, out_tokens, chunks, plans, cost, why), None
    return None, "; ".join(why) or "no candidate can take even a part of the documents"


def _chunk_plan(prepared: "Prepared", chunk: Chunk, i: int, n: int) -> RoutePlan:
    req = prepared.request
    wrap = text_stats(MAP_INSTRUCTIONS.format(i=i, n=n) + "\n\nQuestion: " + req.prompt) + text_stats(prepared.system or "")
    for p in chunk.pieces:
        head, tail = document_tag(p.name, p.attrs())
        wrap = wrap + text_stats(head + tail + "\n\n")
    return prepared.planner.plan(RequestStats(tuple(p.stats for p in chunk.pieces), wrap, prepared.stats.messages))


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


def _estimate_cost(pricer, plans: list[RoutePlan], ref: str, n: int, out_tokens: int) -> float | None:
    total = 0.0
    for p in plans:
        c = p.attempts[0].est_cost_usd
        if c is None:
            return None
        total += c
    combine = pricer(ref, n * out_tokens + 500, out_tokens)
    return None if combine is None else total + combine * (1 + (n > 20))



"""What every comparison renderer draws (terminal, JSON, Markdown, HTML), decided in one place:
the fastest and cheapest answer of each prompt, the judge's ranks, and per-column summaries
(wins on speed and cost, p50/p95 latency, total cost, failures). Renderers decide nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..stats import Aggregate
from .model import Cell, Column, Comparison, Judgement, PromptItem

COST_EPSILON = 1e-12  # costs this close are a tie (e.g. several local models at $0)
# "Fastest" only for a lead a person notices: 50 ms and 10% ahead of the next answer.
FASTEST_LEAD_MS = 50.0
FASTEST_LEAD_SHARE = 0.10


@dataclass
class CellView:
    p: int
    c: int
    column: Column
    data: dict[str, Any]
    local: bool = False
    fastest: bool = False
    cheapest: bool = False
    rank: int | None = None
    reason: str | None = None  # the judge's

    @property
    def ok(self) -> bool:
        return bool(self.data.get("ok"))

    @property
    def model(self) -> str | None:
        return self.data.get("model")

    @property
    def cut_short(self) -> bool:
        """The answer stopped at the output limit (max tokens): real, but maybe incomplete."""
        return self.ok and self.data.get("finish_reason") == "length"

    @property
    def error(self) -> str:
        """Why it failed; for a one-model column without "every model failed: MODEL:" around it."""
        error = self.data.get("error") or "failed"
        model = self.column.model
        if model:
            prefix = f"every model failed: {model}: "
            if error.startswith(prefix) and "; " not in error[len(prefix):]:
                return error[len(prefix):]
            m = re.match(r"no model can take this request for task '[^']*' \(" + re.escape(model) + r": (.*)\)$", error, re.S)
            if m:
                return m.group(1)
        return error

    @property
    def heading(self) -> str:
        """'openai/gpt-4.1', or for a task column 'coding → anthropic/claude-sonnet-4-6'."""
        task = self.column.task
        if task is None:
            return self.column.key
        return f"{task} → {self.model}" if self.model else f"task {task}"


@dataclass
class PromptView:
    index: int
    prompt: PromptItem
    cells: list[CellView]
    judgement: Judgement | None = None

    @property
    def judge_labels(self) -> str:
        """'A = openai/gpt-4.1, B = …': how the judge saw the answers (its reasons may use the letters)."""
        if self.judgement is None or not self.judgement.labels:
            return ""
        return ", ".join(f"{letter} = {self.cells[c].heading}" for letter, c in self.judgement.labels.items())

    @property
    def title(self) -> str:
        return f"Prompt {self.index + 1}" + (f" ({self.prompt.label})" if self.prompt.label else "")


@dataclass
class ColumnSummary:
    column: Column
    label: str
    models: list[str]  # the models that answered (a task column may use several)
    local: bool
    cells: int = 0
    ok: int = 0
    failed: int = 0
    fastest_wins: int = 0
    cheapest_wins: int = 0
    p50_ttft_ms: float | None = None
    p95_ttft_ms: float | None = None
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    tokens_per_s: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # sum of known costs; None when no answer's price is known
    unknown_cost: int = 0  # answers whose price is unknown (not in cost_usd)
    estimated: int = 0  # answers whose token counts (and so cost) are estimates
    judge_wins: int = 0
    mean_rank: float | None = None

    def json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "column"}
        out["column"] = self.column.key
        for k, v in out.items():
            if isinstance(v, float) and k != "cost_usd":
                out[k] = round(v, 1) if k != "mean_rank" else round(v, 2)
        return out


@dataclass
class JudgeSummary:
    model: str
    calls: int = 0
    failed: int = 0
    cost_usd: float | None = None
    unknown_cost: int = 0


@dataclass
class Report:
    comparison: Comparison
    prompts: list[PromptView]
    columns: list[ColumnSummary]
    judge: JudgeSummary | None = None
    total_cost_usd: float | None = None  # the compared answers only; the judge's is separate
    failures: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.comparison.id

    @property
    def single(self) -> bool:
        return len(self.prompts) == 1


def build_report(comp: Comparison, is_local: Callable[[str | None], bool] = lambda ref: False) -> Report:
    """`is_local`: Config.is_local, so local answers show as such."""
    prompts = []
    for p, item in enumerate(comp.prompts):
        views = []
        for c, column in enumerate(comp.columns):
            cell = comp.cell(p, c) or Cell({"ok": False, "error": "no result (not in the log)", "model": column.model})
            views.append(CellView(p, c, column, cell.data, local=is_local(cell.data.get("model") or column.model)))
        _mark(views)
        judgement = comp.judgements.get(p)
        if judgement is not None:
            for v in views:
                v.rank = judgement.ranks.get(v.c)
                v.reason = judgement.reasons.get(v.c)
        prompts.append(PromptView(p, item, views, judgement))
    columns = [_summarise(c, col, [pv.cells[c] for pv in prompts], is_local) for c, col in enumerate(comp.columns)]
    known = [v.data["cost_usd"] for pv in prompts for v in pv.cells if v.data.get("cost_usd") is not None]
    report = Report(comp, prompts, columns, total_cost_usd=sum(known) if known else None,
                    failures=sum(not v.ok for pv in prompts for v in pv.cells))
    if comp.judge:
        report.judge = _judge_summary(comp)
    return report


def _mark(views: list[CellView]) -> None:
    """Fastest: the lowest total latency, when it leads the next answer by a margin a person
    notices (FASTEST_LEAD_*). Cheapest: the lowest known cost (ties all marked). Only when at
    least two answers compete."""
    ok = [v for v in views if v.ok]
    if len(ok) < 2:
        return
    timed = sorted((v for v in ok if v.data.get("latency_ms") is not None), key=lambda v: v.data["latency_ms"])
    if len(timed) >= 2:
        best, second = timed[0].data["latency_ms"], timed[1].data["latency_ms"]
        if second - best >= max(FASTEST_LEAD_MS, FASTEST_LEAD_SHARE * second):
            timed[0].fastest = True
    priced = [v for v in ok if v.data.get("cost_usd") is not None]
    if priced:  # the lowest *known* cost; an unknown price is never assumed lower
        low = min(v.data["cost_usd"] for v in priced)
        cheapest = [v for v in priced if v.data["cost_usd"] - low <= COST_EPSILON]
        if len(cheapest) < len(ok):  # everyone tied is no win
            for v in cheapest:
                v.cheapest = True


def _summarise(c: int, column: Column, cells: list[CellView], is_local) -> ColumnSummary:
    ok = [v for v in cells if v.ok]
    models = list(dict.fromkeys(v.model for v in ok if v.model))
    label = column.key if column.task is None else f"task {column.task}"
    s = ColumnSummary(column, label, models, local=bool(models) and all(is_local(m) for m in models))
    agg = Aggregate(label)
    for v in cells:
        agg.add(v.data)
    s.cells, s.ok, s.failed = agg.calls, agg.ok, agg.failed
    s.fastest_wins = sum(v.fastest for v in cells)
    s.cheapest_wins = sum(v.cheapest for v in cells)
    s.p50_ttft_ms, s.p95_ttft_ms = agg.p("ttft", 50), agg.p("ttft", 95)
    s.p50_latency_ms, s.p95_latency_ms = agg.p("latency", 50), agg.p("latency", 95)
    s.tokens_per_s = agg.p("tps", 50)
    s.input_tokens, s.output_tokens = agg.input_tokens, agg.output_tokens
    s.cost_usd = agg.cost_usd if agg.priced else None
    s.unknown_cost = agg.unknown_cost
    s.estimated = agg.estimated
    ranks = [v.rank for v in cells if v.rank is not None]
    s.judge_wins = sum(1 for r in ranks if r == 1)
    s.mean_rank = sum(ranks) / len(ranks) if ranks else None
    return s


def _judge_summary(comp: Comparison) -> JudgeSummary:
    js = JudgeSummary(comp.judge or "?")
    called = [j for j in comp.judgements.values() if j.data is not None]
    js.calls = len(called)
    js.failed = sum(1 for j in called if j.error)
    costs = [j.cost_usd for j in called if j.cost_usd is not None]
    js.cost_usd = sum(costs) if costs else None
    js.unknown_cost = sum(1 for j in called if j.cost_usd is None and j.data and j.data.get("ok"))
    return js

"""`runner compare --md FILE`: Markdown tables (summary, then each prompt's metrics) and the answers,
each quoted under its model's heading so an answer's own headings cannot break the document.

Markdown passes raw HTML through, so every prompt, answer, error and name is written with `<`, `>`
and `&` as entities (outside code, where Markdown shows text as it is): a prompt's `<script>`
is shown, never run."""

from __future__ import annotations

import re
from html import escape

from ..compare.report import CellView, Report
from . import fmt_cost, fmt_count, fmt_ms, meta_line
from .runlog import est, pair

CUT = "stopped at max tokens"


def render_markdown(report: Report) -> str:
    comp = report.comparison
    lines = [f"# Comparison {md_text(comp.id)}", "", md_text(meta_line(report)), ""]
    lines += ["## Summary", "", *summary_table(report), ""]
    if report.judge is not None:
        j = report.judge
        lines += [f"Ranked by {md_text(j.model)} ({j.calls} call{'s' if j.calls != 1 else ''}"
                  + (f", {j.failed} failed" if j.failed else "")
                  + f"); the judge's cost, {fmt_cost(j.cost_usd)}, is not included in the models' costs.", ""]
    for pv in report.prompts:
        lines += [f"## {md_text(pv.title)}", "", *_quote(pv.prompt.text), ""]
        if pv.prompt.files:
            lines += [f"Documents: {md_text(', '.join(pv.prompt.files))}", ""]
        if pv.judgement is not None and pv.judgement.error:
            lines += [f"Judge: {md_text(pv.judgement.error)}", ""]
        elif pv.judge_labels:
            lines += [f"The judge saw the answers as {md_text(pv.judge_labels)}.", ""]
        lines += [*prompt_table(pv.cells, report.judge is not None), ""]
        for v in pv.cells:
            lines += [f"### {md_text(v.heading)}", ""]
            if not v.ok:
                lines += [f"**failed:** {md_text(v.error)}", ""]
                continue
            if v.cut_short:
                lines += [f"*{CUT}: the answer may be incomplete.*", ""]
            if v.data.get("thinking"):
                lines += ["<details><summary>Thinking</summary>", "", "<pre>" + escape(v.data["thinking"]) + "</pre>",
                          "", "</details>", ""]
            lines += [*_quote(v.data.get("text") or ""), ""]
            if v.reason:
                lines += [f"*Judge:* {md_text(v.reason)}", ""]
    lines.append(f"Re-render with `runner compare --from-log {comp.id}`.")
    return "\n".join(lines) + "\n"



def summary_table(report: Report) -> list[str]:
    judged = report.judge is not None
    head = ["model", "answers", "failed", "fastest", "cheapest", "p50 first token", "p50 total", "p95 total",
            "tok/s", "tokens in / out", "cost"] + (["judge wins", "mean rank"] if judged else [])
    rows = []
    for s in report.columns:
        label = s.label + (f" ({', '.join(s.models)})" if s.column.task and s.models else "")
        row = [label, str(s.ok), str(s.failed), str(s.fastest_wins), str(s.cheapest_wins), fmt_ms(s.p50_ttft_ms),
               fmt_ms(s.p50_latency_ms), fmt_ms(s.p95_latency_ms), f"{s.tokens_per_s:.1f}" if s.tokens_per_s else "–",
               pair(f"{s.input_tokens:,}", f"{s.output_tokens:,}", s.estimated > 0, " / ") if s.ok else "–",
               est(fmt_cost(s.cost_usd, s.local), s.estimated > 0 and not s.local) if s.ok else "–"]
        if judged:
            row += [str(s.judge_wins), f"{s.mean_rank:.2f}" if s.mean_rank is not None else "–"]
        rows.append(row)
    return table(head, rows, right_from=1)


def prompt_table(cells: list[CellView], judged: bool) -> list[str]:
    head = ["model", "outcome", "first token", "total", "tok/s", "tokens in / out", "cost", "marks"] + (["rank"] if judged else [])
    rows = []
    for v in cells:
        d = v.data
        marks = ", ".join(m for m, on in (("fastest", v.fastest), ("cheapest", v.cheapest), (CUT, v.cut_short)) if on)
        if v.ok:
            guessed = bool(d.get("tokens_estimated"))
            row = [v.heading, "ok", fmt_ms(d.get("ttft_ms")), fmt_ms(d.get("latency_ms")),
                   f"{d['tokens_per_s']:.1f}" if d.get("tokens_per_s") else "–",
                   f"{est(fmt_count(d.get('input_tokens')), guessed)} / {est(fmt_count(d.get('output_tokens')), guessed)}",
                   est(fmt_cost(d.get("cost_usd"), v.local), guessed and not v.local), marks]
        else:
            row = [v.heading, "failed: " + v.error, "–", "–", "–", "–", "–", ""]
        if judged:
            row.append(str(v.rank) if v.rank is not None else "–")
        rows.append(row)
    return table(head, rows, right_from=2, left=("marks",))


def table(head: list[str], rows: list[list[str]], right_from: int = 1, left: tuple[str, ...] = ()) -> list[str]:
    align = ["---" if i < right_from or h in left else "--:" for i, h in enumerate(head)]
    return ["| " + " | ".join(_cell(h) for h in head) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)]


def _cell(text: str) -> str:
    return md_text(" ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|"))


_CODE = re.compile(r"(^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\2[ \t]*$|\Z)|`[^`\n]+`)", re.S | re.M)


def md_text(text: str) -> str:
    """Text with `<`, `>` and `&` as entities outside code blocks and code spans, where Markdown
    (and the HTML it passes through) would otherwise act on them."""
    out, pos = [], 0
    for m in _CODE.finditer(text):
        out.append(escape(text[pos:m.start()], quote=False))
        out.append(m.group(0))
        pos = m.end()
    out.append(escape(text[pos:], quote=False))
    return "".join(out)


def _quote(text: str) -> list[str]:
    return [("> " + line).rstrip() for line in (md_text(text.strip("\n")) or "").split("\n")]

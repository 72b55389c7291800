"""The comparison in the terminal (rich): answers side by side when the terminal is wide enough,
stacked panels when not; for a prompt set, a prompts × models matrix and a summary per model.

All model and user text goes through `Text` (never markup), so an answer cannot restyle the screen.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..compare.report import CellView, PromptView, Report
from . import fmt_cost, fmt_count, fmt_ms
from .fit import LATE, Alt, Col, fit_table, fits
from .runlog import est, pair

MIN_SIDE_BY_SIDE = 100  # narrower terminals stack the answers
MIN_COLUMN = 36  # each side-by-side column needs at least this many cells
THINKING_EXCERPT = 280
MAX_FAILURES_LISTED = 10


def side_by_side(width: int, n: int) -> bool:
    return n > 1 and width >= MIN_SIDE_BY_SIDE and (width - 3 * n - 1) // n >= MIN_COLUMN


def render_terminal(report: Report, console: Console, *, answers: bool | None = None) -> None:
    show_answers = report.single if answers is None else answers
    if show_answers:
        for pv in report.prompts:
            if not report.single:
                console.rule(Text(pv.title, style="bold"))
                console.print(Text(_excerpt(pv.prompt.text, 300), style="italic"))
            console.print(prompt_answers(pv, console.width))
    if not report.single:
        console.print(matrix(report, console.width))
        _failures(report, console)
        console.print(summary(report, console.width))
    elif not show_answers:
        _failures(report, console)
    if report.judge is not None:
        j = report.judge
        line = Text(f"Judge {j.model}: {j.calls} call{'s' if j.calls != 1 else ''}", style="dim")
        if j.failed:
            line.append(f", {j.failed} failed", style="dim")
        line.append(f", {fmt_cost(j.cost_usd)} — not included in the models' costs", style="dim")
        for pv in report.prompts:
            if pv.judgement is not None and pv.judgement.error and report.single:
                line.append(f" ({pv.judgement.error})", style="dim")
            elif report.single and pv.judge_labels:
                line.append(f"; it saw the answers as {pv.judge_labels}", style="dim")
        console.print(line)
    if report.single and report.total_cost_usd is not None:
        console.print(Text(f"Total cost {fmt_cost(report.total_cost_usd)}", style="dim"))


CUT = "stopped at max tokens"


def prompt_answers(pv: PromptView, width: int):
    if side_by_side(width, len(pv.cells)):
        table = Table(expand=True, box=box.SQUARE, header_style="", padding=(0, 1))
        for v in pv.cells:
            table.add_column(header(v), ratio=1, vertical="top", overflow="fold")
        if any(v.ok for v in pv.cells):
            table.add_row(*(metrics(v) for v in pv.cells), end_section=True)
        table.add_row(*(body(v) for v in pv.cells))
        return table
    panels = []
    for v in pv.cells:
        parts = [header(v, uniform=False)] + ([metrics(v)] if v.ok else []) + [Text(""), body(v)]
        panels.append(Panel(Group(*parts), box=box.SQUARE, expand=True, border_style="red" if not v.ok else ""))
    return Group(*panels)


def header(v: CellView, uniform: bool = True) -> Text:
    """The model, then its marks (fastest, cheapest, judge's rank, failed) on a line of their own
    (kept even when empty if `uniform`, so side-by-side headers line up)."""
    t = Text(v.heading, style="bold")
    marks = []
    if v.fastest:
        marks.append(("⚡ fastest", "yellow"))
    if v.cheapest:
        marks.append(("◆ cheapest", "green"))
    if v.rank is not None:
        marks.append((f"judge #{v.rank}", "cyan"))
    if v.cut_short:
        marks.append((f"✂ {CUT}", "yellow"))
    if not v.ok:
        marks.append(("✗ failed", "bold red"))
    if marks or uniform:
        t.append("\n")
    for i, (m, style) in enumerate(marks):
        t.append(("  " if i else "") + m, style=style)
    return t


def metrics(v: CellView) -> Text:
    d = v.data
    if not v.ok:
        return Text("")
    t = Text(f"first token {fmt_ms(d.get('ttft_ms'))} · total {fmt_ms(d.get('latency_ms'))}\n", style="dim")
    tps = f"{d['tokens_per_s']:.1f} tok/s" if d.get("tokens_per_s") else "– tok/s"
    guessed = bool(d.get("tokens_estimated"))
    t.append(f"{tps} · {est(fmt_count(d.get('input_tokens')), guessed)} in / "
             f"{est(fmt_count(d.get('output_tokens')), guessed)} out · "
             f"{est(fmt_cost(d.get('cost_usd'), v.local), guessed and not v.local)}", style="dim")
    return t


def body(v: CellView):
    d = v.data
    if not v.ok:
        return Text(v.error, style="red")
    parts = []
    thinking = (d.get("thinking") or "").strip()
    if thinking:
        parts.append(Text("thinking: " + _excerpt(thinking, THINKING_EXCERPT), style="dim italic"))
    parts.append(Text(d.get("text") or ""))
    if v.reason:
        parts.append(Text(f"\njudge: {v.reason}", style="cyan"))
    return Group(*parts) if len(parts) > 1 else parts[0]


def matrix(report: Report, width: int) -> Table:
    """Prompts × models, a model a column; when they do not fit side by side, a row per prompt and
    model instead, so no model is ever left out."""
    legend = ("⚡ fastest · ◆ cheapest" + (" · #n judge rank" if report.judge else "") + " · ✂ stopped at max tokens"
              " · ✗ failed")
    options = {"title": "Answers: total latency · cost", "caption": legend, "caption_justify": "left"}
    cols = [Col("#"), Col("prompt", "left", text=True)]
    cols += [Col(s.label, short=_two_lines(s.label)) for s in report.columns]
    rows = []
    for pv in report.prompts:
        row = [str(pv.index + 1), " ".join(pv.prompt.text.split())]
        for v in pv.cells:
            if not v.ok:
                row.append(Alt(Text("✗ " + _excerpt(v.error, 24), style="red"), Text("✗ failed", style="red")))
                continue
            time_cost = f"{fmt_ms(v.data.get('latency_ms'))} · {_cost(v)}"
            row.append(Alt(_marked(Text(time_cost), v), _marked(Text(time_cost.replace(" · ", "\n")), v)))
        rows.append(row)
    if fits(cols, rows, width):
        return fit_table(cols, rows, width, **options)
    long_cols = [Col("#"), Col("prompt", "left", text=True, drop=1), Col("model", "left", name=True), Col("total"),
                 Col("cost"), Col("", "left")]
    long_rows = []
    for pv, row in zip(report.prompts, rows):
        for i, v in enumerate(pv.cells):
            first = i == 0
            label = v.heading if v.column.task else v.column.key
            if v.ok:
                marks = _marked(Text(""), v)
                marks.plain = marks.plain.strip()
                long_rows.append([row[0] if first else "", row[1] if first else "", label,
                                  fmt_ms(v.data.get("latency_ms")), _cost(v), marks])
            else:
                long_rows.append([row[0] if first else "", row[1] if first else "", label,
                                  Text("✗ failed", style="red"), "", ""])
    return fit_table(long_cols, long_rows, width, **options)


def _two_lines(label: str) -> str:
    provider, sep, rest = label.partition("/")
    return f"{provider}/\n{rest}" if sep else label


def _cost(v: CellView) -> str:
    return est(fmt_cost(v.data.get("cost_usd"), v.local), bool(v.data.get("tokens_estimated")) and not v.local)


def _marked(t: Text, v: CellView) -> Text:
    if v.fastest:
        t.append(" ⚡", style="yellow")
    if v.cheapest:
        t.append(" ◆", style="green")
    if v.rank is not None:
        t.append(f" #{v.rank}", style="cyan")
    if v.cut_short:
        t.append(" ✂", style="yellow")
    return t


def summary(report: Report, width: int) -> Table:
    judged = report.judge is not None
    cols = [Col("model", "left", name=True), Col("ok"), Col("failed", short="fail"), Col("fastest", short="⚡"),
            Col("cheapest", short="◆"), Col("p50 first", short="p50\nfirst", drop=3),
            Col("p50 total", short="p50\ntotal"), Col("p95 total", short="p95\ntotal", drop=LATE + 2),
            Col("tok/s", drop=LATE + 1), Col("tokens in/out", short="tokens\nin/out", drop=LATE), Col("cost")]
    if judged:
        cols += [Col("judge wins", short="judge\nwins"), Col("mean rank", short="mean\nrank", drop=2)]
    rows = []
    for s in report.columns:
        label = Text(s.label)
        if s.column.task and s.models:
            label.append("\n" + "\n".join(s.models), style="dim")
        guessed = s.estimated > 0
        cost = est(fmt_cost(s.cost_usd, s.local), guessed and not s.local)
        cost += f" +{s.unknown_cost} unknown" if s.unknown_cost and s.cost_usd is not None else ""
        row: list = [label, str(s.ok), Text(str(s.failed), style="red" if s.failed else ""), str(s.fastest_wins),
                     str(s.cheapest_wins), fmt_ms(s.p50_ttft_ms), fmt_ms(s.p50_latency_ms), fmt_ms(s.p95_latency_ms),
                     f"{s.tokens_per_s:.1f}" if s.tokens_per_s else "–",
                     pair(f"{s.input_tokens:,}", f"{s.output_tokens:,}", guessed) if s.ok else "–", cost if s.ok else "–"]
        if judged:
            row += [str(s.judge_wins), f"{s.mean_rank:.2f}" if s.mean_rank is not None else "–"]
        rows.append(row)
    total = f"Total {fmt_cost(report.total_cost_usd)}" + (f" · {report.failures} failed" if report.failures else "")
    return fit_table(cols, rows, width, title="Per model", caption=total, caption_justify="left")


def _failures(report: Report, console: Console) -> None:
    failed = [(pv, v) for pv in report.prompts for v in pv.cells if not v.ok]
    for pv, v in failed[:MAX_FAILURES_LISTED]:
        line = Text("✗ ", style="red")
        line.append(f"{pv.title}, {v.heading}: ", style="bold")
        line.append(v.error)
        console.print(line)
    if len(failed) > MAX_FAILURES_LISTED:
        console.print(Text(f"… and {len(failed) - MAX_FAILURES_LISTED} more failures (see --json or the report)", style="dim"))


def _excerpt(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


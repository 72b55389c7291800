"""What `runner batch` shows: bad rows, a progress bar (terminal only), the dry-run routing and
the end-of-batch table. Reads the Batch's counters; decides nothing."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from rich.markup import escape

from ..batch import Batch
from . import err, fmt_cost, fmt_count, fmt_ms, out, plural
from ..tokens import fmt_tokens
from .fit import LATE, Alt, Col, fit_table
from .runlog import est, pair

DRY_RUN_CHUNK = 1000  # rows per table of the --dry-run listing (each sized to its rows)

BAD_ROWS_SHOWN = 20


def bad_rows(batch: Batch) -> None:
    scan = batch.scan
    for b in scan.bad[:BAD_ROWS_SHOWN]:
        who = f" ({escape(b.id)})" if b.id else ""
        err.print(f"[yellow]skipped[/] {escape(str(batch.path))}, line {b.line}{who}: {escape(b.error)}")
    if scan.bad_count > BAD_ROWS_SHOWN:
        err.print(f"[yellow]…and {scan.bad_count - BAD_ROWS_SHOWN:,} more bad rows[/] (all of them: --json)")


class ProgressView:
    """A rich progress bar on stderr while the batch runs; nothing at all when stderr is not a terminal.

    The counters (failed, running, tokens, cost) are read from the Batch whenever the bar
    redraws (8 times a second), so the batch pays nothing per row for them; the bar's position
    (and so the ETA) is fed at most 10 times a second. On a narrow terminal the bar leaves out
    what matters least (elapsed time, then the label and the tokens) so it stays on one line."""

    def __init__(self, batch: Batch, enabled: bool | None = None, console=None) -> None:
        self.batch = batch
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.console = console or err
        self._progress = None
        self._task = None
        self._last = 0.0

    def columns(self, width: int) -> list:
        from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.table import Column
        from rich.text import Text

        batch = self.batch
        wide, roomy = width >= 100, width >= 72

        class Counters(ProgressColumn):
            def render(self, task) -> Text:
                parts = [f"[red]✗ {batch.failed:,}[/]", f"▶ {batch.running:,}"]
                if roomy:
                    parts.append(f"{fmt_tokens(batch.tokens)} tok")
                return Text.from_markup(" · ".join(parts + [fmt_cost(batch.cost)]))

        # The bar takes what the text leaves (ratio), so the counters are never the ones cut.
        bar = BarColumn(bar_width=None, table_column=Column(ratio=1))
        cols = ([TextColumn("[bold]batch[/]")] if roomy else []) + [bar, MofNCompleteColumn(), Counters()]
        if wide:
            cols.append(TimeElapsedColumn())
        return cols + [TextColumn("ETA"), TimeRemainingColumn()]

    def __enter__(self) -> "ProgressView":
        if not self.enabled:
            return self
        from rich.progress import Progress

        self._progress = Progress(*self.columns(self.console.width), console=self.console, transient=False,
                                  refresh_per_second=8, expand=True)
        self._progress.start()
        self._task = self._progress.add_task("batch", total=self.batch.scan.todo)
        self.batch.on_change = self.update
        return self

    def update(self, force: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last >= 0.1:
            self._last = now
            self._progress.update(self._task, completed=self.batch.done)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self.update(force=True)
            self._progress.stop()
            self.batch.on_change = None


# --- dry run ------------------------------------------------------------------------------


async def dry_run(batch: Batch, as_json: bool) -> int:
    from . import print_json

    rows: list[dict[str, Any]] = []
    per_model: dict[str, dict[str, Any]] = {}
    total = 0.0
    unknown = 0
    no_route = 0
    listing: list[list[Any]] = []

    def flush() -> None:
        if listing:
            out.print(fit_table(DRY_COLS, listing, out.width))
            listing.clear()

    async for row, prepared, error in batch.plan_rows():
        first = prepared.plan.attempts[0] if prepared and prepared.plan.attempts else None
        entry: dict[str, Any] = {"id": row.id, "line": row.line,
                                 "task": prepared.profile.name if prepared else None,
                                 "model": first.ref if first else None,
                                 "fallbacks": [a.ref for a in prepared.plan.attempts[1:]] if prepared else [],
                                 "est_cost_usd": first.est_cost_usd if first else None,
                                 "input_tokens": prepared.need.input_tokens if prepared else None}
        if first is None:
            no_route += 1
            if prepared is not None:
                from ..session import no_route_message

                error = no_route_message(prepared.plan)
            entry["error"] = error
        else:
            m = per_model.setdefault(first.ref, {"model": first.ref, "rows": 0, "est_cost_usd": 0.0, "unknown": 0})
            m["rows"] += 1
            if first.est_cost_usd is None:
                m["unknown"] += 1
                unknown += 1
            else:
                m["est_cost_usd"] += first.est_cost_usd
                total += first.est_cost_usd
        if as_json:
            rows.append(entry)
        else:
            from rich.text import Text

            model = first.ref + (f" (+{len(entry['fallbacks'])})" if entry["fallbacks"] else "") if first else Text("✗ no route", style="red")
            cost = fmt_cost(first.est_cost_usd, first.local) if first else ""
            listing.append([row.id, str(row.line), entry["task"] or "–", model, cost])
            if first is None:
                listing.append(["", "", "", Text(error or "", style="red"), ""])
            if len(listing) >= DRY_RUN_CHUNK:
                flush()
    summary = {
        "file": str(batch.path), "out": str(batch.out_path) if batch.out_path else "-",
        "rows": batch.scan.rows, "bad_rows": batch.scan.bad_count, "already_done": batch.scan.rows - batch.scan.todo,
        "to_run": batch.scan.todo, "no_route": no_route, "est_cost_usd": round(total, 6),
        "unknown_price_rows": unknown, "spent_usd": round(batch.state.cost_usd, 6), "max_cost_usd": batch.o.max_cost,
        "models": sorted(({**m, "est_cost_usd": round(m["est_cost_usd"], 6)} for m in per_model.values()),
                         key=lambda m: -m["rows"]),
        "bad": [{"line": b.line, "id": b.id, "error": b.error} for b in batch.scan.bad[:100]],
    }
    if as_json:
        print_json({**summary, "plan": rows})
        return 0
    flush()
    if summary["models"]:
        cols = [Col("first model", "left", name=True), Col("rows"), Col("est. cost")]
        table_rows = [[m["model"], fmt_count(m["rows"]),
                       fmt_cost(m["est_cost_usd"]) + (f" + {m['unknown']:,} unknown" if m["unknown"] else "")]
                      for m in summary["models"]]
        out.print()
        out.print(fit_table(cols, table_rows, out.width))
    done = summary["already_done"]
    out.print(f"{plural(batch.scan.todo, 'row')} to send"
              + (f" ({fmt_count(done)} already answered in {escape(summary['out'])})" if done else "")
              + f" · estimated total {fmt_cost(total)}"
              + (f" + {plural(unknown, 'row')} of unknown price" if unknown else "")
              + (f" · [red]{plural(no_route, 'row')} with no model that can take {'it' if no_route == 1 else 'them'}[/]"
                 if no_route else "")
              + " · nothing was sent")
    if batch.o.max_cost is not None:
        spent = batch.state.cost_usd
        fits = spent + total <= batch.o.max_cost
        out.print(f"--max-cost {fmt_cost(batch.o.max_cost)}: " + (
            "fits" if fits else "[yellow]the batch would stop before the end[/]")
            + (f" (already spent {fmt_cost(spent)})" if spent else ""))
    return 0


DRY_COLS = [Col("id", "left", name=True), Col("line", drop=LATE), Col("task", "left"),
            Col("model", "left", name=True), Col("est. cost", short="cost")]


# --- the end ------------------------------------------------------------------------------


def summary_table(batch: Batch, data: dict[str, Any], to_stderr: bool = False) -> None:
    console = err if to_stderr else out
    ran = data["ran"]
    head = (f"[bold]batch {escape(data['batch_id'])}[/] · {escape(data['file'])} → {escape(data['out'])}\n"
            f"{plural(data['rows'], 'row')}: {fmt_count(ran)} run now ({fmt_count(data['ok'])} ok, "
            f"{'[red]' if data['failed'] else ''}{fmt_count(data['failed'])} failed{'[/]' if data['failed'] else ''})")
    if data["already_done"]:
        head += f", {fmt_count(data['already_done'])} already done"
    if data["not_started"]:
        head += f", {fmt_count(data['not_started'])} not started"
    if data["bad_rows"]:
        head += f", [yellow]{fmt_count(data['bad_rows'])} bad[/]"
    head += f" · {data['elapsed_s']:.1f} s · {fmt_cost(data['cost_usd'])}"
    if data["total_cost_usd"] != data["cost_usd"]:
        head += f" (file total {fmt_cost(data['total_cost_usd'])})"
    console.print(head)
    if not data["models"]:
        return
    width = console.width
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        # Piped to a file, a table squeezed into 80 columns is harder to read: let it be as wide as it needs.
        from rich.console import Console

        width = max(console.width, 200)
        console = Console(file=console.file, width=width, highlight=False)
    console.print(fit_table(SUMMARY_COLS, [_summary_row(m) for m in data["models"]], width))


SUMMARY_COLS = [
    Col("model", "left", name=True), Col("rows"), Col("failed", short="fail"),
    Col("latency p50/p95", short="latency\np50/p95"), Col("first token p50/p95", short="first token\np50/p95", drop=3),
    Col("tok/s", drop=LATE + 1), Col("tokens in/out", short="tokens\nin/out", drop=LATE), Col("cost"),
]


def _summary_row(m: dict[str, Any]) -> list[Any]:
    estimated = bool(m.get("estimated_rows"))
    cost = est(fmt_cost(m["cost_usd"]), estimated)
    if m["cost_unknown_rows"] and m["cost_usd"] is not None:
        cost += f" + {m['cost_unknown_rows']:,} unknown"
    tps = f"{m['tokens_per_s_p50']:,.0f}" if m["tokens_per_s_p50"] is not None else "–"

    def times(a, b) -> Alt:
        return Alt(f"{fmt_ms(a)} / {fmt_ms(b)}", f"{fmt_ms(a)}/{fmt_ms(b)}")

    return [m["model"], fmt_count(m["rows"]), fmt_count(m["failed"]), times(m["latency_ms_p50"], m["latency_ms_p95"]),
            times(m["ttft_ms_p50"], m["ttft_ms_p95"]), tps,
            pair(fmt_tokens(m["input_tokens"]), fmt_tokens(m["output_tokens"]), estimated, " / "), cost]


def closing_notes(batch: Batch, data: dict[str, Any], resume_cmd: str) -> None:
    """Why the batch stopped and how to go on: stderr, one or two lines."""
    if data["stopped"] == "budget":
        b = batch.budget
        nxt = f"; the next row was estimated at {fmt_cost(b.refused_estimate)}" if b and b.refused_estimate is not None else ""
        err.print(f"[yellow]budget reached:[/] {fmt_cost(data['total_cost_usd'])} spent of --max-cost "
                  f"{fmt_cost(data['max_cost_usd'])}{nxt}; {plural(data['not_started'], 'row')} not started. "
                  f"Go on with a larger budget: {escape(resume_cmd)} --max-cost …")
    elif data["stopped"] == "interrupted":
        err.print(f"[yellow]interrupted:[/] {plural(data['ran'], 'row')} written, {fmt_count(data['not_started'])} "
                  f"not done. Resume with: {escape(resume_cmd)}")
    elif data["failed"]:
        err.print(f"[yellow]{plural(data['failed'], 'row')} failed[/] (errors in {escape(data['out'])}); "
                  f"run the same command again to retry {'it' if data['failed'] == 1 else 'them'}: {escape(resume_cmd)}")
    if batch.budget is not None and batch.budget.unknown_price and batch.o.max_cost is not None:
        err.print(f"[yellow]note:[/] {plural(batch.budget.unknown_price, 'row')} went to models of unknown price and "
                  f"{'was' if batch.budget.unknown_price == 1 else 'were'} not counted against --max-cost")

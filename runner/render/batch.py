"""What `runner batch` shows: bad rows, a progress bar (terminal only), the dry-run routing and
the end-of-batch table. Reads the Batch's counters; decides nothing."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.markup import escape
from rich.table import Table

from ..batch import Batch
from . import err, fmt_cost, fmt_count, fmt_ms, out
from ..tokens import fmt_tokens

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
    (and so the ETA) is fed at most 10 times a second."""

    def __init__(self, batch: Batch, enabled: bool | None = None) -> None:
        self.batch = batch
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress = None
        self._task = None
        self._last = 0.0

    def __enter__(self) -> "ProgressView":
        if not self.enabled:
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.text import Text

        batch = self.batch

        class Counters(ProgressColumn):
            def render(self, task) -> Text:
                info = (f"[red]✗ {batch.failed:,}[/] · ▶ {batch.running:,} · {fmt_tokens(batch.tokens)} tok · "
                        f"{fmt_cost(batch.cost)}")
                if batch.engine is not None and batch.engine.stopped == "interrupt":
                    info += " · [yellow]finishing the running rows (Ctrl-C again to abandon them)[/]"
                return Text.from_markup(info)

        self._progress = Progress(
            TextColumn("[bold]batch[/]"), BarColumn(), MofNCompleteColumn(), Counters(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=err, transient=False, refresh_per_second=8,
        )
        self._progress.start()
        self._task = self._progress.add_task("batch", total=batch.scan.todo)
        batch.on_change = self.update
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
    if not as_json:
        out.print(f"[bold]{'id':<22} {'line':>6}  {'task':<10} {'model':<34} {'est. cost':>12}[/]")
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
            model = first.ref + (f" (+{len(entry['fallbacks'])})" if entry["fallbacks"] else "") if first else "[red]✗ no route[/]"
            cost = fmt_cost(first.est_cost_usd, first.local) if first else ""
            line = f"{escape(row.id):<22} {row.line:>6}  {escape(entry['task'] or '–'):<10} {model:<34} {cost:>12}"
            out.print(line, overflow="ignore", crop=False)
            if first is None:
                out.print(f"  [red]{escape(error or '')}[/]")
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
    if summary["models"]:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col, justify in (("first model", "left"), ("rows", "right"), ("est. cost", "right")):
            table.add_column(col, justify=justify)
        for m in summary["models"]:
            cost = fmt_cost(m["est_cost_usd"]) + (f" + {m['unknown']} unknown" if m["unknown"] else "")
            table.add_row(escape(m["model"]), fmt_count(m["rows"]), cost)
        out.print()
        out.print(table)
    done = summary["already_done"]
    out.print(f"{fmt_count(batch.scan.todo)} rows to send"
              + (f" ({fmt_count(done)} already answered in {escape(summary['out'])})" if done else "")
              + f" · estimated total {fmt_cost(total)}"
              + (f" + {unknown:,} rows of unknown price" if unknown else "")
              + (f" · [red]{no_route:,} rows have no model that can take them[/]" if no_route else "")
              + " · nothing was sent")
    if batch.o.max_cost is not None:
        spent = batch.state.cost_usd
        fits = spent + total <= batch.o.max_cost
        out.print(f"--max-cost {fmt_cost(batch.o.max_cost)}: " + (
            "fits" if fits else "[yellow]the batch would stop before the end[/]")
            + (f" (already spent {fmt_cost(spent)})" if spent else ""))
    return 0


# --- the end ------------------------------------------------------------------------------


def summary_table(batch: Batch, data: dict[str, Any], to_stderr: bool = False) -> None:
    console = err if to_stderr else out
    ran = data["ran"]
    head = (f"[bold]batch {escape(data['batch_id'])}[/] · {escape(data['file'])} → {escape(data['out'])}\n"
            f"{fmt_count(data['rows'])} rows: {fmt_count(ran)} run now ({fmt_count(data['ok'])} ok, "
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
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("model", no_wrap=True)
    for col in ("rows", "failed", "latency p50/p95", "first token p50/p95", "tok/s", "tokens in/out", "cost"):
        table.add_column(col, justify="right", no_wrap=True)
    for m in data["models"]:
        cost = fmt_cost(m["cost_usd"])
        if m["cost_unknown_rows"] and m["cost_usd"] is not None:
            cost += f" + {m['cost_unknown_rows']} unknown"
        tps = f"{m['tokens_per_s_p50']:,.0f}" if m["tokens_per_s_p50"] is not None else "–"
        table.add_row(escape(m["model"]), fmt_count(m["rows"]), fmt_count(m["failed"]),
                      f"{fmt_ms(m['latency_ms_p50'])} / {fmt_ms(m['latency_ms_p95'])}",
                      f"{fmt_ms(m['ttft_ms_p50'])} / {fmt_ms(m['ttft_ms_p95'])}", tps,
                      f"{fmt_tokens(m['input_tokens'])} / {fmt_tokens(m['output_tokens'])}", cost)
    if not console.is_terminal:
        # Piped to a file, a table squeezed into 80 columns is unreadable: let it be as wide as it needs.
        from rich.console import Console

        console = Console(file=console.file, width=max(console.width, 200), highlight=False)
    console.print(table)


def closing_notes(batch: Batch, data: dict[str, Any], resume_cmd: str) -> None:
    """Why the batch stopped and how to go on: stderr, one or two lines."""
    if data["stopped"] == "budget":
        b = batch.budget
        nxt = f"; the next row was estimated at {fmt_cost(b.refused_estimate)}" if b and b.refused_estimate is not None else ""
        err.print(f"[yellow]budget reached:[/] {fmt_cost(data['total_cost_usd'])} spent of --max-cost "
                  f"{fmt_cost(data['max_cost_usd'])}{nxt}; {fmt_count(data['not_started'])} rows not started. "
                  f"Go on with a larger budget: {escape(resume_cmd)} --max-cost …")
    elif data["stopped"] == "interrupted":
        err.print(f"[yellow]interrupted:[/] {fmt_count(data['ran'])} rows written, {fmt_count(data['not_started'])} "
                  f"not done. Resume with: {escape(resume_cmd)}")
    elif data["failed"]:
        err.print(f"[yellow]{fmt_count(data['failed'])} rows failed[/] (errors in {escape(data['out'])}); "
                  f"run the same command again to retry them: {escape(resume_cmd)}")
    if batch.budget is not None and batch.budget.unknown_price and batch.o.max_cost is not None:
        err.print(f"[yellow]note:[/] {batch.budget.unknown_price:,} rows went to models of unknown price and "
                  "were not counted against --max-cost")

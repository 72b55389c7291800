"""`runner log` and `runner stats`: read the run log."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import UserError
from .common import guard
from .options import AsJson


def register(app: typer.Typer) -> None:
    app.command("log", help="Show the latest calls from the run log.")(log_cmd)
    app.command(help="Totals per model from the run log: calls, failures, latency, tokens, cost, and what local runs saved.")(stats)


@guard
def log_cmd(
    limit: int = typer.Option(20, "-n", "--limit", help="How many runs to show."),
    group: Optional[str] = typer.Option(None, "--group", help="Only runs of this batch or comparison id."),
    as_json: AsJson = False,
) -> None:
    from rich.table import Table

    from ..config import load_config
    from ..render import fmt_cost, fmt_ms, out, print_json
    from ..store import open_store

    config = load_config()
    store = open_store(config.home)
    runs = store.runs(limit=max(1, limit), group_id=group)
    if as_json:
        print_json([log_record(r) for r in runs])
        return
    if not runs:
        out.print("The run log is empty: try `runner ask \"hello\"`.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("id", "time", "task", "model", "outcome", "first token", "total", "tokens in/out", "cost", "prompt"):
        table.add_column(col, justify="right" if col in ("id", "first token", "total", "cost") else "left", no_wrap=col != "prompt")
    for r in reversed(runs):
        local = config.is_local(r["model"])
        outcome = "[green]ok[/]" if r["outcome"] == "ok" else f"[red]{r['outcome']}[/]"
        tokens = f"{r['input_tokens'] or '?'}/{r['output_tokens'] or '?'}" if r["outcome"] == "ok" else ""
        prompt = (r["prompt"] or "").replace("\n", " ")
        table.add_row(str(r["id"]), r["time"][:19].replace("T", " "), r["task"] or "", r["model"] or "–", outcome,
                      fmt_ms(r["ttft_ms"]), fmt_ms(r["latency_ms"]), tokens,
                      fmt_cost(r["cost_usd"], local) if r["outcome"] == "ok" else "",
                      (prompt[:60] + "…") if len(prompt) > 60 else prompt)
    out.print(table)


def log_record(r: dict) -> dict:
    """A run of the log for scripts: the `ask --json` record plus the run's own columns."""
    from ..records import RunRecord

    rec = {"id": r["id"], "time": r["time"], "kind": r["kind"], "group_id": r["group_id"], "item_id": r["item_id"]}
    rec.update(RunRecord.from_row(r).json())
    rec.update({k: r.get(k) for k in LOG_FIELDS})
    return rec


LOG_FIELDS = ("outcome", "prompt", "system", "files", "client", "est_input_tokens", "chunks")  # beyond `ask --json`'s


@guard
def stats(
    since: Optional[str] = typer.Option(None, "--since", help="Only calls since this date (YYYY-MM-DD)."),
    versus: str = typer.Option("openai/gpt-4.1", "--versus", help="Hosted model to price local calls against, for the savings line."),
    as_json: AsJson = False,
) -> None:
    from rich.table import Table

    from ..config import load_config
    from ..pricing import Pricing
    from ..render import fmt_cost, fmt_ms, out, print_json
    from ..stats import summarise
    from ..store import open_store

    config = load_config()
    config.split_ref(versus)
    if since is not None:
        from datetime import date

        try:
            since = date.fromisoformat(since).isoformat()
        except ValueError:
            raise UserError(f"--since must be a date like 2026-11-01, not '{since}'") from None
    attempts = open_store(config.home).attempts_since(since)
    summary = summarise(attempts, config, Pricing(config), versus)
    if as_json:
        print_json(summary)
        return
    if not summary["models"]:
        out.print("No calls logged yet.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("model", "calls", "failed", "p50 first token", "p50 total", "p95 total", "tok/s", "tokens in/out", "cost"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in summary["models"]:
        table.add_row(m["model"], str(m["calls"]), str(m["failed"]), fmt_ms(m["p50_ttft_ms"]), fmt_ms(m["p50_latency_ms"]),
                      fmt_ms(m["p95_latency_ms"]), f"{m['tokens_per_s']:.1f}" if m["tokens_per_s"] else "–",
                      f"{m['input_tokens']:,}/{m['output_tokens']:,}", fmt_cost(m["cost_usd"], m["local"]))
    out.print(table)
    total = summary["total_cost_usd"]
    out.print(f"Total spent: {fmt_cost(total)}" + ("" if summary["unknown_cost_calls"] == 0 else f" (+ {summary['unknown_cost_calls']} calls of unknown price)"))
    saved = summary["local_savings"]
    if saved["calls"]:
        out.print(f"Local runs: {saved['calls']} calls, {saved['input_tokens']:,} in / {saved['output_tokens']:,} out tokens — "
                  f"on {versus} that would have cost {fmt_cost(saved['versus_cost_usd'])}.")

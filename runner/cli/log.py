"""`runner log` and `runner stats`: read the run log."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import UserError
from .common import Command, guard
from .options import AsJson


def register(app: typer.Typer) -> None:
    app.command("log", cls=Command, help="Show the latest calls from the run log.")(log_cmd)
    app.command(cls=Command, help="Totals per model (or per host, --by host) from the run log: calls, failures, latency, tokens, cost, and what local runs saved.")(stats)


@guard
def log_cmd(
    last: int = typer.Option(20, "-n", "--last", metavar="N", help="How many runs to show, the latest."),
    group: Optional[str] = typer.Option(None, "--group", metavar="ID", help="Only runs of this batch or comparison id."),
    as_json: AsJson = False,
    limit: Optional[int] = typer.Option(None, "--limit", hidden=True),  # the old name of --last
    source: Optional[str] = typer.Option(None, "--source", metavar="KIND", help="Only runs from this command: ask, batch, compare, judge or serve."),
) -> None:
    from ..config import load_config
    from ..render import out, print_json
    from ..render.runlog import log_table
    from ..store import open_store
    from .options import at_least

    if limit is not None:
        last = limit
    at_least("--last" if limit is None else "--limit", last)
    config = load_config()
    store = open_store(config.home)
    runs = store.runs(limit=last, group_id=group, kind=source)
    if as_json:
        print_json([log_record(r) for r in runs])
        return
    if not runs:  # say what is empty: the filter, or the log
        where = " and ".join(w for w in (f"in group {group}" if group else "", f"from {source}" if source else "") if w)
        out.print(f"no runs {where}" if where else "The run log is empty: try `runner ask \"hello\"`.", markup=False)
        return
    out.print(log_table(runs, config.is_local, out.width))


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
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE", help="Only calls since this date (YYYY-MM-DD)."),
    versus: str = typer.Option("openai/gpt-4.1", "--versus", metavar="PROVIDER/MODEL", help="Hosted model to price local calls against, for the savings line."),
    as_json: AsJson = False,
    by: str = typer.Option("model", "--by", metavar="WHAT", help="A row per model, or per host: each server that took calls (the machines of a pool)."),
) -> None:
    from ..config import load_config
    from ..pricing import Pricing
    from ..render import out, print_json
    from ..render.runlog import hosts_table, stats_lines, stats_table
    from ..stats import summarise, summarise_hosts
    from ..store import open_store

    if by not in ("model", "host"):
        raise UserError(f"--by must be model or host, not '{by}'")

    config = load_config()
    config.split_ref(versus)
    if since is not None:
        from datetime import date

        try:
            since = date.fromisoformat(since).isoformat()
        except ValueError:
            raise UserError(f"--since must be a date like 2026-11-01, not '{since}'") from None
    attempts = open_store(config.home).attempts_since(since)
    if by == "host":
        hosts = summarise_hosts(attempts)
        if as_json:
            print_json(hosts)
        elif not hosts["hosts"]:
            out.print(f"no calls since {since}" if since else "No calls logged yet.", markup=False)
        else:
            out.print(hosts_table(hosts, out.width))
        return
    summary = summarise(attempts, config, Pricing(config), versus)
    if as_json:
        print_json(summary)
        return
    if not summary["models"]:
        out.print(f"no calls since {since}" if since else "No calls logged yet.", markup=False)
        return
    out.print(stats_table(summary, out.width))
    for line in stats_lines(summary):
        out.print(line, markup=False, soft_wrap=False)

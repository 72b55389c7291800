"""What `runner batch --deferred` shows: a progress bar per provider job (terminal only), one line
per job event (submitted, found again, collected, a problem), the dry run's live and deferred
prices side by side, --status and --cancel tables, and the deferred part of the summary. Reads
the Deferred's counters and events; decides nothing."""

from __future__ import annotations

import sys
from typing import Any

from rich.markup import escape

from ..batch.deferred import Deferred
from . import err, fmt_cost, fmt_count, out, plural, print_json
from .fit import Col, fit_table

STATE_WORDS = {"validating": "validating", "in_progress": "in progress", "finalizing": "finalising",
               "cancelling": "cancelling", "ended": "ended"}


# --- while it runs ---------------------------------------------------------------------------


class DeferredProgress:
    """A bar per job (state, rows done and failed) and one for the live rows, on a terminal;
    elsewhere only the event lines. Event lines are printed in both cases."""

    def __init__(self, d: Deferred, enabled: bool | None = None, console=None) -> None:
        self.d = d
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.console = console or err
        self._progress = None
        self._tasks: dict[str, Any] = {}
        self._live = None

    def __enter__(self) -> "DeferredProgress":
        self.d.on_event = self.event
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=None),
                                      MofNCompleteColumn(), TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                                      console=self.console, refresh_per_second=4, expand=True)
            self._progress.start()
            for job in self.d.open_jobs:
                self._add(job)
            self.d.b.on_change = self._live_changed
        return self

    def _add(self, job) -> None:
        if self._progress is not None and job.key not in self._tasks:
            self._tasks[job.key] = self._progress.add_task(f"{job.key} {job.ref}", total=len(job.rows),
                                                           note=job.provider_status or job.status)

    def _live_changed(self) -> None:
        if self._progress is None:
            return
        b = self.d.b
        if self._live is None:
            self._live = self._progress.add_task("live rows", total=max(1, len(self.d.live_ids)), note="")
        self._progress.update(self._live, completed=min(b.done, len(self.d.live_ids) or b.done),
                              note=f"✗ {b.failed:,} · ▶ {b.running:,}")

    def event(self, what: str, job, detail: Any = None) -> None:
        line = _event_line(what, job, detail)
        if line:
            (self._progress.console if self._progress is not None else self.console).print(line, soft_wrap=False)
        if self._progress is None:
            return
        if what in ("submitted", "adopted"):
            self._add(job)
        elif what == "status" and job.key in self._tasks:
            word = STATE_WORDS.get(detail.state, detail.raw)
            note = f"{word} · ✓ {detail.done:,} ✗ {detail.failed:,}"
            self._progress.update(self._tasks[job.key], completed=detail.done + detail.failed, note=note)
        elif what == "collected" and job.key in self._tasks:
            self._progress.update(self._tasks[job.key], completed=len(job.rows), note=detail.outcome or "collected")

    def __exit__(self, *exc: Any) -> None:
        self.d.on_event = None
        if self._progress is not None:
            self._progress.stop()
            self.d.b.on_change = None


def _event_line(what: str, job, detail: Any) -> str | None:
    who = f"job {job.key} ({escape(job.ref)}{', ' + escape(job.job_id) if job.job_id else ''})"
    if what == "submitted":
        return f"submitted {who}: {plural(len(job.rows), 'row')}"
    if what == "adopted":
        return f"found {who}, which a stopped run had submitted: {plural(len(job.rows), 'row')}"
    if what == "collected":
        return (f"collected {who}: {detail.outcome or 'ended'}, {fmt_count(detail.done)} answered, "
                f"{fmt_count(detail.failed)} failed")
    if what == "problem":
        return f"[yellow]warning:[/] {escape(str(detail))}"
    return None


# --- --dry-run ---------------------------------------------------------------------------------


async def dry_run(d: Deferred, as_json: bool) -> int:
    """Rows per provider and model: deferred or live (and why), the estimated live and deferred
    price side by side. Sends nothing."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    waiting: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    plan: list[dict[str, Any]] = []
    for entry in [e async for e in d.plan()]:
        if as_json:
            plan.append(entry)
        route = entry["route"]
        if route == "waiting":
            waiting[entry["job"]] = waiting.get(entry["job"], 0) + 1
            continue
        if route in ("error", "split"):
            if route == "error":
                errors.append(entry)
            key = ("(long document, split)" if route == "split" else "(no route)", route)
        else:
            key = (entry["model"], route)
        g = groups.setdefault(key, {"model": key[0], "route": route, "rows": 0, "est_live_usd": 0.0,
                                    "est_deferred_usd": 0.0, "unknown": 0, "why": entry.get("why")})
        g["rows"] += 1
        live, deferred = entry.get("est_live_usd"), entry.get("est_deferred_usd")
        if route in ("error", "split"):
            continue
        if live is None or deferred is None:
            g["unknown"] += 1
        else:
            g["est_live_usd"] += live
            g["est_deferred_usd"] += deferred
    rows = sorted(groups.values(), key=lambda g: (g["route"] != "deferred", -g["rows"]))
    total_live = sum(g["est_live_usd"] for g in rows)
    total_deferred = sum(g["est_deferred_usd"] for g in rows)
    summary = {"file": str(d.b.path), "out": str(d.b.out_path), "rows": d.b.scan.rows,
               "already_done": d.b.scan.rows - d.b.scan.todo, "waiting_in_jobs": sum(waiting.values()),
               "est_live_usd": round(total_live, 6), "est_deferred_usd": round(total_deferred, 6),
               "groups": [{**g, "est_live_usd": round(g["est_live_usd"], 6),
                           "est_deferred_usd": round(g["est_deferred_usd"], 6)} for g in rows],
               "max_cost_usd": d.b.o.max_cost}
    if as_json:
        print_json({**summary, "plan": plan})
        return 0
    cols = [Col("model", "left", name=True), Col("rows"), Col("how", "left", wrap=True),
            Col("est. live"), Col("est. deferred")]
    table = []
    for g in rows:
        how = {"deferred": "deferred", "local": "live (local)",
               "live": f"live: {g['why']}" if g["why"] else "live", "split": "live (split, combined)",
               "error": "no model can take it"}[g["route"]]
        unknown = f" + {g['unknown']:,} unknown" if g["unknown"] else ""
        same = g["route"] != "deferred"
        table.append([g["model"], fmt_count(g["rows"]), how, fmt_cost(g["est_live_usd"]) + unknown,
                      ("=" if same else fmt_cost(g["est_deferred_usd"]) + unknown)])
    if table:
        out.print(fit_table(cols, table, out.width))
    for e in errors[:5]:
        out.print(f"[red]✗[/] {escape(e['id'])} (line {e['line']}): {escape(e.get('error') or '')}", soft_wrap=False)
    if waiting:
        out.print(f"{plural(sum(waiting.values()), 'row')} already wait in {plural(len(waiting), 'job')} "
                  f"({', '.join(sorted(waiting))}): collected by the next run, not sent again", soft_wrap=False)
    saved = total_live - total_deferred
    out.print(f"estimated total: {fmt_cost(total_live)} live, {fmt_cost(total_deferred)} with --deferred"
              + (f" (saves {fmt_cost(saved)})" if saved > 0 else "") + " · nothing was sent", soft_wrap=False)
    if d.b.o.max_cost is not None:
        spent = d.b.state.cost_usd
        fits = spent + total_deferred <= d.b.o.max_cost
        out.print(f"--max-cost {fmt_cost(d.b.o.max_cost)}: " + ("fits" if fits else "[yellow]the batch would stop before the end[/]")
                  + (f" (already spent {fmt_cost(spent)})" if spent else ""), soft_wrap=False)
    return 0


# --- --status and --cancel ------------------------------------------------------------------------


JOB_COLS = [Col("job", "left"), Col("model", "left", name=True), Col("provider id", "left", short="id", drop=2),
            Col("status", "left"), Col("rows"), Col("done"), Col("failed"), Col("submitted", "left", drop=1)]


def jobs_table(items: list[dict[str, Any]], as_json: bool, path: str, what: str = "status") -> None:
    if as_json:
        print_json({"jobs_file": path, "jobs": items})
        return
    if not items:
        out.print(f"no deferred jobs ({escape(path)} does not list any)", soft_wrap=False)
        return
    rows = []
    for it in items:
        status = STATE_WORDS.get(it.get("state") or "", it.get("status") or "")
        if it.get("outcome"):
            status = f"ended: {it['outcome']}"
        elif it.get("status") == "collected":
            status = "collected"
        if it.get("error"):
            status += f" ({it['error']})"
        rows.append([it["job"], it["model"], it.get("job_id") or "–", status, fmt_count(it["rows"]),
                     fmt_count(it.get("done")), fmt_count(it.get("failed")),
                     (it.get("submitted_at") or "–")[:19].replace("T", " ")])
    out.print(fit_table(JOB_COLS, rows, out.width))
    if what == "cancel":
        out.print("cancellation asked; run the same command without --cancel to collect what the jobs finished "
                  "(cancelled rows are sent again then)", soft_wrap=False)
    elif any(it.get("ended") for it in items):
        out.print("ended jobs are collected by the next run of the same command", soft_wrap=False)


# --- the end -----------------------------------------------------------------------------------


def summary_lines(d: Deferred, data: dict[str, Any], resume_cmd: str) -> None:
    """The deferred part of the summary, on stderr: cost at the batch price against the live price,
    jobs still running and how to come back, problems met."""
    s = data
    if s["collected_rows"]:
        saved = s["live_price_usd"] - s["deferred_cost_usd"]
        err.print(f"deferred: {plural(s['collected_rows'], 'row')} collected ({fmt_count(s['collected_ok'])} ok) · "
                  f"{fmt_cost(s['deferred_cost_usd'])} at the batch price, {fmt_cost(s['live_price_usd'])} live"
                  + (f" (saved {fmt_cost(saved)})" if saved > 0 else "")
                  + (f" · {plural(s['unknown_price_rows'], 'row')} of unknown price" if s["unknown_price_rows"] else ""),
                  soft_wrap=False)
    if s["fell_back"]:
        err.print(f"{plural(s['fell_back'], 'row')} failed or expired in a job and ran live on the next model "
                  "(--resubmit sends them to a new job instead)", soft_wrap=False)
    if s["resubmitted"]:
        err.print(f"{plural(s['resubmitted'], 'row')} failed or expired in a job and went into a new one", soft_wrap=False)
    if s["cancelled"]:
        err.print(f"[yellow]{plural(s['cancelled'], 'row')} never ran: {'its' if s['cancelled'] == 1 else 'their'} job "
                  f"was cancelled[/]; run the same command again to send {'it' if s['cancelled'] == 1 else 'them'}: "
                  f"{escape(resume_cmd)}", soft_wrap=False)
    if s["open_jobs"]:
        jobs = s["open_jobs"]
        head = "interrupted: " if d.interrupted else ""
        err.print(f"[yellow]{head}{plural(len(jobs), 'job')} ({plural(s['waiting_rows'], 'row')}) still run at the "
                  f"providers[/]; they keep running. Collect them with: {escape(resume_cmd)} "
                  f"(where they are: … --deferred --status)", soft_wrap=False)

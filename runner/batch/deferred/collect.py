"""Collecting ended jobs: their results fetched, each row written to the results file (one line,
`deferred: true`, `job_id`) and logged as a run, in prompt-file order, in one pass over the prompt
file for every job that ended together; then the failed rows handed on — a live fallback on their
next candidates (the default), or a new job (--resubmit). Rows of a cancelled job are left for the
next run.

Exactly once, even after a kill: per chunk of rows, the runs are committed to the run log before
the lines are written (a line never names a run the log lost), and collecting a job again skips
rows whose last line came from it and reuses the runs already logged from it.
"""

from __future__ import annotations

import asyncio
import gc
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any

from ...engine import Engine, Job as EngineJob, Outcome
from ...errors import UserError
from ...prompts import Row
from ...records import attempt_json
from .answers import Fetched, deferred_run, job_rows, record_of
from .api import BatchApiError, JobStatus, RowResult
from .state import COLLECTED, Job
from .submit import route

if TYPE_CHECKING:
    from .run import Deferred

LOG_CHUNK = 2000  # rows logged per commit, then written
GC_THRESHOLD = 20_000  # while collecting: a young-generation collection per this many new objects


async def collect(d: "Deferred", ended: list[tuple[Job, JobStatus]]) -> None:
    """Ended jobs: fetched, written, logged, their failed rows handed on, then marked collected."""
    if not ended:
        return
    store = d.session.store
    with TemporaryDirectory(prefix="runner-batch-") as tmp:
        fetched: list[Fetched] = []
        try:
            for job, st in ended:
                job.completed_at, job.provider_status = st.completed_at, st.raw
                adapter = d.adapter(job.provider)
                dest = Path(tmp) / f"{job.key}.jsonl"
                try:
                    await adapter.fetch(job, st, dest)
                except BatchApiError as exc:
                    d.problem(f"job {job.key} ({job.ref}, {job.job_id}) ended but its results could not be "
                              f"fetched ({exc}); the next run tries again", job)
                    continue
                fetched.append(Fetched(job, st, adapter, dest, d.session.pricing,
                                       store.deferred_runs(job.job_id) if job.job_id else {}))
            with _few_collections():
                failed = await write_results(d, fetched)
        finally:
            for f in fetched:
                f.close()
    again: list[Row] = []
    for f in fetched:
        f.job.status = COLLECTED
        rows = failed.get(f.job.key) or []
        if d.o.resubmit:
            again += [row for row, _, _ in rows]
        elif rows:
            d.spawn(fall_back(d, f.job, rows))
    if again:
        d.resubmitted += len(again)
        d.handled.difference_update(row.id for row in again)  # their new job is collected later
        await route(d, again, lambda row: d.spawn(run_live(d, row)))  # saves the jobs file
    d.jobs.save()
    for f in fetched:
        if d.b.budget is not None:
            d.b.budget.spent -= f.job.est_cost_usd  # its rows now count at their real price
        d.emit("collected", f.job, f.status)


@contextmanager
def _few_collections():
    """Collecting makes millions of short-lived objects and keeps chunks of them alive: with the
    default thresholds that meant repeated full collections over every object the process holds
    (about a second per 100,000 rows). Meanwhile the objects alive before are frozen (left out
    of collections, not freed any later than they would be: unfrozen at the end) and young
    collections run less often."""
    threshold = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0  # someone else's freeze is left alone
    if freeze:
        gc.freeze()
    gc.set_threshold(max(threshold[0], GC_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()


async def write_results(d: "Deferred", fetched: list[Fetched]) -> dict[str, list]:
    """Write the rows of the fetched jobs; returns each job's failed rows (row, result, attempt)."""
    b = d.b
    store = d.session.store
    written = getattr(b.state, "job_of", {})  # row → the job of its last line
    mine = {f.job.key for f in fetched}
    elsewhere: set[str] = set()  # rows resubmitted in another job meanwhile
    for j in d.jobs.open_jobs:
        if j.key not in mine:
            elsewhere.update(j.rows)
    failed: dict[str, list] = {}
    rows = job_rows(fetched, d.file_rows())
    while True:
        taken = [x for _, x in zip(range(LOG_CHUNK), rows)]
        if not taken:
            return failed
        chunk = []
        for row, f, i in taken:
            rid = f.job.rows[i]
            done = b.answered(row) if row is not None else rid in b.state.ok
            if done or written.get(rid) == f.job.job_id or rid in elsewhere or rid in d.handled:
                continue
            res = f.result(i)
            attempt, summary = deferred_run(f.job, res, f.cost(res), f.wait_ms)
            task = b.route_of(row)[0] if row is not None else None
            chunk.append((row, rid, task, f, res, attempt, summary))
        new = [c for c in chunk if c[1] not in c[3].logged]
        run_ids = store.add_runs([_run_of(d, row, rid, task, summary) for row, rid, task, _, _, _, summary in new],
                                 [c[5] for c in new])
        _write_chunk(d, chunk, run_ids, failed)
        await asyncio.sleep(0)  # let live rows run between chunks


def _write_chunk(d: "Deferred", chunk: list, run_ids: list[int], failed: dict[str, list]) -> None:
    """A chunk's lines, once its runs are in the log; its failed rows into `failed`."""
    ids = iter(run_ids)
    lines = []
    for row, rid, task, f, res, attempt, summary in chunk:
        run_id = f.logged.get(rid) or next(ids)
        if res.ok or row is None:
            d.handled.add(rid)
            lines.append(_line(d, row, rid, task, attempt, summary, run_id, f, res))
        elif res.kind != "canceled":
            d.handled.add(rid)
            failed.setdefault(f.job.key, []).append((row, res, attempt))
        else:  # cancelled (by --cancel): not sent again by this run, the next one sends it
            d.cancelled += 1
    d.b.write_lines(lines)


def _run_of(d: "Deferred", row: Row | None, rid: str, task: str | None, summary: dict) -> dict[str, Any]:
    """The run-log row of a deferred row: its summary plus what was asked."""
    return {**summary, "kind": "batch", "group_id": d.b.batch_id, "item_id": rid, "task": task,
            "prompt": row.prompt if row is not None else "", "system": _system(d, row, task),
            "files": list(row.files) if row is not None else []}


def _system(d: "Deferred", row: Row | None, task: str | None) -> str | None:
    if row is None:
        return None
    if row.system is not None:
        return row.system
    if d.b.o.system is not None:
        return d.b.o.system
    return d.config.profile(task).system if task else None


def _line(d: "Deferred", row: Row | None, rid: str, task: str | None, attempt: dict, summary: dict, run_id: int,
          f: Fetched, res: RowResult) -> dict[str, Any]:
    """A collected row's results line (`deferred: true`, its job), counted for the summary."""
    rec = record_of(task, attempt, summary, run_id)
    d.collected_rows += 1
    if rec["ok"]:
        d.collected_ok += 1
    if rec["cost_usd"] is None:
        d.unknown_price += 1
    else:
        d.deferred_cost += rec["cost_usd"]
        d.live_equivalent += (f.live_cost(res) if res.ok else None) or 0.0
    return d.b.line(rid, rec, run_id, row=row, deferred=True, job_id=f.job.job_id)


# --- failed rows, live -----------------------------------------------------------------------


async def fall_back(d: "Deferred", job: Job, failed: list[tuple[Row, RowResult, dict]]) -> None:
    """Failed rows, live, on their next candidates (the batch's model left out); a row with no
    other candidate keeps its failure. Each line lists the deferred attempt first."""
    b = d.b
    planner = Engine(d.session, concurrency=1, log=False)
    jobs: list[EngineJob] = []
    for row, res, attempt in failed:
        try:
            request = b.request_for(row)
            prepared = await d.session.prepare(request, await planner.availability_for(request))
        except UserError as exc:
            _write_failure(d, row, job, attempt, f"{res.error}; no live fallback: {exc}")
            continue
        if not [a for a in prepared.plan.attempts if a.ref != job.ref]:
            _write_failure(d, row, job, attempt, f"{res.error}; no other model to fall back to")
            continue
        jobs.append(EngineJob(request, item_id=row.id, key=(row, attempt), exclude=(job.ref,)))
    if not jobs or d.interrupted:
        return
    d.fell_back += len(jobs)

    def on_result(outcome: Outcome) -> None:
        row, attempt = outcome.job.key
        line = b.record(row, outcome)
        line["attempts"] = [attempt_json(attempt), *line.get("attempts", [])]
        line["job_id"] = job.job_id
        b.write(line)

    await d.run_engine(jobs, on_result)


async def run_live(d: "Deferred", row: Row) -> None:
    """A row routed live after the live phase began (a resubmitted row whose model has no batch
    API any more, or whose new job the provider refused)."""
    await d.run_engine([EngineJob(d.b.request_for(row), item_id=row.id, key=row)],
                       lambda outcome: d.b.write(d.b.record(row, outcome)))


def _write_failure(d: "Deferred", row: Row, job: Job, attempt: dict, error: str) -> None:
    summary = {"outcome": "failed", "model": job.ref, "cost_usd": attempt.get("cost_usd"), "error": error}
    rec = record_of(d.b.route_of(row)[0], attempt, summary, None)
    d.b.write(d.b.line(row.id, rec, None, row=row, deferred=True, job_id=job.job_id))

"""Routing rows and submitting jobs: every row is routed as a live batch routes it; a row whose
first model's provider has a batch API goes into a job for that model, the others to `on_live`.

A job's rows are written to the jobs file before its upload starts, and its id as soon as the
provider gives one (`Job` states in state.py). Jobs are cut at the provider's request and byte
limits as rows come, so a 100,000-row file becomes several jobs, each streamed from a temporary
file. `--max-cost` counts each submitted row at its estimated batch price.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ...engine import Engine
from ...errors import UserError
from ...prompts import Row
from .api import BatchApiError
from .bodies import deferrable, input_tokens, output_tokens, request_body
from .chunk import Chunk
from .cost import RowPricer
from .state import Job
from .times import now_iso

if TYPE_CHECKING:
    from .run import Deferred

OnLive = Callable[[Row], Any]


async def route(d: "Deferred", rows: Iterable[Row], on_live: OnLive) -> None:
    """Route rows; deferred ones go into jobs (submitted as they fill), live ones to `on_live`.
    A row that would pass --max-cost at its estimated batch price is not submitted."""
    planner = Engine(d.session, concurrency=1, log=False)  # for its availability cache
    chunks: dict[str, Chunk] = {}
    pricers: dict[str, RowPricer] = {}
    budget = d.b.budget
    refused = False
    try:
        for row in rows:
            if d.interrupted:
                return  # rows not yet in a submitted job stay to do
            try:
                request = d.b.request_for(row)
                prepared = await d.session.prepare(request, await planner.availability_for(request))
            except UserError:
                prepared = None
            if not deferrable(d.config, prepared):
                await _maybe_await(on_live(row))
                continue
            if refused:
                d.over_budget += 1
                continue
            attempt = prepared.plan.attempts[0]
            pricer = pricers.get(attempt.ref) or pricers.setdefault(
                attempt.ref, RowPricer(d.session.pricing, attempt.ref, batch=True))
            est = pricer.estimate(input_tokens(prepared), output_tokens(prepared))
            if budget is not None and budget.limit is not None and budget.committed + (est or 0.0) > budget.limit + 1e-12:
                refused, budget.refused_estimate = True, est
                d.b.stopped = "budget"
                d.over_budget += 1
                continue
            if budget is not None:
                budget.spent += est or 0.0
                budget.unknown_price += est is None
            adapter = d.adapter(attempt.provider)
            body = request_body(d.session, prepared)
            chunk = chunks.get(attempt.ref)
            line = adapter.line(Job.custom_id(len(chunk.rows) if chunk else 0), body)
            if chunk is not None and not chunk.fits(len(line)):
                await submit(d, chunks.pop(attempt.ref), on_live)
                chunk = None
                line = adapter.line(Job.custom_id(0), body)
            if chunk is None:
                chunk = chunks[attempt.ref] = Chunk(attempt.provider, attempt.model, adapter.max_requests,
                                                    adapter.max_bytes)
            chunk.add(row.id, line, est)
        for ref in list(chunks):
            if not d.interrupted:
                await submit(d, chunks.pop(ref), on_live)
    finally:
        for chunk in chunks.values():
            chunk.discard()


async def submit(d: "Deferred", chunk: Chunk, on_live: OnLive) -> None:
    """One job: its rows written down, then uploaded and created. Refused outright (a 4xx), its rows
    run live; an unsure failure (the connection broke) leaves it for the next run to settle."""
    path = chunk.close()
    job = d.jobs.new_job(chunk.provider, chunk.model, chunk.rows, now_iso(), round(chunk.est_cost_usd, 9))
    try:
        d.jobs.save()  # the rows are written down before anything is sent
        d.emit("submitting", job)
        try:
            await d.adapter(job.provider).submit(job, path, d.label(job), d.jobs.save)
        except BatchApiError as exc:
            if exc.definite:  # nothing exists at the provider
                d.jobs.jobs.remove(job)
                d.jobs.save()
                if d.b.budget is not None:
                    d.b.budget.spent -= job.est_cost_usd
                d.problem(f"{exc}; its {len(job.rows):,} rows run live instead", job)
                wanted = set(job.rows)
                for row in d.file_rows():
                    if row.id in wanted:
                        await _maybe_await(on_live(row))
            else:
                d.problem(f"job {job.key} ({job.ref}): submission unsure ({exc}); the next run checks whether "
                          f"{job.provider} has it before sending its rows again", job)
            return
        d.submitted_rows += len(job.rows)
        d.emit("submitted", job)
    finally:
        chunk.discard()


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value

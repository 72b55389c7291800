"""Looking without running: the dry run (each row routed, its live and deferred price), --status
(every job polled once) and --cancel. None of them writes the jobs file or submits anything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator

from ...engine import Engine
from ...errors import UserError
from .api import BatchApiError
from .bodies import deferrable, input_tokens, output_tokens
from .state import SUBMITTED, SUBMITTING, job_summary

if TYPE_CHECKING:
    from .run import Deferred


async def plan(d: "Deferred") -> AsyncIterator[dict[str, Any]]:
    """Each row still to do, routed, sending nothing: where it would go (`deferred`, `live`,
    `local`, `split`, `waiting` in a job, or `error`) and its estimated live and deferred price."""
    planner = Engine(d.session, concurrency=1, log=False)
    job_of = {rid: j.key for j in d.jobs.open_jobs for rid in j.rows}
    for row in d.file_rows():
        if d.b.answered(row):
            continue
        entry: dict[str, Any] = {"id": row.id, "line": row.line}
        if row.id in job_of:
            yield {**entry, "route": "waiting", "job": job_of[row.id]}
            continue
        try:
            request = d.b.request_for(row)
            prepared = await d.session.prepare(request, await planner.availability_for(request), count=False)
        except UserError as exc:
            yield {**entry, "route": "error", "error": str(exc)}
            continue
        entry["task"] = prepared.profile.name
        if not prepared.plan.attempts:
            if prepared.split is not None:
                yield {**entry, "route": "split"}
            else:
                from ...session import no_route_message

                yield {**entry, "route": "error", "error": no_route_message(prepared.plan)}
            continue
        first = prepared.plan.attempts[0]
        live = first.est_cost_usd
        entry.update(model=first.ref, provider=first.provider, est_live_usd=live)
        if deferrable(d.config, prepared):
            batch = d.session.pricing.estimate(first.ref, input_tokens(prepared), output_tokens(prepared), batch=True)
            yield {**entry, "route": "deferred", "est_deferred_usd": batch}
        elif first.local:
            yield {**entry, "route": "local", "est_deferred_usd": live}
        else:
            yield {**entry, "route": "live", "est_deferred_usd": live, "why": f"{first.provider} has no batch API"}


async def describe(d: "Deferred") -> list[dict[str, Any]]:
    """Every job of the jobs file, polled once."""
    out = []
    try:
        for job in d.jobs.jobs:
            item = job_summary(job)
            if job.status == SUBMITTED:
                st = await d.poll(job)
                if st is not None:
                    item.update(status=st.raw, state=st.state, done=st.done, failed=st.failed,
                                total=st.total or len(job.rows), ended=st.ended, outcome=st.outcome)
                else:
                    item["error"] = d.problems[-1] if d.problems else "cannot poll it"
            elif job.status == SUBMITTING:
                item["status"] = "submitting (the next run checks whether the provider has it)"
            out.append(item)
    finally:
        await d.close_adapters()
    return out


async def cancel(d: "Deferred") -> list[dict[str, Any]]:
    """Ask the providers to cancel every open job; the next run collects what they finished."""
    out = []
    taken = {j.job_id for j in d.jobs.jobs if j.job_id}
    try:
        for job in d.jobs.open_jobs:
            item = job_summary(job)
            try:
                adapter = d.adapter(job.provider)
                if job.status == SUBMITTING and not await adapter.find(job, d.label(job), taken):
                    item["status"] = "never created"
                elif job.job_id:
                    st = await adapter.cancel(job)
                    item.update(status=st.raw, state=st.state, done=st.done, failed=st.failed)
            except (BatchApiError, UserError) as exc:
                item["error"] = str(exc)
            out.append(item)
    finally:
        await d.close_adapters()
    return out

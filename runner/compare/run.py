"""Running a comparison: every cell through the batch engine, the judge per prompt as soon as
that prompt's answers are in."""

from __future__ import annotations

import asyncio

from ..engine import Job, Outcome, run_jobs
from ..errors import UserError
from ..records import RunRecord
from ..request import Request
from ..store import now_iso
from .judge import judge_prompt_answers
from .model import Cell, Comparison, OnCell, Plan, item_id, new_comparison_id


async def run_comparison(session, plan: Plan, *, comparison_id: str | None = None,
                         on_cell: OnCell | None = None) -> Comparison:
    """Run every cell through the batch engine (global `concurrency`, per-provider lanes and
    limits, no head-of-line blocking); each prompt's judge starts as soon as its answers are in."""
    comp = Comparison(comparison_id or new_comparison_id(), now_iso(), plan.prompts, plan.columns,
                      judge=plan.judge)
    n_columns = len(plan.columns)
    remaining = [n_columns] * len(plan.prompts)
    judging: list[asyncio.Task] = []

    def jobs():
        for p, prompt in enumerate(plan.prompts):
            for c, column in enumerate(plan.columns):
                request = Request(prompt=prompt.text, task=column.task or plan.default_task,
                                  documents=prompt.documents if prompt.documents is not None else plan.documents,
                                  system=prompt.system if prompt.system is not None else plan.system,
                                  model=column.model, local_only=plan.local_only,
                                  max_cost_usd=plan.max_cost_usd if column.task else None, options=plan.options)
                yield Job(request, item_id=item_id(p, c, column), key=(p, c))

    async def on_result(outcome: Outcome) -> None:
        p, c = outcome.job.key
        request = outcome.job.request
        if outcome.result is not None and outcome.prepared is not None:
            rec = RunRecord.from_result(outcome.prepared.profile.name, outcome.result, outcome.run_id)
        else:  # never reached a model: no route, an unreadable document…
            rec = RunRecord.never_ran(request.task, outcome.message or "failed", request.model)
        cell = comp.cells[(p, c)] = Cell(rec.json())
        if on_cell is not None:
            on_cell(p, c, cell)
        remaining[p] -= 1
        if remaining[p] == 0 and plan.judge:
            judging.append(asyncio.ensure_future(_judge(session, comp, p, plan)))

    if plan.judge:
        await _check_judge(session, plan)
    _warm_up(session, plan)
    try:
        await run_jobs(session, jobs(), plan.concurrency, on_result, kind="compare", group_id=comp.id)
        await asyncio.gather(*judging)
    finally:
        for task in judging:
            task.cancel()
    return comp


async def _check_judge(session, plan: Plan) -> None:
    """A judge that cannot be reached is the user's to fix before anything is spent."""
    prepared = await session.prepare(Request(prompt="judge", task=plan.default_task, model=plan.judge,
                                             local_only=plan.local_only), count=False)
    if not prepared.plan.attempts:
        reasons = "; ".join(s.reason for s in prepared.plan.skipped) or "no route"
        raise UserError(f"--judge {plan.judge} cannot be used: {reasons}")


def _warm_up(session, plan: Plan) -> None:
    """Do the one-time work of a first call now (build each provider's
    HTTP client, load the price data): done mid-run it would block the event loop and be counted
    in whichever cells were streaming at that moment, so the latencies compared would not be
    the models' alone."""
    config = session.config
    refs = [c.model for c in plan.columns if c.model] + ([plan.judge] if plan.judge else [])
    for c in plan.columns:
        if c.task:
            refs += [cand.model for cand in config.profile(c.task).candidates]
    for ref in dict.fromkeys(refs):
        provider = config.providers.get(ref.partition("/")[0])
        if provider is None or (provider.key_env and not provider.usable_key()):
            continue  # not callable: its cells fail at once, with the reason
        try:
            session.pool.get(provider.name).warm(session.executor.timeouts())
            session.pricing.estimate(ref, 1000, 1000)
        except Exception:  # noqa: BLE001 - only a warm-up: the real call reports any problem
            pass


async def _judge(session, comp: Comparison, p: int, plan: Plan) -> None:
    comp.judgements[p] = await judge_prompt_answers(session, comp, p, plan)

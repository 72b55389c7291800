"""`runner batch --deferred`: hosted rows through the providers' batch APIs, local rows live.

One run, in order:

1. **Settle** jobs a killed run left `submitting`: adopt the job the provider has, or forget the
   note (its rows are routed again below). Nothing is ever submitted twice.
2. **Collect** what is ready (collect.py): poll every open job once; an ended job's rows are
   written to the results file and logged as runs.
3. **Route** every row still to do (submit.py) exactly as a live batch does: a row whose first
   model's provider has a batch API goes into a job for that model; the others run live, now,
   through the Batch's own engine.
4. **Wait** (unless --no-wait): poll with backoff, seconds at first, minutes later; collect each
   job as it ends. Ctrl-C stops waiting and leaves the jobs running.

The dry run, --status and --cancel are in control.py; the jobs file in state.py; the three
protocols in openai.py, anthropic.py, gemini.py (protocols.py says which provider uses which).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterator

from ...engine import Engine, Job as EngineJob
from ...errors import UserError
from ...prompts import BadRow, Row
from ..budget import Budget
from ..run import EXIT_BUDGET, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Batch
from . import control
from .api import BatchApiError, JobStatus
from .collect import collect
from .protocols import adapter_for
from .state import SUBMITTED, SUBMITTING, Job, JobsFile, job_summary, state_path
from .submit import route

EXIT_PENDING = 4  # jobs are still running at the providers: run the same command again to collect
POLL_S = 5.0
MAX_POLL_S = 300.0
BACKOFF = 1.5


@dataclass
class DeferredOptions:
    wait: bool = True  # False: --no-wait
    resubmit: bool = False  # failed or expired rows: a new job (True) or a live fallback (False)
    poll_s: float = POLL_S  # the first wait between polls; it grows to max_poll_s
    max_poll_s: float = MAX_POLL_S


Event = Callable[[str, Job, Any], None]


class Deferred:
    """One `runner batch --deferred` run over a Batch (already `read()`). Its counters are public
    for the progress display and the summary; `on_event(what, job, detail)` tells of each job's
    steps (submitting, submitted, adopted, status, collected, problem)."""

    def __init__(self, batch: Batch, options: DeferredOptions | None = None) -> None:
        if batch.out_path is None:
            raise UserError("--deferred needs a results file (not --out -): the jobs it submits are "
                            "recorded beside it")
        self.b = batch
        self.o = options or DeferredOptions()
        self.config, self.session = batch.config, batch.session
        self.jobs = JobsFile.load(state_path(batch.out_path))
        self._adapters: dict[str, Any] = {}
        self.on_event: Event | None = None
        self.live_ids: set[str] = set()  # rows routed live: the Batch's own run takes these
        self.handled: set[str] = set()  # rows written (or handed on) by this run: never routed again in it
        # counters for the summary
        self.submitted_rows = self.collected_rows = self.collected_ok = 0
        self.deferred_cost = 0.0
        self.live_equivalent = 0.0  # what the collected rows would have cost live
        self.unknown_price = self.fell_back = self.resubmitted = self.over_budget = 0
        self.cancelled = 0  # rows of cancelled jobs that never ran
        self.problems: list[str] = []
        self.interrupted = False
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()
        self._engines: set[Engine] = set()

    # --- setup and plumbing -------------------------------------------------------------------

    def attach(self) -> None:
        """Tie the jobs file to the batch: one batch id, and live rows chosen by routing."""
        b = self.b
        if b.o.overwrite and self.jobs.open_jobs:
            raise UserError(f"--overwrite would start over while {len(self.jobs.open_jobs)} deferred job(s) still "
                            f"run; cancel them first (--deferred --cancel) or collect them (--deferred)")
        if not b.state.batch_id and self.jobs.batch_id:
            b.batch_id = self.jobs.batch_id  # a first run killed before any line was written
        self.jobs.batch_id = b.batch_id
        b.row_filter = lambda row: row.id in self.live_ids

    def adapter(self, provider: str):
        a = self._adapters.get(provider)
        if a is None:
            a = self._adapters[provider] = adapter_for(self.config.providers[provider], self.config.settings)
        return a

    def label(self, job: Job) -> str:
        """What the provider is told the job is called (OpenAI metadata, Gemini display name)."""
        return f"runner-{self.jobs.batch_id}-{job.key}"

    def emit(self, what: str, job: Job, detail: Any = None) -> None:
        if self.on_event is not None:
            self.on_event(what, job, detail)

    def problem(self, message: str, job: Job | None = None) -> None:
        self.problems.append(message)
        if job is not None:
            self.emit("problem", job, message)

    def spawn(self, coro) -> None:
        """Run `coro` alongside (a live fallback); `run()` waits for it before it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_engine(self, jobs: list[EngineJob], on_result) -> None:
        """Live rows outside the Batch's own run (fallbacks), within --max-cost and Ctrl-C."""
        b = self.b
        engine = Engine(self.session, concurrency=b.concurrency, kind="batch", group_id=b.batch_id)
        self._engines.add(engine)
        try:
            await engine.run(jobs, on_result, admit=b.budget.admit if b.budget else None)
        finally:
            self._engines.discard(engine)
            if engine.stopped == "admit":
                b.stopped = "budget"

    def file_rows(self) -> Iterator[Row]:
        for row in self.b.rows():
            if not isinstance(row, BadRow):
                yield row

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> int:
        b = self.b
        self._stop = asyncio.Event()
        started = time.perf_counter()
        live = None
        try:
            await self._settle()
            # What the results file records, plus the submitted rows not collected yet at their estimate.
            b.budget = Budget(b.o.max_cost, b.state.cost_usd + sum(j.est_cost_usd for j in self.jobs.open_jobs))
            await self._poll_once()
            if self._rows_left():
                await route(self, self._todo_rows(), lambda row: self.live_ids.add(row.id))
            if self.live_ids and not self.interrupted:
                live = asyncio.ensure_future(b.run(finish=False))
            if self.o.wait and not self.interrupted:
                await self._wait()
            if live is not None:
                await live
            while self._tasks:
                await asyncio.gather(*self._tasks)
        except BaseException:
            for task in [*self._tasks, *([live] if live else [])]:
                task.cancel()
            b.close()
            raise
        finally:
            await self.close_adapters()
            b.elapsed = time.perf_counter() - started
        if self.interrupted and b.stopped is None:
            b.stopped = "interrupted"
        self._tidy()
        b.finish()
        return self.exit_code()

    def interrupt(self) -> bool:
        """First call: stop waiting (the jobs run on) and start no more live rows. Second: abandon
        the running live rows too. True on the second call."""
        second = self.interrupted
        self.interrupted = True
        if self._stop is not None:
            self._stop.set()
        for engine in list(self._engines):
            if second:
                engine.abandon()
            else:
                engine.stop("interrupt")
        self.b.interrupt()
        return second

    def exit_code(self) -> int:
        b = self.b
        if b.stopped == "interrupted" or self.interrupted:
            return EXIT_INTERRUPTED
        if b.stopped == "budget":
            return EXIT_BUDGET
        if self.jobs.open_jobs:
            return EXIT_PENDING
        code = b.exit_code()
        return EXIT_FAILED if code == EXIT_OK and (self.cancelled or self.over_budget) else code

    @property
    def open_jobs(self) -> list[Job]:
        return self.jobs.open_jobs

    @property
    def waiting_rows(self) -> int:
        return sum(len(j.rows) for j in self.jobs.open_jobs)

    # --- 1. jobs a killed run left mid-submission -------------------------------------------

    async def _settle(self) -> None:
        taken = {j.job_id for j in self.jobs.jobs if j.job_id}
        for job in [j for j in self.jobs.jobs if j.status == SUBMITTING]:
            try:
                found = await self.adapter(job.provider).find(job, self.label(job), taken)
            except (BatchApiError, UserError) as exc:
                self.problem(f"job {job.key} ({job.ref}): could not check whether it was created ({exc}); "
                             f"its {len(job.rows):,} rows wait for the next run", job)
                continue
            if found:
                taken.add(job.job_id)
                self.emit("adopted", job)
            else:
                self.jobs.jobs.remove(job)  # never created: its rows are routed again
            self.jobs.save()

    # --- 2 and 4. polling ------------------------------------------------------------------

    async def poll(self, job: Job) -> JobStatus | None:
        try:
            st = await self.adapter(job.provider).poll(job)
        except (BatchApiError, UserError) as exc:
            self.problem(f"job {job.key} ({job.ref}, {job.job_id}): cannot poll it: {exc}", job)
            return None
        job.provider_status, job.done, job.failed = st.raw, st.done, st.failed
        self.emit("status", job, st)
        return st

    async def _poll_once(self) -> None:
        ended = []
        for job in [j for j in self.jobs.jobs if j.status == SUBMITTED]:
            st = await self.poll(job)
            if st is not None and st.ended:
                ended.append((job, st))
        await collect(self, ended)

    async def _wait(self) -> None:
        """Poll every submitted job with its own backoff until none is left or Ctrl-C."""
        assert self._stop is not None
        interval: dict[str, float] = {}
        due: dict[str, float] = {}
        while not self._stop.is_set():
            now = time.monotonic()
            jobs = [j for j in self.jobs.jobs if j.status == SUBMITTED]
            if not jobs:
                return
            for j in jobs:
                if j.key not in due:
                    interval[j.key] = self.o.poll_s
                    due[j.key] = now + self.o.poll_s
            soonest = min(due[j.key] for j in jobs)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, soonest - now))
                return
            except TimeoutError:
                pass
            ended = []
            for job in jobs:
                if self._stop.is_set() or due[job.key] > time.monotonic():
                    continue
                st = await self.poll(job)
                if st is not None and st.ended:
                    ended.append((job, st))
                interval[job.key] = min(self.o.max_poll_s, interval[job.key] * BACKOFF)
                due[job.key] = time.monotonic() + interval[job.key]
            await collect(self, ended)

    # --- 3. what is left to route -------------------------------------------------------------

    def _rows_left(self) -> bool:
        """Are rows left to route (not answered, handled by this run or waiting in a job)? Saves
        a pass over a 100,000-row prompt file when collecting answered everything."""
        waiting = sum(1 for rid in self.jobs.rows_waiting() if rid not in self.b.state.ok)
        return self.b.scan.todo > len(self.handled) + waiting

    def _todo_rows(self) -> Iterator[Row]:
        waiting = self.jobs.rows_waiting()
        for row in self.file_rows():
            if row.id not in waiting and row.id not in self.handled and not self.b.answered(row):
                yield row

    # --- looking without running ----------------------------------------------------------------

    def plan(self) -> AsyncIterator[dict[str, Any]]:
        return control.plan(self)

    async def describe(self) -> list[dict[str, Any]]:
        return await control.describe(self)

    async def cancel(self) -> list[dict[str, Any]]:
        return await control.cancel(self)

    # --- the end ------------------------------------------------------------------------------

    def _tidy(self) -> None:
        """Collected jobs leave the jobs file; with none open, the file goes."""
        self.jobs.forget_collected()
        if self.jobs.jobs:
            self.jobs.save()
        else:
            self.jobs.remove()

    async def close_adapters(self) -> None:
        for a in self._adapters.values():
            await a.api.aclose()
        self._adapters.clear()

    def summary(self) -> dict[str, Any]:
        return {
            "submitted_rows": self.submitted_rows, "collected_rows": self.collected_rows,
            "collected_ok": self.collected_ok, "fell_back": self.fell_back, "resubmitted": self.resubmitted,
            "over_budget": self.over_budget, "cancelled": self.cancelled,
            "deferred_cost_usd": round(self.deferred_cost, 6), "live_price_usd": round(self.live_equivalent, 6),
            "unknown_price_rows": self.unknown_price, "open_jobs": [job_summary(j) for j in self.jobs.open_jobs],
            "waiting_rows": self.waiting_rows, "problems": self.problems,
        }

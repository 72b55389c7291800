"""`runner batch --deferred`: hosted rows through the providers' batch APIs, local rows live.

One run, in order:

1. **Settle** jobs a killed run left `submitting`: adopt the job the provider has, or forget the
   note (its rows are routed again below). Nothing is ever submitted twice.
2. **Collect** what is ready: poll every open job once; an ended job's rows are written to the
   results file (one line each, `deferred: true`, `job_id`) and logged as runs.
3. **Route** every row still to do (not answered, not waiting in a job) exactly as a live batch
   does. A row whose first model's provider has a batch API is written into a job for that
   model (split at the provider's request and byte limits); the job's rows are saved in the
   jobs file before it is uploaded, and its id once it exists. Other rows run live, now.
4. **Wait** (unless --no-wait): poll with backoff, seconds at first, minutes later; collect each
   job as it ends. Ctrl-C stops waiting and leaves the jobs running.

A row that comes back failed or expired falls back live to its next candidates (the model of the
batch is left out), or with --resubmit goes into a new job. A cancelled row is left for the next
run. `--max-cost` counts a submitted row at its estimated batch price until its job is collected.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

from ...engine import Engine, Job as EngineJob, Outcome
from ...errors import UserError
from ...prompts import BadRow, Row
from ...records import attempt_json
from ..budget import Budget
from ..run import EXIT_BUDGET, EXIT_INTERRUPTED, Batch
from .api import BatchApiError, JobStatus, RowResult
from .bodies import deferrable, input_tokens, output_tokens, request_body
from .chunk import Chunk
from .collect import deferred_run, index_results, index_results_slowly, job_rows, missing, read_line, record_of
from .cost import RowPricer
from .protocols import adapter_for
from .state import COLLECTED, SUBMITTED, SUBMITTING, Job, JobsFile, job_summary, state_path
from .times import ms_between, now_iso, parse_iso

EXIT_PENDING = 4  # jobs are still running at the providers: run the same command again to collect
POLL_S = 5.0
MAX_POLL_S = 300.0
BACKOFF = 1.5
LOG_CHUNK = 2000  # rows written to the run log per commit while collecting


@dataclass
class DeferredOptions:
    wait: bool = True  # False: --no-wait
    resubmit: bool = False  # failed or expired rows: a new job (True) or a live fallback (False)
    poll_s: float = POLL_S  # the first wait between polls; it grows to max_poll_s
    max_poll_s: float = MAX_POLL_S


Event = Callable[[str, Job, Any], None]


class Deferred:
    """One `runner batch --deferred` run over a Batch (already `read()`)."""

    def __init__(self, batch: Batch, options: DeferredOptions | None = None) -> None:
        if batch.out_path is None:
            raise UserError("--deferred needs a results file (not --out -): the jobs it submits are "
                            "recorded beside it")
        self.b = batch
        self.o = options or DeferredOptions()
        self.config, self.session = batch.config, batch.session
        self.jobs = JobsFile.load(state_path(batch.out_path))
        self._adapters: dict[str, Any] = {}
        self.on_event: Event | None = None  # (what, job, detail): the progress display listens
        self.status: dict[str, JobStatus] = {}  # job key → as last polled
        self.live_ids: set[str] = set()
        # counters for the summary
        self.submitted_rows = 0
        self.collected_rows = 0
        self.collected_ok = 0
        self.deferred_cost = 0.0
        self.live_equivalent = 0.0  # what the collected rows would have cost live
        self.unknown_price = 0
        self.fell_back = 0
        self.resubmitted = 0
        self.over_budget = 0
        self.problems: list[str] = []
        self.interrupted = False
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()
        self._engines: set[Engine] = set()
        self._live_started = False

    # --- setup ----------------------------------------------------------------------------

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
        return f"runner-{self.jobs.batch_id}-{job.key}"

    def _emit(self, what: str, job: Job, detail: Any = None) -> None:
        if self.on_event is not None:
            self.on_event(what, job, detail)

    def _problem(self, message: str, job: Job | None = None) -> None:
        self.problems.append(message)
        if job is not None:
            self._emit("problem", job, message)

    # --- the run --------------------------------------------------------------------------

    async def run(self) -> int:
        b = self.b
        self._stop = asyncio.Event()
        pending_est = sum(j.est_cost_usd for j in self.jobs.open_jobs)
        b.budget = Budget(b.o.max_cost, b.state.cost_usd + pending_est)
        started = time.perf_counter()
        try:
            await self._settle()
            await self._poll_once()
            await self.route(self._todo_rows(), self.live_ids.add)
            live = None
            if self.live_ids and not self.interrupted:
                self._live_started = True
                live = asyncio.ensure_future(b.run(finish=False))
                self._tasks.add(live)
            if self.o.wait and not self.interrupted:
                await self._wait()
            if live is not None:
                await live
            while self._tasks - {live}:
                await asyncio.gather(*(self._tasks - {live}))
        except BaseException:
            for task in self._tasks:
                task.cancel()
            b.close()
            raise
        finally:
            await self._close_adapters()
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
        return b.exit_code()

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
                self._problem(f"job {job.key} ({job.ref}): could not check whether it was created ({exc}); "
                              f"its {len(job.rows):,} rows wait for the next run", job)
                continue
            if found:
                taken.add(job.job_id)
                self._emit("adopted", job)
            else:
                self.jobs.jobs.remove(job)  # never created: its rows are routed again
            self.jobs.save()

    # --- 2. polling and collecting -----------------------------------------------------------

    async def _poll(self, job: Job) -> JobStatus | None:
        try:
            st = await self.adapter(job.provider).poll(job)
        except (BatchApiError, UserError) as exc:
            self._problem(f"job {job.key} ({job.ref}, {job.job_id}): cannot poll it: {exc}", job)
            return None
        self.status[job.key] = st
        job.provider_status, job.done, job.failed = st.raw, st.done, st.failed
        self._emit("status", job, st)
        return st

    async def _poll_once(self) -> None:
        for job in [j for j in self.jobs.jobs if j.status == SUBMITTED]:
            st = await self._poll(job)
            if st is not None and st.ended:
                await self._collect(job, st)

    async def _wait(self) -> None:
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
            for job in jobs:
                if self._stop.is_set() or due[job.key] > time.monotonic():
                    continue
                st = await self._poll(job)
                if st is not None and st.ended:
                    await self._collect(job, st)
                interval[job.key] = min(self.o.max_poll_s, interval[job.key] * BACKOFF)
                due[job.key] = time.monotonic() + interval[job.key]

    async def _collect(self, job: Job, st: JobStatus) -> None:
        """An ended job: every row's line written and logged, failed rows handed on, then the job
        is marked collected. A run killed half-way collects again; rows already written are skipped."""
        adapter = self.adapter(job.provider)
        job.completed_at, job.provider_status = st.completed_at, st.raw
        with TemporaryDirectory(prefix="runner-batch-") as tmp:
            dest = Path(tmp) / "results.jsonl"
            try:
                await adapter.fetch(job, st, dest)
            except BatchApiError as exc:
                self._problem(f"job {job.key} ({job.ref}, {job.job_id}) ended but its results could not be "
                              f"fetched ({exc}); the next run tries again", job)
                return
            failed = await self._write_results(job, st, adapter, dest)
        job.status = COLLECTED
        if self.o.resubmit:
            again = [row for row, _, _ in failed if row is not None]
            self.resubmitted += len(again)
            await self.route(again, lambda row: self._spawn(self._live_now(row)))
        elif failed:
            self._spawn(self._fall_back(job, failed))
        self.jobs.save()
        assert self.b.budget is not None
        self.b.budget.spent -= job.est_cost_usd  # its rows now count at their real price
        self._emit("collected", job, st)

    async def _write_results(self, job: Job, st: JobStatus, adapter: Any, dest: Path) -> list:
        """Write the job's rows, in prompt-file order; returns the failed rows to hand on.

        Per chunk of rows: their runs are committed to the run log first, then their lines are
        written, so a line never names a run the log lost. Collecting again after a kill skips
        rows whose line is there and reuses runs already logged: nothing is written twice."""
        b = self.b
        store = self.session.store
        when = parse_iso(job.completed_at)
        pricer = RowPricer(self.session.pricing, job.ref, batch=True, when=when)
        live_pricer = RowPricer(self.session.pricing, job.ref, batch=False, when=when)
        wait_ms = ms_between(job.submitted_at, job.completed_at)
        index = index_results(dest)
        slow = False
        written = getattr(b.state, "job_of", {})  # row → the job of its last line
        logged = store.deferred_runs(job.job_id) if job.job_id else {}
        elsewhere = self.jobs.rows_waiting() - set(job.rows)
        failed: list[tuple[Row, RowResult, dict]] = []
        pending = job_rows(job, self._file_rows())
        with open(dest, "rb") as f:
            while True:
                taken = list(_take(pending, LOG_CHUNK))
                if not taken:
                    break
                chunk = []
                for row, i in taken:
                    rid = job.rows[i]
                    if rid in b.state.ok or written.get(rid) == job.job_id or rid in elsewhere:
                        continue
                    res = None
                    offset = index.get(i)
                    if offset is not None:
                        parsed = adapter.parse(read_line(f, offset))
                        if (parsed is None or parsed[0] != Job.custom_id(i)) and not slow:
                            index, slow = index_results_slowly(dest, adapter), True
                            offset = index.get(i)
                            parsed = adapter.parse(read_line(f, offset)) if offset is not None else None
                        if parsed is not None and parsed[0] == Job.custom_id(i):
                            res = parsed[1]
                    if res is None:
                        res = missing(st)
                    cost = pricer.cost(res.usage) if res.ok or res.usage.input_tokens else None
                    attempt, summary = deferred_run(job, res, cost, wait_ms)
                    chunk.append((row, rid, res, attempt, summary))
                if not chunk:
                    continue
                with store.transaction():
                    run_ids = [logged.get(rid) or self._log(row, rid, attempt, summary)
                               for row, rid, _, attempt, summary in chunk]
                for (row, rid, res, attempt, summary), run_id in zip(chunk, run_ids):
                    if res.ok or row is None:
                        self._write(row, rid, attempt, summary, run_id, job,
                                    live_pricer.cost(res.usage) if res.ok else None)
                    elif res.kind != "canceled":
                        failed.append((row, res, attempt))
                await asyncio.sleep(0)  # let live rows run between chunks
        return failed

    def _log(self, row: Row | None, rid: str, attempt: dict, summary: dict) -> int:
        store = self.session.store
        task = self.b.route_of(row)[0] if row is not None else None
        run_id = store.start_run(kind="batch", task=task, prompt=row.prompt if row is not None else "",
                                 system=self._system(row, task), files=list(row.files) if row is not None else [],
                                 group_id=self.b.batch_id, item_id=rid)
        store.add_attempt(run_id, attempt)
        store.finish_run(run_id, summary)
        return run_id

    def _system(self, row: Row | None, task: str | None) -> str | None:
        if row is None:
            return None
        if row.system is not None:
            return row.system
        if self.b.o.system is not None:
            return self.b.o.system
        return self.config.profile(task).system if task else None

    def _write(self, row: Row | None, rid: str, attempt: dict, summary: dict, run_id: int, job: Job,
               live_cost: float | None) -> None:
        task = self.b.route_of(row)[0] if row is not None else None
        rec = record_of(task, attempt, summary, run_id)
        line = self.b.line(rid, rec, run_id, deferred=True, job_id=job.job_id)
        self.b.write(line)
        self.collected_rows += 1
        self.collected_ok += bool(rec["ok"])
        if rec["cost_usd"] is None:
            self.unknown_price += 1
        else:
            self.deferred_cost += rec["cost_usd"]
            self.live_equivalent += live_cost or 0.0

    # --- failed rows: live fallback ----------------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fall_back(self, job: Job, failed: list[tuple[Row, RowResult, dict]]) -> None:
        """Failed rows, live, on their next candidates (the batch's model left out); a row with no
        other candidate keeps its failure."""
        b = self.b
        planner = Engine(self.session, concurrency=1, log=False)
        jobs: list[EngineJob] = []
        for row, res, attempt in failed:
            try:
                request = b.request_for(row)
                prepared = await self.session.prepare(request, await planner.availability_for(request))
            except UserError as exc:
                self._write_failure(row, job, attempt, f"{res.error}; no live fallback: {exc}")
                continue
            if not [a for a in prepared.plan.attempts if a.ref != job.ref]:
                self._write_failure(row, job, attempt, f"{res.error}; no other model to fall back to")
                continue
            jobs.append(EngineJob(request, item_id=row.id, key=(row, attempt, res), exclude=(job.ref,)))
        if not jobs or self.interrupted:
            return
        self.fell_back += len(jobs)
        engine = Engine(self.session, concurrency=b.concurrency, kind="batch", group_id=b.batch_id)
        self._engines.add(engine)

        def on_result(outcome: Outcome) -> None:
            row, attempt, res = outcome.job.key
            line = b.record(row, outcome)
            line["attempts"] = [attempt_json(attempt), *line.get("attempts", [])]
            line["job_id"] = job.job_id
            b.write(line)

        try:
            await engine.run(jobs, on_result, admit=b.budget.admit if b.budget else None)
        finally:
            self._engines.discard(engine)
            if engine.stopped == "admit":
                b.stopped = "budget"

    def _write_failure(self, row: Row, job: Job, attempt: dict, error: str) -> None:
        summary = {"outcome": "failed", "model": job.ref, "cost_usd": attempt.get("cost_usd"), "error": error}
        rec = record_of(self.b.route_of(row)[0], attempt, summary, None)
        self.b.write(self.b.line(row.id, rec, None, deferred=True, job_id=job.job_id))

    async def _live_now(self, row: Row) -> None:
        """A row routed live after the live phase began (a resubmitted row whose model has no batch
        API any more, or a job the provider refused): run it on its own."""
        engine = Engine(self.session, concurrency=self.b.concurrency, kind="batch", group_id=self.b.batch_id)
        self._engines.add(engine)
        try:
            await engine.run([EngineJob(self.b.request_for(row), item_id=row.id, key=row)],
                             lambda outcome: self.b.write(self.b.record(row, outcome)))
        finally:
            self._engines.discard(engine)

    # --- 3. routing and submitting -------------------------------------------------------------

    def _todo_rows(self) -> Iterator[Row]:
        waiting = self.jobs.rows_waiting()
        for row in self._file_rows():
            if row.id not in self.b.state.ok and row.id not in waiting:
                yield row

    def _file_rows(self) -> Iterator[Row]:
        for row in self.b.rows():
            if not isinstance(row, BadRow):
                yield row

    async def route(self, rows: Iterable[Row], on_live: Callable[[Row], Any]) -> None:
        """Route rows; deferred ones go into jobs (submitted as they fill), live ones to `on_live`."""
        planner = Engine(self.session, concurrency=1, log=False)  # for its availability cache
        chunks: dict[str, Chunk] = {}
        budget = self.b.budget
        refused = False
        try:
            for row in rows:
                live = True
                try:
                    request = self.b.request_for(row)
                    prepared = await self.session.prepare(request, await planner.availability_for(request))
                    live = not deferrable(self.config, prepared)
                except UserError:
                    prepared = None
                if live or prepared is None:
                    await _maybe_await(on_live(row))
                    continue
                if refused:
                    self.over_budget += 1
                    continue
                attempt = prepared.plan.attempts[0]
                adapter = self.adapter(attempt.provider)
                est = self.session.pricing.estimate(attempt.ref, input_tokens(prepared), output_tokens(prepared),
                                                    batch=True)
                if budget is not None and budget.limit is not None and budget.committed + (est or 0.0) > budget.limit + 1e-12:
                    refused, budget.refused_estimate = True, est
                    self.b.stopped = "budget"
                    self.over_budget += 1
                    continue
                if budget is not None:
                    budget.spent += est or 0.0
                    budget.unknown_price += est is None
                chunk = chunks.get(attempt.ref)
                line = adapter.line(Job.custom_id(len(chunk.rows) if chunk else 0), request_body(self.session, prepared))
                if chunk is not None and not chunk.fits(len(line)):
                    await self._submit(chunks.pop(attempt.ref), on_live)
                    chunk = None
                    line = adapter.line(Job.custom_id(0), request_body(self.session, prepared))
                if chunk is None:
                    chunk = chunks[attempt.ref] = Chunk(attempt.provider, attempt.model, adapter.max_requests,
                                                        adapter.max_bytes)
                chunk.add(row.id, line, est)
            for ref in list(chunks):
                await self._submit(chunks.pop(ref), on_live)
        finally:
            for chunk in chunks.values():
                chunk.discard()

    async def _submit(self, chunk: Chunk, on_live: Callable[[Row], Any]) -> None:
        path = chunk.close()
        job = self.jobs.new_job(chunk.provider, chunk.model, chunk.rows, now_iso(), round(chunk.est_cost_usd, 9))
        try:
            self.jobs.save()  # the rows are written down before anything is sent
            self._emit("submitting", job)
            try:
                await self.adapter(job.provider).submit(job, path, self.label(job), self.jobs.save)
            except BatchApiError as exc:
                if exc.definite:
                    # Refused outright: nothing exists at the provider; the rows run live instead.
                    self.jobs.jobs.remove(job)
                    self.jobs.save()
                    self.b.budget.spent -= job.est_cost_usd
                    self._problem(f"{exc}; its {len(job.rows):,} rows run live instead", job)
                    wanted = set(job.rows)
                    for row in self._file_rows():
                        if row.id in wanted:
                            await _maybe_await(on_live(row))
                else:
                    self._problem(f"job {job.key} ({job.ref}): submission unsure ({exc}); the next run "
                                  f"checks whether {job.provider} has it before sending its rows again", job)
                return
            self.submitted_rows += len(job.rows)
            self._emit("submitted", job)
        finally:
            chunk.discard()

    # --- --dry-run -------------------------------------------------------------------------------

    async def plan(self) -> AsyncIterator[dict[str, Any]]:
        """Each row still to do, routed, sending nothing: where it would go (`deferred`, `live`,
        `local`, `split`, `waiting` in a job, or `error`) and its estimated live and deferred price."""
        planner = Engine(self.session, concurrency=1, log=False)
        job_of = {rid: j.key for j in self.jobs.open_jobs for rid in j.rows}
        for row in self._file_rows():
            if row.id in self.b.state.ok:
                continue
            entry: dict[str, Any] = {"id": row.id, "line": row.line}
            if row.id in job_of:
                yield {**entry, "route": "waiting", "job": job_of[row.id]}
                continue
            try:
                request = self.b.request_for(row)
                prepared = await self.session.prepare(request, await planner.availability_for(request))
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
            if deferrable(self.config, prepared):
                batch = self.session.pricing.estimate(first.ref, input_tokens(prepared), output_tokens(prepared),
                                                      batch=True)
                yield {**entry, "route": "deferred", "est_deferred_usd": batch}
            elif first.local:
                yield {**entry, "route": "local", "est_deferred_usd": live}
            else:
                yield {**entry, "route": "live", "est_deferred_usd": live,
                       "why": f"{first.provider} has no batch API"}

    # --- --status and --cancel -------------------------------------------------------------

    async def describe(self) -> list[dict[str, Any]]:
        """Every job of the jobs file, polled once (nothing is written or submitted)."""
        out = []
        try:
            for job in self.jobs.jobs:
                item = job_summary(job)
                if job.status == SUBMITTED:
                    st = await self._poll(job)
                    if st is not None:
                        item.update(status=st.raw, state=st.state, done=st.done, failed=st.failed,
                                    total=st.total or len(job.rows), ended=st.ended, outcome=st.outcome)
                elif job.status == SUBMITTING:
                    item["status"] = "submitting (the next run checks whether the provider has it)"
                out.append(item)
        finally:
            await self._close_adapters()
        return out

    async def cancel(self) -> list[dict[str, Any]]:
        """Ask the provider to cancel every open job; the next run collects what they finished."""
        out = []
        taken = {j.job_id for j in self.jobs.jobs if j.job_id}
        try:
            for job in self.jobs.open_jobs:
                item = job_summary(job)
                try:
                    adapter = self.adapter(job.provider)
                    if job.status == SUBMITTING and not await adapter.find(job, self.label(job), taken):
                        item["status"] = "never created"
                    elif job.job_id:
                        st = await adapter.cancel(job)
                        item.update(status=st.raw, state=st.state, done=st.done, failed=st.failed)
                except (BatchApiError, UserError) as exc:
                    item["error"] = str(exc)
                out.append(item)
        finally:
            await self._close_adapters()
        return out

    # --- the end ---------------------------------------------------------------------------------

    def _tidy(self) -> None:
        """Collected jobs leave the jobs file; with none open, the file goes."""
        self.jobs.forget_collected()
        if self.jobs.jobs:
            self.jobs.save()
        else:
            self.jobs.remove()

    async def _close_adapters(self) -> None:
        for a in self._adapters.values():
            await a.api.aclose()
        self._adapters.clear()

    def summary(self) -> dict[str, Any]:
        return {
            "submitted_rows": self.submitted_rows, "collected_rows": self.collected_rows,
            "collected_ok": self.collected_ok, "fell_back": self.fell_back, "resubmitted": self.resubmitted,
            "over_budget": self.over_budget, "deferred_cost_usd": round(self.deferred_cost, 6),
            "live_price_usd": round(self.live_equivalent, 6), "unknown_price_rows": self.unknown_price,
            "open_jobs": [job_summary(j) for j in self.jobs.open_jobs], "waiting_rows": self.waiting_rows,
            "problems": self.problems,
        }


def _take(it: Iterator, n: int) -> Iterator:
    for _ in range(n):
        try:
            yield next(it)
        except StopIteration:
            return


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value


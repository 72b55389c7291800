"""The concurrent engine behind `runner batch` (and `runner compare`): many requests through one
Session, as many at once as the backends can take.

    from runner.engine import Job, run_jobs

    async def on_result(outcome):          # awaited; the job counts as finished when it returns
        save(outcome.job.key, outcome.result)

    jobs = (Job(Request(prompt=p, task="fast"), item_id=str(i)) for i, p in enumerate(prompts))
    await run_jobs(session, jobs, concurrency=8, on_result=on_result, group_id="batch-…")

How it schedules:

- `jobs` may be any iterable or async iterable and is read lazily: at most `lookahead` jobs
  (default max(64, 8 × concurrency)) are held prepared at a time, so a file of 100,000 rows
  costs the memory of a few hundred.
- Each job is routed (`Session.prepare`) when it is read, and waits in the lane of the provider
  its first attempt goes to. A job starts when fewer than `concurrency` jobs are running and its
  provider is under its current limit (`Limits.current_limit`: Ollama's from
  `ollama.num_parallel`, hosted ones from `hosted_concurrency` or `--limit`, halved on a 429 and
  grown back on success). A provider with several hosts (a pool) has a lane per set of hosts
  able to take the job, bounded by their slots (`Dispatcher.capacity`; a cooling host counts for
  nothing), so jobs for a model on one machine only never hold back jobs the others could take;
  the executor's dispatcher then picks the host. Among the lanes with room, the job read first starts first, so a slow
  local model never holds hosted rows back (no head-of-line blocking), and file order is kept
  where it costs nothing.
- The Executor still takes the per-provider slot for every attempt (retries and fallbacks
  included) and honours Retry-After; a job whose every model is cooling down after a long
  Retry-After waits in its lane until the first cool-down ends instead of failing at once.
- A job that failed *only* because of rate limits (429/529 on every attempt) goes back to the
  front of its lane, up to `max_requeues` times, and is not reported until it is final. Each
  try is its own run in the run log (kind, group_id, item_id link them).
- `admit(job, prepared)` (optional) is asked before a job starts (used for `--max-cost`); `False`
  makes the job wait until a running job finishes, and stops the engine when none is running. `on_start(job, prepared)` is called when a job
  starts. `stop()` finishes the running jobs and starts no more; `abandon()` also cancels them.
- `on_result(outcome)` is called once per job, in completion order, and awaited before the job
  counts as done. An exception from it (e.g. the results file cannot be written) cancels the
  running jobs and is raised from `run()`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, AsyncIterable, Awaitable, Callable, Iterable

from .aio import maybe_await
from .backends.errors import RATE_LIMITED
from .errors import UserError
from .execute import RunResult
from .request import Prepared, Request
from .session import Session

MAX_REQUEUES = 3


@dataclass
class Job:
    request: Request
    item_id: str | None = None  # stored as runs.item_id in the run log
    key: Any = None  # anything the caller wants back with the outcome (a row, a cell)
    # Models this job must not use: routed as usual, then these are left out of its plan (a row
    # whose provider batch failed falls back to its next candidates).
    exclude: tuple[str, ...] = ()


@dataclass
class Outcome:
    job: Job
    prepared: Prepared | None
    result: RunResult | None
    run_id: int | None = None
    error: str | None = None  # the job could not be prepared (e.g. a file vanished); nothing sent
    requeues: int = 0

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok

    @property
    def message(self) -> str | None:
        if self.error:
            return self.error
        return None if self.result is None or self.result.ok else self.result.error


OnResult = Callable[[Outcome], "Awaitable[None] | None"]


@dataclass
class _Item:
    seq: int  # order read: among lanes with room, the lowest starts first
    job: Job
    prepared: Prepared | None = None
    error: str | None = None
    requeues: int = 0

    @property
    def lane(self) -> tuple[str, tuple[str, ...]] | None:
        """(provider, the hosts of its pool able to take the job; () for any) of the first attempt."""
        if self.prepared is None or not self.prepared.plan.attempts:
            return None
        first = self.prepared.plan.attempts[0]
        return first.provider, first.hosts


class Engine:
    def __init__(self, session: Session, *, concurrency: int = 8, kind: str = "batch",
                 group_id: str | None = None, lookahead: int | None = None,
                 max_requeues: int = MAX_REQUEUES, log: bool = True) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.session = session
        self.concurrency = concurrency
        self.kind = kind
        self.group_id = group_id
        self.lookahead = lookahead or max(64, 8 * concurrency)
        self.max_requeues = max_requeues
        self.log = log
        self.running = 0
        self.started = 0
        self.requeued = 0
        self.stopped: str | None = None  # why no more jobs start: "admit", "stop", "abandon"
        self._lanes: dict[tuple[str, tuple[str, ...]] | None, deque[_Item]] = {}
        self._lane_running: dict[tuple[str, tuple[str, ...]] | None, int] = {}
        self._provider_running: dict[str, int] = {}
        self._buffered = 0
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._failure: BaseException | None = None
        self._avail_cache: dict[tuple[str, str | None], Any] = {}
        self._seq = itertools.count()

    # --- control ------------------------------------------------------------------------

    def stop(self, reason: str = "stop") -> None:
        """Start no more jobs; the running ones finish and are reported."""
        if self.stopped is None:
            self.stopped = reason
        self._wake.set()

    def abandon(self) -> None:
        """Start no more jobs and cancel the running ones (they are not reported)."""
        self.stopped = "abandon"
        for task in list(self._tasks):
            task.cancel()
        self._wake.set()

    @property
    def pending(self) -> int:
        """Jobs read and prepared but not started."""
        return self._buffered

    # --- the loop -----------------------------------------------------------------------

    async def run(self, jobs: Iterable[Job] | AsyncIterable[Job], on_result: OnResult, *,
                  admit: Callable[[Job, Prepared], bool] | None = None,
                  on_start: Callable[[Job, Prepared | None], None] | None = None) -> None:
        self._on_result, self._admit, self._on_start = on_result, admit, on_start
        source = _aiter(jobs)
        exhausted = False
        try:
            while True:
                # Read ahead (routing each job as it comes), starting jobs as soon as they may.
                while not exhausted and self.stopped is None and self._buffered < self.lookahead:
                    try:
                        job = await source.__anext__()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    await self._enqueue(_Item(next(self._seq), job))
                    if self._dispatch()[0]:
                        await asyncio.sleep(0)  # let the started jobs send before reading on
                _, soonest = self._dispatch()
                if self._failure is not None:
                    break
                if self.running == 0 and (self.stopped or (exhausted and self._buffered == 0)):
                    break
                if not exhausted and self.stopped is None and self._buffered < self.lookahead:
                    continue  # jobs started and made room: read on before waiting
                self._wake.clear()
                try:
                    # Woken by a finished job or stop(); or when a cooling lane may start.
                    await asyncio.wait_for(self._wake.wait(), timeout=soonest)
                except TimeoutError:
                    pass
        finally:
            if self._tasks:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001 - closing a caller's generator is best effort
                    pass
        if self._failure is not None:
            raise self._failure

    async def _enqueue(self, item: _Item) -> None:
        try:
            avail = await self.availability_for(item.job.request)
            item.prepared = await self.session.prepare(item.job.request, avail)
            if item.job.exclude:
                plan = item.prepared.plan
                item.prepared.plan = replace(plan, attempts=tuple(a for a in plan.attempts
                                                                  if a.ref not in item.job.exclude))
        except UserError as exc:
            item.error = str(exc)
        self._lanes.setdefault(item.lane, deque()).append(item)
        self._buffered += 1

    async def availability_for(self, request: Request):
        """Probed once per session; cool-downs are left to the executor and to the lanes, so a
        row does not lose its only model because that provider asked for a pause."""
        key = (request.task, request.model)  # what decides the candidates
        avail = self._avail_cache.get(key)
        if avail is None:
            refs = [c.model for c in self.session.profile_for(request).candidates]
            avail = await self.session.availability(refs)
            if avail.cooling:
                avail = replace(avail, cooling={})
            self._avail_cache[key] = avail
        return avail

    def _dispatch(self) -> tuple[bool, float | None]:
        """Start what may start: (whether any started, seconds until a cooling lane may start)."""
        started = False
        soonest: float | None = None
        while self.running < self.concurrency and self.stopped is None:
            best: _Item | None = None
            now = time.monotonic()
            for lane, items in self._lanes.items():
                if not items or not self._room(lane):
                    continue
                head = items[0]
                cool = self._cooling_for(head, now)
                if cool:
                    soonest = cool if soonest is None else min(soonest, cool)
                    continue
                if best is None or head.seq < best.seq:
                    best = head
            if best is None:
                break
            if self._admit is not None and best.prepared is not None and not self._admit(best.job, best.prepared):
                if self.running == 0:  # nothing will free room: stop for good
                    self.stop("admit")
                break  # wait for a running job to finish and release what it held
            self._lanes[best.lane].popleft()
            self._buffered -= 1
            self._start(best)
            started = True
        return started, soonest

    def _room(self, lane: tuple[str, tuple[str, ...]] | None) -> bool:
        if lane is None:
            return True
        provider, hosts = lane
        if self._provider_running.get(provider, 0) >= self.session.limits.current_limit(provider):
            return False
        capacity = self.session.executor.dispatch.capacity(provider, hosts)  # None: a single host
        return capacity is None or self._lane_running.get(lane, 0) < capacity

    def _cooling_for(self, item: _Item, now: float) -> float | None:
        """Seconds until the job may start when every model it can use is cooling down."""
        if item.prepared is None or not item.prepared.plan.attempts:
            return None
        ends = [self.session.limits.cooling_until(a.provider) for a in item.prepared.plan.attempts]
        first = min(ends)
        return first - now if first > now else None

    def _start(self, item: _Item) -> None:
        lane = item.lane
        self.running += 1
        self.started += 1
        self._lane_running[lane] = self._lane_running.get(lane, 0) + 1
        if lane is not None:
            self._provider_running[lane[0]] = self._provider_running.get(lane[0], 0) + 1
        if self._on_start is not None:
            self._on_start(item.job, item.prepared)
        task = asyncio.ensure_future(self._run_one(item))
        self._tasks.add(task)
        task.add_done_callback(lambda t, lane=lane: self._done(t, lane))

    def _done(self, task: asyncio.Task, lane: tuple[str, tuple[str, ...]] | None) -> None:
        self._tasks.discard(task)
        self.running -= 1
        self._lane_running[lane] -= 1
        if lane is not None:
            self._provider_running[lane[0]] -= 1
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            self.abandon()
        self._wake.set()

    async def _run_one(self, item: _Item) -> None:
        job = item.job
        if item.prepared is None:
            await self._report(Outcome(job, None, None, error=item.error, requeues=item.requeues))
            return
        try:
            result, run_id = await self.session.answer(item.prepared, kind=self.kind, group_id=self.group_id,
                                                       item_id=job.item_id, log=self.log)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except UserError as exc:
            await self._report(Outcome(job, item.prepared, None, error=str(exc), requeues=item.requeues))
            return
        except Exception as exc:  # noqa: BLE001 - one row's surprise must not sink the batch
            await self._report(Outcome(job, item.prepared, None, requeues=item.requeues,
                                       error=f"internal error: {type(exc).__name__}: {exc}"))
            return
        if (not result.ok and item.requeues < self.max_requeues and self.stopped is None
                and _only_rate_limited(result)):
            item.requeues += 1
            self.requeued += 1
            self._lanes.setdefault(item.lane, deque()).appendleft(item)
            self._buffered += 1
            return
        await self._report(Outcome(job, item.prepared, result, run_id, requeues=item.requeues))

    async def _report(self, outcome: Outcome) -> None:
        """Hand one outcome to on_result; once on_result has failed, nothing more is reported."""
        if self._failure is not None:
            return
        try:
            await maybe_await(self._on_result(outcome))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._failure is None:
                self._failure = exc
                self.abandon()
            raise


async def run_jobs(session: Session, jobs: Iterable[Job] | AsyncIterable[Job], concurrency: int,
                   on_result: OnResult, *, kind: str = "batch", group_id: str | None = None,
                   admit: Callable[[Job, Prepared], bool] | None = None,
                   on_start: Callable[[Job, Prepared | None], None] | None = None,
                   lookahead: int | None = None, max_requeues: int = MAX_REQUEUES) -> Engine:
    """Run `jobs` through `session`, at most `concurrency` at once and within each provider's
    limit (the session's Limits), calling `on_result(outcome)` as each finishes. Returns the
    Engine (its `stopped` says whether `admit` refused a job). See the module docstring."""
    engine = Engine(session, concurrency=concurrency, kind=kind, group_id=group_id, lookahead=lookahead,
                    max_requeues=max_requeues)
    await engine.run(jobs, on_result, admit=admit, on_start=on_start)
    return engine


def _only_rate_limited(result: RunResult) -> bool:
    failed = [a for a in result.attempts if a.outcome != "ok"]
    return bool(failed) and all(a.error_kind in RATE_LIMITED for a in failed)


async def _from_sync(jobs: Iterable[Job]):
    for job in jobs:
        yield job


def _aiter(jobs: Iterable[Job] | AsyncIterable[Job]):
    if hasattr(jobs, "__anext__"):
        return jobs
    if hasattr(jobs, "__aiter__"):
        return jobs.__aiter__()
    return _from_sync(jobs)

"""A job's answers, row by row: each row's result found in the fetched results file (`Fetched`),
priced at the batch rate, and the attempt, summary and record it leaves in the run log and the
results file. A row the job ended without answering gets the job's reason (`missing`)."""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate, count
from pathlib import Path
from typing import Any, Iterator

from ...backends.errors import ErrorKind
from ...records import summary_json
from ...tokens import estimate_tokens
from .api import JobStatus, RowResult
from .cost import RowPricer
from .state import Job
from .times import ms_between, parse_iso

# The custom id of a result line, found without parsing the line (it is checked after parsing).
# A quote inside an answer is escaped (\"), so answer text cannot imitate `"custom_id":"r12"`.
_ID = re.compile(rb'"(?:custom_id|key)"\s*:\s*"r(\d+)"')


def index_results(path: Path) -> dict[int, int]:
    """Row index → byte offset of its result line (the first one, when a row shows up twice)."""
    index: dict[int, int] = {}
    pos = 0
    with open(path, "rb") as f:
        for raw in f:
            m = _ID.search(raw)
            if m is not None:
                index.setdefault(int(m.group(1)), pos)
            pos += len(raw)
    return index


def index_results_slowly(path: Path, adapter: Any) -> dict[int, int]:
    """The same by parsing every line: used if the quick index ever pointed at the wrong line."""
    index: dict[int, int] = {}
    pos = 0
    with open(path, "rb") as f:
        for raw in f:
            parsed = adapter.parse(raw)
            if parsed is not None and parsed[0][1:].isdigit() and parsed[0].startswith("r"):
                index.setdefault(int(parsed[0][1:]), pos)
            pos += len(raw)
    return index


def missing(status: JobStatus) -> RowResult:
    """A row the job ended without answering."""
    if status.outcome == "cancelled":
        return RowResult(False, "canceled", error="the job was cancelled before this row ran",
                         error_kind=ErrorKind.SERVER)
    if status.outcome == "expired":
        return RowResult(False, "expired", error="the job expired (24 h) before this row ran",
                         error_kind=ErrorKind.TIMEOUT)
    if status.outcome == "failed":
        return RowResult(False, "errored", error=f"the provider failed the whole job: {status.error}",
                         error_kind=ErrorKind.BAD_REQUEST)
    return RowResult(False, "errored", error="the job ended without a result for this row",
                     error_kind=ErrorKind.SERVER)


def deferred_run(job: Job, res: RowResult, cost: float | None, wait_ms: float | None) -> tuple[dict, dict]:
    """(the attempt, the run summary) a deferred row leaves in the run log: no time to first token,
    latency = the wait from submission to the job's end, tokens and the batch price."""
    usage = res.usage
    inp, out, estimated = usage.input_tokens, usage.output_tokens, False
    if res.ok and out is None:
        out, estimated = estimate_tokens(res.text + res.thinking), True
    ref = job.ref
    attempt = {
        "model": ref, "outcome": "ok" if res.ok else "failed", "time": job.completed_at,
        "error": res.error, "error_kind": res.error_kind, "finish_reason": res.finish_reason,
        "input_tokens": inp, "output_tokens": out, "tokens_estimated": estimated,
        "latency_ms": wait_ms, "cost_usd": cost, "cache_read_tokens": usage.cache_read_tokens or None,
        "cache_write_tokens": usage.cache_write_tokens or None, "deferred": 1, "job_id": job.job_id,
        "submitted_at": job.submitted_at, "completed_at": job.completed_at,
    }
    summary: dict[str, Any] = {"outcome": "ok" if res.ok else "failed", "model": ref, "cost_usd": cost,
                               "error": None if res.ok else f"{ref} (deferred job {job.job_id}): {res.error}"}
    if res.ok:
        summary.update(text=res.text, thinking=res.thinking or None, finish_reason=res.finish_reason,
                       input_tokens=inp, output_tokens=out, tokens_estimated=estimated, latency_ms=wait_ms)
    return attempt, summary


def record_of(task: str | None, attempt: dict, summary: dict, run_id: int | None) -> dict[str, Any]:
    return summary_json(task, summary, [attempt], run_id)


class Fetched:
    """An ended job's results file, fetched: each row's result found by its index, its price at
    the batch rate (and, for the summary, at the live rate), the wait it had."""

    def __init__(self, job: Job, status: JobStatus, adapter: Any, path: Path, pricing: Any,
                 logged: dict[str, int]) -> None:
        self.job, self.status, self.adapter, self.path = job, status, adapter, path
        self.logged = logged  # row id → run id already in the run log (an earlier, killed collection)
        self.index = index_results(path)
        self._slow = False
        self._f = open(path, "rb")
        when = parse_iso(job.completed_at)
        self._batch = RowPricer(pricing, job.ref, batch=True, when=when)
        self._live = RowPricer(pricing, job.ref, batch=False, when=when)
        self.wait_ms = ms_between(job.submitted_at, job.completed_at)

    def result(self, i: int) -> RowResult:
        """Row i's result; the job's reason when it has none (cancelled, expired, failed)."""
        found = self._read(i)
        if found is False and not self._slow:  # the quick index pointed at another row's line
            self.index, self._slow = index_results_slowly(self.path, self.adapter), True
            found = self._read(i)
        return found or missing(self.status)

    def _read(self, i: int) -> RowResult | None | bool:
        offset = self.index.get(i)
        if offset is None:
            return None
        self._f.seek(offset)
        parsed = self.adapter.parse(self._f.readline())
        if parsed is None or parsed[0] != Job.custom_id(i):
            return False
        return parsed[1]

    def cost(self, res: RowResult) -> float | None:
        return self._batch.cost(res.usage) if res.ok or res.usage.input_tokens is not None else None

    def live_cost(self, res: RowResult) -> float | None:
        return self._live.cost(res.usage)

    def close(self) -> None:
        self._f.close()


def job_rows(fetched: list[Fetched], rows: Iterator[Any]) -> Iterator[tuple[Any, Fetched, int]]:
    """(row, its job, its index there) for the rows of the fetched jobs, in prompt-file order; then
    (None, job, i) for rows the prompt file no longer has (edited since): their answers are kept."""
    # Row id → its position counted across the jobs: a dict of ints, no tuple per row.
    starts = list(accumulate((len(f.job.rows) for f in fetched), initial=0))
    where: dict[str, int] = {}
    for f, start in zip(fetched, starts):
        where.update(zip(f.job.rows, count(start)))

    def at(n: int) -> tuple[Fetched, int]:
        k = bisect_right(starts, n) - 1
        return fetched[k], n - starts[k]

    for row in rows:
        n = where.pop(row.id, None)
        if n is not None:
            yield (row, *at(n))
    for n in where.values():
        yield (None, *at(n))

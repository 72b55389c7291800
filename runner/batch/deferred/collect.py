"""An ended job's results as runs: finding each row's line in the results file, and the attempt,
summary and record a deferred row leaves in the run log and the results file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from ...backends.errors import ErrorKind
from ...records import RunRecord
from ...tokens import estimate_tokens
from .api import JobStatus, RowResult
from .state import Job

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
    attempt = {
        "model": job.ref, "outcome": "ok" if res.ok else "failed", "time": job.completed_at,
        "error": res.error, "error_kind": res.error_kind, "finish_reason": res.finish_reason,
        "input_tokens": inp, "output_tokens": out, "tokens_estimated": estimated,
        "latency_ms": wait_ms, "cost_usd": cost, "cache_read_tokens": usage.cache_read_tokens or None,
        "cache_write_tokens": usage.cache_write_tokens or None, "deferred": 1, "job_id": job.job_id,
        "submitted_at": job.submitted_at, "completed_at": job.completed_at,
    }
    summary: dict[str, Any] = {"outcome": "ok" if res.ok else "failed", "model": job.ref, "cost_usd": cost,
                               "error": None if res.ok else f"{job.ref} (deferred job {job.job_id}): {res.error}"}
    if res.ok:
        summary.update(text=res.text, thinking=res.thinking or None, finish_reason=res.finish_reason,
                       input_tokens=inp, output_tokens=out, tokens_estimated=estimated, latency_ms=wait_ms)
    return attempt, summary


def record_of(task: str | None, attempt: dict, summary: dict, run_id: int | None) -> dict[str, Any]:
    return RunRecord.from_summary(task, summary, [attempt], run_id).json()


def rows_by_index(job: Job) -> dict[str, int]:
    return {rid: i for i, rid in enumerate(job.rows)}


def read_line(f, offset: int) -> bytes:
    f.seek(offset)
    return f.readline()


def job_rows(job: Job, rows: Iterator[Any]) -> Iterator[tuple[Any, int]]:
    """(row, its index in the job) for the job's rows, in prompt-file order, then (None, i) for
    rows the prompt file no longer has (edited since): their answers are kept all the same."""
    where = rows_by_index(job)
    seen: set[int] = set()
    for row in rows:
        i = where.get(getattr(row, "id", None))
        if i is not None and i not in seen:
            seen.add(i)
            yield row, i
    for i in range(len(job.rows)):
        if i not in seen:
            yield None, i

"""OpenAI's Batch API, and every OpenAI-compatible provider whose catalog entry says `batch: true`.

    POST /files (multipart, purpose=batch)   the rows as JSONL: {custom_id, method, url, body}
    POST /batches                            {input_file_id, endpoint, completion_window: 24h}
    GET  /batches/{id}                       validating → in_progress → finalizing → completed
                                             (or failed, expired, cancelling → cancelled)
    GET  /files/{id}/content                 the output file, then the error file
    POST /batches/{id}/cancel

Limits per job: 50,000 requests and 200 MB of input file. A job is labelled with
`metadata.runner_job`, and a run that died between creating it and writing its id down finds it
again by its input file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ...backends import BackendError
from ...backends.errors import ErrorKind, error_from_status
from ...backends.openai import parse_completion
from ...backends.sse import error_detail
from .api import ENDED, Api, BatchApiError, JobStatus, RowResult, dumps
from .state import Job
from .times import iso_from_unix, now_iso

ENDPOINT = "/v1/chat/completions"
STATES = {"validating": "validating", "in_progress": "in_progress", "finalizing": "finalizing",
          "cancelling": "cancelling"}
OUTCOMES = {"completed": "completed", "failed": "failed", "expired": "expired", "cancelled": "cancelled"}
ROW_KINDS = {"batch_expired": "expired", "batch_cancelled": "canceled"}
FIND_PAGES = 10


class OpenAIBatches:
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024

    def __init__(self, provider: Any, api: Api) -> None:
        self.provider = provider
        self.api = api

    # --- submitting -----------------------------------------------------------------------

    def line(self, custom_id: str, body: dict[str, Any]) -> bytes:
        return dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}) + b"\n"

    async def submit(self, job: Job, lines: Path, label: str, save: Callable[[], None]) -> None:
        """Upload the rows (streamed from the file), then create the job; `job` is updated and
        saved after each step."""
        if job.input_file is None:
            with open(lines, "rb") as f:
                uploaded = await self.api.call(
                    "POST", "/files", "the batch input file", data={"purpose": "batch"},
                    files={"file": (f"{label}.jsonl", f, "application/jsonl")})
            job.input_file = _text(uploaded, "id", "the file upload")
            save()
        created = await self.api.call("POST", "/batches", "the batch job", body={
            "input_file_id": job.input_file, "endpoint": ENDPOINT, "completion_window": "24h",
            "metadata": {"runner_job": label}})
        _adopt(job, created)
        save()

    async def find(self, job: Job, label: str, taken: set[str]) -> bool:
        """After a kill mid-submission: the job the provider made from this input file, if any."""
        if job.input_file is None:
            return False  # no file was known to exist, so no job can have been made from it
        after = None
        for _ in range(FIND_PAGES):
            page = await self.api.call("GET", "/batches", "the list of batch jobs",
                                       params={"limit": 100, **({"after": after} if after else {})})
            for b in page.get("data") or []:
                if b.get("id") in taken:
                    continue
                if b.get("input_file_id") == job.input_file or (b.get("metadata") or {}).get("runner_job") == label:
                    _adopt(job, b)
                    return True
            if not page.get("has_more") or not page.get("data"):
                return False
            after = page["data"][-1].get("id")
        return False

    # --- waiting --------------------------------------------------------------------------

    async def poll(self, job: Job) -> JobStatus:
        return status_of(await self.api.call("GET", f"/batches/{job.job_id}", "the batch job status"))

    async def cancel(self, job: Job) -> JobStatus:
        return status_of(await self.api.call("POST", f"/batches/{job.job_id}/cancel", "to cancel the batch job"))

    # --- collecting -----------------------------------------------------------------------

    async def fetch(self, job: Job, status: JobStatus, dest: Path) -> None:
        """The output file, then the error file, into one local JSONL file (either may be absent)."""
        dest.write_bytes(b"")
        for key in ("output_file_id", "error_file_id"):
            file_id = status.extra.get(key)
            if file_id:
                await self.api.download(f"/files/{file_id}/content", dest, f"the batch {key.split('_')[0]} file",
                                        append=True)

    def parse(self, line: bytes) -> tuple[str, RowResult] | None:
        try:
            obj = json.loads(line)
            custom_id = obj["custom_id"]
        except (ValueError, KeyError, TypeError):
            return None
        error = obj.get("error")
        if error:
            code = str((error or {}).get("code") or "")
            return custom_id, RowResult(False, ROW_KINDS.get(code, "errored"),
                                        error=f"{code}: {error.get('message') or 'failed'}" if code else str(error.get("message")),
                                        error_kind=ErrorKind.TIMEOUT if code == "batch_expired" else ErrorKind.SERVER)
        response = obj.get("response") or {}
        status = response.get("status_code")
        body = response.get("body") or {}
        if status == 200:
            return custom_id, answer(lambda: parse_completion(body))
        message, _, _ = error_detail(body)
        err = error_from_status(int(status or 500), message)
        return custom_id, RowResult(False, "errored", error=err.message, error_kind=err.kind)


def answer(parse: Callable[[], tuple[str, str, Any]]) -> RowResult:
    """A successful reply's body, parsed by its backend; an incomplete answer is a failed row."""
    try:
        text, thinking, done = parse()
    except BackendError as exc:
        return RowResult(False, "errored", error=exc.message, error_kind=exc.kind)
    except (AttributeError, TypeError, ValueError) as exc:
        return RowResult(False, "errored", error=f"unreadable result: {type(exc).__name__}", error_kind=ErrorKind.INTERNAL)
    return RowResult(True, "succeeded", text=text, thinking=thinking, usage=done.usage, finish_reason=done.finish_reason)


def _adopt(job: Job, batch: dict[str, Any]) -> None:
    job.job_id = _text(batch, "id", "the batch job")
    job.submitted_at = iso_from_unix(batch.get("created_at")) or now_iso()
    job.status = "submitted"
    job.provider_status = batch.get("status")


def _text(obj: Any, key: str, what: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value:
        raise BatchApiError(f"the reply to {what} has no {key}")
    return value


def status_of(b: dict[str, Any]) -> JobStatus:
    raw = str(b.get("status") or "")
    counts = b.get("request_counts") or {}
    st = JobStatus(STATES.get(raw, ENDED if raw in OUTCOMES else "in_progress"), raw,
                   total=int(counts.get("total") or 0), done=int(counts.get("completed") or 0),
                   failed=int(counts.get("failed") or 0),
                   extra={"output_file_id": b.get("output_file_id"), "error_file_id": b.get("error_file_id")})
    if st.ended:
        st.outcome = OUTCOMES[raw]
        when = b.get("completed_at") or b.get("failed_at") or b.get("expired_at") or b.get("cancelled_at")
        st.completed_at = iso_from_unix(when) or now_iso()
        errors = [e for e in (b.get("errors") or {}).get("data") or [] if isinstance(e, dict)]
        if raw == "failed":
            st.error = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors[:3]) or "the batch job failed"
    return st

"""Gemini's batch mode (Gemini API v1beta).

    POST /v1beta/models/{m}:batchGenerateContent   {batch: {displayName, inputConfig}}: small
                                                   jobs inline ({requests: {requests: [{request,
                                                   metadata: {key}}]}}), larger ones as an
                                                   uploaded JSONL file ({fileName}) of {key, request}
    GET  /v1beta/batches/{id}                      an operation: metadata.state BATCH_STATE_PENDING
                                                   → RUNNING → SUCCEEDED | FAILED | CANCELLED | EXPIRED
    results                                        metadata.output.inlinedResponses, or
                                                   .responsesFile (GET /download/v1beta/{file}:download)
    POST /v1beta/batches/{id}:cancel

Uploads use Google's resumable protocol (start, then one "upload, finalize" request streamed from
the file). A job is found again after a kill by its display name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from ...backends.errors import error_from_status
from ...backends.gemini import parse_response
from .api import ENDED, Api, BatchApiError, JobStatus, RowResult, dumps, file_chunks
from .openai import answer
from .state import Job
from .times import now_iso, rfc3339

INLINE_MAX_BYTES = 10 * 1000 * 1000  # the API takes inline requests up to 20 MB: stay well under
FIND_PAGES = 10
STATES = {"BATCH_STATE_PENDING": "validating", "BATCH_STATE_RUNNING": "in_progress"}
OUTCOMES = {"BATCH_STATE_SUCCEEDED": "completed", "BATCH_STATE_FAILED": "failed",
            "BATCH_STATE_CANCELLED": "cancelled", "BATCH_STATE_EXPIRED": "expired"}


class GeminiBatches:
    max_requests = 100_000  # no published request count: bounded by the 2 GB input file
    max_bytes = 2 * 1000 * 1000 * 1000

    def __init__(self, provider: Any, api: Api) -> None:
        self.provider = provider
        self.api = api

    def line(self, custom_id: str, body: dict[str, Any]) -> bytes:
        return dumps({"key": custom_id, "request": body}) + b"\n"

    async def submit(self, job: Job, lines: Path, label: str, save: Callable[[], None]) -> None:
        model = quote(job.model.removeprefix("models/"), safe="")
        size = lines.stat().st_size
        if size <= INLINE_MAX_BYTES and job.input_file is None:
            requests = []
            with open(lines, "rb") as f:
                for raw in f:
                    item = json.loads(raw)
                    requests.append({"request": item["request"], "metadata": {"key": item["key"]}})
            source: dict[str, Any] = {"requests": {"requests": requests}}
        else:
            if job.input_file is None:
                job.input_file = await self._upload(lines, label, size)
                save()
            source = {"fileName": job.input_file}
        op = await self.api.call("POST", f"/v1beta/models/{model}:batchGenerateContent", "the batch job",
                                 body={"batch": {"displayName": label, "inputConfig": source}})
        _adopt(job, op)
        save()

    async def _upload(self, lines: Path, label: str, size: int) -> str:
        start = await self.api.call("POST", "/upload/v1beta/files", "the batch input file", raw=True, body={
            "file": {"displayName": label}}, headers={
            "x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(size), "x-goog-upload-header-content-type": "application/jsonl"})
        url = start.headers.get("x-goog-upload-url")
        if not url or not _same_origin(url, self.api.base_url):
            raise BatchApiError("Gemini gave no upload URL for the batch input file (or one on another host)")
        done = await self.api.call("POST", url, "the batch input file", content=file_chunks(lines), headers={
            "x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0", "content-length": str(size)})
        name = (done.get("file") or {}).get("name") if isinstance(done, dict) else None
        if not isinstance(name, str) or not name:
            raise BatchApiError("the reply to the batch input file upload has no file name")
        return name

    async def find(self, job: Job, label: str, taken: set[str]) -> bool:
        token = None
        for _ in range(FIND_PAGES):
            page = await self.api.call("GET", "/v1beta/batches", "the list of batch jobs",
                                       params={"pageSize": 100, **({"pageToken": token} if token else {})})
            for op in page.get("operations") or page.get("batches") or []:
                meta = op.get("metadata") or {}
                if op.get("name") not in taken and meta.get("displayName") == label:
                    _adopt(job, op)
                    return True
            token = page.get("nextPageToken")
            if not token:
                return False
        return False

    async def poll(self, job: Job) -> JobStatus:
        return status_of(await self.api.call("GET", f"/v1beta/{job.job_id}", "the batch job status"))

    async def cancel(self, job: Job) -> JobStatus:
        await self.api.call("POST", f"/v1beta/{job.job_id}:cancel", "to cancel the batch job")
        return await self.poll(job)

    async def fetch(self, job: Job, status: JobStatus, dest: Path) -> None:
        output = status.extra.get("output") or {}
        responses_file = output.get("responsesFile")
        if responses_file:
            await self.api.download(f"/download/v1beta/{responses_file}:download", dest, "the batch results file",
                                    params={"alt": "media"})
            return
        with open(dest, "wb") as f:
            for item in (output.get("inlinedResponses") or {}).get("inlinedResponses") or []:
                key = (item.get("metadata") or {}).get("key")
                rest = {k: v for k, v in item.items() if k in ("response", "error")}
                f.write(dumps({"key": key, **rest}) + b"\n")

    def parse(self, line: bytes) -> tuple[str, RowResult] | None:
        try:
            obj = json.loads(line)
            key = obj["key"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(key, str):
            return None
        if obj.get("error"):
            err = obj["error"]
            mapped = error_from_status(int(err.get("code") or 500), str(err.get("message") or err.get("status") or ""))
            return key, RowResult(False, "errored", error=mapped.message, error_kind=mapped.kind)
        return key, answer(lambda: parse_response(obj.get("response") or {}))


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _adopt(job: Job, op: dict[str, Any]) -> None:
    name = op.get("name") if isinstance(op, dict) else None
    if not isinstance(name, str) or not name.startswith("batches/"):
        raise BatchApiError("the reply to the batch job has no batches/… name")
    meta = op.get("metadata") or {}
    job.job_id = name
    job.submitted_at = rfc3339(meta.get("createTime")) or now_iso()
    job.status = "submitted"
    job.provider_status = meta.get("state")


def _count(stats: dict[str, Any], key: str) -> int:
    try:
        return int(stats.get(key) or 0)  # int64 arrives as a JSON string
    except (TypeError, ValueError):
        return 0


def status_of(op: dict[str, Any]) -> JobStatus:
    meta = op.get("metadata") or {}
    raw = str(meta.get("state") or "")
    stats = meta.get("batchStats") or {}
    st = JobStatus(STATES.get(raw, ENDED if raw in OUTCOMES else "in_progress"), raw,
                   total=_count(stats, "requestCount"), done=_count(stats, "successfulRequestCount"),
                   failed=_count(stats, "failedRequestCount"),
                   extra={"output": meta.get("output") or (op.get("response") or {})})
    if st.ended:
        st.outcome = OUTCOMES[raw]
        st.completed_at = rfc3339(meta.get("endTime")) or rfc3339(meta.get("updateTime")) or now_iso()
        if raw == "BATCH_STATE_FAILED":
            st.error = str((op.get("error") or {}).get("message") or "the batch job failed")
    return st

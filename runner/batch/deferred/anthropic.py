"""Anthropic's Message Batches.

    POST /v1/messages/batches           {requests: [{custom_id, params}]} (streamed from a file)
    GET  /v1/messages/batches/{id}      processing_status in_progress → (canceling →) ended
    GET  results_url                    JSONL: {custom_id, result: {type: succeeded | errored |
                                        canceled | expired, message? | error?}}
    POST /v1/messages/batches/{id}/cancel

Limits per job: 100,000 requests or 256 MB. A batch carries no label of ours, so a run that died
between creating one and writing its id down looks for a batch created since it wrote the rows
down with exactly that many requests (and not already one of its jobs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

from ...backends.anthropic import API_VERSION, parse_message
from ...backends.errors import ErrorKind
from ...backends.sse import error_detail
from .api import ENDED, Api, BatchApiError, JobStatus, RowResult, dumps, file_chunks
from .openai import answer
from .state import Job
from .times import now_iso, parse_iso, rfc3339

PATH = "/v1/messages/batches"
SKEW_S = 600  # clocks differ: a batch created up to this long before our note may still be ours
FIND_PAGES = 10
_KINDS = {
    "invalid_request_error": ErrorKind.BAD_REQUEST, "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH, "not_found_error": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.CONTEXT, "rate_limit_error": ErrorKind.RATE_LIMIT,
    "overloaded_error": ErrorKind.OVERLOADED, "api_error": ErrorKind.SERVER,
}


def headers(key: str | None) -> dict[str, str]:
    h = {"anthropic-version": API_VERSION}
    if key:
        h["x-api-key"] = key
    return h


class AnthropicBatches:
    max_requests = 100_000
    max_bytes = 256 * 1000 * 1000

    def __init__(self, provider: Any, api: Api) -> None:
        self.provider = provider
        self.api = api

    def line(self, custom_id: str, body: dict[str, Any]) -> bytes:
        return dumps({"custom_id": custom_id, "params": body}) + b"\n"

    async def submit(self, job: Job, lines: Path, label: str, save: Callable[[], None]) -> None:
        head, tail = b'{"requests":[\n', b"]}"
        size = lines.stat().st_size
        length = len(head) + size - 1 + (len(job.rows) - 1) + len(tail)  # commas between, no last newline
        created = await self.api.call("POST", PATH, "the message batch", content=_joined(lines, head, tail),
                                      headers={"content-type": "application/json", "content-length": str(length)})
        _adopt(job, created)
        save()

    async def find(self, job: Job, label: str, taken: set[str]) -> bool:
        since = parse_iso(job.intent_at)
        after = None
        for _ in range(FIND_PAGES):
            page = await self.api.call("GET", PATH, "the list of message batches",
                                       params={"limit": 100, **({"after_id": after} if after else {})})
            for b in page.get("data") or []:
                created = parse_iso(b.get("created_at"))
                if b.get("id") in taken or created is None or since is None:
                    continue
                if (created - since).total_seconds() < -SKEW_S:
                    return False  # newest first: everything from here on is older than our note
                if sum(int(v or 0) for v in (b.get("request_counts") or {}).values()) == len(job.rows):
                    _adopt(job, b)
                    return True
            if not page.get("has_more"):
                return False
            after = page.get("last_id")
        return False

    async def poll(self, job: Job) -> JobStatus:
        return status_of(await self.api.call("GET", f"{PATH}/{job.job_id}", "the message batch status"))

    async def cancel(self, job: Job) -> JobStatus:
        return status_of(await self.api.call("POST", f"{PATH}/{job.job_id}/cancel", "to cancel the message batch"))

    async def fetch(self, job: Job, status: JobStatus, dest: Path) -> None:
        url = status.extra.get("results_url")
        if not url or not _same_origin(url, self.api.base_url):
            url = f"{PATH}/{job.job_id}/results"  # never send the key anywhere but the provider
        await self.api.download(url, dest, "the message batch results")

    def parse(self, line: bytes) -> tuple[str, RowResult] | None:
        try:
            obj = json.loads(line)
            custom_id, result = obj["custom_id"], obj["result"]
            kind = result["type"]
        except (ValueError, KeyError, TypeError):
            return None
        if kind == "succeeded":
            return custom_id, answer(lambda: parse_message(result.get("message") or {}))
        if kind == "errored":
            err = (result.get("error") or {})
            message, etype, _ = error_detail(err)
            inner = err.get("error") if isinstance(err.get("error"), dict) else err
            etype = inner.get("type") or etype
            return custom_id, RowResult(False, "errored", error=f"{etype}: {message}" if etype else message,
                                        error_kind=_KINDS.get(str(etype), ErrorKind.SERVER))
        if kind in ("canceled", "expired"):
            return custom_id, RowResult(False, kind, error=f"the request was {kind} before it ran",
                                        error_kind=ErrorKind.TIMEOUT if kind == "expired" else ErrorKind.SERVER)
        return custom_id, RowResult(False, "errored", error=f"unknown result type {kind!r}", error_kind=ErrorKind.INTERNAL)


async def _joined(lines: Path, head: bytes, tail: bytes) -> AsyncIterator[bytes]:
    """The request list as one JSON body, read from the file as it is sent: every line but the
    last followed by a comma (JSON text holds no raw newline, so each newline ends a request)."""
    yield head
    prev = b""
    async for chunk in file_chunks(lines):
        if prev:
            yield prev.replace(b"\n", b",\n")
        prev = chunk
    yield prev[:-1].replace(b"\n", b",\n") + tail  # the file ends with the last request's newline


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _adopt(job: Job, b: dict[str, Any]) -> None:
    if not isinstance(b, dict) or not isinstance(b.get("id"), str):
        raise BatchApiError("the reply to the message batch has no id")
    job.job_id = b["id"]
    job.submitted_at = rfc3339(b.get("created_at")) or now_iso()
    job.status = "submitted"
    job.provider_status = b.get("processing_status")


def status_of(b: dict[str, Any]) -> JobStatus:
    raw = str(b.get("processing_status") or "")
    counts = {k: int(v or 0) for k, v in (b.get("request_counts") or {}).items()}
    failed = counts.get("errored", 0) + counts.get("canceled", 0) + counts.get("expired", 0)
    state = {"in_progress": "in_progress", "canceling": "cancelling"}.get(raw, ENDED if raw == "ended" else "in_progress")
    st = JobStatus(state, raw, total=sum(counts.values()), done=counts.get("succeeded", 0), failed=failed,
                   extra={"results_url": b.get("results_url")})
    if st.ended:
        st.outcome = ("cancelled" if b.get("cancel_initiated_at") else
                      "expired" if counts.get("expired") else "completed")
        st.completed_at = rfc3339(b.get("ended_at")) or now_iso()
    return st

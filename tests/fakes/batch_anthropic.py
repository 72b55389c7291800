"""FakeAnthropicBatch: FakeAnthropic plus Message Batches, as anthropic-sdk-python's types
(`MessageBatch`, `MessageBatchRequestCounts`, `MessageBatchIndividualResponse`) describe them.

    POST /v1/messages/batches               {requests: [{custom_id, params}]} → MessageBatch
    GET  /v1/messages/batches[?after_id]    newest first: {data, has_more, first_id, last_id}
    GET  /v1/messages/batches/{id}          processing_status in_progress → (canceling →) ended
    GET  /v1/messages/batches/{id}/results  JSONL, once ended: {custom_id, result: {type: succeeded,
                                            message} | {type: errored, error: {type: error, error}}
                                            | {type: canceled} | {type: expired}}
    POST /v1/messages/batches/{id}/cancel

Strict like the real service: a body over ``max_bytes`` is 413 `request_too_large`; more than
``max_requests`` requests, a custom_id not matching ^[a-zA-Z0-9_-]{1,64}$ or not unique, is 400
`invalid_request_error`; each request's params are answered by this fake's /v1/messages (so a bad
parameter comes back as an `errored` result, as the real API reports it) and `stream` is refused.
``create_delay_s`` holds the reply after the batch exists. See batch_jobs.py for the job life.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from datetime import datetime, timezone
from typing import Any

from .anthropic import FakeAnthropic, _err, error_body
from .batch_jobs import Counting, FakeJob, last_user_text
from .server import Recorded, Reply, json_reply

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class FakeAnthropicBatch(FakeAnthropic, Counting):
    def __init__(self, models: dict[str, int] | None = None, *, schedule: tuple[int, int, int] = (1, 2, 0),
                 max_bytes: int = 256 * 1000 * 1000, max_requests: int = 100_000, create_delay_s: float = 0.0,
                 **kwargs: Any) -> None:
        FakeAnthropic.__init__(self, models, **kwargs)
        Counting.__init__(self)
        self.schedule = schedule
        self.max_bytes = max_bytes
        self.max_requests = max_requests
        self.create_delay_s = create_delay_s
        self.jobs: dict[str, FakeJob] = {}
        self.next_job: dict[str, Any] = {}
        self._seq = itertools.count(1)

    async def handle(self, req: Recorded) -> Any:
        path = req.path.rstrip("/")
        if not path.startswith("/v1/messages/batches"):
            return await super().handle(req)
        if self.api_key is not None and req.headers.get("x-api-key") != self.api_key:
            return _err(401, "invalid x-api-key", "authentication_error")
        if not req.headers.get("anthropic-version"):
            return _err(400, "anthropic-version: header is required", "invalid_request_error")
        parts = path.split("/")[4:]  # [] | [id] | [id, results|cancel]
        if not parts and req.method == "POST":
            return await self._create(req)
        if not parts and req.method == "GET":
            return self._list(req)
        job = self.jobs.get(parts[0]) if parts else None
        if job is None:
            return _err(404, f"No message batch found with id '{parts[0] if parts else ''}'", "not_found_error")
        if len(parts) == 1 and req.method == "GET":
            await job.step(self._answer, time.time())
            return json_reply(200, self._batch(job))
        if parts[1:] == ["results"] and req.method == "GET":
            if job.state != "ended":
                return _err(400, f"Message batch {job.id} has not ended; its results are not available yet.",
                            "invalid_request_error")
            return Reply(200, self._results(job), "application/binary")
        if parts[1:] == ["cancel"] and req.method == "POST":
            job.cancel(time.time())
            return json_reply(200, self._batch(job))
        return _err(404, "Not Found", "not_found_error")

    async def _create(self, req: Recorded) -> Reply:
        if len(req.body) > self.max_bytes:
            return _err(413, "Request exceeds the maximum allowed number of bytes.", "request_too_large")
        body = req.json if isinstance(req.json, dict) else None
        if body is None or not isinstance(body.get("requests"), list):
            return _err(400, "requests: Field required", "invalid_request_error")
        requests = body["requests"]
        if not requests:
            return _err(400, "requests: List should have at least 1 item after validation, not 0", "invalid_request_error")
        if len(requests) > self.max_requests:
            return _err(400, f"requests: a batch takes at most {self.max_requests} requests, not {len(requests)}",
                        "invalid_request_error")
        rows, seen = [], set()
        for i, r in enumerate(requests):
            cid = r.get("custom_id") if isinstance(r, dict) else None
            if not isinstance(cid, str) or not _CUSTOM_ID.match(cid):
                return _err(400, f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'",
                            "invalid_request_error")
            if cid in seen:
                return _err(400, f"requests.{i}.custom_id: '{cid}' is not unique within the batch",
                            "invalid_request_error")
            if not isinstance(r.get("params"), dict):
                return _err(400, f"requests.{i}.params: Field required", "invalid_request_error")
            seen.add(cid)
            rows.append((cid, r["params"]))
        bid = f"msgbatch_fake{next(self._seq):012d}"
        script, self.next_job = self.next_job, {}  # one-shot
        job = FakeJob(bid, rows, self.schedule, time.time(), **script)
        self.jobs[bid] = job
        self.created.append(bid)
        for _, params in rows:
            self.count(last_user_text(params.get("messages")))
        if self.create_delay_s:
            await asyncio.sleep(self.create_delay_s)
        return json_reply(200, self._batch(job))

    async def _answer(self, params: Any) -> tuple[int, Any]:
        if params.get("stream"):
            return 400, error_body("invalid_request_error", "stream: streaming is not supported in Message Batches")
        req = Recorded("POST", "/v1/messages", {}, {"x-api-key": self.api_key or "", "anthropic-version": "2023-06-01"},
                       params, time.monotonic())
        reply = await self._messages(req, count_only=False)
        return reply.status, json.loads(reply.body)

    def _batch(self, job: FakeJob) -> dict[str, Any]:
        ended = job.state == "ended"
        missing = list(job.missing.values())
        counts = {"processing": 0 if ended else len(job.rows) - job.answered, "succeeded": job.succeeded,
                  "errored": job.errored, "canceled": missing.count("cancelled"), "expired": missing.count("expired")}
        return {
            "id": job.id, "type": "message_batch",
            "processing_status": "ended" if ended else "canceling" if job.state == "cancelling" else "in_progress",
            "request_counts": counts, "ended_at": _rfc3339(job.ended_at), "created_at": _rfc3339(job.created),
            "expires_at": _rfc3339(job.created + 86400), "archived_at": None,
            "cancel_initiated_at": _rfc3339(job.cancel_at),
            "results_url": f"{self.url}/v1/messages/batches/{job.id}/results" if ended else None,
        }

    def _results(self, job: FakeJob) -> bytes:
        lines = []
        for cid, _ in job.rows:
            if cid in job.results:
                status, body = job.results[cid]
                result = ({"type": "succeeded", "message": body} if status == 200 else
                          {"type": "errored", "error": body})
            else:
                result = {"type": "canceled" if job.missing.get(cid) == "cancelled" else "expired"}
            lines.append(json.dumps({"custom_id": cid, "result": result}, ensure_ascii=False) + "\n")
        return "".join(lines).encode()

    def _list(self, req: Recorded) -> Reply:
        limit = int(req.query.get("limit") or 20)
        ids = list(reversed(self.created))
        after = req.query.get("after_id")
        if after in ids:
            ids = ids[ids.index(after) + 1:]
        page = ids[:limit]
        return json_reply(200, {"data": [self._batch(self.jobs[i]) for i in page], "has_more": len(ids) > limit,
                                "first_id": page[0] if page else None, "last_id": page[-1] if page else None})

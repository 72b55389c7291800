"""FakeGeminiBatch: FakeGemini plus batch mode (v1beta), as google-genai's batches module reads it
(`_BatchJob_from_mldev`: `name`, `metadata.state`, `metadata.output.inlinedResponses.inlinedResponses`
or `metadata.output.responsesFile`) and the Files API's resumable upload.

    POST /v1beta/models/{m}:batchGenerateContent  {batch: {displayName, inputConfig: {requests:
                                                  {requests: [{request, metadata: {key}}]}} |
                                                  {fileName}}} → an operation `batches/…`
    GET  /v1beta/batches[/{id}]                   the operation(s); metadata.state BATCH_STATE_PENDING
                                                  → RUNNING → SUCCEEDED | FAILED | CANCELLED | EXPIRED
    POST /v1beta/batches/{id}:cancel
    POST /upload/v1beta/files                     resumable: `start` (→ x-goog-upload-url), then
                                                  `upload, finalize` with the bytes → {file: {name}}
    GET  /download/v1beta/files/{id}:download?alt=media

Strict like the real service: inline requests over ``max_inline_bytes`` (20 MB) are a 400
("Request payload size exceeds the limit"), an upload over ``max_file_bytes`` is refused, a file
line must be `{key, request}`, and each request is answered by this fake's own generateContent.
Results files hold `{key, response}` or `{key, error}` lines. A cancelled job goes straight to
CANCELLED at its next poll (Gemini has no cancelling state). See batch_jobs.py for the job life.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from datetime import datetime, timezone
from typing import Any

from .batch_jobs import Counting, FakeJob, last_user_text
from .gemini import FakeGemini, _err, _ok
from .server import Recorded, Reply

_BATCH_CREATE = re.compile(r"^/v1beta/models/([^/:]+):batchGenerateContent$")
_DOWNLOAD = re.compile(r"^/download/v1beta/(files/[^/:]+):download$")
STATE = {"queued": "BATCH_STATE_PENDING", "running": "BATCH_STATE_RUNNING", "finishing": "BATCH_STATE_RUNNING",
         "cancelling": "BATCH_STATE_RUNNING"}
OUTCOME = {"completed": "BATCH_STATE_SUCCEEDED", "failed": "BATCH_STATE_FAILED", "cancelled": "BATCH_STATE_CANCELLED",
           "expired": "BATCH_STATE_EXPIRED"}
META_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


def _time(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeGeminiBatch(FakeGemini, Counting):
    def __init__(self, models: dict[str, int] | None = None, *, schedule: tuple[int, int, int] = (1, 2, 0),
                 max_inline_bytes: int = 20 * 1024 * 1024, max_file_bytes: int = 2 * 1000 * 1000 * 1000,
                 create_delay_s: float = 0.0, **kwargs: Any) -> None:
        FakeGemini.__init__(self, models, **kwargs)
        Counting.__init__(self)
        self.schedule = schedule
        self.max_inline_bytes = max_inline_bytes
        self.max_file_bytes = max_file_bytes
        self.create_delay_s = create_delay_s
        self.jobs: dict[str, FakeJob] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self.uploads: dict[str, dict[str, Any]] = {}  # upload id → {size, name}
        self.next_job: dict[str, Any] = {}
        self.inline_jobs = 0
        self.file_jobs = 0
        self._seq = itertools.count(1)

    async def handle(self, req: Recorded) -> Any:
        path = req.path.rstrip("/")
        batch_path = (_BATCH_CREATE.match(path) or path.startswith("/v1beta/batches")
                      or path.startswith("/upload/") or _DOWNLOAD.match(path))
        if not batch_path:
            return await super().handle(req)
        if path.startswith("/upload/v1beta/files") and "upload_id" in req.query:
            return self._upload_bytes(req)  # the upload URL carries its own authority
        denied = self._auth(req)
        if denied is not None:
            return denied
        m = _BATCH_CREATE.match(path)
        if m and req.method == "POST":
            return await self._create(req, m.group(1))
        if path == "/upload/v1beta/files" and req.method == "POST":
            return self._upload_start(req)
        m = _DOWNLOAD.match(path)
        if m and req.method == "GET":
            content = self.files.get(m.group(1))
            if content is None:
                return _err(404, f"File {m.group(1)} not found.")
            return Reply(200, content, "application/octet-stream")
        if path == "/v1beta/batches" and req.method == "GET":
            return _ok({"operations": [self._op(self.jobs[i]) for i in reversed(self.created)]})
        name, _, verb = path[len("/v1beta/"):].partition(":")
        job = self.jobs.get(name)
        if job is None:
            return _err(404, f"Batch {name} not found.")
        if verb == "cancel" and req.method == "POST":
            job.cancel(time.time(), polls=0)  # no cancelling state: cancelled at the next poll
            return _ok({})
        if not verb and req.method == "GET":
            await job.step(self._answer_for(job), time.time())
            return _ok(self._op(job))
        return _err(404, "Method not found.", "NOT_FOUND")

    # ---------------------------------------------------------------- files

    def _upload_start(self, req: Recorded) -> Reply:
        if req.headers.get("x-goog-upload-protocol") != "resumable" or req.headers.get("x-goog-upload-command") != "start":
            return _err(400, "Upload protocol not supported: use x-goog-upload-protocol: resumable.")
        size = int(req.headers.get("x-goog-upload-header-content-length") or 0)
        if size > self.max_file_bytes:
            return _err(400, f"File size {size} exceeds the maximum allowed size of {self.max_file_bytes} bytes.")
        uid = f"fake-upload-{next(self._seq)}"
        self.uploads[uid] = {"size": size, "name": (req.json or {}).get("file", {}).get("displayName")}
        url = f"{self.url}/upload/v1beta/files?upload_id={uid}&upload_protocol=resumable"
        return Reply(200, b"", "text/plain", {"x-goog-upload-url": url, "x-goog-upload-status": "active"})

    def _upload_bytes(self, req: Recorded) -> Reply:
        up = self.uploads.pop(req.query["upload_id"], None)
        if up is None:
            return _err(404, "Upload not found or already finalized.")
        if req.headers.get("x-goog-upload-command") != "upload, finalize" or req.headers.get("x-goog-upload-offset") != "0":
            return _err(400, "Expected x-goog-upload-command: upload, finalize at offset 0.")
        if len(req.body) != up["size"]:
            return _err(400, f"Upload size {len(req.body)} differs from the announced {up['size']} bytes.")
        name = f"files/fake{next(self._seq):08d}"
        self.files[name] = req.body
        return _ok({"file": {"name": name, "displayName": up["name"], "mimeType": "application/jsonl",
                             "sizeBytes": str(len(req.body)), "state": "ACTIVE", "source": "UPLOADED"}})

    # ---------------------------------------------------------------- batches

    async def _create(self, req: Recorded, model: str) -> Reply:
        if len(req.body) > self.max_inline_bytes:
            return _err(400, f"Request payload size exceeds the limit: {self.max_inline_bytes} bytes.")
        batch = (req.json or {}).get("batch") if isinstance(req.json, dict) else None
        if not isinstance(batch, dict) or not isinstance(batch.get("inputConfig"), dict):
            return _err(400, "* BatchGenerateContentRequest.batch.input_config: input_config is required\n")
        if not batch.get("displayName"):
            return _err(400, "* BatchGenerateContentRequest.batch.display_name: display_name is required\n")
        if model not in self.models:
            return _err(404, f"models/{model} is not found for API version v1beta, or is not supported for "
                             "batchGenerateContent.")
        source = batch["inputConfig"]
        rows: list[tuple[str, Any]] = []
        if "fileName" in source:
            content = self.files.get(source["fileName"])
            if content is None:
                return _err(404, f"File {source['fileName']} not found.")
            for n, raw in enumerate(content.splitlines(), 1):
                try:
                    line = json.loads(raw)
                    rows.append((str(line["key"]), line["request"]))
                except (ValueError, KeyError, TypeError):
                    return _err(400, f"Invalid batch input file: line {n} must be a JSON object with key and request.")
            self.file_jobs += 1
        else:
            items = ((source.get("requests") or {}).get("requests")) or []
            if not items:
                return _err(400, "* BatchGenerateContentRequest.batch.input_config: no requests\n")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                    return _err(400, f"* batch.input_config.requests.requests[{i}].request: request is required\n")
                rows.append((str((item.get("metadata") or {}).get("key") or i), item["request"]))
            self.inline_jobs += 1
        bid = f"batches/fake{next(self._seq):010d}"
        script, self.next_job = self.next_job, {}  # one-shot
        job = FakeJob(bid, rows, self.schedule, time.time(), label=batch["displayName"], **script)
        self.jobs[bid] = job
        self.meta[bid] = {"model": f"models/{model}", "file": "fileName" in source}
        self.created.append(bid)
        for _, r in rows:
            self.count(_gemini_prompt(r))
        if self.create_delay_s:
            await asyncio.sleep(self.create_delay_s)
        return _ok(self._op(job))

    def _answer_for(self, job: FakeJob):
        model = self.meta[job.id]["model"].removeprefix("models/")

        async def answer(request: Any) -> tuple[int, Any]:
            req = Recorded("POST", f"/v1beta/models/{model}:generateContent", {}, {"x-goog-api-key": self.api_key or ""},
                           request, time.monotonic())
            reply = await self._generate(req, model, "generateContent")
            return reply.status, json.loads(reply.body)

        return answer

    def _op(self, job: FakeJob) -> dict[str, Any]:
        meta = self.meta[job.id]
        ended = job.state == "ended"
        state = OUTCOME[job.outcome] if ended else STATE[job.state]
        failed = job.errored + len(job.missing)
        m: dict[str, Any] = {
            "@type": META_TYPE, "model": meta["model"], "displayName": job.label, "name": job.id,
            "createTime": _time(job.created), "updateTime": _time(job.ended_at or time.time()), "state": state,
            "batchStats": {"requestCount": str(len(job.rows)), "successfulRequestCount": str(job.succeeded),
                           "failedRequestCount": str(failed),
                           "pendingRequestCount": str(0 if ended else len(job.rows) - job.answered)},
        }
        if ended:
            m["endTime"] = _time(job.ended_at)
            if job.outcome != "failed":
                m["output"] = self._output(job)
        op: dict[str, Any] = {"name": job.id, "metadata": m}
        if ended:
            op["done"] = True
            if job.outcome == "failed":
                op["error"] = {"code": 400, "message": job.fail_validation or "batch failed"}
            else:
                op["response"] = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                                  **m["output"]}
        return op

    def _output(self, job: FakeJob) -> dict[str, Any]:
        items = []
        for cid, _ in job.rows:
            if cid not in job.results:
                continue
            status, body = job.results[cid]
            items.append({"response": body} if status == 200 else {"error": body.get("error", body)})
            items[-1]["metadata"] = {"key": cid}
        if not self.meta[job.id]["file"]:
            return {"inlinedResponses": {"inlinedResponses": items}}
        name = f"files/batch-{job.id.split('/')[-1]}"
        if name not in self.files:
            self.files[name] = "".join(json.dumps({"key": i["metadata"]["key"], **{k: v for k, v in i.items() if k != "metadata"}},
                                                  ensure_ascii=False) + "\n" for i in items).encode()
        return {"responsesFile": name}


def _gemini_prompt(request: Any) -> str:
    for c in reversed(request.get("contents") or []):
        if isinstance(c, dict) and c.get("role", "user") == "user":
            return "".join(str(p.get("text") or "") for p in c.get("parts") or [] if isinstance(p, dict))
    return last_user_text([])

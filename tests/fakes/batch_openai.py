"""FakeOpenAIBatch: FakeOpenAI plus OpenAI's Files and Batch APIs, as openai-python's types
(`FileObject`, `Batch`, `BatchRequestCounts`) and the Batch guide describe them.

    POST /v1/files                  multipart: purpose=batch, file=JSONL → FileObject
    GET  /v1/files/{id}/content     the file's bytes (input, output or error file)
    POST /v1/batches                {input_file_id, endpoint, completion_window: "24h", metadata?}
    GET  /v1/batches[/{id}]         the Batch (status validating → in_progress → finalizing →
                                    completed | failed | expired | cancelling → cancelled)
    POST /v1/batches/{id}/cancel

Strict like the real service: the purpose must be `batch`, the file at most ``max_file_bytes``
(else 413 — the wording is this fake's; OpenAI documents the 200 MB limit, not its error text),
at most ``max_requests`` lines, every line `{custom_id (unique), method: POST, url: <endpoint>,
body}` with one model throughout (else the job fails validation with `errors.data`), and every
row is answered by this fake's own /v1/chat/completions, streaming refused. Output lines are
`{id, custom_id, response: {status_code, request_id, body}, error: null}`; a row answered with an
error status goes to the error file the same way; expired and cancelled rows go to the error file
as `{…, response: null, error: {code: batch_expired | batch_cancelled, message}}`.

``upload_delay_s`` / ``create_delay_s`` hold the reply after the file is stored / the job is
created (a client killed meanwhile never learns the id); ``download_delay_s`` holds the reply to
a results file download. See batch_jobs.py for the job life.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any

from .batch_jobs import Counting, FakeJob, last_user_text
from .openai import FakeOpenAI, _err
from .server import Recorded, Reply, json_reply

ENDPOINTS = ("/v1/chat/completions",)
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_DISPOSITION = re.compile(r'(\w+)="([^"]*)"')
STATUS = {"queued": "validating", "running": "in_progress", "finishing": "finalizing", "cancelling": "cancelling"}
ROW_ERRORS = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was cancelled before it could be executed."),
}


class FakeOpenAIBatch(FakeOpenAI, Counting):
    def __init__(self, models: dict[str, int] | None = None, *, schedule: tuple[int, int, int] = (1, 2, 1),
                 max_file_bytes: int = 200 * 1024 * 1024, max_requests: int = 50_000,
                 upload_delay_s: float = 0.0, create_delay_s: float = 0.0, download_delay_s: float = 0.0,
                 **kwargs: Any) -> None:
        FakeOpenAI.__init__(self, models, **kwargs)
        Counting.__init__(self)
        self.schedule = schedule
        self.max_file_bytes = max_file_bytes
        self.max_requests = max_requests
        self.upload_delay_s = upload_delay_s
        self.create_delay_s = create_delay_s
        self.download_delay_s = download_delay_s
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # id → the Batch fields that do not change
        self.next_job: dict[str, Any] = {}  # FakeJob fields for the next job created (expire_after, …)
        self._seq = itertools.count(1)

    async def handle(self, req: Recorded) -> Any:
        path = req.path.rstrip("/")
        if path.startswith("/v1/files") or path.startswith("/v1/batches"):
            denied = self._auth(req)
            if denied is not None:
                return denied
            return await self._batch_api(req, path)
        return await super().handle(req)

    async def _batch_api(self, req: Recorded, path: str) -> Any:
        parts = path.split("/")[2:]  # ["files", id, "content"] / ["batches", id, "cancel"]
        if parts == ["files"] and req.method == "POST":
            return await self._upload(req)
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "content" and req.method == "GET":
            f = self.files.get(parts[1])
            if f is None:
                return _err(404, f"No such File object: {parts[1]}", param="id")
            if self.download_delay_s and f["purpose"] == "batch_output":
                await asyncio.sleep(self.download_delay_s)
            return Reply(200, f["content"], "application/octet-stream")
        if parts == ["batches"] and req.method == "POST":
            return await self._create(req)
        if parts == ["batches"] and req.method == "GET":
            return self._list(req)
        if len(parts) == 2 and parts[0] == "batches" and req.method == "GET":
            job = self.jobs.get(parts[1])
            if job is None:
                return _err(404, f"No batch found with id '{parts[1]}'.")
            await job.step(self._answer, time.time())
            self._write_files(job)
            return json_reply(200, self._batch(job))
        if len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel" and req.method == "POST":
            job = self.jobs.get(parts[1])
            if job is None:
                return _err(404, f"No batch found with id '{parts[1]}'.")
            if job.state == "ended":
                return _err(400, f"Cannot cancel a batch with status '{self._status(job)}'.")
            job.cancel(time.time())
            return json_reply(200, self._batch(job))
        return _err(404, f"Invalid URL ({req.method} {req.path})")

    # ---------------------------------------------------------------- files

    async def _upload(self, req: Recorded) -> Reply:
        fields = _multipart(req)
        if fields is None:
            return _err(400, "Invalid multipart form data: expected fields 'purpose' and 'file'.")
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data", "evals"):
            return _err(400, f"'{purpose}' is not one of ['assistants', 'batch', 'fine-tune', 'vision', "
                             "'user_data', 'evals'] - 'purpose'", param="purpose")
        if "file" not in fields:
            return _err(400, "Missing required parameter: 'file'.", param="file")
        filename, content = fields["file"]
        if len(content) > self.max_file_bytes:
            return _err(413, f"File is too large: {len(content)} bytes; the maximum for purpose 'batch' "
                             f"is {self.max_file_bytes} bytes.", code="file_too_large")
        fid = f"file-fake{next(self._seq):06d}"
        self.files[fid] = {"content": content, "filename": filename, "purpose": purpose, "created_at": int(time.time())}
        if self.upload_delay_s:
            await asyncio.sleep(self.upload_delay_s)
        return json_reply(200, self._file(fid))

    def _file(self, fid: str) -> dict[str, Any]:
        f = self.files[fid]
        return {"id": fid, "object": "file", "bytes": len(f["content"]), "created_at": f["created_at"],
                "filename": f["filename"], "purpose": f["purpose"], "status": "processed", "expires_at": None,
                "status_details": None}

    # ---------------------------------------------------------------- batches

    async def _create(self, req: Recorded) -> Reply:
        body = req.json if isinstance(req.json, dict) else None
        if body is None:
            return _err(400, "We could not parse the JSON body of your request.")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if key not in body:
                return _err(400, f"Missing required parameter: '{key}'.", param=key)
        if body["endpoint"] not in ENDPOINTS + ("/v1/responses", "/v1/embeddings", "/v1/completions"):
            return _err(400, f"Invalid value: '{body['endpoint']}'.", param="endpoint")
        if body["completion_window"] != "24h":
            return _err(400, f"Invalid value: '{body['completion_window']}'. Supported values are: '24h'.",
                        param="completion_window")
        f = self.files.get(body["input_file_id"])
        if f is None:
            return _err(404, f"No such File object: {body['input_file_id']}", param="input_file_id")
        if f["purpose"] != "batch":
            return _err(400, "The input file must have purpose 'batch'.", param="input_file_id")
        rows, problem = self._rows(f["content"], body["endpoint"])
        script, self.next_job = dict(self.next_job), {}  # one-shot
        problem = problem or script.pop("fail_validation", None)
        bid = f"batch_fake{next(self._seq):06d}"
        job = FakeJob(bid, rows, self.schedule, time.time(), label=(body.get("metadata") or {}).get("runner_job"),
                      fail_validation=problem, **script)
        self.jobs[bid] = job
        self.batches[bid] = {"input_file_id": body["input_file_id"], "endpoint": body["endpoint"],
                             "metadata": body.get("metadata"), "created_at": int(job.created)}
        self.created.append(bid)
        if problem is None:
            for _, b in rows:
                self.count(last_user_text(b.get("messages")))
        if self.create_delay_s:
            await asyncio.sleep(self.create_delay_s)
        return json_reply(200, self._batch(job))

    def _rows(self, content: bytes, endpoint: str) -> tuple[list[tuple[str, Any]], str | None]:
        rows: list[tuple[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        for n, raw in enumerate(content.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                return [], f"invalid_json_line: line {n} is not valid JSON"
            cid = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(cid, str) or not cid:
                return [], f"missing_required_parameter: line {n} has no custom_id"
            if cid in seen:
                return [], f"duplicate_custom_id: line {n}: the custom_id '{cid}' is not unique"
            if line.get("method") != "POST" or line.get("url") != endpoint:
                return [], f"invalid_url: line {n}: url must be '{endpoint}' with method POST"
            body = line.get("body")
            if not isinstance(body, dict):
                return [], f"invalid_request: line {n} has no body"
            models.add(str(body.get("model")))
            seen.add(cid)
            rows.append((cid, body))
        if not rows:
            return [], "empty_file: the input file has no requests"
        if len(rows) > self.max_requests:
            return [], f"too_many_requests: {len(rows)} requests; a batch takes at most {self.max_requests}"
        if len(models) > 1:
            return [], f"mismatched_model: every request of a batch must use the same model ({sorted(models)})"
        return rows, None

    async def _answer(self, body: Any) -> tuple[int, Any]:
        if body.get("stream"):
            return 400, {"error": {"message": "Streaming is not supported in the Batch API.", "type":
                                   "invalid_request_error", "param": "stream", "code": None}}
        req = Recorded("POST", "/v1/chat/completions", {}, {"authorization": f"Bearer {self.api_key}"}, body,
                       time.monotonic())
        reply = await self._chat(req)
        return reply.status, json.loads(reply.body)

    def _status(self, job: FakeJob) -> str:
        return STATUS.get(job.state) or job.outcome or "completed"

    def _batch(self, job: FakeJob) -> dict[str, Any]:
        fixed = self.batches[job.id]
        status = self._status(job)
        ended = int(job.ended_at) if job.ended_at else None
        out = {
            "id": job.id, "object": "batch", "endpoint": fixed["endpoint"], "errors": None,
            "input_file_id": fixed["input_file_id"], "completion_window": "24h", "status": status,
            "output_file_id": None, "error_file_id": None, "created_at": fixed["created_at"],
            "in_progress_at": None, "expires_at": fixed["created_at"] + 86400, "finalizing_at": None,
            "completed_at": ended if status == "completed" else None, "failed_at": ended if status == "failed" else None,
            "expired_at": ended if status == "expired" else None,
            "cancelling_at": int(job.cancel_at) if job.cancel_at else None,
            "cancelled_at": ended if status == "cancelled" else None,
            "request_counts": {"total": len(job.rows), "completed": job.succeeded,
                               "failed": job.errored + len(job.missing)},
            "metadata": fixed["metadata"],
        }
        if status == "failed":
            code, _, message = (job.fail_validation or "").partition(": ")
            out["errors"] = {"object": "list", "data": [{"code": code, "message": message, "param": None, "line": None}]}
            out["request_counts"] = {"total": 0, "completed": 0, "failed": 0}
        out.update(fixed.get("files") or {})
        return out

    def _write_files(self, job: FakeJob) -> None:
        """Once a job ends: its output and error files (each only when it has lines)."""
        fixed = self.batches[job.id]
        if job.state != "ended" or "files" in fixed or job.outcome == "failed":
            return
        output, errors = [], []
        for n, (cid, _) in enumerate(job.rows):
            if cid in job.results:
                status, body = job.results[cid]
                line = {"id": f"batch_req_{job.id}_{n}", "custom_id": cid,
                        "response": {"status_code": status, "request_id": f"req_{n:06d}", "body": body}, "error": None}
                (output if status == 200 else errors).append(line)
            elif cid in job.missing:
                code, message = ROW_ERRORS[job.missing[cid]]
                errors.append({"id": f"batch_req_{job.id}_{n}", "custom_id": cid, "response": None,
                               "error": {"code": code, "message": message}})
        files: dict[str, str] = {}
        for key, lines in (("output_file_id", output), ("error_file_id", errors)):
            if lines:
                fid = f"file-fake{next(self._seq):06d}"
                content = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
                self.files[fid] = {"content": content, "filename": f"{job.id}_{key[:-8]}.jsonl",
                                   "purpose": "batch_output", "created_at": int(time.time())}
                files[key] = fid
        fixed["files"] = files

    def _list(self, req: Recorded) -> Reply:
        limit = int(req.query.get("limit") or 20)
        ids = list(reversed(self.created))  # newest first
        after = req.query.get("after")
        if after in ids:
            ids = ids[ids.index(after) + 1:]
        page = ids[:limit]
        return json_reply(200, {"object": "list", "data": [self._batch(self.jobs[i]) for i in page],
                                "first_id": page[0] if page else None, "last_id": page[-1] if page else None,
                                "has_more": len(ids) > limit})


def _multipart(req: Recorded) -> dict[str, tuple[str | None, bytes]] | None:
    """multipart/form-data fields: name → (filename, content)."""
    m = _BOUNDARY.search(req.headers.get("content-type", ""))
    if m is None:
        return None
    boundary = b"--" + m.group(1).encode()
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in req.body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            return None
        attrs = dict(_DISPOSITION.findall(head.decode("latin-1")))
        if "name" not in attrs:
            return None
        fields[attrs["name"]] = (attrs.get("filename"), content[:-2] if content.endswith(b"\r\n") else content)
    return fields

"""The batch fakes are as strict as the real services: what they refuse, and the shapes they answer
with (checked with a plain HTTP client, not the runner)."""

from __future__ import annotations

import json

import httpx

from .batch_anthropic import FakeAnthropicBatch
from .batch_gemini import FakeGeminiBatch
from .batch_openai import FakeOpenAIBatch

OPENAI = {"authorization": "Bearer test-key"}
ANTHROPIC = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
GEMINI = {"x-goog-api-key": "test-key"}


def _line(cid, model="gpt-4.1", **body):
    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": model, "messages": [{"role": "user", "content": f"hi {cid}"}], **body}}) + "\n"


def _openai_job(fake, content: str, purpose="batch"):
    with httpx.Client(base_url=fake.url, headers=OPENAI) as c:
        f = c.post("/v1/files", data={"purpose": purpose}, files={"file": ("x.jsonl", content.encode())})
        if f.status_code != 200:
            return f, None
        b = c.post("/v1/batches", json={"input_file_id": f.json()["id"], "endpoint": "/v1/chat/completions",
                                        "completion_window": "24h"})
        return f, b


def _poll_openai(fake, bid):
    with httpx.Client(base_url=fake.url, headers=OPENAI) as c:
        for _ in range(20):
            b = c.get(f"/v1/batches/{bid}").json()
            if b["status"] in ("completed", "failed", "expired", "cancelled"):
                return b
    raise AssertionError("the fake job never ended")


def test_openai_batch_fake_validates_the_input_file():
    with FakeOpenAIBatch({"gpt-4.1": 1_000_000, "gpt-4.1-mini": 1_000_000}) as fake:
        f, _ = _openai_job(fake, _line("a"), purpose="nonsense")
        assert f.status_code == 400 and "purpose" in f.json()["error"]["message"]
        for content, code in ((_line("a") + _line("a"), "duplicate_custom_id"),
                              (_line("a") + _line("b", model="gpt-4.1-mini"), "mismatched_model"),
                              ("{not json\n", "invalid_json_line")):
            _, b = _openai_job(fake, content)
            assert b.status_code == 200 and b.json()["status"] == "validating"
            done = _poll_openai(fake, b.json()["id"])
            assert done["status"] == "failed" and done["errors"]["data"][0]["code"] == code
            assert done["output_file_id"] is None
        assert fake.rows_received == 0  # rows of a job that failed validation never ran


def test_openai_batch_fake_answers_in_the_real_shapes():
    with FakeOpenAIBatch({"gpt-4.1": 1_000_000}) as fake:
        _, b = _openai_job(fake, _line("ok") + _line("streamed", stream=True))
        done = _poll_openai(fake, b.json()["id"])
        assert done["status"] == "completed" and done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
        with httpx.Client(base_url=fake.url, headers=OPENAI) as c:
            out = [json.loads(x) for x in c.get(f"/v1/files/{done['output_file_id']}/content").text.splitlines()]
            errs = [json.loads(x) for x in c.get(f"/v1/files/{done['error_file_id']}/content").text.splitlines()]
        assert set(out[0]) == {"id", "custom_id", "response", "error"} and out[0]["error"] is None
        assert out[0]["response"]["status_code"] == 200 and out[0]["response"]["body"]["object"] == "chat.completion"
        assert errs[0]["custom_id"] == "streamed" and errs[0]["response"]["status_code"] == 400


def test_anthropic_batch_fake_refuses_bad_custom_ids_and_early_results():
    with FakeAnthropicBatch({"claude-haiku-4-5": 200_000}) as fake, \
            httpx.Client(base_url=fake.url, headers=ANTHROPIC) as c:
        params = {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
        r = c.post("/v1/messages/batches", json={"requests": [{"custom_id": "has space", "params": params}]})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        r = c.post("/v1/messages/batches", json={"requests": [{"custom_id": "a", "params": params}] * 2})
        assert r.status_code == 400 and "not unique" in r.json()["error"]["message"]
        r = c.post("/v1/messages/batches", json={"requests": [
            {"custom_id": "a", "params": params}, {"custom_id": "b", "params": {**params, "max_tokens": 0}}]})
        bid = r.json()["id"]
        assert r.json()["processing_status"] == "in_progress" and r.json()["results_url"] is None
        assert c.get(f"/v1/messages/batches/{bid}/results").status_code == 400  # not ended yet
        for _ in range(10):
            b = c.get(f"/v1/messages/batches/{bid}").json()
            if b["processing_status"] == "ended":
                break
        assert b["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 1, "canceled": 0, "expired": 0}
        lines = [json.loads(x) for x in c.get(b["results_url"]).text.splitlines()]
        assert [x["result"]["type"] for x in lines] == ["succeeded", "errored"]
        assert lines[1]["result"]["error"]["error"]["type"] == "invalid_request_error"


def test_gemini_batch_fake_upload_protocol_and_limits():
    with FakeGeminiBatch({"gemini-2.5-flash": 1_000_000}, max_inline_bytes=2000) as fake, \
            httpx.Client(base_url=fake.url, headers=GEMINI) as c:
        req = {"contents": [{"role": "user", "parts": [{"text": "hi " * 1000}]}]}
        r = c.post("/v1beta/models/gemini-2.5-flash:batchGenerateContent",
                   json={"batch": {"displayName": "x", "inputConfig": {"requests": {"requests": [{"request": req}]}}}})
        assert r.status_code == 400 and "payload size exceeds" in r.json()["error"]["message"]
        r = c.post("/upload/v1beta/files", headers={"x-goog-upload-protocol": "resumable"}, json={})
        assert r.status_code == 400  # no start command
        start = c.post("/upload/v1beta/files", json={"file": {"displayName": "x"}}, headers={
            "x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": "10"})
        url = start.headers["x-goog-upload-url"]
        r = c.post(url, content=b"12345", headers={"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"})
        assert r.status_code == 400 and "differs from the announced" in r.json()["error"]["message"]
        assert c.get("/download/v1beta/files/nope:download", params={"alt": "media"}).status_code == 404

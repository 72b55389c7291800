"""Several requests at once against one llama-cpp-python server.

By default that server serves one request at a time and a newer request ABORTS the running
stream: the cut stream gets `data: [DONE]` right after its last chunk, with no finish_reason, and
the connection then closes without the chunked body's terminator. Such an answer is incomplete:
the attempt failed (retryable) — it is never an ok result, whatever text it had so far.

The tiny model never stops by itself, so every complete answer is exactly max_tokens characters:
a shorter one was cut.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .harness import Expect, attempt_summary, complete, unfinished_ok_attempts

LONG = 200  # tokens per answer in these tests: long enough for requests to overlap


def test_batch_rows_are_whole_answers_or_failures(runner):
    rows = runner.work / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"question number {i}"}) + "\n" for i in range(10)))
    out = runner.work / "out.jsonl"
    r = runner("batch", str(rows), "--model", "llama/tiny", "--concurrency", "4", "--max-tokens", str(LONG),
               "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    attempts = runner.attempts()
    expect = Expect()
    expect(r.code in (0, 1), f"exit code {r.code}")
    expect(sorted(x["id"] for x in lines) == sorted(f"r{i}" for i in range(10)),
           f"results file ids: {[x['id'] for x in lines]}")
    for row in lines:
        if row["ok"]:
            expect(complete(row["text"], LONG),
                   f"row {row['id']} is ok with a cut answer ({len(row['text'] or '')} of {LONG} characters): {row['text']!r}")
        else:
            expect(row.get("error"), f"row {row['id']} failed without an error")
    failed = [x["id"] for x in lines if not x["ok"]]
    expect((r.code == 0) == (not failed), f"exit code {r.code} with failed rows {failed}")
    expect(not unfinished_ok_attempts(attempts),
           f"{len(unfinished_ok_attempts(attempts))} attempts without a finish_reason were logged as ok "
           f"(the server cut {runner.server.cut_streams()} streams)")
    expect.check(r, "results:\n" + "\n".join(
        f"  {x['id']}: ok={x['ok']} chars={len(x['text'] or '')} error={x.get('error')!r}" for x in lines),
        "attempts in the run log:\n" + attempt_summary(attempts))


def test_compare_two_columns_on_one_server(runner):
    r = runner("compare", "hello there", "-m", "llama/tiny", "-m", "llama/tiny2", "--max-tokens", str(LONG), "--json")
    attempts = runner.attempts()
    expect = Expect()
    cells = [c for c in r.json() if c.get("kind") == "compare"] if r.stdout.strip().startswith("[") else []
    expect(r.code == 0, f"exit code {r.code}")
    expect(sorted(c["column"] for c in cells) == ["llama/tiny", "llama/tiny2"],
           f"columns: {[c.get('column') for c in cells]}")
    for c in cells:
        expect(c["ok"] is True, f"column {c['column']} failed: {c.get('error')!r}")
        if c["ok"]:
            expect(complete(c["text"], LONG),
                   f"column {c['column']} is ok with a cut answer ({len(c['text'] or '')} of {LONG} characters)")
            expect(c["tokens_estimated"] is True, f"column {c['column']}: tokens not marked estimated")
    expect(not unfinished_ok_attempts(attempts), "an attempt without a finish_reason was logged as ok")
    expect.check(r, "attempts in the run log:\n" + attempt_summary(attempts))


def test_ask_cut_by_another_client_is_retried_not_shown_as_the_answer(runner):
    """Someone else uses the same server mid-answer: the runner's stream is cut. The attempt
    fails and is retried; the pipe gets exactly one whole answer."""
    n = 1500  # ~2 s of generation
    proc = subprocess.Popen([sys.executable, "-m", "runner", "ask", "--model", "llama/tiny", "--max-tokens", str(n),
                             "--json", "tell me everything"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=runner.env(), cwd=runner.work)
    deadline = time.monotonic() + 30
    while runner.server.chat_posts() < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # well into the answer
    status, _ = runner.server.post("/v1/chat/completions",
                                   {"model": "other", "messages": [{"role": "user", "content": "me too"}], "max_tokens": 1})
    assert status == 200
    stdout, stderr = proc.communicate(timeout=120)
    attempts = runner.attempts()
    expect = Expect()
    expect(runner.server.cut_streams() >= 1, "the server did not cut the runner's stream (timing?)")
    data = json.loads(stdout) if stdout.strip().startswith("{") else {}
    expect(proc.returncode == 0, f"exit code {proc.returncode}")
    expect(data.get("ok") is True, f"ok={data.get('ok')!r} error={data.get('error')!r}")
    expect(complete(data.get("text"), n),
           f"the answer is not whole: {len(data.get('text') or '')} of {n} characters")
    outcomes = [a["outcome"] for a in data.get("attempts", [])]
    expect(outcomes[:1] == ["failed"] and outcomes[-1:] == ["ok"],
           f"attempts {outcomes}: expected the cut attempt failed, then a retry ok")
    expect(not unfinished_ok_attempts(attempts), "the cut attempt (no finish_reason) was logged as ok")
    expect.check(f"exit {proc.returncode}\nstdout: {stdout[-1500:]}\nstderr: {stderr[-1500:]}",
                 "attempts in the run log:\n" + attempt_summary(attempts))

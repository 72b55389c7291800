"""`runner batch` end to end, through the real CLI, against loopback fakes."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter

import pytest

from tests.fakes import Fault


def chat_requests(fake):
    return [r for r in fake.requests if r.path.endswith("/api/chat") or "completions" in r.path
            or r.path.endswith("/messages") or "GenerateContent" in r.path]


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_out(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def ids_ok(records):
    return Counter(r["id"] for r in records if r["ok"])


# --- routing, results, run log ---------------------------------------------------------


def test_each_row_routes_by_its_own_task_or_model(cli, tmp_path, fake_ollama, fake_openai, fake_anthropic, use):
    for fake, name in ((fake_ollama, "ollama"), (fake_openai, "openai"), (fake_anthropic, "anthropic")):
        use(fake, name)
    src = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "by-model", "prompt": "hello", "model": "openai/gpt-4.1"},
        {"id": "by-task", "prompt": "write fizzbuzz", "task": "coding"},
        {"id": "default", "prompt": "what is 2+2?"},
        {"id": "bad-task", "prompt": "x", "task": "nosuch"},
        {"id": "bad-model", "prompt": "x", "model": "nowhere/llm"},
    ])
    out = tmp_path / "out.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--task", "fast")
    assert r.code == 1, r.stderr  # two bad rows: reported, skipped, the rest ran
    assert "line 4 (bad-task): unknown task 'nosuch'" in r.stderr
    assert "line 5 (bad-model): unknown provider 'nowhere'" in r.stderr
    got = {rec["id"]: rec for rec in read_out(out)}
    assert set(got) == {"by-model", "by-task", "default"}
    assert (got["by-model"]["model"], got["by-model"]["task"]) == ("openai/gpt-4.1", "fast")
    assert (got["by-task"]["model"], got["by-task"]["task"]) == ("anthropic/claude-sonnet-4-6", "coding")
    assert (got["default"]["model"], got["default"]["task"]) == ("ollama/qwen2.5:7b", "fast")  # the command's --task
    for rec in got.values():
        assert rec["ok"] and rec["text"] and rec["error"] is None
        assert rec["input_tokens"] > 0 and rec["output_tokens"] > 0 and rec["latency_ms"] >= rec["ttft_ms"] > 0
        assert rec["attempts"][-1]["outcome"] == "ok" and rec["run_id"]
    assert got["by-model"]["cost_usd"] > 0 and got["default"]["cost_usd"] == 0.0
    batch_id = got["default"]["batch_id"]
    assert {rec["batch_id"] for rec in got.values()} == {batch_id}
    # Summary on stdout: a row per model with latency and first-token percentiles.
    assert "3 ok" in r.stdout and "2 bad" in r.stdout
    for model in ("openai/gpt-4.1", "anthropic/claude-sonnet-4-6", "ollama/qwen2.5:7b"):
        assert model in r.stdout
    assert "latency p50/p95" in r.stdout and "first token p50/p95" in r.stdout
    # Every call is in the run log, linked by the batch id.
    log = cli("log", "--group", batch_id, "--json").json()
    assert sorted((x["model"]) for x in log) == sorted(rec["model"] for rec in got.values())
    assert {x["id"] for x in log} == {rec["run_id"] for rec in got.values()}

    # The command's --model applies only to rows that name neither a task nor a model.
    out2 = tmp_path / "out2.jsonl"
    cli("batch", str(src), "--out", str(out2), "--model", "ollama/qwen3:8b")
    got2 = {rec["id"]: rec["model"] for rec in read_out(out2)}
    assert got2 == {"by-model": "openai/gpt-4.1", "by-task": "anthropic/claude-sonnet-4-6", "default": "ollama/qwen3:8b"}


@pytest.mark.parametrize("kind", ["jsonl", "yaml", "csv", "text"])
def test_each_prompt_format_runs(cli, tmp_path, fake_openai, use, kind):
    use(fake_openai, "openai")
    files = {
        "jsonl": ('{"id": "a", "prompt": "Say {w}", "vars": {"w": "hi"}}\n{"prompt": "Say bye"}\n{oops\n', 3),
        "yaml": ("defaults: {prompt: 'Say {w}'}\nprompts:\n  - {id: a, vars: {w: hi}}\n  - {vars: {w: bye}}\n  - [1]\n", 5),
        "csv": ("id,prompt,w\na,Say {w},hi\n,Say {w},bye\nc,broken\n", 4),
        "text": ("Say hi\n\nSay\nbye\n", None),
    }
    text, bad_line = files[kind]
    n = 2
    src = tmp_path / f"p.{'txt' if kind == 'text' else kind}"
    src.write_text(text)
    out = tmp_path / "out.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1")
    records = read_out(out)
    assert len(records) == n and all(rec["ok"] for rec in records), r.stderr
    prompts = sorted(req.json["messages"][-1]["content"] for req in chat_requests(fake_openai))
    assert prompts == (["Say bye", "Say hi"] if kind != "text" else ["Say\nbye", "Say hi"])
    assert r.code == (0 if kind == "text" else 1)
    if bad_line:
        assert f"skipped {src}, line {bad_line}:" in r.stderr


def test_csv_results_and_stdout(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.replies["gpt-4.1"] = 'line one, with "quotes"\nline two'
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": f"r{i}", "prompt": f"q{i}"} for i in range(3)])
    out = tmp_path / "results.csv"
    r = cli("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1")
    assert r.code == 0, r.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(x["id"] for x in rows) == ["r0", "r1", "r2"]
    assert all(x["text"] == 'line one, with "quotes"\nline two' and x["ok"] == "true" for x in rows)
    assert float(rows[0]["cost_usd"]) > 0 and rows[0]["model"] == "openai/gpt-4.1"
    # --out - : results on stdout as JSONL, the summary on stderr.
    r = cli("batch", str(src), "--out", "-", "--model", "openai/gpt-4.1")
    assert r.code == 0
    assert sorted(json.loads(x)["id"] for x in r.stdout.splitlines()) == ["r0", "r1", "r2"]
    assert "openai/gpt-4.1" in r.stderr


def test_failed_rows_are_retried_on_resume_and_superseded(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": f"r{i}", "prompt": f"q{i}"} for i in range(6)])
    out = tmp_path / "out.jsonl"
    fake_openai.push_fault(Fault(status=400, message="bad request for this one"))
    r = cli("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1", "-c", "1")
    assert r.code == 1
    first = read_out(out)
    assert len(first) == 6 and sum(not x["ok"] for x in first) == 1
    failed = next(x for x in first if not x["ok"])
    assert "bad request for this one" in failed["error"] and failed["model"] == "openai/gpt-4.1"
    assert "1 row failed" in r.stderr and "run the same command again" in r.stderr
    fake_openai.clear()
    r = cli("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1")
    assert r.code == 0, r.stderr
    assert len(chat_requests(fake_openai)) == 1  # only the failed row was sent again
    final = read_out(out)
    assert ids_ok(final) == {f"r{i}": 1 for i in range(6)}
    assert len(final) == 6  # compacted: the failed record was superseded and dropped
    assert len({x["batch_id"] for x in final}) == 1  # a resume keeps the batch id
    r = cli("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1")
    assert r.code == 0 and "already answered" in r.stderr and len(chat_requests(fake_openai)) == 1


# --- concurrency and rate limits ----------------------------------------------------------


def test_local_and_hosted_rows_run_at_the_same_time(cli, tmp_path, fake_ollama, fake_openai, use):
    use(fake_ollama, "ollama")
    use(fake_openai, "openai")
    fake_ollama.ttft_s = 0.25
    fake_openai.ttft_s = 0.25
    rows = []
    for i in range(4):
        rows.append({"id": f"local{i}", "prompt": f"local question {i}", "model": "ollama/qwen2.5:7b"})
        rows.append({"id": f"hosted{i}", "prompt": f"hosted question {i}", "model": "openai/gpt-4.1"})
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "out.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--concurrency", "8")
    assert r.code == 0, r.stderr
    assert len(read_out(out)) == 8
    assert fake_ollama.max_concurrent_seen == 1  # ollama.num_parallel defaults to 1
    assert fake_openai.max_concurrent_seen == 4  # hosted rows did not queue behind the local ones
    local = sorted(q.time for q in chat_requests(fake_ollama))
    hosted = sorted(q.time for q in chat_requests(fake_openai))
    assert hosted[-1] < local[1]  # every hosted row was sent while the first local one ran


def test_limits_per_backend(cli, tmp_path, fake_ollama, fake_openai, use, home):
    use(fake_ollama, "ollama")
    use(fake_openai, "openai")
    (home / "config.yaml").write_text("retries: 1\nollama: {num_parallel: 2}\nhosted_concurrency: 3\n")
    fake_ollama.ttft_s = fake_openai.ttft_s = 0.1
    rows = [{"prompt": f"q{i}", "model": "ollama/qwen2.5:7b" if i % 2 else "openai/gpt-4.1"} for i in range(16)]
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    r = cli("batch", str(src), "--out", str(tmp_path / "a.jsonl"), "-c", "16")
    assert r.code == 0, r.stderr
    assert fake_ollama.max_concurrent_seen == 2 and fake_openai.max_concurrent_seen == 3
    # -c 16 asked for more: the output says which limits held each backend back, and how to raise them.
    assert "ollama takes 2 rows at a time (ollama.num_parallel in config.yaml), not 16" in r.stderr
    assert "openai takes 3 rows at a time (hosted_concurrency in config.yaml), not 16" in r.stderr
    fake_ollama.clear()
    fake_openai.clear()
    r = cli("batch", str(src), "--out", str(tmp_path / "b.jsonl"), "--limit", "openai=6", "--limit", "ollama=1")
    assert r.code == 0, r.stderr
    assert fake_ollama.max_concurrent_seen == 1 and fake_openai.max_concurrent_seen == 6  # -c defaults to the largest --limit


def test_429_shrinks_the_limit_waits_retry_after_and_recovers(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.05
    for _ in range(2):
        fake_openai.push_fault(Fault(status=429, retry_after="1", message="Rate limit reached"))
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": f"r{i}", "prompt": f"q{i}"} for i in range(24)])
    out = tmp_path / "out.jsonl"
    t = time.monotonic()
    r = cli("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1", "--limit", "openai=4")
    assert r.code == 0, r.stderr
    assert time.monotonic() - t >= 1.0
    assert ids_ok(read_out(out)) == {f"r{i}": 1 for i in range(24)}
    reqs = sorted(chat_requests(fake_openai), key=lambda q: q.time)
    assert len(reqs) == 26  # 24 rows + the 2 that were refused and retried
    first_wave = reqs[:4]
    rest = reqs[4:]
    # After the 429s nothing new was sent until Retry-After had passed…
    assert rest[0].time - first_wave[0].time >= 0.95
    # …and the limit, halved twice (4 → 1), grew back as rows succeeded.
    in_flight = _max_overlap(reqs[4:12], 0.05)
    assert in_flight <= 2
    records = {x["id"]: x for x in read_out(out)}
    retried = [x for x in records.values() if len(x["attempts"]) == 2]
    assert len(retried) == 2 and all(x["attempts"][0]["outcome"] == "failed" for x in retried)


def _max_overlap(reqs, duration):
    times = sorted(q.time for q in reqs)
    return max(sum(1 for u in times if t <= u < t + duration * 0.9) for t in times)


def test_rows_refused_by_rate_limits_go_back_in_the_queue(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    # retries: 1 (tests' config): two 429s in a row exhaust the executor's retries for a row.
    for _ in range(3):
        fake_openai.push_fault(Fault(status=429, retry_after="0.2", message="Rate limit reached"))
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": f"r{i}", "prompt": f"q{i}"} for i in range(3)])
    out = tmp_path / "out.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1", "-c", "1")
    assert r.code == 0, r.stderr
    assert ids_ok(read_out(out)) == {"r0": 1, "r1": 1, "r2": 1}
    batch_id = read_out(out)[0]["batch_id"]
    runs = cli("log", "--group", batch_id, "--json").json()
    assert Counter(x["outcome"] for x in runs) == {"ok": 3, "failed": 1}  # the refused try is in the log too


# --- budget -----------------------------------------------------------------------------


def test_budget_stops_new_rows_and_resumes_with_a_larger_one(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": f"r{i}", "prompt": f"question {i}"} for i in range(10)])
    out = tmp_path / "out.jsonl"
    args = ("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1", "--max-tokens", "20", "-c", "1")
    plan = cli(*args, "--dry-run", "--json").json()
    per_row = plan["plan"][0]["est_cost_usd"]
    assert plan["to_run"] == 10 and plan["est_cost_usd"] == pytest.approx(10 * per_row, rel=0.01)
    r = cli(*args, "--max-cost", f"{per_row * 3.5:.6f}")
    assert r.code == 3, r.stderr
    assert "budget reached" in r.stderr and "larger budget" in r.stderr
    done = read_out(out)
    assert 0 < len(done) < 10 and all(x["ok"] for x in done)
    spent = sum(x["cost_usd"] for x in done)
    assert spent <= per_row * 3.5
    assert len(chat_requests(fake_openai)) == len(done)  # nothing was started past the budget
    # The budget covers the whole results file: the same budget goes no further.
    r = cli(*args, "--max-cost", f"{per_row * 3.5:.6f}")
    assert r.code == 3 and len(read_out(out)) == len(done)
    r = cli(*args, "--max-cost", "1", "--json")
    assert r.code == 0, r.stderr
    assert r.json()["total_cost_usd"] == pytest.approx(sum(x["cost_usd"] for x in read_out(out)))
    assert ids_ok(read_out(out)) == {f"r{i}": 1 for i in range(10)}


def test_budget_stops_within_a_row_of_the_limit(cli, tmp_path, fake_openai, use):
    """The reservation of a running row (its whole max_tokens answered) is released when it
    finishes: the batch goes on until the next row would pass the limit, not until the
    reservations do (seen: 3 of 30 rows run, $0.00062 of a $0.05 budget)."""
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": f"r{i}", "prompt": f"question {i}"} for i in range(30)])
    out = tmp_path / "out.jsonl"
    args = ("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1", "--max-tokens", "2000")
    per_row = cli(*args, "--dry-run", "--json").json()["plan"][0]["est_cost_usd"]
    budget = per_row * 1.5  # room for one reservation at a time, and many real rows
    r = cli(*args, "--max-cost", f"{budget:.8f}", "--json")
    done = read_out(out)
    costs = [x["cost_usd"] for x in done]
    spent = sum(costs)
    assert spent <= budget
    assert r.code == 0 or budget - spent < 2 * max(costs), (r.code, len(done), spent, budget)
    assert len(done) > 3


def test_budget_counts_running_rows(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.2
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"question {i}"} for i in range(8)])
    out = tmp_path / "out.jsonl"
    args = ("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1", "--max-tokens", "1000")
    per_row = cli(*args, "--dry-run", "--json").json()["plan"][0]["est_cost_usd"]
    r = cli(*args, "-c", "8", "--max-cost", f"{per_row * 3.5:.6f}", "--json")
    # At first 3 reservations fit at once; finished rows release theirs (and teach a tighter one).
    assert fake_openai.max_concurrent_seen >= 3
    assert r.json()["total_cost_usd"] <= per_row * 3.5 and r.json()["ran"] > 3


# --- dry run and mistakes ---------------------------------------------------------------


def test_dry_run_shows_routing_and_sends_nothing(cli, tmp_path, fake_ollama, fake_openai, use):
    use(fake_ollama, "ollama")
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "prompt": "hi", "model": "openai/gpt-4.1"},
        {"id": "b", "prompt": "hi", "task": "private"},
        {"id": "c", "prompt": "hi", "model": "gemini/gemini-2.5-pro"},
    ])
    out = tmp_path / "out.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--dry-run")
    assert r.code == 0, r.stderr
    assert "openai/gpt-4.1" in r.stdout and "ollama/qwen3:8b (+2)" in r.stdout
    assert "no route" in r.stdout and "no GEMINI_API_KEY" in r.stdout
    assert "estimated total $" in r.stdout and "nothing was sent" in r.stdout
    assert not chat_requests(fake_openai) and not chat_requests(fake_ollama)
    assert not out.exists()
    plan = cli("batch", str(src), "--out", str(out), "--dry-run", "--json").json()
    assert [(p["id"], p["model"]) for p in plan["plan"]] == [("a", "openai/gpt-4.1"), ("b", "ollama/qwen3:8b"), ("c", None)]
    assert plan["plan"][1]["fallbacks"] == ["ollama/deepseek-r1:8b", "ollama/qwen2.5:7b"]
    assert plan["no_route"] == 1 and plan["est_cost_usd"] > 0


@pytest.mark.parametrize("args, message", [
    (("missing.jsonl",), "missing.jsonl: no such file"),
    (("{src}", "--format", "xml"), "unknown --format 'xml'"),
    (("{src}", "--input-format", "xml"), "unknown prompt file format 'xml'"),
    (("{src}", "--out", "{tmp}/no/such/dir/out.jsonl"), "does not exist"),
    (("{src}", "--out", "{tmp}"), "is a folder"),
    (("{src}", "--out", "{src}"), "is the prompt file itself"),
    (("{src}", "--task", "nosuch"), "unknown task 'nosuch'"),
    (("{src}", "--limit", "openai"), "write it PROVIDER=N"),
    (("{src}", "--limit", "nowhere=3"), "unknown provider"),
    (("{bad}",), "no valid rows (2 bad; line 1: not valid JSON"),
    (("{empty}",), "no prompts in the file"),
    (("{src}", "--out", "{notes}"), "not a runner batch JSONL results file"),
])
def test_mistakes_are_one_line(cli, tmp_path, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hi"}])
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{", "[]"])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    notes = write_jsonl(tmp_path / "notes.jsonl", [{"name": "mine"}])
    fill = {"src": str(src), "bad": str(bad), "empty": str(empty), "tmp": str(tmp_path), "notes": str(notes)}
    r = cli("batch", *[a.format(**fill) for a in args])
    assert r.code == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert notes.read_text() == '{"name": "mine"}\n'
    assert not list(tmp_path.glob("*.results.*"))  # a mistake leaves no empty results file behind


def test_default_out_next_to_the_working_dir(cli, tmp_path, fake_openai, use, monkeypatch):
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "questions.jsonl", [{"prompt": "hi"}])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = cli("batch", str(src), "--model", "openai/gpt-4.1")
    assert r.code == 0, r.stderr
    assert len(read_out(work / "questions.results.jsonl")) == 1


def test_rows_attach_files_relative_to_the_prompt_file(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("The launch moved to Thursday.")
    src = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "with-doc", "prompt": "When is the launch?", "files": ["docs/notes.md"]},
        {"id": "missing-doc", "prompt": "x", "files": "docs/nope.md"},
    ])
    r = cli("batch", str(src), "--out", str(tmp_path / "o.jsonl"), "--model", "openai/gpt-4.1")
    assert r.code == 1 and "line 2 (missing-doc):" in r.stderr and "nope.md: no such file" in r.stderr
    (req,) = chat_requests(fake_openai)
    content = req.json["messages"][-1]["content"]
    assert "The launch moved to Thursday." in content and content.endswith("When is the launch?")


def test_progress_is_quiet_off_a_terminal_and_json_goes_where_results_do_not(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i}"} for i in range(3)])
    r = cli("batch", str(src), "--out", "-", "--model", "openai/gpt-4.1", "--json")
    assert r.code == 0
    assert len(r.stdout.splitlines()) == 3  # stdout: the results only
    summary = json.loads(r.stderr)  # stderr: the summary, and no progress bar
    assert summary["ok"] == 3 and summary["out"] == "-"
    assert "━" not in r.stderr


def test_progress_bar_on_a_terminal(tmp_path, fake_openai, use, monkeypatch):
    import asyncio

    from rich.console import Console

    import runner.render.batch as render
    from runner.batch import Batch, BatchOptions
    from runner.config import load_config

    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.2
    console = Console(record=True, force_terminal=True, width=140)
    monkeypatch.setattr(render, "err", console)
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i}"} for i in range(4)])

    async def main():
        b = Batch(load_config(), BatchOptions(file=src, out=str(tmp_path / "o.jsonl"), model="openai/gpt-4.1"))
        b.read()
        try:
            with render.ProgressView(b, enabled=True):
                await asyncio.sleep(0.3)  # let the bar draw once before anything runs
                return await b.run()
        finally:
            await b.session.aclose()

    assert asyncio.run(main()) == 0
    text = console.export_text()
    assert "batch" in text and "4/4" in text and "✗ 0" in text and "▶" in text and "tok" in text and "ETA" in text


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs /dev/full")
def test_a_results_file_that_cannot_be_written_is_one_line(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q"}])
    r = cli("batch", str(src), "--out", "/dev/full", "--model", "openai/gpt-4.1")
    assert r.code == 2 and "cannot write to /dev/full (No space left on device)" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1

"""`runner batch --deferred` end to end through the CLI, against the batch fakes: hosted rows go
through the providers' batch APIs, local rows run live meanwhile, into the same results file and
run log; failures fall back live or are resubmitted; expiry, cancellation, --status, --no-wait,
the dry run's prices, --max-cost, and `runner stats` keeping deferred calls apart."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest
from genai_prices import Usage, calc_price

from tests.fakes import Fault
from tests.helpers import one_line_error

POLL = "deferred: {poll_s: 0.01, max_poll_s: 0.05}\n"


@pytest.fixture(autouse=True)
def quick_polls(home):
    with open(home / "config.yaml", "a") as f:
        f.write(POLL)
    return home


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_out(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def hosted(n, model="openai/gpt-4.1", word="question"):
    return [{"id": f"h{i}", "prompt": f"{word} number {i}", "model": model} for i in range(n)]


def attempts_of(home, batch_id):
    db = sqlite3.connect(home / "runs.db")
    db.row_factory = sqlite3.Row
    rows = db.execute("SELECT a.*, r.item_id, r.kind, r.group_id FROM attempts a JOIN runs r ON r.id = a.run_id"
                      " WHERE r.group_id = ? ORDER BY a.id", (batch_id,)).fetchall()
    db.close()
    return [dict(r) for r in rows]


def direct_chat(fake):
    return [r for r in fake.requests if r.path.endswith("/chat/completions") or r.path == "/v1/messages"
            or r.path.endswith(":generateContent")]


def batch_price(provider_id, model, rec):
    usage = Usage(input_tokens=rec["input_tokens"], output_tokens=rec["output_tokens"])
    return float(calc_price(usage, model, provider_id=provider_id, price_context={"processing": "batch"}).total_price)


def test_hosted_rows_go_to_the_batch_api_and_local_rows_run_live(cli, tmp_path, home, fake_openai_batch,
                                                                 fake_ollama, use):
    use(fake_openai_batch, "openai")
    use(fake_ollama, "ollama")
    src = write_rows(tmp_path / "p.jsonl", hosted(6) + [{"id": f"l{i}", "prompt": f"local one {i}"} for i in range(3)])
    out = tmp_path / "answers.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--task", "fast", "--deferred")
    assert r.code == 0, r.stderr
    recs = {x["id"]: x for x in read_out(out)}
    assert set(recs) == {f"h{i}" for i in range(6)} | {f"l{i}" for i in range(3)}  # one line per row
    assert all(x["ok"] for x in recs.values())
    for i in range(6):
        x = recs[f"h{i}"]
        assert x["deferred"] is True and x["job_id"] == fake_openai_batch.created[0]
        assert f"number {i}" in x["text"] and x["ttft_ms"] is None and x["latency_ms"] >= 0
        assert x["cost_usd"] == pytest.approx(batch_price("openai", "gpt-4.1", x), rel=1e-9)
        assert x["attempts"][0]["model"] == "openai/gpt-4.1"
    for i in range(3):
        assert recs[f"l{i}"]["model"].startswith("ollama/") and not recs[f"l{i}"].get("deferred")
    # Each hosted row was submitted once, in one job; nothing went to the live endpoint.
    assert fake_openai_batch.received == Counter({f"question number {i}": 1 for i in range(6)})
    assert len(fake_openai_batch.created) == 1 and not direct_chat(fake_openai_batch)
    assert len([q for q in fake_ollama.requests if q.path == "/api/chat"]) == 3
    assert not (tmp_path / "answers.jsonl.jobs.json").exists()  # every job collected
    # The run log: a run per deferred row, its attempt marked deferred with the job and the wait.
    atts = [a for a in attempts_of(home, recs["h0"]["batch_id"]) if a["deferred"]]
    assert sorted(a["item_id"] for a in atts) == [f"h{i}" for i in range(6)]
    for a in atts:
        assert a["job_id"] == fake_openai_batch.created[0] and a["kind"] == "batch"
        assert a["submitted_at"] and a["completed_at"] >= a["submitted_at"] and a["ttft_ms"] is None
        assert a["latency_ms"] is not None and a["cost_usd"] > 0 and a["input_tokens"] > 0
    # The summary keeps deferred rows apart and shows the batch price against the live one.
    assert "openai/gpt-4.1 (deferred)" in r.stdout
    assert "at the batch price" in r.stderr and "live" in r.stderr


@pytest.mark.parametrize("provider,model,fixture,prices_id", [
    ("anthropic", "claude-haiku-4-5", "fake_anthropic_batch", "anthropic"),
    ("gemini", "gemini-2.5-flash", "fake_gemini_batch", "google"),
])
def test_anthropic_and_gemini_batches(cli, tmp_path, request, use, provider, model, fixture, prices_id):
    fake = request.getfixturevalue(fixture)
    use(fake, provider)
    fake.push_fault(Fault(status=400, message="bad params for this one"), model=model)
    src = write_rows(tmp_path / "p.jsonl", hosted(5, f"{provider}/{model}"))
    out = tmp_path / "answers.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--deferred")
    recs = {x["id"]: x for x in read_out(out)}
    assert set(recs) == {f"h{i}" for i in range(5)}
    # One row errored in the job; with a single candidate there is nothing to fall back to.
    bad = [x for x in recs.values() if not x["ok"]]
    assert len(bad) == 1 and "bad params for this one" in bad[0]["error"] and r.code == 1
    for x in recs.values():
        if x["ok"]:
            assert x["deferred"] and x["cost_usd"] == pytest.approx(batch_price(prices_id, model, x), rel=1e-9)
    assert fake.rows_received == 5 and len(fake.created) == 1


def test_failed_rows_fall_back_live_by_default(cli, tmp_path, home, fake_openai_batch, fake_anthropic_batch, use):
    use(fake_openai_batch, "openai")
    use(fake_anthropic_batch, "anthropic")
    (home / "profiles").mkdir()
    (home / "profiles" / "twostep.yaml").write_text(
        "name: twostep\ndescription: batch first, then another model\n"
        "candidates: [openai/gpt-4.1, anthropic/claude-haiku-4-5]\n")
    for _ in range(2):
        fake_openai_batch.push_fault(Fault(status=500, message="the batch row broke"), model="gpt-4.1")
    src = write_rows(tmp_path / "p.jsonl", [{"id": f"r{i}", "prompt": f"ask {i}"} for i in range(6)])
    out = tmp_path / "answers.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--task", "twostep", "--deferred")
    assert r.code == 0, r.stderr
    recs = read_out(out)
    assert len(recs) == 6 and all(x["ok"] for x in recs)
    fell = [x for x in recs if x["model"] == "anthropic/claude-haiku-4-5"]
    assert len(fell) == 2
    for x in fell:
        assert x["attempts"][0]["model"] == "openai/gpt-4.1" and x["attempts"][0]["outcome"] == "failed"
        assert "the batch row broke" in x["attempts"][0]["error"] and x["attempts"][-1]["outcome"] == "ok"
        assert x["job_id"] == fake_openai_batch.created[0]
    assert fake_openai_batch.rows_received == 6 and len(fake_openai_batch.created) == 1
    assert len([q for q in fake_anthropic_batch.requests if q.path == "/v1/messages"]) == 2  # live, not a batch
    assert "ran live on the next model" in r.stderr


def test_resubmit_sends_failed_and_expired_rows_to_a_new_job(cli, tmp_path, fake_openai_batch, use):
    use(fake_openai_batch, "openai")
    fake_openai_batch.push_fault(Fault(status=500, message="flaky"), model="gpt-4.1")
    fake_openai_batch.next_job = {"expire_after": 4}
    src = write_rows(tmp_path / "p.jsonl", hosted(6))
    out = tmp_path / "answers.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--deferred", "--resubmit")
    assert r.code == 0, r.stderr
    recs = read_out(out)
    assert len(recs) == 6 and all(x["ok"] and x["deferred"] for x in recs)
    assert len(fake_openai_batch.created) == 2
    again = [p for p, n in fake_openai_batch.received.items() if n == 2]
    assert len(again) == 3  # one errored + two expired, each submitted once more
    assert sum(fake_openai_batch.received.values()) == 9
    assert {x["job_id"] for x in recs} == set(fake_openai_batch.created)
    assert "went into a new one" in r.stderr


def test_expired_rows_without_another_model_fail_and_go_again_next_run(cli, tmp_path, fake_openai_batch, use):
    use(fake_openai_batch, "openai")
    fake_openai_batch.next_job = {"expire_after": 2}
    src = write_rows(tmp_path / "p.jsonl", [{"id": f"r{i}", "prompt": f"ask {i}"} for i in range(5)])
    out = tmp_path / "answers.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1", "--deferred")
    recs = {x["id"]: x for x in read_out(out)}
    assert len(recs) == 5
    expired = [x for x in recs.values() if not x["ok"]]
    assert len(expired) == 3 and all("expired" in x["error"] for x in expired)
    assert all("no other model" in x["error"] for x in expired) and r.code == 1
    # Run again: the expired rows go into a new job and are answered.
    r = cli("batch", str(src), "--out", str(out), "--model", "openai/gpt-4.1", "--deferred")
    assert r.code == 0, r.stderr
    assert all(x["ok"] for x in read_out(out)) and len(read_out(out)) == 5
    assert len(fake_openai_batch.created) == 2 and fake_openai_batch.rows_received == 8


def test_no_wait_then_status_then_collect(cli, tmp_path, fake_anthropic_batch, use):
    use(fake_anthropic_batch, "anthropic")
    src = write_rows(tmp_path / "p.jsonl", hosted(4, "anthropic/claude-haiku-4-5"))
    out = tmp_path / "answers.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--deferred", "--no-wait")
    assert r.code == 4, r.stderr  # submitted, still running at the provider
    assert not out.exists() or out.read_text() == ""
    state = json.loads((tmp_path / "answers.jsonl.jobs.json").read_text())
    job_id = fake_anthropic_batch.created[0]
    assert [j["job_id"] for j in state["jobs"]] == [job_id] and state["jobs"][0]["rows"] == [f"h{i}" for i in range(4)]
    assert "still run at the providers" in r.stderr and "--deferred" in r.stderr

    r = cli("batch", str(src), "--out", str(out), "--deferred", "--status")
    assert r.code == 0 and job_id in r.stdout and "in progress" in r.stdout
    r = cli("batch", str(src), "--out", str(out), "--deferred", "--status", "--json")
    jobs = r.json()["jobs"]
    assert jobs[0]["job_id"] == job_id and jobs[0]["rows"] == 4 and jobs[0]["model"] == "anthropic/claude-haiku-4-5"
    assert (tmp_path / "answers.jsonl.jobs.json").read_text() == json.dumps(state, separators=(",", ":"))  # untouched

    r = cli("batch", str(src), "--out", str(out), "--deferred")
    assert r.code == 0, r.stderr
    assert sorted(x["id"] for x in read_out(out)) == [f"h{i}" for i in range(4)]
    assert fake_anthropic_batch.rows_received == 4 and len(fake_anthropic_batch.created) == 1
    assert not (tmp_path / "answers.jsonl.jobs.json").exists()
    r = cli("batch", str(src), "--out", str(out), "--deferred", "--status")
    assert r.code == 0 and "no deferred jobs" in r.stdout


def test_cancel_then_the_next_run_collects_and_sends_the_rest(cli, tmp_path, fake_openai_batch, use):
    use(fake_openai_batch, "openai")
    src = write_rows(tmp_path / "p.jsonl", hosted(4))
    out = tmp_path / "answers.jsonl"
    assert cli("batch", str(src), "--out", str(out), "--deferred", "--no-wait").code == 4
    first = fake_openai_batch.created[0]
    r = cli("batch", str(src), "--out", str(out), "--deferred", "--cancel")
    assert r.code == 0, r.stderr
    assert "cancelling" in r.stdout and "cancellation asked" in r.stdout
    assert fake_openai_batch.jobs[first].state == "cancelling"
    # The next run collects the cancellation; it does not send the cancelled rows again itself.
    r = cli("batch", str(src), "--out", str(out), "--deferred")
    assert r.code == 1, r.stderr
    assert "4 rows never ran" in r.stderr and len(fake_openai_batch.created) == 1 and not read_out(out)
    r = cli("batch", str(src), "--out", str(out), "--deferred")
    assert r.code == 0, r.stderr
    recs = read_out(out)
    assert sorted(x["id"] for x in recs) == [f"h{i}" for i in range(4)] and all(x["ok"] for x in recs)
    # Nothing had run when it was cancelled: every row went into the next job, once more.
    assert len(fake_openai_batch.created) == 2 and {x["job_id"] for x in recs} == {fake_openai_batch.created[1]}
    assert fake_openai_batch.received == Counter({f"question number {i}": 2 for i in range(4)})


def test_a_provider_without_a_batch_api_runs_live_and_the_dry_run_says_so(cli, tmp_path, fake_openai_batch,
                                                                          fake_deepseek, use):
    use(fake_openai_batch, "openai")
    use(fake_deepseek, "deepseek")
    src = write_rows(tmp_path / "p.jsonl", hosted(3) + [{"id": f"d{i}", "prompt": f"other {i}", "model": "deepseek/deepseek-flash"}
                                                       for i in range(2)])
    out = tmp_path / "answers.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--deferred", "--dry-run")
    assert r.code == 0, r.stderr
    assert "deepseek has no batch API" in r.stdout and "deferred" in r.stdout
    assert "nothing was sent" in r.stdout
    assert not fake_openai_batch.requests and not fake_deepseek.requests and not out.exists()
    plan = cli("batch", str(src), "--out", str(out), "--deferred", "--dry-run", "--json").json()
    groups = {g["model"]: g for g in plan["groups"]}
    g = groups["openai/gpt-4.1"]
    assert g["route"] == "deferred" and g["rows"] == 3
    assert g["est_deferred_usd"] == pytest.approx(g["est_live_usd"] / 2, rel=1e-6)  # gpt-4.1: half price
    assert groups["deepseek/deepseek-flash"]["route"] == "live"

    r = cli("batch", str(src), "--out", str(out), "--deferred")
    assert r.code == 0, r.stderr
    recs = {x["id"]: x for x in read_out(out)}
    assert {k for k, x in recs.items() if x.get("deferred")} == {"h0", "h1", "h2"}
    assert len([q for q in fake_deepseek.requests if "completions" in q.path]) == 2


def test_max_cost_counts_deferred_rows_at_their_batch_price(cli, tmp_path, fake_openai_batch, use):
    use(fake_openai_batch, "openai")
    src = write_rows(tmp_path / "p.jsonl", hosted(10))
    out = tmp_path / "answers.jsonl"
    plan = cli("batch", str(src), "--out", str(out), "--deferred", "--dry-run", "--json").json()
    per_row = [e["est_deferred_usd"] for e in plan["plan"]]
    live = [e["est_live_usd"] for e in plan["plan"]]
    budget = sum(per_row[:6]) + per_row[6] / 2  # six rows fit at the batch price, not seven
    assert sum(live[:4]) > budget  # at the live price not even four would
    r = cli("batch", str(src), "--out", str(out), "--deferred", "--max-cost", f"{budget:.12f}")
    assert r.code == 3, r.stderr
    assert fake_openai_batch.rows_received == 6
    assert len(read_out(out)) == 6


def test_stats_keeps_deferred_calls_apart(cli, tmp_path, fake_openai_batch, use):
    use(fake_openai_batch, "openai")
    src = write_rows(tmp_path / "p.jsonl", hosted(3))
    assert cli("batch", str(src), "--out", str(tmp_path / "a.jsonl"), "--deferred").code == 0
    assert cli("ask", "--model", "openai/gpt-4.1", "a live question").code == 0
    stats = cli("stats", "--json").json()
    models = {m["model"]: m for m in stats["models"]}
    assert models["openai/gpt-4.1 (deferred)"]["calls"] == 3
    assert models["openai/gpt-4.1"]["calls"] == 1  # the live call's latency is not mixed with hours of waiting
    assert models["openai/gpt-4.1 (deferred)"]["p50_ttft_ms"] is None


def test_mistakes_are_one_line(cli, tmp_path, fake_openai_batch, use):
    use(fake_openai_batch, "openai")
    src = write_rows(tmp_path / "p.jsonl", hosted(2))
    one_line_error(cli("batch", str(src), "--out", "-", "--deferred"), "--deferred needs a results file")
    one_line_error(cli("batch", str(src), "--no-wait"), "--no-wait", "--deferred")
    one_line_error(cli("batch", str(src), "--status"), "--status", "--deferred")
    (tmp_path / "p.results.jsonl.jobs.json").write_text("not json")
    one_line_error(cli("batch", str(src), "--out", str(tmp_path / "p.results.jsonl"), "--deferred"),
                   "is not a runner jobs file")
    assert not fake_openai_batch.requests


def test_a_live_run_does_not_send_rows_that_wait_in_a_job(cli, tmp_path, fake_openai_batch, use):
    use(fake_openai_batch, "openai")
    src = write_rows(tmp_path / "p.jsonl", hosted(3))
    out = tmp_path / "answers.jsonl"
    assert cli("batch", str(src), "--out", str(out), "--deferred", "--no-wait").code == 4
    r = cli("batch", str(src), "--out", str(out))  # without --deferred
    assert r.code == 4, r.stderr
    assert "3 rows wait in provider batch jobs" in r.stderr and "--deferred" in r.stderr
    assert not direct_chat(fake_openai_batch)
    assert not out.exists() or not read_out(out)
    assert cli("batch", str(src), "--out", str(out), "--deferred").code == 0
    assert len(read_out(out)) == 3 and fake_openai_batch.rows_received == 3


def test_catalog_and_price_overrides_for_batches(cli, tmp_path, home, fake_openai_batch, use):
    use(fake_openai_batch, "openai")
    cfg = home / "config.yaml"
    base = cfg.read_text()
    cfg.write_text(base + "models:\n  openai/gpt-4.1:\n    price: {input_per_mtok: 2, output_per_mtok: 8, batch_input_per_mtok: 1}\n")
    one_line_error(cli("batch", str(write_rows(tmp_path / "p.jsonl", hosted(1))), "--deferred", "--dry-run"),
                   "batch_input_per_mtok", "needs batch_output_per_mtok too")
    cfg.write_text(base + "providers:\n  deepseek: {batch: yes-please}\n")
    one_line_error(cli("batch", str(tmp_path / "p.jsonl"), "--deferred", "--dry-run"), "batch", "true or false")
    cfg.write_text(base + "models:\n  openai/gpt-4.1:\n    price: {input_per_mtok: 2, output_per_mtok: 8, batch_discount: 0.25}\n")
    src = write_rows(tmp_path / "p.jsonl", hosted(2))
    out = tmp_path / "answers.jsonl"
    assert cli("batch", str(src), "--out", str(out), "--deferred").code == 0
    for x in read_out(out):
        assert x["cost_usd"] == pytest.approx((x["input_tokens"] * 2 + x["output_tokens"] * 8) / 1e6 * 0.25, rel=1e-9)


def test_csv_results_carry_the_job(cli, tmp_path, fake_openai_batch, use):
    import csv

    use(fake_openai_batch, "openai")
    src = write_rows(tmp_path / "p.jsonl", hosted(3))
    out = tmp_path / "answers.csv"
    assert cli("batch", str(src), "--out", str(out), "--deferred").code == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(x["deferred"] == "true" and x["job_id"] == fake_openai_batch.created[0] for x in rows)
    r = cli("batch", str(src), "--out", str(out), "--deferred")
    assert r.code == 0 and "already answered" in r.stderr and fake_openai_batch.rows_received == 3


def test_an_openai_compatible_endpoint_that_serves_batches(cli, tmp_path, home, fake_openai_batch, monkeypatch):
    """Any OpenAI-compatible provider whose entry says `batch: true` goes through the OpenAI path."""
    monkeypatch.setenv("MYBATCH_KEY", "test-key")
    with open(home / "config.yaml", "a") as f:
        f.write(f"endpoints:\n  mybatch: {{base_url: '{fake_openai_batch.url}/v1', key_env: MYBATCH_KEY, batch: true}}\n")
    src = write_rows(tmp_path / "p.jsonl", hosted(2, "mybatch/gpt-4.1"))
    out = tmp_path / "answers.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--deferred")
    assert r.code == 0, r.stderr
    recs = read_out(out)
    assert all(x["ok"] and x["deferred"] and x["model"] == "mybatch/gpt-4.1" for x in recs)
    assert all(x["cost_usd"] is None for x in recs)  # no price known for it: never a made-up $0
    assert fake_openai_batch.rows_received == 2 and not direct_chat(fake_openai_batch)
    assert "of unknown price" in r.stderr

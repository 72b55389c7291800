"""`runner batch` as a new user meets it (issue 10): the concurrency asked for, answers that no
longer match their rows, runs a killed process left open, and output that fits 80 and 60 columns."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from rich.console import Console

from runner.batch import Batch, BatchOptions
from runner.config import load_config
from runner.render.batch import ProgressView
from runner.store import open_store
from tests.width import assert_fits, distinct, set_width

from .test_batch_e2e import chat_requests, read_out, write_jsonl


def rows(n, **extra):
    return [{"id": f"r{i}", "prompt": f"question {i}", **extra} for i in range(n)]


# --- concurrency --------------------------------------------------------------------------------


def test_the_concurrency_asked_for_is_used_for_a_hosted_api(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.3  # every row is still waiting for its first token when the last one starts
    src = write_jsonl(tmp_path / "p.jsonl", rows(30))
    r = cli("batch", str(src), "--out", str(tmp_path / "o.jsonl"), "-m", "openai/gpt-4.1", "--concurrency", "30")
    assert r.code == 0, r.stderr
    assert fake_openai.max_concurrent_seen == 30  # not the default per-provider 8
    assert "note:" not in r.stderr


def test_hosted_concurrency_alone_takes_effect(cli, tmp_path, fake_openai, use, home):
    use(fake_openai, "openai")
    (home / "config.yaml").write_text("retries: 1\nhosted_concurrency: 30\n")
    fake_openai.ttft_s = 0.3
    src = write_jsonl(tmp_path / "p.jsonl", rows(30))
    r = cli("batch", str(src), "--out", str(tmp_path / "o.jsonl"), "-m", "openai/gpt-4.1")
    assert r.code == 0, r.stderr
    assert fake_openai.max_concurrent_seen == 30


def test_a_local_endpoint_keeps_its_limit_and_says_so(cli, tmp_path, fake_openai, home, monkeypatch):
    monkeypatch.setenv("BOX_KEY", "test-key")
    (home / "config.yaml").write_text(
        f"retries: 1\nendpoints:\n  box: {{base_url: '{fake_openai.url}/v1', local: true, key_env: BOX_KEY}}\n")
    fake_openai.ttft_s = 0.05
    src = write_jsonl(tmp_path / "p.jsonl", rows(4))
    r = cli("batch", str(src), "--out", str(tmp_path / "o.jsonl"), "-m", "box/gpt-4.1", "-c", "4")
    assert r.code == 0, r.stderr
    assert fake_openai.max_concurrent_seen == 1  # llama.cpp's server would cut the others
    assert "box takes 1 row at a time (num_parallel of box in config.yaml), not 4; --limit box=N changes it" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["-c", "0"], "--concurrency must be a whole number, 1 or more, not 0"),
    (["--concurrency", "-3"], "--concurrency must be a whole number, 1 or more, not -3"),
    (["--limit", "openai=0"], "--limit openai must be a whole number, 1 or more, not 0"),
    (["--temperature", "7"], "--temperature must be a number from 0 to 2, not 7.0"),
])
def test_ranges_are_checked_with_one_wording(cli, tmp_path, fake_openai, use, args, message):
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", rows(2))
    r = cli("batch", str(src), "--out", str(tmp_path / "o.jsonl"), "-m", "openai/gpt-4.1", *args)
    assert r.code == 2 and r.stderr.strip() == f"error: {message}"
    assert not chat_requests(fake_openai) and not (tmp_path / "o.jsonl").exists()


# --- resume: an answer to a question since changed is not reused ----------------------------------


@pytest.fixture
def answered(cli, tmp_path, fake_openai, use):
    """Three rows answered by openai/gpt-4.1; returns (source, out, run(*extra))."""
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", rows(3))
    out = tmp_path / "o.jsonl"

    def run(*extra):
        return cli("batch", str(src), "--out", str(out), *extra)

    assert run("-m", "openai/gpt-4.1").code == 0
    return src, out, run


def test_a_changed_prompt_runs_again(answered, fake_openai):
    src, out, run = answered
    changed = rows(3)
    changed[1]["prompt"] = "a different question"  # same id
    write_jsonl(src, changed)
    before = len(chat_requests(fake_openai))
    r = run("-m", "openai/gpt-4.1")
    assert r.code == 0, r.stderr
    assert "1 answered row changed since (prompt, system prompt, task, model or options): it runs again" in r.stderr
    assert len(chat_requests(fake_openai)) == before + 1
    final = {x["id"]: x for x in read_out(out)}
    assert len(final) == 3 and "a different question" in final["r1"]["text"]


@pytest.mark.parametrize("extra", [("-m", "openai/gpt-4.1-mini"), ("-m", "openai/gpt-4.1", "--temperature", "0.1"),
                                   ("-m", "openai/gpt-4.1", "-s", "Be brief.")])
def test_changed_routing_or_options_run_every_row_again(answered, fake_openai, extra):
    _, out, run = answered
    before = len(chat_requests(fake_openai))
    r = run(*extra)
    assert r.code == 0, r.stderr
    assert "3 answered rows changed since" in r.stderr
    assert len(chat_requests(fake_openai)) == before + 3


def test_the_same_command_reuses_answers(answered, fake_openai):
    _, _, run = answered
    r = run("-m", "openai/gpt-4.1")
    assert r.code == 0 and "all 3 rows are already answered" in r.stderr


def test_answers_from_before_fingerprints_count_as_unchanged(answered, fake_openai):
    _, out, run = answered
    old = [{k: v for k, v in x.items() if k != "fingerprint"} for x in read_out(out)]
    out.write_text("".join(json.dumps(x) + "\n" for x in old))
    r = run("-m", "openai/gpt-4.1-mini")  # changed, but the file cannot tell
    assert r.code == 0 and "all 3 rows are already answered" in r.stderr


def test_a_csv_file_from_before_keeps_its_columns(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", rows(2))
    out = tmp_path / "o.csv"
    assert cli("batch", str(src), "--out", str(out), "-m", "openai/gpt-4.1").code == 0
    table = list(csv.reader(io.StringIO(out.read_text())))
    old_header = [c for c in table[0] if c != "fingerprint"]
    keep = [table[0].index(c) for c in old_header]
    out.write_text("".join(",".join(row[i] for i in keep) + "\r\n" for row in table[:2]))  # header + r0
    r = cli("batch", str(src), "--out", str(out), "-m", "openai/gpt-4.1")
    assert r.code == 0, r.stderr
    table = list(csv.reader(io.StringIO(out.read_text())))
    assert table[0] == old_header and all(len(row) == len(old_header) for row in table)
    assert sorted(row[0] for row in table[1:]) == ["r0", "r1"]


def test_csv_costs_keep_full_precision(cli, tmp_path, fake_openai, use):
    use(fake_openai, "openai")
    src = write_jsonl(tmp_path / "p.jsonl", rows(1))
    out = tmp_path / "o.csv"
    assert cli("batch", str(src), "--out", str(out), "-m", "openai/gpt-4.1").code == 0
    jsonl = tmp_path / "o.jsonl"
    assert cli("batch", str(src), "--out", str(jsonl), "-m", "openai/gpt-4.1").code == 0
    cost = next(csv.DictReader(io.StringIO(out.read_text())))["cost_usd"]
    assert float(cost) == read_out(jsonl)[0]["cost_usd"] and len(cost.split(".")[1]) > 3


# --- runs a killed process left open ----------------------------------------------------------------


def test_a_resume_closes_the_runs_a_killed_process_left_running(answered, home):
    src, out, run = answered
    batch_id = read_out(out)[0]["batch_id"]
    store = open_store(home)
    killed = store.start_run(kind="batch", task="general", prompt="question 9", system=None, group_id=batch_id,
                             item_id="r9")
    store.add_attempt(killed, {"model": "openai/gpt-4.1", "outcome": "failed", "error": "HTTP 500", "cost_usd": 0.001})
    other = store.start_run(kind="batch", task="general", prompt="x", system=None, group_id="b-other", item_id="x")
    store.close()
    write_jsonl(src, rows(4))  # one more row to run, so the batch starts
    r = run("-m", "openai/gpt-4.1")
    assert r.code == 0, r.stderr
    runs = {x["id"]: x for x in open_store(home).runs(limit=100)}
    assert runs[killed]["outcome"] == "failed" and runs[killed]["error"] == "interrupted (the process was killed)"
    assert runs[killed]["model"] == "openai/gpt-4.1" and runs[killed]["cost_usd"] == pytest.approx(0.001)
    assert runs[other]["outcome"] == "running"  # another batch's run is not this one's to close
    assert not [x for x in runs.values() if x["group_id"] == batch_id and x["outcome"] == "running"]


# --- 80 and 60 columns ------------------------------------------------------------------------------

MODELS = ["anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-6", "openai/gpt-4.1", "openai/gpt-4.1-mini",
          "ollama/qwen2.5:7b"]


@pytest.mark.parametrize("width", [80, 60])
def test_summary_and_dry_run_fit(cli, tmp_path, fake_openai, fake_anthropic, fake_ollama, use, width, monkeypatch):
    for fake, name in ((fake_openai, "openai"), (fake_anthropic, "anthropic"), (fake_ollama, "ollama")):
        use(fake, name)
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": f"r{i}", "prompt": f"q{i}", "model": m}
                                             for i, m in enumerate(MODELS * 2)])
    set_width(monkeypatch, width)
    dry = cli("batch", str(src), "--out", str(tmp_path / "o.jsonl"), "--dry-run")
    assert dry.code == 0, dry.stderr
    table = dry.stdout[:dry.stdout.index("rows to send")]
    assert_fits(table, width)
    distinct(table, MODELS)
    r = cli("batch", str(src), "--out", str(tmp_path / "o.jsonl"))
    assert r.code == 0, r.stderr
    summary = r.stdout.split("\n", 2)[2]  # after the two lines naming the batch and its files
    assert_fits(summary, width)
    distinct(summary, MODELS)
    assert "$0.…" not in summary and "…" not in summary  # nothing cut
    assert "$0.0" in summary


@pytest.mark.parametrize("width", [80, 60])
def test_the_progress_bar_stays_on_one_line(home, tmp_path, width):
    src = write_jsonl(tmp_path / "p.jsonl", rows(1000))
    b = Batch(load_config(), BatchOptions(file=src, out=str(tmp_path / "o.jsonl")))
    b.read(dry_run=True)
    b.done, b.failed, b.tokens, b.cost = 123, 4, 1_234_567, 12.3456
    b._running = set(range(16))
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    with ProgressView(b, enabled=True, console=console):
        pass
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue()).replace("\r", "\n")
    drawn = [line for line in screen.splitlines() if "/1000" in line][-1]
    assert_fits(drawn, width)
    assert "123/1000" in drawn and "✗ 4" in drawn and "$12.35" in drawn

"""`runner compare` end to end, through the real CLI, against loopback fakes with different speeds
and prices: side by side and stacked terminals, failures, task routing, prompt sets, the run log
and --from-log, the judge, and the JSON and Markdown exports parsed back."""

from __future__ import annotations

import json
import re

import pytest

from tests.fakes import Fault
from tests.fakes.tokens import default_reply

ASK_FIELDS = {"id", "model", "task", "ok", "error", "text", "thinking", "input_tokens", "output_tokens",
              "tokens_estimated", "ttft_ms", "latency_ms", "tokens_per_s", "cost_usd", "attempts"}

PRICES = """
models:
  openai/gpt-4.1: {price: {input_per_mtok: 2.0, output_per_mtok: 8.0}}
  deepseek/deepseek-flash: {price: {input_per_mtok: 0.14, output_per_mtok: 0.28}}
  gemini/gemini-2.5-flash: {price: {input_per_mtok: 0.30, output_per_mtok: 2.50}}
  anthropic/claude-haiku-4-5: {price: {input_per_mtok: 1.0, output_per_mtok: 5.0}}
"""

THREE = ["-m", "openai/gpt-4.1", "-m", "deepseek/deepseek-flash", "-m", "gemini/gemini-2.5-flash"]


@pytest.fixture
def hosted(home, use, fake_openai, fake_deepseek, fake_gemini):
    """Three hosted models: openai fast and dear, deepseek slow and cheap, gemini in between."""
    (home / "config.yaml").write_text("retries: 1\ntimeouts: {connect_s: 2, first_token_s: 10, total_s: 30}\n" + PRICES)
    # Gaps of a quarter second: a loaded machine's hiccup must not reorder them.
    fake_openai.ttft_s, fake_deepseek.ttft_s, fake_gemini.ttft_s = 0.03, 0.50, 0.25
    use(fake_openai, "openai")
    use(fake_deepseek, "deepseek")
    use(fake_gemini, "gemini")
    return fake_openai, fake_deepseek, fake_gemini


def chat_requests(fake):
    return [r for r in fake.requests if r.path.endswith("/api/chat") or "completions" in r.path
            or r.path.endswith("/messages") or "GenerateContent" in r.path]


def compare_rows(data):
    return [d for d in data if d["kind"] == "compare"]


def comparison_id(stderr: str) -> str:
    m = re.search(r"comparison (c-[0-9a-f]+) — re-render with runner compare --from-log (c-[0-9a-f]+)", stderr)
    assert m and m.group(1) == m.group(2), stderr
    return m.group(1)


# --- one prompt, several models -----------------------------------------------------------


def test_json_marks_fastest_and_cheapest_and_runs_concurrently(cli, hosted):
    r = cli("compare", "--json", "Explain the CAP theorem", *THREE)
    assert r.code == 0, r.stderr
    rows = r.json()
    assert [d["column"] for d in rows] == ["openai/gpt-4.1", "deepseek/deepseek-flash", "gemini/gemini-2.5-flash"]
    for d in rows:
        assert ASK_FIELDS <= set(d)
        assert d["kind"] == "compare" and d["ok"] and d["text"] and d["prompt"] == "Explain the CAP theorem"
        assert d["ttft_ms"] > 0 and d["latency_ms"] >= d["ttft_ms"] and d["cost_usd"] > 0
    by = {d["model"]: d for d in rows}
    assert [d["model"] for d in rows if d["fastest"]] == ["openai/gpt-4.1"]
    assert [d["model"] for d in rows if d["cheapest"]] == ["deepseek/deepseek-flash"]
    gpt = by["openai/gpt-4.1"]
    assert gpt["cost_usd"] == pytest.approx((gpt["input_tokens"] * 2.0 + gpt["output_tokens"] * 8.0) / 1e6)
    assert by["deepseek/deepseek-flash"]["latency_ms"] >= 500
    # Concurrently: the three calls were sent together, not one after another.
    sent = [req.time for fake in hosted for req in chat_requests(fake)]
    assert len(sent) == 3 and max(sent) - min(sent) < 0.04
    assert len({d["comparison_id"] for d in rows}) == 1
    assert comparison_id(r.stderr) == rows[0]["comparison_id"]


def test_terminal_side_by_side_with_headers(cli, hosted):
    r = cli("compare", "Explain the CAP theorem", *THREE)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    # The three headers share one line: the answers are columns.
    assert any(all(m in line for m in ("openai/gpt-4.1", "deepseek/deepseek-flash", "gemini/gemini-2.5-flash")) for line in lines)
    assert any("⚡ fastest" in line and "◆ cheapest" in line for line in lines)
    for word in ("first token", "total", "tok/s", " in / ", " out", "$0.0"):
        assert word in r.stdout
    for name in ("[gpt-4.1] saw", "[deepseek-flash] saw", "[gemini-2.5-flash] saw"):
        assert name in r.stdout
    assert all(len(line) <= 160 for line in lines)
    comparison_id(r.stderr)


def test_narrow_terminal_stacks_the_answers(cli, hosted, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    r = cli("compare", "Explain the CAP theorem", *THREE)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and all(len(line) <= 60 for line in lines)
    names = ("openai/gpt-4.1", "deepseek/deepseek-flash", "gemini/gemini-2.5-flash")
    assert not any(sum(m in line for m in names) > 1 for line in lines)  # one model per panel
    heads = [i for i, line in enumerate(lines) if any(line.strip("│ ").startswith(m) for m in names)]
    assert len(heads) == 3 and heads == sorted(heads)
    for name in ("[gpt-4.1] saw", "[deepseek-flash] saw", "[gemini-2.5-flash] saw"):
        assert name in r.stdout
    assert "fastest" in r.stdout and "cheapest" in r.stdout


def test_failing_model_shows_its_reason_and_keeps_the_others(cli, hosted, fake_anthropic, use):
    use(fake_anthropic, "anthropic")
    for _ in range(2):  # retries: 1 → two attempts
        fake_anthropic.push_fault(Fault(status=500, error_type="api_error", message="Internal server error"))
    args = ["Explain the CAP theorem", *THREE[:4], "-m", "anthropic/claude-sonnet-4-6"]
    r = cli("compare", *args)
    assert r.code == 1, r.stderr  # a failed answer is exit 1, as in batch
    assert "✗ failed" in r.stdout and "HTTP 500" in r.stdout and "Internal server error" in r.stdout
    assert "[gpt-4.1] saw" in r.stdout and "[deepseek-flash] saw" in r.stdout
    assert "Traceback" not in r.stderr
    fake_anthropic.push_fault(Fault(status=500, error_type="api_error", message="Internal server error"))
    fake_anthropic.push_fault(Fault(status=500, error_type="api_error", message="Internal server error"))
    rows = cli("compare", "--json", *args).json()
    failed = [d for d in rows if not d["ok"]]
    assert [d["column"] for d in failed] == ["anthropic/claude-sonnet-4-6"]
    assert "HTTP 500" in failed[0]["error"] and failed[0]["text"] is None
    assert [a["outcome"] for a in failed[0]["attempts"]] == ["failed", "failed"]
    assert not failed[0]["fastest"] and not failed[0]["cheapest"]
    assert sum(d["fastest"] for d in rows) == 1


def test_every_column_failing_exits_non_zero(cli, home):
    r = cli("compare", "hi", "-m", "ollama/qwen2.5:7b", "-m", "openai/gpt-4.1")  # Ollama down, no key
    assert r.code == 1
    flat = " ".join(r.stdout.replace("│", " ").split())
    assert "Ollama not reachable at http://127.0.0.1:" in flat and "no OPENAI_API_KEY" in flat
    assert "Traceback" not in r.stderr


def test_concurrency_flag_bounds_calls_in_flight(cli, home, fake_openai, use):
    use(fake_openai, "openai")
    fake_openai.ttft_s = 0.15
    models = ["-m", "openai/gpt-4.1", "-m", "openai/gpt-4.1-mini", "-m", "openai/o4-mini"]
    assert cli("compare", "--json", "hi", "-c", "1", *models).code == 0
    assert fake_openai.max_concurrent_seen == 1
    fake_openai.clear()
    assert cli("compare", "--json", "hi", *models).code == 0
    assert fake_openai.max_concurrent_seen == 3


# --- task routing, documents ------------------------------------------------------------


def test_tasks_compare_what_routing_picks(cli, home, fake_anthropic, fake_ollama, use):
    use(fake_anthropic, "anthropic")
    use(fake_ollama, "ollama")
    r = cli("compare", "--json", "write fizzbuzz", "--tasks", "coding,private", "-m", "ollama/qwen2.5:7b")
    assert r.code == 0, r.stderr
    rows = r.json()
    assert [(d["column"], d["model"], d["task"]) for d in rows] == [
        ("ollama/qwen2.5:7b", "ollama/qwen2.5:7b", "general"),
        ("task:coding", "anthropic/claude-sonnet-4-6", "coding"),
        ("task:private", "ollama/qwen3:8b", "private"),
    ]
    (req,) = chat_requests(fake_anthropic)
    assert req.json["system"].startswith("You are a careful senior engineer")  # the coding profile's
    human = cli("compare", "write fizzbuzz", "--tasks", "coding")
    assert "coding → anthropic/claude-sonnet-4-6" in human.stdout


def test_files_go_with_every_prompt(cli, hosted, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nThe launch slipped to March.\n")
    r = cli("compare", "--json", "-f", str(notes), "What slipped?", *THREE)
    assert r.code == 0, r.stderr
    for fake in hosted:
        (req,) = chat_requests(fake)
        body = json.dumps(req.json)
        assert "launch slipped" in body and "What slipped?" in body
    assert all(d["files"] == [str(notes)] for d in r.json())


# --- prompt sets ------------------------------------------------------------------------


@pytest.mark.parametrize("name,content", [
    ("set.jsonl", '{"id": "cap", "prompt": "Explain the CAP theorem"}\n"What is 2+2?"\n{"prompt": "Name a prime"}\n'),
    ("set.yaml", "prompts:\n  - {id: cap, prompt: Explain the CAP theorem}\n  - What is 2+2?\n  - Name a prime\n"),
    ("set.csv", "id,prompt\ncap,Explain the CAP theorem\n,What is 2+2?\n,Name a prime\n"),
    ("set.txt", "Explain the CAP theorem\n\nWhat is 2+2?\n\nName a prime\n"),
])
def test_prompt_file_is_a_matrix(cli, home, hosted, tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    r = cli("compare", "--json", "--prompts", str(path), *THREE[:4])
    assert r.code == 0, r.stderr
    rows = compare_rows(r.json())
    assert [(d["prompt_index"], d["column"]) for d in rows] == [
        (p, m) for p in range(3) for m in ("openai/gpt-4.1", "deepseek/deepseek-flash")]
    assert [rows[i]["prompt"] for i in (0, 2, 4)] == ["Explain the CAP theorem", "What is 2+2?", "Name a prime"]
    assert all(d["ok"] for d in rows)
    # Every call is in the run log, linked by the comparison id.
    from runner.config import load_config
    from runner.store import open_store

    runs = open_store(load_config().home).runs(group_id=rows[0]["comparison_id"], limit=100, newest_first=False)
    assert sorted(r["item_id"] for r in runs) == sorted(
        f"p{p}/c{c}/{m}" for p in range(3) for c, m in enumerate(("openai/gpt-4.1", "deepseek/deepseek-flash")))
    assert {r["kind"] for r in runs} == {"compare"}


def test_prompt_set_terminal_summary(cli, hosted, fake_anthropic, use, tmp_path):
    use(fake_anthropic, "anthropic")
    fake_anthropic.ttft_s = 0.4
    fake_anthropic.push_fault(Fault(status=400, error_type="invalid_request_error", message="prompt is bad"))
    path = tmp_path / "set.txt"
    path.write_text("one\n\ntwo\n\nthree\n\nfour\n")
    r = cli("compare", "--prompts", str(path), *THREE, "-m", "anthropic/claude-sonnet-4-6")
    assert r.code == 1, r.stderr  # one failed answer
    out = r.stdout
    assert "Per model" in out and "p50 total" in out and "p95 total" in out and "fastest" in out and "cheapest" in out
    summary = out[out.index("Per model"):]
    row = next(line for line in summary.splitlines() if line.strip().startswith("openai/gpt-4.1"))
    assert row.split()[1:5] == ["4", "0", "4", "0"]  # ok, failed, fastest wins, cheapest wins
    row = next(line for line in summary.splitlines() if line.strip().startswith("deepseek/deepseek-flash"))
    assert row.split()[1:5] == ["4", "0", "0", "4"]
    row = next(line for line in summary.splitlines() if line.strip().startswith("anthropic/claude-sonnet-4-6"))
    assert row.split()[1:3] == ["3", "1"]
    assert "HTTP 400: prompt is bad" in out  # the failure, with its reason
    assert "[gpt-4.1] saw" not in out  # a set shows the matrix, not every answer…
    with_answers = cli("compare", "--answers", "--prompts", str(path), *THREE)
    assert "[gpt-4.1] saw" in with_answers.stdout and "Prompt 4" in with_answers.stdout  # …unless asked


# --- the run log --------------------------------------------------------------------------


def test_from_log_rerenders_without_calling(cli, home, hosted, fake_anthropic, use, tmp_path):
    use(fake_anthropic, "anthropic")
    path = tmp_path / "set.jsonl"
    path.write_text('"first question"\n"second question"\n')
    first = cli("compare", "--json", "--prompts", str(path), *THREE, "--judge", "anthropic/claude-haiku-4-5")
    assert first.code == 0, first.stderr
    cid = comparison_id(first.stderr)
    sent = sum(len(f.requests) for f in (*hosted, fake_anthropic))
    again = cli("compare", "--from-log", cid, "--json", "--md", str(tmp_path / "r.md"), "--html", str(tmp_path / "r.html"))
    assert again.code == 0, again.stderr
    assert sum(len(f.requests) for f in (*hosted, fake_anthropic)) == sent  # nothing was called
    assert again.json() == first.json()
    assert "first question" in (tmp_path / "r.md").read_text() and "second question" in (tmp_path / "r.html").read_text()
    human = cli("compare", "--from-log", cid)
    assert "Per model" in human.stdout and comparison_id(human.stderr) == cid


def test_from_log_unknown_id_and_conflicting_arguments(cli):
    r = cli("compare", "--from-log", "c-00000000")
    assert r.code == 2 and "no comparison 'c-00000000' in the run log" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("compare", "--from-log", "c-00000000", "-m", "openai/gpt-4.1", "hi")
    assert r.code == 2 and "takes no a prompt, -m" in r.stderr


# --- the judge ----------------------------------------------------------------------------


def _judge_reply(model, messages):
    """A judge that prefers the deepseek answer, then gemini, then the rest."""
    text = messages[-1]["content"]
    blocks = re.findall(r'<answer label="([A-Z])">\n(.*?)\n</answer>', text, re.S)
    if not blocks:
        return default_reply(model, messages)
    order = ("[deepseek-flash]", "[gemini-2.5-flash]")
    ranked = sorted(blocks, key=lambda b: next((i for i, m in enumerate(order) if m in b[1]), len(order)))
    return "```json\n" + json.dumps({"ranking": [x for x, _ in ranked],
                                     "reasons": {x: f"why {body.split(']')[0][1:]}" for x, body in ranked}}) + "\n```"


def test_judge_ranks_anonymised_answers_with_its_own_cost(cli, home, hosted, fake_anthropic, use):
    use(fake_anthropic, "anthropic")
    fake_anthropic.default_reply = _judge_reply
    r = cli("compare", "--json", "Explain the CAP theorem", *THREE, "--judge", "anthropic/claude-haiku-4-5")
    assert r.code == 0, r.stderr
    data = r.json()
    rows = compare_rows(data)
    ranks = {d["model"]: d["judge_rank"] for d in rows}
    assert ranks == {"deepseek/deepseek-flash": 1, "gemini/gemini-2.5-flash": 2, "openai/gpt-4.1": 3}
    assert {d["model"]: d["judge_reason"] for d in rows}["deepseek/deepseek-flash"] == "why deepseek-flash"
    (judge,) = [d for d in data if d["kind"] == "judge"]
    assert judge["model"] == "anthropic/claude-haiku-4-5" and judge["cost_usd"] > 0
    assert judge["ranks"] == {"deepseek/deepseek-flash": 1, "gemini/gemini-2.5-flash": 2, "openai/gpt-4.1": 3}
    (req,) = chat_requests(fake_anthropic)
    sent = req.json["messages"][-1]["content"]
    assert "Explain the CAP theorem" in sent and "openai/" not in sent and "deepseek/" not in sent
    # Logged under the same comparison id, as its own kind.
    log = cli("log", "--json", "--group", judge["comparison_id"]).json()
    assert sorted(x["kind"] for x in log) == ["compare"] * 3 + ["judge"]
    # In the terminal: a rank per column, and the judge's cost apart from the models'.
    human = cli("compare", "Explain the CAP theorem", *THREE, "--judge", "anthropic/claude-haiku-4-5")
    assert "judge #1" in human.stdout and "judge #3" in human.stdout
    m = re.search(r"Judge anthropic/claude-haiku-4-5: 1 call, \$([0-9.]+) — not included in the models' costs", human.stdout)
    assert m, human.stdout
    total = float(re.search(r"Total cost \$([0-9.]+)", human.stdout).group(1))
    models_cost = sum(d["cost_usd"] for d in rows)
    assert total == pytest.approx(models_cost, abs=1e-4)


def test_unreachable_judge_is_refused_before_any_call(cli, hosted):
    r = cli("compare", "hi", *THREE, "--judge", "anthropic/claude-haiku-4-5")  # no ANTHROPIC_API_KEY
    assert r.code == 2 and "--judge anthropic/claude-haiku-4-5 cannot be used: no ANTHROPIC_API_KEY" in r.stderr
    assert not any(chat_requests(fake) for fake in hosted)


def test_judge_that_rambles_does_not_sink_the_comparison(cli, hosted, fake_anthropic, use):
    use(fake_anthropic, "anthropic")
    fake_anthropic.replies["claude-haiku-4-5"] = "They are all lovely answers."
    r = cli("compare", "--json", "hi", *THREE, "--judge", "anthropic/claude-haiku-4-5")
    assert r.code == 0
    data = r.json()
    assert all(d["judge_rank"] is None for d in compare_rows(data))
    (judge,) = [d for d in data if d["kind"] == "judge"]
    assert judge["judge_error"] == "the judge's reply holds no ranking"
    human = cli("compare", "hi", *THREE, "--judge", "anthropic/claude-haiku-4-5")
    assert "the judge's reply holds no ranking" in human.stdout


# --- exports ------------------------------------------------------------------------------


def md_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in `text`, as a list of rows keyed by header."""
    tables, lines, i = [], text.splitlines(), 0
    split = lambda line: [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|( ?-+:? ?\|)+$", lines[i + 1].replace(" ", "")):
            head = split(lines[i])
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(head, split(lines[i]))))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def test_markdown_export_parses_back(cli, hosted, fake_anthropic, use, tmp_path):
    use(fake_anthropic, "anthropic")
    fake_anthropic.ttft_s = 0.4
    fake_anthropic.replies["claude-sonnet-4-6"] = "A | pipe and a\nsecond line\n## not a heading"
    path = tmp_path / "set.txt"
    path.write_text("Explain the CAP theorem\n\nWhat is 2+2?\n")
    md = tmp_path / "out" / "report.md"
    md.parent.mkdir()
    r = cli("compare", "--json", "--prompts", str(path), *THREE, "-m", "anthropic/claude-sonnet-4-6", "--md", str(md))
    assert r.code == 0, r.stderr
    data = compare_rows(r.json())
    text = md.read_text()
    summary, *prompt_tables = md_tables(text)
    assert [row["model"] for row in summary] == ["openai/gpt-4.1", "deepseek/deepseek-flash", "gemini/gemini-2.5-flash",
                                                 "anthropic/claude-sonnet-4-6"]
    by = {row["model"]: row for row in summary}
    for model, row in by.items():
        mine = [d for d in data if d["column"] == model]
        assert row["answers"] == str(sum(d["ok"] for d in mine)) == "2"
        assert row["fastest"] == str(sum(d["fastest"] for d in mine))
        assert row["cheapest"] == str(sum(d["cheapest"] for d in mine))
    assert by["deepseek/deepseek-flash"]["cheapest"] == "2"
    assert len(prompt_tables) == 2
    for p, table in enumerate(prompt_tables):
        assert [row["model"] for row in table] == [d["column"] for d in data if d["prompt_index"] == p]
        for row in table:
            d = next(x for x in data if x["prompt_index"] == p and x["column"] == row["model"])
            assert row["outcome"] == "ok"
            assert row["tokens in / out"] == f"{d['input_tokens']} / {d['output_tokens']}"
            assert ("fastest" in row["marks"]) == d["fastest"] and ("cheapest" in row["marks"]) == d["cheapest"]
    assert "## Prompt 1" in text and "> Explain the CAP theorem" in text
    assert "> A | pipe and a\n> second line\n> ## not a heading" in text  # quoted: cannot break the page
    for d in data:
        assert d["text"].splitlines()[0] in text
    assert f"runner compare --from-log {data[0]['comparison_id']}" in text


def test_html_export_is_self_contained_and_escaped(cli, hosted, tmp_path):
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)"> & </div></article>'
    hosted[0].replies["gpt-4.1"] = evil
    out = tmp_path / "report.html"
    r = cli("compare", "Explain <b>this</b>", *THREE, "--html", str(out))
    assert r.code == 0, r.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    tags, attrs = _markup(page)
    assert not tags & {"script", "img", "link", "iframe", "object", "embed", "base", "form"}, tags
    assert not attrs & {"src", "href", "srcset", "action", "onerror", "onload"}, attrs
    for bad in ("url(", "@import", "https://", "http://"):
        assert bad not in page.lower(), bad
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt; &amp; &lt;/div&gt;" in page
    assert "Explain &lt;b&gt;this&lt;/b&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count('<article class="card') == 3
    assert page.count("<svg") == 2 and 'class="bar"' in page
    assert "@media (max-width:700px)" in page


def _markup(page: str) -> tuple[set[str], set[str]]:
    """The tags and attribute names the page really has (escaped text is not markup)."""
    from html.parser import HTMLParser

    tags: set[str] = set()
    attrs: set[str] = set()

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attributes):
            tags.add(tag)
            attrs.update(name for name, _ in attributes)

    Collect().feed(page)
    return tags, attrs


@pytest.mark.parametrize("args,message", [
    (["compare", "hi"], "nothing to compare: give models with -m"),
    (["compare", "hi", "-m", "nope/x"], "unknown provider 'nope'"),
    (["compare", "hi", "-m", "gpt-4.1"], "must be written provider/model"),
    (["compare", "hi", "--tasks", "codin"], "unknown task 'codin' (did you mean 'coding'?)"),
    (["compare", "-m", "openai/gpt-4.1"], "no prompt"),
    (["compare", "hi", "-m", "openai/gpt-4.1", "--judge", "judge"], "must be written provider/model"),
    (["compare", "hi", "-m", "openai/gpt-4.1", "-c", "0"], "--concurrency must be a whole number, 1 or more, not 0"),
    (["compare", "hi", "-m", "openai/gpt-4.1", "--prompts", "x.txt"], "either a prompt or --prompts FILE"),
    (["compare", "-m", "openai/gpt-4.1", "--prompts", "/nonexistent/set.jsonl"], "/nonexistent/set.jsonl: no such file"),
    (["compare", "hi", "-m", "openai/gpt-4.1", "-f", "/nonexistent/doc.md"], "/nonexistent/doc.md: no such file"),
    (["compare", "hi", "-m", "openai/gpt-4.1", "--html", "/nonexistent/dir/r.html"], "cannot write /nonexistent/dir/r.html"),
])
def test_user_errors_are_one_line(cli, args, message):
    r = cli(*args)
    assert r.code == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_row_in_prompt_file_names_the_line(cli, tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"prompt": "fine"}\n{"promt": "oops"}\n')
    r = cli("compare", "--prompts", str(path), "-m", "openai/gpt-4.1")
    assert r.code == 2 and f"{path}, line 2: no prompt" in r.stderr

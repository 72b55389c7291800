"""Long documents end to end: read, estimate, route by fit, size Ollama's window, detect a
server that cuts anyway, split and combine when nothing can read the whole."""

from __future__ import annotations

import re
import sqlite3

import pytest

from tests.fakes import FakeOllama
from tests.fakes.ollama import FakeModel, default_models
from tests.fakes.tokens import count_tokens
from tests.longdoc_helpers import encrypt_pdf, make_doc, make_pdf


def chats(fake):
    return [r for r in fake.requests if r.path.endswith("/api/chat") or "GenerateContent" in r.path
            or "completions" in r.path]


def prompt_tokens(req) -> int:
    return sum(count_tokens(m["content"]) + 4 for m in req.json["messages"])


@pytest.fixture
def big(tmp_path):
    def write(tokens: int, name: str = "big.md", **kw) -> str:
        path = tmp_path / name
        path.write_text(make_doc(tokens, **kw))
        return str(path)

    return write


# --- fit and window -----------------------------------------------------------------------


def test_60k_document_goes_to_the_local_model_whose_window_holds_it(cli, fake_ollama, use, big):
    use(fake_ollama, "ollama")
    doc = big(60_000)
    r = cli("ask", "--task", "private", "-f", doc, "--json", "What is the plan?")
    assert r.code == 0, r.stderr
    data = r.json()
    # qwen3:8b (40K) can't hold it; deepseek-r1:8b (128K) can.
    assert data["model"] == "ollama/deepseek-r1:8b"
    (req,) = chats(fake_ollama)
    assert req.json["options"]["num_ctx"] == 131072  # 60K ± 15% + 2K output, rounded up to a step
    assert req.json["truncate"] is False
    # The whole prompt was evaluated: nothing cut.
    assert data["input_tokens"] == prompt_tokens(req) > 60_000
    assert f"saw {data['input_tokens']} tokens starting: <document" in data["text"]
    assert data["attempts"] == [a for a in data["attempts"] if a["outcome"] == "ok"]


def test_explain_shows_estimate_windows_fit_and_split(cli, fake_ollama, use, big):
    use(fake_ollama, "ollama")
    doc = big(60_000)
    r = cli("ask", "--task", "long-doc", "-f", doc, "--explain", "Risks?")
    assert r.code == 0, r.stderr
    out = r.stdout
    assert "prompt ~" in out and "(±15%)" in out
    assert "ollama/qwen2.5:14b" in out and "32K" in out
    assert "exceeds 32K context" in out and "no GEMINI_API_KEY" in out
    assert "split into 3 chunks" in out and "for ollama/qwen2.5:14b" in out
    plan = cli("ask", "--task", "long-doc", "-f", doc, "--explain", "--json", "Risks?").json()
    est = plan["estimate"]
    assert est["low"] < count_tokens(open(doc).read()) < est["high"]
    by = {c["model"]: c for c in plan["candidates"]}
    assert by["ollama/qwen2.5:14b"]["context"] == 32768 and by["ollama/qwen2.5:14b"]["fits"] is False
    assert by["gemini/gemini-2.5-pro"]["context"] == 1048576
    assert plan["too_long"] is True
    assert plan["split"]["model"] == "ollama/qwen2.5:14b" and plan["split"]["chunks"] == 3
    assert max(plan["split"]["chunk_tokens"]) <= plan["split"]["chunk_budget_tokens"]
    assert not chats(fake_ollama)


def test_too_big_for_local_goes_to_a_long_context_hosted_model(cli, fake_ollama, fake_gemini, use, big):
    use(fake_ollama, "ollama")
    use(fake_gemini, "gemini")
    doc = big(120_000)
    r = cli("ask", "--task", "long-doc", "-f", doc, "--json", "Summarise the risks")
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["model"] == "gemini/gemini-2.5-pro"
    assert "chunks" not in data  # one call read the whole document
    assert not chats(fake_ollama)
    plan = cli("ask", "--task", "long-doc", "-f", doc, "--explain", "--json", "Summarise the risks").json()
    reasons = {s["model"]: s["reason"] for s in plan["skipped"]}
    assert reasons["ollama/qwen2.5:14b"].startswith("prompt ~") and "exceeds 32K context" in reasons["ollama/qwen2.5:14b"]
    assert plan["split"] is None


def test_user_ceiling_caps_the_window(cli, fake_ollama, use, big, home):
    (home / "config.yaml").write_text("retries: 0\nollama: {max_num_ctx: 65536}\n")
    use(fake_ollama, "ollama")
    doc = big(60_000)
    plan = cli("ask", "--task", "private", "-f", doc, "--explain", "--json", "q").json()
    reasons = {s["model"]: s["reason"] for s in plan["skipped"]}
    assert "exceeds 64K context (max_num_ctx 64K)" in reasons["ollama/deepseek-r1:8b"]
    assert plan["split"]["model"] == "ollama/qwen3:8b"


# --- a server that cuts anyway ------------------------------------------------------------


@pytest.mark.parametrize("honour_truncate,message", [
    (False, "truncated by the server: at most 4,096 of ~"),  # a proxy dropping options and the flag
    (True, "Ollama refused the prompt: the input length exceeds the context length"),  # drops options only
])
def test_a_server_that_ignores_num_ctx_is_caught_before_any_text(cli, use, big, honour_truncate, message):
    with FakeOllama(default_models(), honour_num_ctx=False, honour_truncate=honour_truncate) as fake:
        use(fake, "ollama")
        doc = big(60_000)
        r = cli("ask", "--task", "private", "-f", doc, "What is the plan?")
        assert r.code == 1
        assert message in r.stderr
        assert "saw" not in r.stdout  # no word of the cut answer was shown
        assert "Traceback" not in r.stderr


def test_a_cut_seen_only_in_prompt_eval_count_fails_the_attempt_and_falls_back(cli, use, big, home, fake_gemini):
    (home / "profiles").mkdir()
    (home / "profiles" / "mine.yaml").write_text(
        "name: mine\ndescription: local then hosted\ncandidates:\n  - model: ollama/deepseek-r1:8b\n"
        "  - model: gemini/gemini-2.5-flash\noptions: {max_output_tokens: 1024}\n")
    # An old server: ignores truncate:false and its /api/ps has no context_length.
    with FakeOllama(default_models(), version="0.11.4", honour_num_ctx=False, ps_context=False) as fake:
        use(fake, "ollama")
        use(fake_gemini, "gemini")
        doc = big(60_000)
        data = cli("ask", "--task", "mine", "-f", doc, "--json", "q").json()
        assert data["ok"] and data["model"] == "gemini/gemini-2.5-flash"
        failed = data["attempts"][0]
        assert failed["model"] == "ollama/deepseek-r1:8b" and failed["outcome"] == "failed"
        assert failed["error"].startswith("truncated by the server: 4,0")
        assert re.match(r"truncated by the server: 4,0\d\d of ~\d\d,\d{3} tokens evaluated", failed["error"])
        assert "truncate" not in chats(fake)[0].json


# --- too long for everything: split and combine -------------------------------------------


def test_local_only_task_splits_and_combines(cli, fake_ollama, use, big, home):
    use(fake_ollama, "ollama")
    doc = big(120_000)
    r = cli("ask", "--task", "private", "-f", doc, "What is the plan?")
    assert r.code == 0, r.stderr
    assert "chunk 1 of 4" in r.stderr and "chunk 4 of 4" in r.stderr and "combining 4 partial answers" in r.stderr
    assert "4 chunks + combine" in r.stderr
    reqs = chats(fake_ollama)
    assert len(reqs) == 5
    for req in reqs[:4]:
        content = req.json["messages"][-1]["content"]
        assert f'<document name="{doc}" part="' in content and "Question: What is the plan?" in content
        assert req.json["options"]["num_ctx"] == 40960  # qwen3:8b's window, the same for every chunk
        assert prompt_tokens(req) <= 40960 - 2048
    combine = reqs[4].json["messages"][-1]["content"]
    assert combine.count("<notes from=") == 4 and "saw" in combine
    # Every word of the document was in exactly one chunk.
    sent = "".join(req.json["messages"][-1]["content"] for req in reqs[:4])
    text = open(doc).read()
    assert sum(sent.count(w) for w in ("## Part",)) == text.count("## Part")

    db = sqlite3.connect(home / "runs.db")
    run = db.execute("SELECT id, chunks, input_tokens, output_tokens, latency_ms, outcome FROM runs").fetchone()
    assert run[1] == 4 and run[5] == "ok"
    parts = db.execute("SELECT part, input_tokens, output_tokens, latency_ms FROM attempts WHERE run_id = ? ORDER BY id",
                       (run[0],)).fetchall()
    assert sorted(p[0] for p in parts) == ["chunk 1/4", "chunk 2/4", "chunk 3/4", "chunk 4/4", "combine"]
    assert run[2] == sum(p[1] for p in parts) and run[3] == sum(p[2] for p in parts)
    assert run[4] >= max(p[3] for p in parts)  # wall time of the whole run


def test_split_json_is_quiet_and_sums(cli, fake_ollama, use, big):
    use(fake_ollama, "ollama")
    r = cli("ask", "--task", "private", "-f", big(120_000), "--json", "q")
    assert r.code == 0 and r.stderr == ""
    data = r.json()
    assert data["chunks"] == 4 and data["ok"]
    assert data["input_tokens"] == sum(a["input_tokens"] for a in data["attempts"])
    assert [a["part"] for a in data["attempts"]][-1] == "combine"


def test_chunks_respect_the_providers_concurrency(cli, use, big, home):
    with FakeOllama(default_models(), ttft_s=0.2) as fake:
        use(fake, "ollama")
        cli("ask", "--task", "private", "-f", big(120_000), "--json", "q")
        times = sorted(r.time for r in chats(fake))[:4]
        assert all(b - a >= 0.19 for a, b in zip(times, times[1:]))  # num_parallel 1: one at a time
    (home / "config.yaml").write_text("retries: 0\nollama: {num_parallel: 4}\n")
    with FakeOllama(default_models(), ttft_s=0.5) as fake:
        use(fake, "ollama")
        cli("ask", "--task", "private", "-f", big(120_000), "--json", "q")
        times = sorted(r.time for r in chats(fake))[:4]
        assert times[-1] - times[0] < 0.4  # all four chunks at once


def test_fail_profile_does_not_split(cli, fake_ollama, use, big, home):
    (home / "profiles").mkdir()
    (home / "profiles" / "strict.yaml").write_text(
        "name: strict\ndescription: d\nprivacy: local-only\ncandidates: [ollama/qwen2.5:7b]\ntoo_long: fail\n")
    use(fake_ollama, "ollama")
    r = cli("ask", "--task", "strict", "-f", big(60_000), "q")
    assert r.code == 1 and "exceeds 32K context" in r.stderr and "Traceback" not in r.stderr
    assert not chats(fake_ollama)


def test_a_failed_chunk_fails_the_run_and_says_which(cli, fake_ollama, use, big):
    from tests.fakes import Fault

    use(fake_ollama, "ollama")
    for _ in range(20):  # every try of every chunk: qwen3:8b twice, then its fallback deepseek-r1:8b twice
        fake_ollama.push_fault(Fault(status=500, message="out of memory"))
    r = cli("ask", "--task", "private", "-f", big(120_000), "--json", "q")
    data = r.json()
    assert r.code == 1 and not data["ok"]
    assert "could not be read, so no answer covers the whole of the documents" in data["error"]


def test_combining_in_rounds_when_the_partial_answers_are_too_long(cli, use, big, home):
    (home / "config.yaml").write_text("retries: 0\nollama: {max_num_ctx: 8192}\n")
    long_notes = " ".join(["note"] * 1500)

    def reply(model, messages):
        content = messages[-1]["content"]
        if "Merge the notes" in content:
            return "merged: " + " ".join(["fact"] * 300)
        if "Answer the question from these notes" in content:
            return "final answer"
        return long_notes

    with FakeOllama({"qwen2.5:7b": FakeModel(32768)}, default_reply=reply) as fake:
        use(fake, "ollama")
        data = cli("ask", "--model", "ollama/qwen2.5:7b", "--task", "private", "-f", big(20_000), "--json",
                   "--max-tokens", "2600", "q").json()
    assert data["ok"], data["error"]
    parts = [a["part"] for a in data["attempts"]]
    assert any(p.startswith("combine 1/") for p in parts) and parts[-1] == "combine"
    assert data["text"] == "final answer"


# --- learning from real counts ------------------------------------------------------------


def test_estimates_learn_from_real_counts(cli, fake_ollama, use, tmp_path):
    use(fake_ollama, "ollama")
    # Long words: the fakes' tokenizer counts 1 token per 4 letters, far above the estimate.
    doc = tmp_path / "words.txt"
    doc.write_text(" ".join(["document", "strategy", "planning"] * 400))
    before = cli("ask", "--model", "ollama/qwen2.5:7b", "-f", str(doc), "--explain", "--json", "q").json()
    est0 = before["candidates"][0]["est_input_tokens"]
    for _ in range(3):
        assert cli("ask", "--model", "ollama/qwen2.5:7b", "-f", str(doc), "--json", "q").code == 0
    log = cli("log", "--json").json()
    real = log[0]["attempts"][0]["input_tokens"]
    assert real > est0 * 1.3  # the estimator is off for this text...
    after = cli("ask", "--model", "ollama/qwen2.5:14b", "-f", str(doc), "--explain", "--json", "q").json()
    learned = after["candidates"][0]["est_input_tokens"]
    assert abs(learned - real) / real < 0.05  # ...and the family (any qwen2.5 size) learned it
    human = cli("ask", "--model", "ollama/qwen2.5:14b", "-f", str(doc), "--explain", "q")
    assert "learned)" in human.stdout


# --- inputs: PDF, directories, bad files --------------------------------------------------


def test_pdf_pages_are_read_and_cited(cli, fake_ollama, use, tmp_path):
    use(fake_ollama, "ollama")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf(["Revenue rose 12% in the third quarter.", "The main risk is the fuel price."]))
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "-f", str(pdf), "--json", "What is the main risk?")
    assert r.code == 0, r.stderr
    content = chats(fake_ollama)[0].json["messages"][-1]["content"]
    assert f'<document name="{pdf}">' in content
    assert "Revenue rose 12%" in content and "fuel price" in content


def test_a_long_pdf_is_split_on_pages(cli, fake_ollama, use, tmp_path):
    use(fake_ollama, "ollama")
    pages = [make_doc(1500, seed=i, heading_every=1000).replace("\n\n", " ").strip() for i in range(80)]
    pdf = tmp_path / "book.pdf"
    pdf.write_bytes(make_pdf(pages))
    plan = cli("ask", "--task", "private", "-f", str(pdf), "--explain", "--json", "q").json()
    assert plan["split"]["chunks"] >= 3
    assert all(" pp. " in label for label in plan["split"]["parts"])
    r = cli("ask", "--task", "private", "-f", str(pdf), "--json", "q")
    assert r.code == 0
    first = chats(fake_ollama)[0].json["messages"][-1]["content"]
    assert 'pages="1-' in first


def test_a_directory_gives_its_text_files_and_says_what_it_skipped(cli, fake_ollama, use, tmp_path):
    use(fake_ollama, "ollama")
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "a.md").write_text("# Alpha\nThe launch slipped to March.\n")
    (d / "sub" / "b.txt").write_text("Budget is 40k.\n")
    (d / "notes.pdf").write_bytes(make_pdf(["Pages of notes."]))
    (d / "locked.pdf").write_bytes(encrypt_pdf(make_pdf(["secret"])))
    (d / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (d / ".hidden.md").write_text("hidden")
    (d / "empty.txt").write_text("")
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "-f", str(d), "What slipped?")
    assert r.code == 0, r.stderr
    content = chats(fake_ollama)[0].json["messages"][-1]["content"]
    for name in ("a.md", "sub/b.txt", "notes.pdf"):
        assert f'<document name="{d / name}">' in content
    assert "hidden" not in content and "PNG" not in content
    assert "skipped" in r.stderr and "locked.pdf: the PDF is encrypted" in r.stderr


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_bytes(b"\x00\x01\x02binary\x00"), "looks like a binary file"),
    (lambda p: p.write_text(""), "the file is empty"),
    (lambda p: p.write_bytes("caf\xe9".encode("latin-1")), "not UTF-8 text"),
    (lambda p: p.write_bytes(encrypt_pdf(make_pdf(["x"]))), "the PDF is encrypted"),
    (lambda p: p.write_bytes(b"%PDF-1.4 garbage"), "not a readable PDF"),
    (lambda p: p.write_bytes(make_pdf([""])), "no text layer"),
    (lambda p: None, "no such file"),
])
def test_bad_files_are_one_clear_line_and_nothing_is_sent(cli, fake_ollama, use, tmp_path, make, message):
    use(fake_ollama, "ollama")
    path = tmp_path / ("bad.pdf" if "PDF" in message or "text layer" in message else "bad.txt")
    make(path)
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "-f", str(path), "q")
    assert r.code == 2
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and str(path) in line and message in line
    assert not chats(fake_ollama)


def test_an_empty_directory_is_an_error(cli, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.bin").write_bytes(b"\x00")
    r = cli("ask", "-f", str(tmp_path / "d"), "q")
    assert r.code == 2 and "holds no readable text files" in r.stderr

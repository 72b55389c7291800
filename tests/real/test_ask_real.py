"""`runner ask`, `runner log` and `runner stats` end to end against llama-cpp-python's server.

llama-cpp-python sends no usage when streaming (not even with stream_options.include_usage), so
every token count the runner reports for it is its own estimate and must say so.
"""

from __future__ import annotations

from .harness import MAX_TOKENS, complete, unfinished_ok_attempts


def test_ask_streams_a_whole_answer(runner):
    r = runner("ask", "--model", "llama/tiny", "hi")
    assert r.code == 0, r
    answer = r.stdout.rstrip("\n")
    assert complete(answer), f"expected the whole {MAX_TOKENS}-character answer on stdout\n{r}"
    assert "llama/tiny" in r.stderr, r  # the footer names the model that answered
    assert runner.server.chat_posts() == 1
    assert not unfinished_ok_attempts(runner.attempts())


def test_ask_no_stream_prints_the_answer_once_complete(runner):
    r = runner("ask", "--model", "llama/tiny", "--no-stream", "hi")
    assert r.code == 0, r
    assert complete(r.stdout.rstrip("\n")), r
    assert runner.server.chat_posts() == 1


def test_ask_json_marks_tokens_as_estimated(runner):
    r = runner("ask", "--model", "llama/tiny", "--json", "hi")
    assert r.code == 0, r
    data = r.json()
    assert data["ok"] is True, r
    assert data["model"] == "llama/tiny"
    assert complete(data["text"]), r
    assert data["input_tokens"] and data["input_tokens"] > 0, r
    assert data["output_tokens"] and data["output_tokens"] > 0, r
    # The server sent no usage: the counts are the runner's estimates and must be marked so.
    assert data["tokens_estimated"] is True, r
    assert [a["outcome"] for a in data["attempts"]] == ["ok"], r
    assert not unfinished_ok_attempts(runner.attempts())


def test_ask_reads_the_prompt_from_stdin(runner):
    r = runner("ask", "--model", "llama/tiny", "--json", input="the water is long\n")
    assert r.code == 0, r
    assert complete(r.json()["text"]), r


def test_log_and_stats_after_calls(runner):
    for prompt in ("one", "two", "three"):
        r = runner("ask", "--model", "llama/tiny", "--json", prompt)
        assert r.code == 0, r
    log = runner("log", "--json")
    assert log.code == 0, log
    runs = log.json()
    assert len(runs) == 3, log
    for run in runs:
        assert run["ok"] is True and run["model"] == "llama/tiny", run
        assert complete(run["text"]), run
        assert run["tokens_estimated"] is True, run
    stats = runner("stats", "--json")
    assert stats.code == 0, stats
    models = {m["model"]: m for m in stats.json()["models"]}
    tiny = models["llama/tiny"]
    assert tiny["calls"] == 3 and tiny["failed"] == 0, stats
    assert tiny["local"] is True, stats
    assert tiny["output_tokens"] > 0 and tiny["input_tokens"] > 0, stats
    assert tiny["p50_latency_ms"] is not None and tiny["p50_latency_ms"] > 0, stats
    assert tiny["cost_usd"] == 0, stats  # local, no local_cost_per_hour_usd: free, and known
    assert runner.server.chat_posts() == 3

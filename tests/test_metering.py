"""Metering helpers shared by every command: percentiles, the cost formatter, logged-run records,
per-million prices, local savings, and the batch's running count."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.fakes import Fault

# --- percentiles ---------------------------------------------------------------------------


def test_percentile_is_nearest_rank():
    from runner.stats import percentile

    assert percentile(range(1, 11), 50) == 5  # was 6
    assert percentile(range(1, 21), 95) == 19  # was 20
    assert percentile(range(1, 101), 95) == 95 and percentile(range(1, 101), 50) == 50
    assert percentile([7.0], 50) == 7.0 and percentile([3, 1, 2], 100) == 3 and percentile([3, 1, 2], 0) == 1
    assert percentile([], 50) is None


def test_stats_batch_and_compare_summaries_use_the_one_aggregate():
    import runner.batch.run as batch
    import runner.compare.report as compare_report
    import runner.stats as stats

    assert batch.Aggregate is stats.Aggregate and compare_report.Aggregate is stats.Aggregate
    agg = stats.Aggregate("m")
    for x in range(1, 21):
        agg.add({"ok": True, "latency_ms": float(x) if x <= 10 else None, "ttft_ms": float(x) + 0.04})
    summary = batch.model_summary(agg)
    assert summary["latency_ms_p50"] == 5.0 and summary["ttft_ms_p95"] == 19.0  # rounded to 0.1 still
    assert summary["tokens_per_s_p50"] is None


# --- one cost formatter --------------------------------------------------------------------


@pytest.mark.parametrize("cost, local, shown", [
    (None, False, "price unknown"),
    (0, False, "$0"),
    (0.0, True, "$0 (local)"),
    (0.000011, False, "$0.000011"),  # was $0.0000: reads as free
    (0.0000112, False, "$0.000011"),
    (0.00000123, False, "$0.0000012"),
    (0.00056, False, "$0.00056"),
    (0.0123, False, "$0.0123"),
    (0.5, False, "$0.5000"),
    (1.234, False, "$1.23"),
    (1234.5, False, "$1,234.50"),
    (0.000011, True, "$0.000011"),
])
def test_fmt_cost(cost, local, shown):
    from runner.render import fmt_cost

    assert fmt_cost(cost, local) == shown


def test_every_renderer_uses_the_one_cost_formatter():
    import runner.render.batch as batch_render
    import runner.compare.report as compare_report
    import runner.render.compare_html as report_html
    import runner.render.compare_md as report_md
    import runner.render.compare_terminal as report_terminal
    from runner.render import fmt_cost

    assert not hasattr(batch_render, "fmt_usd")
    assert not hasattr(compare_report, "fmt_usd")
    for module in (batch_render, report_html, report_md, report_terminal):
        assert module.fmt_cost is fmt_cost


def test_batch_summary_shows_small_costs_precisely(monkeypatch):
    from rich.console import Console

    import runner.render.batch as batch_render

    console = Console(record=True, force_terminal=True, width=200)
    monkeypatch.setattr(batch_render, "out", console)
    data = {"batch_id": "b-1", "file": "p.jsonl", "out": "o.jsonl", "rows": 1, "ran": 1, "ok": 1, "failed": 0,
            "already_done": 0, "not_started": 0, "bad_rows": 0, "elapsed_s": 1.0, "cost_usd": 0.0000112,
            "total_cost_usd": 0.0000112,
            "models": [{"model": "openai/gpt-4.1-nano", "rows": 1, "failed": 0, "latency_ms_p50": 10.0,
                        "latency_ms_p95": 10.0, "ttft_ms_p50": 5.0, "ttft_ms_p95": 5.0, "tokens_per_s_p50": 100.0,
                        "input_tokens": 50, "output_tokens": 10, "cost_usd": 0.0000112, "cost_unknown_rows": 0}]}
    batch_render.summary_table(None, data)
    text = console.export_text()
    assert len(re.findall(r"\$0\.000011(?!\d)", text)) == 2  # the head line and the model's row


# --- logged runs as `ask --json` records -----------------------------------------------------

ASK_FIELDS = {"id", "model", "task", "ok", "error", "finish_reason", "text", "thinking", "input_tokens", "output_tokens",
              "tokens_estimated", "ttft_ms", "latency_ms", "tokens_per_s", "cost_usd", "attempts"}
LOG_FIELDS = ASK_FIELDS | {"time", "kind", "group_id", "item_id", "outcome", "prompt", "system", "files", "client",
                           "est_input_tokens", "chunks"}


def logged_run(**over):
    row = {"id": 7, "time": "2026-01-02T03:04:05", "kind": "compare", "group_id": "c-1", "item_id": "p0:c0",
           "model": "openai/gpt-4.1", "task": "general", "outcome": "ok", "error": None, "prompt": "hi",
           "system": None, "files": [], "text": "hello", "thinking": None, "input_tokens": 10, "output_tokens": 2,
           "tokens_estimated": 0, "est_input_tokens": 9, "ttft_ms": 12.345, "latency_ms": 99.99,
           "tokens_per_s": 20.04, "cost_usd": 0.00004, "chunks": None,
           "attempts": [{"model": "openai/gpt-4.1", "outcome": "ok", "error": None, "part": None, "input_tokens": 10,
                         "output_tokens": 2, "ttft_ms": 12.345, "latency_ms": 99.99, "cost_usd": 0.00004}]}
    row.update(over)
    return row


def test_log_and_compare_records_share_the_ask_json_builder():
    import runner.cli.log as log
    import runner.compare.log as compare_log
    from runner.records import attempt_json

    assert not hasattr(log, "_r") and not hasattr(compare_log, "_round")  # one rounding helper: session's
    r = logged_run()
    rec, cell = log.log_record(r), compare_log.record(r)
    assert set(rec) == LOG_FIELDS and set(cell) == ASK_FIELDS
    assert {k: rec[k] for k in ASK_FIELDS} == cell
    assert (cell["ttft_ms"], cell["latency_ms"], cell["tokens_per_s"]) == (12.3, 100.0, 20.0)
    assert cell["attempts"] == [attempt_json(a) for a in r["attempts"]] and cell["attempts"][0]["ttft_ms"] == 12.3
    assert cell["tokens_estimated"] is False and rec["outcome"] == "ok" and rec["chunks"] is None
    json.dumps(rec)

    running = logged_run(outcome="running")
    assert compare_log.record(running)["error"] == "interrupted before it finished"
    assert log.log_record(running)["error"] is None and log.log_record(running)["ok"] is False


# --- per-million prices and local savings ------------------------------------------------------


def test_per_million_prices_are_base_rates_not_long_context_ones():
    from runner.cli.info import per_mtok
    from runner.config import load_config
    from runner.pricing import Pricing

    pricing = Pricing(load_config())
    assert per_mtok(pricing, "anthropic/claude-sonnet-4-5") == pytest.approx(3.0)  # was 6.00 (the >200K tier)
    assert per_mtok(pricing, "gemini/gemini-2.5-pro") == pytest.approx(1.25)  # was 2.50
    assert per_mtok(pricing, "anthropic/claude-sonnet-4-5", output=True) == pytest.approx(15.0)
    assert per_mtok(pricing, "openai/gpt-4.1") == pytest.approx(2.0)


def test_models_command_shows_base_rates(cli):
    by = {m["model"]: m for m in cli("models", "--json").json()["models"]}
    assert by["anthropic/claude-sonnet-4-5"]["input_per_mtok"] == pytest.approx(3.0)
    assert by["gemini/gemini-2.5-pro"]["input_per_mtok"] == pytest.approx(1.25)


def test_local_savings_price_each_call_not_one_giant_one():
    from runner.config import load_config
    from runner.pricing import Pricing
    from runner.stats import summarise

    def call(n_in, n_out):
        return {"model": "ollama/qwen2.5:7b", "outcome": "ok", "cost_usd": 0.0, "tokens_per_s": 30.0,
                "ttft_ms": 100.0, "latency_ms": 1000.0, "input_tokens": n_in, "output_tokens": n_out}

    config = load_config()
    pricing = Pricing(config)
    versus = "anthropic/claude-sonnet-4-5"
    calls = [call(150_000, 1000), call(150_000, 1000)]  # 300K together: the long-context tier
    saved = summarise(calls, config, pricing, versus)["local_savings"]
    each = pricing.cost(versus, 150_000, 1000)
    assert each == pytest.approx(0.45 + 0.015)
    assert saved["calls"] == 2 and saved["input_tokens"] == 300_000
    assert saved["versus_cost_usd"] == pytest.approx(2 * each)  # was the price of one 300K call: $1.83
    assert summarise(calls, config, pricing, "openai/no-such-model")["local_savings"]["versus_cost_usd"] is None


# --- batch progress: running rows ------------------------------------------------------------


def test_a_row_requeued_after_a_429_counts_as_running_once(tmp_path, fake_openai, use):
    from runner.batch import Batch, BatchOptions
    from runner.config import load_config

    use(fake_openai, "openai")
    for _ in range(3):  # retries: 1 (tests' config): the first row is refused twice, then re-queued
        fake_openai.push_fault(Fault(status=429, retry_after="0.1", message="Rate limit reached"))
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"q{i}"}) + "\n" for i in range(3)))
    seen: list[int] = []

    async def main():
        b = Batch(load_config(), BatchOptions(file=src, out=str(tmp_path / "o.jsonl"), model="openai/gpt-4.1",
                                              concurrency=1))
        b.read()
        b.on_change = lambda: seen.append(b.running)
        try:
            code = await b.run()
        finally:
            await b.session.aclose()
        return b, code

    b, code = asyncio.run(main())
    assert code == 0 and b.engine.requeued >= 1 and b.done == 3
    assert max(seen) == 1 and b.running == 0  # was 2 at most and 1 at the end


def test_tokens_per_s_prefers_ollama_timing_and_counts_hidden_reasoning():
    from runner.backends import Done, Usage
    from runner.meter import AttemptResult, tokens_per_s as _tokens_per_s

    res = AttemptResult("m", "ok", "t", output_tokens=100, text="visible")
    # Ollama's own generation time wins: 50 tokens in 0.5 s of eval = 100 tok/s.
    ollama = Done(Usage(10, 100), metrics={"eval_count": 50, "eval_duration": 500_000_000})
    assert _tokens_per_s(ollama, res, start=0.0, first=1.0, end=2.0) == 100.0
    # Streamed text only: from the first token.
    plain = Done(Usage(10, 100))
    assert _tokens_per_s(plain, res, start=0.0, first=1.0, end=2.0) == 100.0
    # Reasoning that was never streamed happened before the first visible token: clock from the request.
    hidden = Done(Usage(10, 100, reasoning_tokens=80))
    assert _tokens_per_s(hidden, res, start=0.0, first=1.5, end=2.0) == 50.0

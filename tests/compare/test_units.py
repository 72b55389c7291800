"""The pure parts of `runner compare`: item ids, the judge's prompt and parsing, the marks and
summaries every renderer draws, and the escaping of the HTML, SVG and Markdown renderers."""

from __future__ import annotations

import pytest

from runner.compare.model import Cell, Column, Comparison, Judgement, PromptItem, item_id, parse_item_id
from runner.compare.judge import LETTERS, build_prompt, judge_order, judgement_from_reply, parse_ranking
from runner.compare.report import build_report
from runner.render import fmt_cost as fmt_usd
from runner.render.compare_html import answer_html, render_html
from runner.render.compare_md import render_markdown
from runner.render.svg import Bar, Row, Series, bar_chart


def cell(model, latency=100.0, cost=0.001, ok=True, text="answer", error=None):
    return Cell({"model": model, "ok": ok, "text": text if ok else None, "error": error, "thinking": None,
                 "ttft_ms": latency / 2 if ok else None, "latency_ms": latency if ok else None,
                 "tokens_per_s": 50.0 if ok else None, "input_tokens": 10, "output_tokens": 20,
                 "cost_usd": cost if ok else None, "attempts": []})


def comparison(rows, columns=("openai/gpt-4.1", "deepseek/deepseek-flash", "ollama/qwen2.5:7b")):
    comp = Comparison("c-1234abcd", "2026-11-22T10:00:00.000+00:00", [PromptItem(f"q{p}") for p in range(len(rows))],
                      [Column(c) for c in columns])
    for p, row in enumerate(rows):
        for c, x in enumerate(row):
            comp.cells[(p, c)] = x
    return comp


@pytest.mark.parametrize("column", [Column.for_model("ollama/qwen2.5:7b"), Column.for_model("lmstudio/org/model:q4"),
                                    Column.for_task("long-doc")])
def test_item_ids_round_trip(column):
    assert parse_item_id(item_id(12, 3, column)) == (12, 3, column)
    assert parse_item_id("p1/judge/openai/gpt-4.1") is None and parse_item_id(None) is None


def test_column_kinds():
    assert Column.for_task("coding").task == "coding" and Column.for_task("coding").model is None
    assert Column.for_model("openai/gpt-4.1").model == "openai/gpt-4.1" and Column.for_model("openai/gpt-4.1").task is None


@pytest.mark.parametrize("reply,ranks", [
    ('{"ranking": ["B", "A", "C"]}', {"B": 1, "A": 2, "C": 3}),
    ('Sure!\n```json\n{"ranking": ["c", "a", "b"], "reasons": {"c": "best"}}\n```', {"C": 1, "A": 2, "B": 3}),
    ('<think>A looks wrong {"ranking": ["A"]}</think>{"ranking": ["B", "C", "A"]}', {"B": 1, "C": 2, "A": 3}),
    ('{"ranks": {"A": 2, "B": 1, "C": 2}}', {"A": 2, "B": 1, "C": 2}),
    ('{"A": 3, "B": 1, "C": 2}', {"A": 3, "B": 1, "C": 2}),
    ('{"ranking": [{"label": "C"}, {"label": "A"}, {"label": "B"}]}', {"C": 1, "A": 2, "B": 3}),
    ("My ranking: C > A > B.", {"C": 1, "A": 2, "B": 3}),
    ('{"ranking": ["B", "Z", "B", "A"]}', {"B": 1, "A": 2}),
])
def test_parse_ranking_is_forgiving(reply, ranks):
    assert parse_ranking(reply, ["A", "B", "C"])[0] == ranks


def test_parse_ranking_reasons_and_failure():
    ranks, reasons = parse_ranking('{"ranking": ["B", "A"], "reasons": {"b": "right", "A": "wrong", "Q": "?"}}', ["A", "B"])
    assert reasons == {"B": "right", "A": "wrong"}
    with pytest.raises(ValueError):
        parse_ranking("They are both fine.", ["A", "B"])


def test_judge_order_is_a_stable_permutation():
    order = judge_order("c-1", 0, [0, 1, 2, 3, 4])
    assert sorted(order) == [0, 1, 2, 3, 4] and order == judge_order("c-1", 0, [0, 1, 2, 3, 4])
    assert len({tuple(judge_order(f"c-{i}", 0, list(range(5)))) for i in range(20)}) > 1  # really shuffled


def test_judge_prompt_is_anonymous_and_maps_back():
    comp = comparison([[cell("openai/gpt-4.1", text="alpha"), cell("deepseek/deepseek-flash", text="beta"),
                        cell("ollama/qwen2.5:7b", ok=False, error="boom")]])
    comp.judge = "anthropic/claude-haiku-4-5"
    order = judge_order(comp.id, 0, [0, 1])
    prompt = build_prompt("q0", [], [(LETTERS[i], comp.cells[(0, c)].get("text")) for i, c in enumerate(order)])
    assert "openai" not in prompt and "deepseek" not in prompt and '<answer label="B">' in prompt
    best = LETTERS[order.index(1)]  # the judge prefers the deepseek answer ("beta")
    other = LETTERS[order.index(0)]
    jm = judgement_from_reply(comp, 0, {"ok": True, "text": f'{{"ranking": ["{best}", "{other}"]}}', "cost_usd": 0.01})
    assert jm.ranks == {1: 1, 0: 2} and jm.error is None and jm.cost_usd == 0.01
    assert judgement_from_reply(comp, 0, {"ok": False, "error": "HTTP 401"}).error == "HTTP 401"


def test_marks_summary_and_ties():
    comp = comparison([
        [cell("openai/gpt-4.1", 100, 0.002), cell("deepseek/deepseek-flash", 300, 0.0001), cell("ollama/qwen2.5:7b", 200, 0.0)],
        [cell("openai/gpt-4.1", 150, 0.002), cell("deepseek/deepseek-flash", 60, 0.0001),
         cell("ollama/qwen2.5:7b", ok=False, error="every model failed: ollama/qwen2.5:7b: HTTP 500: oom")],
        [cell("openai/gpt-4.1", 150, None), cell("deepseek/deepseek-flash", ok=False, error="x"), cell("ollama/qwen2.5:7b", ok=False, error="y")],
    ])
    report = build_report(comp, lambda ref: bool(ref) and ref.startswith("ollama/"))
    p0, p1, p2 = report.prompts
    assert [v.fastest for v in p0.cells] == [True, False, False]
    assert [v.cheapest for v in p0.cells] == [False, False, True]  # local $0 is the lowest known cost
    assert [v.fastest for v in p1.cells] == [False, True, False] and [v.cheapest for v in p1.cells] == [False, True, False]
    assert not any(v.fastest or v.cheapest for v in p2.cells)  # a lone answer wins nothing
    assert p1.cells[2].error == "HTTP 500: oom"  # "every model failed: MODEL:" is noise in a model's own column
    gpt, ds, local = report.columns
    assert (gpt.ok, gpt.failed, gpt.fastest_wins, gpt.cheapest_wins) == (3, 0, 1, 0)
    assert (ds.ok, ds.failed, ds.fastest_wins, ds.cheapest_wins) == (2, 1, 1, 1)
    assert (local.ok, local.failed, local.local) == (1, 2, True)
    assert gpt.p50_latency_ms == 150 and gpt.p95_latency_ms == 150 and gpt.cost_usd == pytest.approx(0.004)
    assert gpt.unknown_cost == 1
    assert report.failures == 3 and report.total_cost_usd == pytest.approx(0.0042)


@pytest.mark.parametrize("latencies,fastest", [
    ((1000, 1003, 1500), [False, False, False]),  # 3 ms ahead: nobody would notice
    ((100, 140, 300), [False, False, False]),  # 40 ms: under the 50 ms a person notices
    ((1000, 1060, 2000), [False, False, False]),  # 60 ms but 6%: under 10%
    ((1000, 1200, 1300), [True, False, False]),
    ((300, 100, 200), [False, True, False]),
])
def test_fastest_only_for_a_lead_a_person_notices(latencies, fastest):
    comp = comparison([[cell(m, t) for m, t in zip(("openai/gpt-4.1", "deepseek/deepseek-flash", "ollama/qwen2.5:7b"), latencies)]])
    assert [v.fastest for v in build_report(comp).prompts[0].cells] == fastest


def test_equal_costs_are_no_win():
    comp = comparison([[cell("ollama/a", 100, 0.0), cell("ollama/b", 200, 0.0)]], columns=("ollama/a", "ollama/b"))
    report = build_report(comp)
    assert [v.cheapest for v in report.prompts[0].cells] == [False, False]


def test_judge_ranks_reach_the_views_and_its_cost_stays_apart():
    comp = comparison([[cell("openai/gpt-4.1"), cell("deepseek/deepseek-flash"), cell("ollama/qwen2.5:7b")]])
    comp.judge = "anthropic/claude-haiku-4-5"
    comp.judgements[0] = Judgement("anthropic/claude-haiku-4-5", {"ok": True, "cost_usd": 0.5}, {0: 2, 1: 1, 2: 3}, {1: "best"})
    report = build_report(comp)
    assert [v.rank for v in report.prompts[0].cells] == [2, 1, 3]
    assert report.columns[1].judge_wins == 1 and report.columns[1].mean_rank == 1
    assert report.judge.cost_usd == 0.5 and report.total_cost_usd == pytest.approx(0.003)


def test_fmt_usd_keeps_cheap_costs_apart():
    assert fmt_usd(0.0000112) == "$0.000011" and fmt_usd(0.00000123) == "$0.0000012"
    assert fmt_usd(0.0123) == "$0.0123" and fmt_usd(None) == "price unknown" and fmt_usd(0.0, True) == "$0 (local)"


def test_svg_and_html_escape_everything():
    svg = bar_chart('<b>"x"</b>', [Series("a&b", "#123456")], [Row("<script>", [Bar(1.0, "<1 ms>")])])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;1 ms&gt;" in svg and "&lt;b&gt;" in svg
    html = answer_html("<i>hi</i>\n\n```\n<x> & y\n```\ntail")
    assert html == "<p>&lt;i&gt;hi&lt;/i&gt;</p><pre><code>&lt;x&gt; &amp; y</code></pre><p>tail</p>"
    comp = comparison([[cell("openai/gpt-4.1", text="</article><script>x</script>"), cell("deepseek/deepseek-flash"),
                        cell("ollama/qwen2.5:7b")]])
    comp.prompts[0].text = "<img src=x onerror=alert(1)>"
    page = render_html(build_report(comp))
    assert "<script>x" not in page and "<img" not in page and "&lt;/article&gt;&lt;script&gt;" in page


def test_markdown_quotes_answers_and_escapes_table_cells():
    comp = comparison([[cell("openai/gpt-4.1", text="# Heading\n| not | a table |"), cell("deepseek/deepseek-flash"),
                        cell("ollama/qwen2.5:7b", ok=False, error="bad | pipe")]])
    md = render_markdown(build_report(comp))
    assert "> # Heading\n> | not | a table |" in md
    assert "failed: bad \\| pipe" in md


def test_load_from_log_marks_interrupted_cells_and_maps_the_judge(tmp_path):
    from runner.compare.judge import judge_order
    from runner.compare.log import load_comparison
    from runner.errors import UserError
    from runner.store import Store

    store = Store(tmp_path / "runs.db")
    cid = "c-feedbeef"
    done = {"outcome": "ok", "model": "openai/gpt-4.1", "text": "alpha", "latency_ms": 120.0, "ttft_ms": 50.0,
            "input_tokens": 5, "output_tokens": 7, "cost_usd": 0.001}
    a = store.start_run(kind="compare", task="general", prompt="q", system=None, group_id=cid, item_id="p0/c0/openai/gpt-4.1")
    store.finish_run(a, done)
    b = store.start_run(kind="compare", task="general", prompt="q", system=None, group_id=cid, item_id="p0/c1/task:coding")
    store.finish_run(b, {**done, "model": "anthropic/claude-sonnet-4-6", "text": "beta"})
    store.start_run(kind="compare", task="general", prompt="q", system=None, group_id=cid,
                    item_id="p0/c2/ollama/qwen2.5:7b")  # never finished: the run was interrupted
    order = judge_order(cid, 0, [0, 1])
    reply = '{"ranking": ["%s", "%s"]}' % ("AB"[order.index(1)], "AB"[order.index(0)])
    j = store.start_run(kind="judge", task="general", prompt="rank", system=None, group_id=cid, item_id="p0/judge/x/judge-1")
    store.finish_run(j, {**done, "model": "x/judge-1", "text": reply, "cost_usd": 0.5})
    store.start_run(kind="ask", task="general", prompt="unrelated", system=None)

    comp = load_comparison(store, cid)
    assert [c.key for c in comp.columns] == ["openai/gpt-4.1", "task:coding", "ollama/qwen2.5:7b"]
    assert comp.prompts[0].text == "q" and comp.cells[(0, 1)].get("text") == "beta"
    assert comp.cells[(0, 2)].ok is False and comp.cells[(0, 2)].get("error") == "interrupted before it finished"
    assert comp.judge == "x/judge-1" and comp.judgements[0].ranks == {1: 1, 0: 2}
    report = build_report(comp)
    assert report.judge.cost_usd == 0.5 and report.total_cost_usd == pytest.approx(0.002)
    with pytest.raises(UserError, match="no comparison 'c-00000000'"):
        load_comparison(store, "c-00000000")

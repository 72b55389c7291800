"""Estimates marked `~` and answers cut at the output limit, in every comparison renderer; and a
Markdown report that shows a prompt's HTML instead of running it."""

from __future__ import annotations

from rich.console import Console

from runner.compare.model import Cell, Column, Comparison, PromptItem
from runner.compare.report import build_report
from runner.render.compare_html import render_html
from runner.render.compare_md import md_text, render_markdown
from runner.render.compare_terminal import render_terminal

COLUMNS = ("openai/gpt-4.1", "llama/tiny", "deepseek/deepseek-flash")


def cell(model, *, estimated=False, finish="stop", latency=1000.0, cost=0.002, text="an answer"):
    return Cell({"model": model, "ok": True, "text": text, "error": None, "thinking": None, "finish_reason": finish,
                 "ttft_ms": 100.0, "latency_ms": latency, "tokens_per_s": 50.0, "input_tokens": 1234,
                 "output_tokens": 567, "tokens_estimated": estimated, "cost_usd": cost, "attempts": []})


def report(prompts=("<script>alert(1)</script> & more",)):
    comp = Comparison("c-00000001", "2026-11-22T10:00:00.000+00:00", [PromptItem(p) for p in prompts],
                      [Column(c) for c in COLUMNS])
    for p in range(len(prompts)):
        comp.cells[(p, 0)] = cell("openai/gpt-4.1", finish="length")
        comp.cells[(p, 1)] = cell("llama/tiny", estimated=True, cost=0.0001)
        comp.cells[(p, 2)] = cell("deepseek/deepseek-flash", text="<b>bold?</b>\n\n```html\n<p>code</p>\n```")
    return build_report(comp)


def terminal(rep, width=160) -> str:
    console = Console(width=width, record=True, color_system=None)
    render_terminal(rep, console)
    return console.export_text()


def test_terminal_marks_estimates_and_the_output_limit():
    text = terminal(report())
    assert "~1,234 in / ~567 out" in text and "~$0.0001 " in text  # the estimated cell
    assert "1,234 in / 567 out" in text  # the others, plain
    assert "stopped at max tokens" in text
    matrix = terminal(report(("q1", "q2")))
    assert "✂" in matrix and "~$0.0002" in matrix  # the per-model total built on estimates


def test_markdown_marks_them_and_shows_html_as_text():
    md = render_markdown(report())
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in md
    assert "&lt;b&gt;bold?&lt;/b&gt;" in md and "<p>code</p>" in md  # code blocks stay as they are
    assert "~1,234 / ~567" in md and "~$0.0001 |" in md
    assert "stopped at max tokens" in md


def test_html_marks_them():
    page = render_html(report())
    assert "<script>alert" not in page
    assert "~1,234 in / ~567 out" in page and "~$0.0001<" in page
    assert 'class="badge cut">stopped at max tokens' in page


def test_md_text_leaves_code_alone():
    assert md_text("a <x> `<y>` b") == "a &lt;x&gt; `<y>` b"
    assert md_text("~~~\n<z>\n~~~\n<w>") == "~~~\n<z>\n~~~\n&lt;w&gt;"

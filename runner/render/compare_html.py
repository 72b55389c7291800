"""`runner compare --html FILE`: one self-contained page.

No script, no external stylesheet, font or image: a Content-Security-Policy forbids any fetch, so
the page is the same offline, in a mail attachment or years later. Answers sit side by side and
stack under 700px; thinking is folded in <details>; latency and cost charts are inline SVG
(report_svg). Every piece of model or user text is HTML-escaped.
"""

from __future__ import annotations

import re
from html import escape

from ..compare.report import CellView, ColumnSummary, PromptView, Report
from . import fmt_cost, fmt_count, fmt_ms, meta_line
from .runlog import est, pair
from .svg import Bar, Row, Series, bar_chart

TTFT = Series("first token", "#f59e0b")
TOTAL = Series("total", "#2563eb")
COST = Series("cost", "#059669")

CSS = """
:root{--bg:#f7f7f8;--fg:#1f2328;--muted:#656d76;--card:#fff;--line:#d0d7de;--ok:#1a7f37;--bad:#cf222e;
--fast:#b45309;--cheap:#047857;--code:#f1f3f5}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8d96a0;--card:#161b22;--line:#30363d;
--code:#1f242c;--fast:#f59e0b;--cheap:#34d399}}
*{box-sizing:border-box}
body{margin:0;padding:16px;background:var(--bg);color:var(--fg);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
main{max-width:1600px;margin:0 auto}
h1{font-size:1.4rem;margin:0 0 4px}h2{font-size:1.15rem;margin:28px 0 8px}h3{font-size:1rem;margin:0;overflow-wrap:anywhere}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.meta,.note{color:var(--muted);margin:0 0 8px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px;margin:16px 0}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{display:block;max-width:480px}svg text{font:12px system-ui,sans-serif;fill:var(--fg)}svg .row-label{font-weight:600}svg .value{fill:var(--muted)}
.scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom;min-width:4.5em}
th:first-child,td:first-child{text-align:left}tr:last-child td{border-bottom:0}
.prompt-text{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--muted);
border-radius:6px;padding:8px 12px;white-space:pre-wrap;overflow-wrap:anywhere;max-height:16em;overflow:auto}
.grid{display:grid;grid-template-columns:repeat(var(--cols),minmax(260px,1fr));gap:12px;overflow-x:auto;margin-top:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;min-width:0}
.card.failed{border-color:var(--bad)}.card.fastest{box-shadow:inset 0 3px 0 var(--fast)}
.card.cheapest{box-shadow:inset 0 -3px 0 var(--cheap)}.card.fastest.cheapest{box-shadow:inset 0 3px 0 var(--fast),inset 0 -3px 0 var(--cheap)}
.badges{margin:4px 0}.badge{display:inline-block;font-size:12px;font-weight:600;border-radius:10px;padding:0 8px;margin:0 4px 2px 0;
border:1px solid currentColor}.badge.fastest{color:var(--fast)}.badge.cheapest{color:var(--cheap)}.badge.rank{color:var(--muted)}
.badge.failed{color:var(--bad)}.badge.cut{color:var(--fast)}
.metrics{display:flex;flex-wrap:wrap;gap:2px 12px;margin:4px 0 8px;color:var(--muted);font-size:13px}
.metrics b{color:var(--fg);font-weight:600}
details{margin:6px 0;border:1px dashed var(--line);border-radius:6px;padding:4px 8px}
summary{cursor:pointer;color:var(--muted)}
.thinking pre{white-space:pre-wrap;overflow-wrap:anywhere;color:var(--muted);margin:6px 0 0}
.answer{overflow-wrap:anywhere}.answer p{margin:0 0 8px;white-space:pre-wrap}
.answer pre{background:var(--code);border-radius:6px;padding:8px;overflow-x:auto;white-space:pre}
.error{color:var(--bad);white-space:pre-wrap;overflow-wrap:anywhere}
.judge{color:var(--muted);font-size:13px;border-top:1px solid var(--line);margin-top:8px;padding-top:6px}
footer{color:var(--muted);margin:32px 0 8px;font-size:13px}
@media (max-width:700px){body{padding:10px}.grid{grid-template-columns:1fr;overflow-x:visible}
.charts{grid-template-columns:1fr}th,td{padding:5px 6px}}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def render_html(report: Report) -> str:
    comp = report.comparison
    n_models = len(comp.columns)
    head = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>Comparison {escape(comp.id)} — runner</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>Comparison <code>{escape(comp.id)}</code></h1>",
        f'<p class="meta">{escape(meta_line(report))}</p>',
    ]
    body = [_charts(report), _summary_table(report)]
    for pv in report.prompts:
        body.append(_prompt_section(pv, n_models, report))
    tail = [f'<footer>Made by runner. Re-render with <code>runner compare --from-log {escape(comp.id)}</code>.</footer>',
            "</main></body></html>"]
    return "\n".join(head + body + tail) + "\n"



def _charts(report: Report) -> str:
    several = not report.single
    rows_lat, rows_cost = [], []
    for s in report.columns:
        label = s.label
        if s.ok == 0:
            rows_lat.append(Row(label, [Bar(None, "failed"), Bar(None, "")]))
            rows_cost.append(Row(label, [Bar(None, "failed")]))
            continue
        rows_lat.append(Row(label, [
            Bar(s.p50_ttft_ms, fmt_ms(s.p50_ttft_ms)),
            Bar(s.p50_latency_ms, fmt_ms(s.p50_latency_ms),
                whisker=s.p95_latency_ms if several and s.p95_latency_ms != s.p50_latency_ms else None),
        ]))
        cost_text = est(fmt_cost(s.cost_usd, s.local), s.estimated > 0 and not s.local) + (f" + {s.unknown_cost} unknown" if s.unknown_cost and s.cost_usd is not None else "")
        rows_cost.append(Row(label, [Bar(s.cost_usd, cost_text)]))
    lat_title = "Latency per model" + (" (p50, whisker to p95)" if several else "")
    cost_title = "Cost per model" + (" (total over all prompts)" if several else "")
    return ('<section class="charts">'
            f'<figure><figcaption>{escape(lat_title)}</figcaption>{bar_chart(lat_title, [TTFT, TOTAL], rows_lat, css_class="chart latency")}</figure>'
            f'<figure><figcaption>{escape(cost_title)}</figcaption>{bar_chart(cost_title, [COST], rows_cost, css_class="chart cost")}</figure>'
            "</section>")


def _summary_table(report: Report) -> str:
    judged = report.judge is not None
    cols = ["model", "answers", "failed", "fastest", "cheapest", "p50 first token", "p50 total", "p95 total",
            "tok/s", "tokens in / out", "cost"] + (["judge wins", "mean rank"] if judged else [])
    rows = []
    for s in report.columns:
        cells = [_label_cell(s), str(s.ok), str(s.failed), str(s.fastest_wins), str(s.cheapest_wins),
                 fmt_ms(s.p50_ttft_ms), fmt_ms(s.p50_latency_ms), fmt_ms(s.p95_latency_ms),
                 f"{s.tokens_per_s:.1f}" if s.tokens_per_s else "–",
                 pair(f"{s.input_tokens:,}", f"{s.output_tokens:,}", s.estimated > 0, " / ") if s.ok else "–",
                 escape(est(fmt_cost(s.cost_usd, s.local), s.estimated > 0 and not s.local)) if s.ok else "–"]
        if judged:
            cells += [str(s.judge_wins), f"{s.mean_rank:.2f}" if s.mean_rank is not None else "–"]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    note = ""
    if report.judge is not None:
        j = report.judge
        note = (f'<p class="note">Ranked by {escape(j.model)} ({j.calls} call{"s" if j.calls != 1 else ""}'
                + (f", {j.failed} failed" if j.failed else "") + f"); the judge's cost, {escape(fmt_cost(j.cost_usd))}, "
                "is not included in the models' costs.</p>")
    return (f'<h2>Summary</h2><div class="scroll"><table class="summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{note}')


def _label_cell(s: ColumnSummary) -> str:
    text = escape(s.label)
    if s.column.task and s.models:
        text += f'<br><small>{escape(", ".join(s.models))}</small>'
    return text


def _prompt_section(pv: PromptView, n_models: int, report: Report) -> str:
    files = ""
    if pv.prompt.files:
        files = f'<p class="note">with {escape(", ".join(pv.prompt.files))}</p>'
    cards = "".join(_card(v) for v in pv.cells)
    judge = ""
    if pv.judgement is not None and pv.judgement.error:
        judge = f'<p class="note">Judge: {escape(pv.judgement.error)}</p>'
    elif pv.judge_labels:
        judge = f'<p class="note">The judge saw the answers as {escape(pv.judge_labels)}.</p>'
    return (f'<section class="prompt" id="p{pv.index + 1}"><h2>{escape(pv.title)}</h2>'
            f'<div class="prompt-text">{escape(pv.prompt.text)}</div>{files}{judge}'
            f'<div class="grid" style="--cols:{n_models}">{cards}</div></section>')


def _card(v: CellView) -> str:
    classes = ["card", "ok" if v.ok else "failed"] + (["fastest"] if v.fastest else []) + (["cheapest"] if v.cheapest else [])
    badges = []
    if v.fastest:
        badges.append('<span class="badge fastest">⚡ fastest</span>')
    if v.cheapest:
        badges.append('<span class="badge cheapest">$ cheapest</span>')
    if v.rank is not None:
        badges.append(f'<span class="badge rank">judge #{v.rank}</span>')
    if v.cut_short:
        badges.append('<span class="badge cut">stopped at max tokens</span>')
    if not v.ok:
        badges.append('<span class="badge failed">failed</span>')
    d = v.data
    parts = [f'<article class="{" ".join(classes)}" data-column="{escape(v.column.key)}">',
             f"<header><h3>{escape(v.heading).replace('/', '/<wbr>')}</h3>",
             f'<div class="badges">{"".join(badges)}</div>' if badges else ""]
    if v.ok:
        guessed = bool(d.get("tokens_estimated"))
        tokens = f"{est(fmt_count(d.get('input_tokens')), guessed)} in / {est(fmt_count(d.get('output_tokens')), guessed)} out"
        tps = f"{d['tokens_per_s']:.1f}" if d.get("tokens_per_s") else "–"
        metrics = [("first token", fmt_ms(d.get("ttft_ms"))), ("total", fmt_ms(d.get("latency_ms"))),
                   ("tok/s", tps), ("tokens", tokens), ("cost", est(fmt_cost(d.get("cost_usd"), v.local), guessed and not v.local))]
        parts.append('<div class="metrics">' + "".join(f"<span>{escape(k)} <b>{escape(val)}</b></span>" for k, val in metrics) + "</div>")
    parts.append("</header>")
    if v.ok:
        thinking = d.get("thinking")
        if thinking:
            parts.append(f'<details class="thinking"><summary>Thinking ({len(thinking):,} characters)</summary>'
                         f"<pre>{escape(thinking)}</pre></details>")
        parts.append(f'<div class="answer">{answer_html(d.get("text") or "")}</div>')
    else:
        parts.append(f'<p class="error">{escape(v.error)}</p>')
    if v.reason:
        parts.append(f'<p class="judge">Judge: {escape(v.reason)}</p>')
    parts.append("</article>")
    return "".join(parts)


_FENCE = re.compile(r"^```[^\n]*\n(.*?)(?:^```[ \t]*$|\Z)", re.S | re.M)


def answer_html(text: str) -> str:
    """Paragraphs and fenced code blocks; everything else stays literal (and escaped)."""
    out, pos = [], 0
    for m in _FENCE.finditer(text):
        out += _paragraphs(text[pos:m.start()])
        out.append(f"<pre><code>{escape(m.group(1).rstrip())}</code></pre>")
        pos = m.end()
    out += _paragraphs(text[pos:])
    return "".join(out) or "<p></p>"


def _paragraphs(text: str) -> list[str]:
    return [f"<p>{escape(p.strip(chr(10)))}</p>" for p in re.split(r"\n\s*\n", text) if p.strip()]


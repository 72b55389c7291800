"""`runner log` and `runner stats` for people: tables that fit the terminal, estimates marked `~`."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ..redact import host_label
from . import fmt_cost, fmt_ms, fmt_tokens, plural
from .fit import LATE, Alt, Col, fit_table

EST = "~"  # before a figure built on estimated tokens


def est(text: str, estimated: bool) -> str:
    return EST + text if estimated and text[:1] not in ("", "–", "?") else text


def pair(a: str, b: str, estimated: bool, sep: str = "/") -> str:
    """"1,234/567", each figure marked when they are estimates: "~1,234/~567"."""
    return f"{est(a, estimated)}{sep}{est(b, estimated)}"


def tokens_cell(n_in: int | None, n_out: int | None, estimated: bool = False) -> Alt:
    """"1,234/567" (narrow: "1.2K/567"); "?" for a count the server did not give."""
    def fmt(n: int | None, short: bool) -> str:
        if n is None:
            return "?"
        return fmt_tokens(n) if short and n >= 1000 else f"{n:,}"

    return Alt(pair(fmt(n_in, False), fmt(n_out, False), estimated), pair(fmt(n_in, True), fmt(n_out, True), estimated))


def cost_cell(cost: float | None, local: bool, estimated: bool = False) -> Alt:
    """A cost, `~` when it prices estimated tokens; "$0 (local)" narrows to "$0 local"."""
    text = est(fmt_cost(cost, local), estimated and not local)  # local calls are priced by time
    return Alt(text, text.replace(" (local)", " local").replace("price unknown", "unknown"))


# --- runner log ---------------------------------------------------------------------------------


def log_table(runs: list[dict[str, Any]], is_local, width: int):
    """The latest runs, oldest first; a failed run shows the last model it tried."""
    cols = [
        Col("id", drop=LATE + 1),
        Col("time", "left"),
        Col("task", "left"),
        Col("model", "left", name=True),
        Col("outcome", "left", short="out"),
        Col("first token", short="first", drop=LATE + 2),
        Col("total"),
        Col("tokens in/out", short="tokens", drop=3),
        Col("cost", drop=2),
        Col("prompt", "left", text=True, drop=4),
    ]
    rows = []
    for r in reversed(runs):
        ok = r["outcome"] == "ok"
        estimated = bool(r.get("tokens_estimated"))
        outcome = Text("ok", style="green") if ok else Text(r["outcome"], style="red" if r["outcome"] == "failed" else "yellow")
        time = (r["time"] or "")[:19].replace("T", " ")
        rows.append([
            str(r["id"]), Alt(time, time[5:16]), r["task"] or "", r["model"] or "–", outcome,
            fmt_ms(r["ttft_ms"]), fmt_ms(r["latency_ms"]),
            tokens_cell(r["input_tokens"], r["output_tokens"], estimated) if ok else "",
            cost_cell(r["cost_usd"], is_local(r["model"]), estimated) if r["cost_usd"] is not None or ok else "",
            " ".join((r["prompt"] or "").split()),
        ])
    return fit_table(cols, rows, width)


# --- runner stats -------------------------------------------------------------------------------


def stats_table(summary: dict[str, Any], width: int):
    cols = [
        Col("model", "left", name=True),
        Col("calls"),
        Col("failed", short="fail"),
        Col("p50 first token", short="p50\nfirst", drop=3),
        Col("p50 total", short="p50\ntotal"),
        Col("p95 total", short="p95\ntotal", drop=LATE + 2),
        Col("tok/s", drop=LATE + 1),
        Col("tokens in/out", short="tokens\nin/out", drop=2),
        Col("cost"),
    ]
    rows = []
    for m in summary["models"]:
        answered = m["calls"] > m["failed"]
        share = m.get("estimated_share") or {}
        rows.append([
            m["model"], f"{m['calls']:,}", f"{m['failed']:,}", fmt_ms(m["p50_ttft_ms"]), fmt_ms(m["p50_latency_ms"]),
            fmt_ms(m["p95_latency_ms"]), f"{m['tokens_per_s']:.1f}" if m["tokens_per_s"] else "–",
            tokens_cell(m["input_tokens"], m["output_tokens"], bool(share.get("tokens"))) if answered else "–",
            cost_cell(m["cost_usd"], m["local"], bool(share.get("cost_usd"))),
        ])
    return fit_table(cols, rows, width)


def hosts_table(summary: dict[str, Any], width: int):
    """`runner stats --by host`: a row per server that took calls (each machine of a pool)."""
    cols = [
        Col("host", "left"),
        Col("calls"),
        Col("failed", short="fail"),
        Col("p50 first token", short="p50\nfirst", drop=3),
        Col("p50 total", short="p50\ntotal"),
        Col("p95 total", short="p95\ntotal", drop=2),
        Col("tok/s"),
        Col("tokens in/out", short="tokens\nin/out", drop=4),
        Col("models", "left", wrap=True, drop=5),
    ]
    rows = []
    for h in summary["hosts"]:
        answered = h["calls"] > h["failed"]
        estimated = bool((h.get("estimated_share") or {}).get("tokens"))
        rows.append([
            host_label(h["host"]), f"{h['calls']:,}", f"{h['failed']:,}", fmt_ms(h["p50_ttft_ms"]),
            fmt_ms(h["p50_latency_ms"]), fmt_ms(h["p95_latency_ms"]),
            f"{h['tokens_per_s']:.1f}" if h["tokens_per_s"] else "–",
            tokens_cell(h["input_tokens"], h["output_tokens"], estimated) if answered else "–",
            ", ".join(h["models"]),
        ])
    return fit_table(cols, rows, width)


def stats_lines(summary: dict[str, Any]) -> list[str]:
    """The sentences under the table: total spent, what local runs saved, what is estimated."""
    share = summary.get("estimated_share") or {}
    total = est(fmt_cost(summary["total_cost_usd"]), bool(share.get("cost_usd")))
    unknown = summary["unknown_cost_calls"]
    lines = [f"Total spent: {total}" + (f" (+ {plural(unknown, 'call')} of unknown price)" if unknown else "")]
    saved = summary["local_savings"]
    if saved["calls"]:
        guessed = bool(saved.get("estimated_calls"))
        n_in, n_out = est(f"{saved['input_tokens']:,}", guessed), est(f"{saved['output_tokens']:,}", guessed)
        lines.append(f"Local runs: {plural(saved['calls'], 'call')}, {n_in} in / {n_out} out tokens; on "
                     f"{saved['versus']} that would have cost {est(fmt_cost(saved['versus_cost_usd']), guessed)}.")
    if summary.get("estimated_calls"):
        lines.append(f"~ marks estimates: {plural(summary['estimated_calls'], 'call')} got no token counts from the "
                     f"server ({share.get('tokens', 0):.0%} of tokens, {share.get('cost_usd', 0):.0%} of cost).")
    return lines

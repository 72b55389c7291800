"""Terminal output: streamed answers, footers, routing explanations. Decides nothing."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .backends import TextDelta, ThinkingDelta
from .execute import AttemptResult
from .router import RoutePlan, fmt_tokens

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def fmt_cost(cost: float | None, local: bool = False) -> str:
    """A cost in US dollars: the one formatter every command uses. None is "price unknown",
    never a made-up $0; exactly 0 is "$0" ("$0 (local)" for a local model); a small cost keeps
    at least two significant digits, so it never reads as free: $0.000011, $0.0123, $1.23."""
    if cost is None:
        return "price unknown"
    if cost == 0:
        return "$0 (local)" if local else "$0"
    if cost < 0:
        return "-" + fmt_cost(-cost)
    if round(cost, 4) >= 1:
        return f"${cost:,.2f}"
    if cost < 1e-9:
        return "<$0.000000001"
    import math

    digits = max(4, 1 - math.floor(math.log10(cost)))  # four decimals, or two significant digits
    whole, _, frac = f"{cost:.{digits}f}".partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(4, '0')}"


class StreamPrinter:
    """Writes the answer to stdout as it arrives, thinking dimmed on stderr, notices on stderr.

    An attempt can fail after part of its answer was shown (an error mid-stream), and the next
    attempt starts over. On a terminal the partial text stays on screen, marked as discarded;
    into a pipe or file, each attempt's text is held until it succeeds, so what a script
    reads is exactly one complete answer.
    """

    def __init__(self, show_thinking: bool = True, hold: bool | None = None) -> None:
        self.show_thinking = show_thinking
        self.hold = (not sys.stdout.isatty()) if hold is None else hold
        self.held: list[str] = []
        self.shown = False  # text of the current attempt is on screen
        self.mid_line = False
        self.thinking_open = False

    def on_event(self, ref: str, event: Any) -> None:
        if isinstance(event, ThinkingDelta) and self.show_thinking:
            err.print(Text(event.text, style="dim italic"), end="")
            self.thinking_open = True
        elif isinstance(event, TextDelta):
            if self.thinking_open:
                err.print()
                self.thinking_open = False
            if self.hold:
                self.held.append(event.text)
                return
            self._write(event.text)
            self.shown = True

    def on_attempt(self, att: AttemptResult) -> None:
        if att.outcome == "ok":
            if self.held:
                self._write("".join(self.held))
            self.held.clear()
            self.shown = False
            return
        self.held.clear()
        self.end_line()
        discarded = " (the partial answer above is discarded)" if self.shown else ""
        self.shown = False
        err.print(f"[yellow]✗ {att.model} failed:[/] {_esc(att.error or 'failed')}{discarded}")

    def _write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        self.mid_line = not text.endswith("\n")

    def progress(self, message: str) -> None:
        """Long-document progress ("chunk 3 of 8 done"), on stderr between the answer's lines."""
        self.end_line()
        err.print(f"[dim]… {_esc(message)}[/]")

    def end_line(self) -> None:
        if self.thinking_open:
            err.print()
            self.thinking_open = False
        if self.mid_line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.mid_line = False


def footer(att: AttemptResult, total_cost: float | None, local: bool) -> str:
    tokens = f"{att.input_tokens if att.input_tokens is not None else '?'} in / {att.output_tokens if att.output_tokens is not None else '?'} out"
    if att.tokens_estimated:
        tokens += " (estimated)"
    tps = f"{att.tokens_per_s:.1f} tok/s" if att.tokens_per_s else "– tok/s"
    parts = [att.model, f"first token {fmt_ms(att.ttft_ms)}", f"total {fmt_ms(att.latency_ms)}", tokens, tps,
             fmt_cost(total_cost, local)]
    return " · ".join(parts)


def explain(plan: RoutePlan, estimate_note: str = "", split: Any = None, split_error: str | None = None) -> None:
    need = plan.need
    out.print(f"[bold]task[/] {plan.task} · prompt ~{fmt_tokens(need.input_tokens)} tokens "
              f"(±{need.margin:.0%}) + up to {fmt_tokens(need.output_tokens)} output{estimate_note}")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("")
    table.add_column("model")
    table.add_column("context", justify="right")
    table.add_column("est. input", justify="right")
    table.add_column("est. cost", justify="right")
    table.add_column("decision")
    for i, a in enumerate(plan.attempts, 1):
        ctx = fmt_tokens(a.context) if a.context else "?"
        extra = f" (num_ctx {a.backend_options['num_ctx']:,})" if "num_ctx" in a.backend_options else ""
        table.add_row(f"[green]{i}[/]", a.ref, ctx, _est_note(need, a.ref), fmt_cost(a.est_cost_usd, a.local),
                      "fits: " + ("try first" if i == 1 else "fallback") + extra)
    for s in plan.skipped:
        ctx = fmt_tokens(s.context) if getattr(s, "context", None) else ""
        table.add_row("[red]✗[/]", s.ref, ctx, _est_note(need, s.ref), "",
                      ("too long: " if s.too_small else "skip: ") + _esc(s.reason))
    out.print(table)
    if split is not None:
        out.print(f"[bold]split[/] into {split.n} chunks of ≤ {fmt_tokens(split.budget)} tokens for {split.ref} "
                  f"({fmt_tokens(split.window)} window), then combine the {split.n} partial answers"
                  + (f" · est. {fmt_cost(split.est_cost_usd, split.plans[0].attempts[0].local)}" if split.plans else ""))
        for note in split.skipped:
            out.print(f"  [dim]not split for {_esc(note)}[/]")
    elif plan.too_long:
        why = f": {split_error}" if split_error else " (the task's profile says too_long: fail)"
        out.print(f"[red]too long for every candidate[/], and not split{_esc(why)}")


def _est_note(need: Any, ref: str) -> str:
    est = need.per_model.get(ref) if getattr(need, "per_model", None) else None
    if est is None:
        return f"~{fmt_tokens(need.input_tokens)}"
    note = f"~{fmt_tokens(est.tokens)}"
    if est.factor is not None:
        note += f" (×{est.factor:.2f} learned)"
    return note


def explain_json(plan: RoutePlan, split: Any = None, split_error: str | None = None) -> dict[str, Any]:
    need = plan.need
    candidates = [
        {"model": a.ref, "context": a.context, "est_input_tokens": need.input_for(a.ref), "fits": True,
         "decision": "try first" if i == 0 else "fallback"}
        for i, a in enumerate(plan.attempts)
    ] + [
        {"model": s.ref, "context": getattr(s, "context", None), "est_input_tokens": need.input_for(s.ref),
         "fits": False if s.too_small else None, "decision": "skip: " + s.reason}
        for s in plan.skipped
    ]
    split_json = None
    if split is not None:
        split_json = {"model": split.ref, "chunks": split.n, "window": split.window, "chunk_budget_tokens": split.budget,
                      "chunk_tokens": [c.tokens for c in split.chunks], "est_cost_usd": split.est_cost_usd,
                      "parts": [c.label() for c in split.chunks]}
    return {
        "candidates": candidates,
        "split": split_json,
        "split_error": split_error,
        "task": plan.task,
        "estimate": {"input_tokens": plan.need.input_tokens, "margin": plan.need.margin,
                     "low": int(plan.need.input_tokens * (1 - plan.need.margin)), "high": plan.need.input_high,
                     "output_tokens": plan.need.output_tokens},
        "attempts": [
            {"model": a.ref, "context": a.context, "est_cost_usd": a.est_cost_usd, "local": a.local,
             "options": a.options, "backend_options": a.backend_options}
            for a in plan.attempts
        ],
        "skipped": [{"model": s.ref, "reason": s.reason} for s in plan.skipped],
        "too_long": plan.too_long,
    }


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)

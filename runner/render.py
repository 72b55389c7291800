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
    if cost is None:
        return "price unknown"
    if cost == 0:
        return "$0 (local)" if local else "$0"
    return f"${cost:.4f}" if cost < 1 else f"${cost:.2f}"


class StreamPrinter:
    """Writes the answer to stdout as it arrives, thinking dimmed on stderr, notices on stderr."""

    def __init__(self, show_thinking: bool = True) -> None:
        self.show_thinking = show_thinking
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
            sys.stdout.write(event.text)
            sys.stdout.flush()
            self.mid_line = not event.text.endswith("\n")

    def on_attempt(self, att: AttemptResult) -> None:
        if att.outcome == "ok":
            return
        self.end_line()
        err.print(f"[yellow]✗ {att.model} failed:[/] {_esc(att.error or 'failed')}")

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


def explain(plan: RoutePlan, estimate_note: str = "") -> None:
    need = plan.need
    out.print(f"[bold]task[/] {plan.task} · prompt ~{fmt_tokens(need.input_tokens)} tokens "
              f"(±{need.margin:.0%}) + up to {fmt_tokens(need.output_tokens)} output{estimate_note}")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("")
    table.add_column("model")
    table.add_column("context", justify="right")
    table.add_column("est. cost", justify="right")
    table.add_column("decision")
    for i, a in enumerate(plan.attempts, 1):
        ctx = fmt_tokens(a.context) if a.context else "?"
        extra = f" (num_ctx {a.backend_options['num_ctx']:,})" if "num_ctx" in a.backend_options else ""
        table.add_row(f"[green]{i}[/]", a.ref, ctx, fmt_cost(a.est_cost_usd, a.local),
                      "try first" + extra if i == 1 else "fallback" + extra)
    for s in plan.skipped:
        table.add_row("[red]✗[/]", s.ref, "", "", f"skip: {_esc(s.reason)}")
    out.print(table)


def explain_json(plan: RoutePlan) -> dict[str, Any]:
    return {
        "task": plan.task,
        "estimate": {"input_tokens": plan.need.input_tokens, "margin": plan.need.margin,
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

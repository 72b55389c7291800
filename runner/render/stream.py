"""An answer as it arrives (stdout), thinking and notices (stderr), and the footer."""

from __future__ import annotations

import sys
from typing import Any

from rich.text import Text

from ..backends import TextDelta, ThinkingDelta
from ..meter import AttemptResult
from . import err, esc, fmt_cost, fmt_ms


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
        err.print(f"[yellow]✗ {att.model} failed:[/] {esc(att.error or 'failed')}{discarded}")

    def _write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        self.mid_line = not text.endswith("\n")

    def progress(self, message: str) -> None:
        """Long-document progress ("chunk 3 of 8 done"), on stderr between the answer's lines."""
        self.end_line()
        err.print(f"[dim]… {esc(message)}[/]")

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

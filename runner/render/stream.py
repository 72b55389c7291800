"""An answer as it arrives (stdout), thinking and notices (stderr), and the footer.

The answer and the footer are written without rich: a plain `runner ask` then never imports it
(~30 ms before the first word); thinking, notices and errors use the rich console."""

from __future__ import annotations

import os
import sys
from typing import Any

from ..backends import TextDelta, ThinkingDelta
from ..meter import AttemptResult
from . import esc, fmt_cost, fmt_ms


def _err():
    from . import err

    return err


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
            from rich.text import Text

            _err().print(Text(event.text, style="dim italic"), end="")
            self.thinking_open = True
        elif isinstance(event, TextDelta):
            if self.thinking_open:
                _err().print()
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
        _err().print(f"[yellow]✗ {att.model} failed:[/] {esc(att.error or 'failed')}{discarded}")

    def _write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        self.mid_line = not text.endswith("\n")

    def progress(self, message: str) -> None:
        """Long-document progress ("chunk 3 of 8 done"), on stderr between the answer's lines."""
        self.end_line()
        _err().print(f"[dim]… {esc(message)}[/]")

    def end_line(self) -> None:
        if self.thinking_open:
            _err().print()
            self.thinking_open = False
        if self.mid_line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.mid_line = False


def dim_line(text: str) -> None:
    """One line on stderr, dimmed on a terminal that takes colour (as rich would: NO_COLOR and a
    dumb terminal turn it off)."""
    styled = sys.stderr.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    sys.stderr.write(f"\x1b[2m{text}\x1b[0m\n" if styled else text + "\n")
    sys.stderr.flush()


def footer(att: AttemptResult, total_cost: float | None, local: bool) -> str:
    """One line: model, times, tokens, cost; `~` marks figures built on estimated tokens (the
    server sent no counts), and an answer cut at the output limit says so."""
    guessed = att.tokens_estimated

    def count(n: int | None) -> str:
        return "?" if n is None else ("~" if guessed else "") + str(n)

    tokens = f"{count(att.input_tokens)} in / {count(att.output_tokens)} out"
    tps = f"{att.tokens_per_s:.1f} tok/s" if att.tokens_per_s else "– tok/s"
    cost = fmt_cost(total_cost, local)
    if guessed and not local and total_cost is not None:  # local calls are priced by time
        cost = "~" + cost
    parts = [att.model, f"first token {fmt_ms(att.ttft_ms)}", f"total {fmt_ms(att.latency_ms)}", tokens, tps, cost]
    if att.finish_reason == "length":
        parts.append("stopped at max tokens")
    return " · ".join(parts)

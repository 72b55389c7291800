"""What people read: the consoles and the formatters every renderer shares. Decides nothing.

`stream` — an answer as it arrives and its footer; `explain` — a routing decision; `batch` —
batch progress and summary; `compare_*` — a comparison in the terminal, JSON, Markdown, HTML."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..tokens import fmt_tokens  # noqa: F401 - re-exported: renderers format token counts with it


def __getattr__(name: str) -> Any:
    """`out` and `err`, the rich consoles, made on first use: an answer streams to stdout before
    anything needs rich (~30 ms of imports), and a plain `runner ask` never does."""
    if name in ("out", "err"):
        from rich.console import Console

        globals().update(out=Console(highlight=False, soft_wrap=True),
                         err=Console(stderr=True, highlight=False, soft_wrap=True))
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def esc(text: str) -> str:
    """Text shown through rich markup, with its own brackets kept literal."""
    from rich.markup import escape

    return escape(text)


def fmt_count(v) -> str:
    """12,345 — or "?" where a count is unknown."""
    return f"{v:,}" if isinstance(v, int) else "?"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def meta_line(report) -> str:
    """A comparison's one-line summary, for the Markdown and HTML reports."""
    comp = report.comparison
    parts = [comp.time[:19].replace("T", " ") + " UTC", plural(len(comp.prompts), "prompt"),
             plural(len(comp.columns), "column"), f"total cost {fmt_cost(report.total_cost_usd)}"]
    if report.failures:
        parts.append(f"{report.failures} failed")
    if report.judge is not None:
        parts.append(f"judge {report.judge.model}: {fmt_cost(report.judge.cost_usd)} (separate)")
    return " · ".join(parts)

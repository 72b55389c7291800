"""Terminal widths in tests: the consoles read COLUMNS once, when first imported."""

from __future__ import annotations

import re

from rich.cells import cell_len


def set_width(monkeypatch, width: int) -> None:
    """COLUMNS for consoles made from now on, and the width of the two already made."""
    from runner import render

    monkeypatch.setenv("COLUMNS", str(width))
    for console in (render.out, render.err):
        monkeypatch.setattr(console, "_width", width)


def assert_fits(text: str, width: int) -> None:
    too_long = [line for line in text.splitlines() if cell_len(line) > width]
    assert not too_long, f"{len(too_long)} lines wider than {width}:\n" + "\n".join(too_long)


def distinct(text: str, models: list[str]) -> None:
    """Each model can be told apart: its name after the provider is whole on some line (not cut,
    not only a prefix of a longer name)."""
    for ref in models:
        part = ref.partition("/")[2]
        assert re.search(rf"(?<![\w.:-]){re.escape(part)}(?![\w.:-])", text), f"{ref} is not readable in:\n{text}"

"""Tables that read well at any width: what every table of the CLI is built with.

A table first tries its full form; when that is wider than the terminal it uses shorter headers
and cells (`Alt`), then narrower gaps, then leaves out the columns that matter least
(`Col.drop`), and only then wraps model names after their provider ("anthropic/" over
"claude-sonnet-4-6") and cuts free text with "…". A model name is never cut, so every row stays
distinct, and no column holding a model is ever left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

LATE = 10  # drop ranks below this go only after the model names are wrapped
TEXT_MIN = 10  # a free-text column keeps at least this many cells
WRAP_MIN = 12  # and a column of prose this many


@dataclass
class Col:
    header: str
    justify: str = "right"
    short: str | None = None  # the header when space is short; may hold "\n" for two lines
    drop: int = 0  # 0: always shown; else left out when narrow, the highest first
    name: bool = False  # holds model names (one a line): wrapped after "provider/", never cut
    text: bool = False  # free text (a prompt): cut with "…" to what is left
    wrap: bool = False  # prose (a reason, a description): wrapped at spaces to what is left


@dataclass
class Alt:
    """A cell with a shorter form for the narrow layout."""

    long: Any
    short: Any


def _pick(cell: Any, narrow: bool) -> Any:
    if isinstance(cell, Alt):
        return cell.short if narrow else cell.long
    return cell


def _plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell if cell is not None else "")


def width_of(cell: Any) -> int:
    return max((cell_len(line) for line in _plain(cell).split("\n")), default=0)


def name_min(cell: Any) -> int:
    """The narrowest model names can be without cutting them: a provider or a model part."""
    least = 0
    for line in _plain(cell).split("\n"):
        provider, sep, rest = line.partition("/")
        least = max(least, max(cell_len(provider + sep), cell_len(rest)) if sep else cell_len(line))
    return least


def wrap_name(cell: Any, width: int) -> Any:
    """Each model name wider than `width` on two lines, after its provider."""
    plain = _plain(cell)
    if width_of(plain) <= width or "/" not in plain:
        return cell
    text = cell if isinstance(cell, Text) else Text(plain)
    parts, pos = [], 0
    for line in plain.split("\n"):
        k = line.find("/") + 1
        if cell_len(line) > width and k:
            parts += [text[pos:pos + k], Text("\n"), text[pos + k:pos + len(line)]]
        else:
            parts.append(text[pos:pos + len(line)])
        parts.append(Text("\n"))
        pos += len(line) + 1
    return Text.assemble(*parts[:-1])


@dataclass
class Layout:
    active: list[int]
    narrow: bool
    gap: int
    widths: dict[int, int]

    def total(self) -> int:
        return sum(self.widths[i] for i in self.active) + self.gap * max(0, len(self.active) - 1)


def layout(cols: Sequence[Col], rows: Sequence[Sequence[Any]], width: int) -> Layout:
    def natural(i: int, narrow: bool) -> int:
        header = cols[i].short if narrow and cols[i].short else cols[i].header
        return max([width_of(header)] + [width_of(_pick(r[i], narrow)) for r in rows])

    def least(i: int) -> int:
        header = width_of(cols[i].short or cols[i].header)
        if cols[i].name:
            return max([header] + [name_min(_pick(r[i], True)) for r in rows])
        if cols[i].wrap:  # its longest word fits, so words are not split
            words = max((cell_len(w) for r in rows for w in _plain(_pick(r[i], True)).split()), default=0)
            return min(natural(i, True), max(header, WRAP_MIN, words))
        if cols[i].text:
            return min(natural(i, True), max(header, TEXT_MIN))
        return natural(i, True)

    def plain(active: list[int], narrow: bool, gap: int) -> Layout:
        # Free text never pushes another column out: it takes the room the others leave.
        widths = {i: least(i) if cols[i].text else natural(i, narrow) for i in active}
        return _grow(Layout(list(active), narrow, gap, widths), width, lambda i: natural(i, narrow), cols)

    every = list(range(len(cols)))
    for narrow, gap in ((False, 2), (True, 2), (True, 1)):
        lay = plain(every, narrow, gap)
        if lay.total() <= width:
            return lay
    active = list(every)
    droppable = sorted((i for i in every if cols[i].drop and not cols[i].name), key=lambda i: -cols[i].drop)
    for i in [i for i in droppable if cols[i].drop >= LATE]:
        active.remove(i)
        lay = plain(active, True, 1)
        if lay.total() <= width:
            return lay
    lay = _squeezed(active, width, natural, least, cols)
    for i in [i for i in droppable if cols[i].drop < LATE]:
        if lay.total() <= width:
            break
        active.remove(i)
        lay = _squeezed(active, width, natural, least, cols)
    return lay


def _grow(lay: Layout, width: int, natural, cols: Sequence[Col], kinds=("name", "wrap", "text")) -> Layout:
    """Give the room left to the flexible columns, names first, up to their natural width."""
    room = width - lay.total()
    for kind in kinds:
        for i in [i for i in lay.active if getattr(cols[i], kind)]:
            grow = min(max(0, room), natural(i) - lay.widths[i])
            lay.widths[i] += max(0, grow)
            room -= max(0, grow)
    return lay


def _squeezed(active: list[int], width: int, natural, least, cols: Sequence[Col]) -> Layout:
    """Fixed columns at their width; names, prose and text share what is left, in that order."""
    lay = Layout(list(active), True, 1, {i: least(i) for i in active})
    return _grow(lay, width, lambda i: natural(i, True), cols)


def fits(cols: Sequence[Col], rows: Sequence[Sequence[Any]], width: int) -> bool:
    """Whether every column fits whole (free text may be cut), at full or shortened form."""
    lay = layout(cols, rows, width)
    return len(lay.active) == len(cols) and all(
        lay.widths[i] >= max([width_of(_pick(r[i], lay.narrow)) for r in rows] + [0])
        for i in lay.active if not cols[i].text) and lay.total() <= width


def fit_table(cols: Sequence[Col], rows: Sequence[Sequence[Any]], width: int, **table_options: Any) -> Table:
    """A rich Table of `rows` that fits in `width` cells (see the module's docstring)."""
    lay = layout(cols, rows, width)
    options = {"box": None, "header_style": "bold", "pad_edge": False, "show_edge": False}
    options.update(table_options)
    table = Table(padding=(0, 0, 0, lay.gap), collapse_padding=False, **options)
    for i in lay.active:
        col = cols[i]
        header = col.short if lay.narrow and col.short else col.header
        table.add_column(header, justify=col.justify, width=lay.widths[i], no_wrap=not (col.name or col.wrap),
                         overflow="fold" if col.name or col.wrap else "ellipsis")
    for r in rows:
        cells = []
        for i in lay.active:
            cell = _pick(r[i], lay.narrow)
            if cols[i].name:
                cell = wrap_name(cell, lay.widths[i])
            cells.append(cell if isinstance(cell, Text) else Text(_plain(cell)))
        table.add_row(*cells)
    return table

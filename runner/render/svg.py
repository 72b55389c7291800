"""Horizontal bar charts as inline SVG, drawn in Python: no JavaScript, no library, no network.

Each row's label sits above its bars, so the chart stays legible when a phone scales it down.
Every text is XML-escaped; colours are fixed per series (the HTML report's legend uses them too).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

WIDTH = 400
LEFT = 4
RIGHT_ROOM = 84  # room after the longest bar for its value label
BAR_H = 14
BAR_GAP = 3
LABEL_H = 17
ROW_GAP = 10
LEGEND_H = 24


@dataclass(frozen=True)
class Series:
    name: str
    color: str


@dataclass
class Bar:
    value: float | None  # None: no bar, only `text` (e.g. "price unknown", "failed")
    text: str
    whisker: float | None = None  # e.g. the p95 at the end of a p50 bar


@dataclass
class Row:
    label: str
    bars: list[Bar]


def bar_chart(title: str, series: list[Series], rows: list[Row], *, css_class: str = "chart") -> str:
    top = LEGEND_H if len(series) > 1 else 6
    group_h = LABEL_H + len(series) * (BAR_H + BAR_GAP) + ROW_GAP
    height = top + max(1, len(rows)) * group_h
    peak = max([b.value for r in rows for b in r.bars if b.value is not None]
               + [b.whisker for r in rows for b in r.bars if b.whisker is not None] + [0.0])
    span = WIDTH - LEFT - RIGHT_ROOM
    out = [f'<svg class="{css_class}" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
           f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    if len(series) > 1:
        x = LEFT
        for s in series:
            out.append(f'<rect class="legend" x="{x}" y="5" width="12" height="12" rx="2" fill="{s.color}"/>')
            out.append(f'<text x="{x + 17}" y="15" class="legend-text">{escape(s.name)}</text>')
            x += 24 + 8 * len(s.name)
    y = top
    for row in rows:
        out.append(f'<text x="{LEFT}" y="{y + 12}" class="row-label">{escape(row.label)}</text>')
        by = y + LABEL_H
        for s, bar in zip(series, row.bars):
            w = 0.0 if not bar.value or peak <= 0 else max(2.0, span * bar.value / peak)
            if bar.value is not None:
                out.append(f'<rect class="bar" x="{LEFT}" y="{by}" width="{w:.1f}" height="{BAR_H}" rx="2" '
                           f'fill="{s.color}"><title>{escape(s.name)}: {escape(bar.text)}</title></rect>')
            tx = LEFT + w + 6
            if bar.whisker is not None and peak > 0:
                wx = LEFT + span * bar.whisker / peak
                out.append(f'<line class="whisker" x1="{LEFT + w:.1f}" x2="{wx:.1f}" y1="{by + BAR_H / 2}" '
                           f'y2="{by + BAR_H / 2}" stroke="{s.color}" stroke-width="1.5"/>')
                out.append(f'<line class="whisker" x1="{wx:.1f}" x2="{wx:.1f}" y1="{by + 2}" y2="{by + BAR_H - 2}" '
                           f'stroke="{s.color}" stroke-width="1.5"/>')
                tx = max(tx, wx + 6)
            out.append(f'<text x="{tx:.1f}" y="{by + BAR_H - 3}" class="value">{escape(bar.text)}</text>')
            by += BAR_H + BAR_GAP
        y += group_h
    out.append("</svg>")
    return "".join(out)

"""Cutting documents on their structure: each document that doesn't fit is cut at the strongest
boundary near the size the chosen model can take — a PDF page, a Markdown heading, a blank line,
a line, a sentence, a space; a hard cut only inside a run with none of these. Every cut is found
by a regex search in one window of the text, and each chunk is counted once more to check it
fits: linear in the document's size, no per-character Python loop.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from ..estimate import Estimator, document_tag
from ..tokens import TextStats, text_stats
from .prompts import MAP_INSTRUCTIONS

# Cut points, strongest first. Each is searched only inside the window where a cut may fall.
_HEADING = re.compile(r"\n(?=#{1,6}[ \t])")  # before a Markdown heading (HTML headings become these)
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*[ \t]+|[\u3002\uff01\uff1f\uff0e][\u300d\u300f\uff09]*")
_CLAUSE = re.compile(r"[,;:\u3001\uff0c\uff1b][ \t]*")
_SPACE = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Piece:
    """A whole document, or one part of a document that was split."""

    name: str
    text: str
    stats: TextStats
    tokens: int  # for the chosen model, tags included
    part: tuple[int, int] | None = None  # (k, m): part k of m of this document
    pages: tuple[int, int] | None = None  # PDF pages (1-based, inclusive)

    def attrs(self) -> str:
        out = ""
        if self.part:
            out += f' part="{self.part[0]} of {self.part[1]}"'
        if self.pages:
            a, b = self.pages
            out += f' pages="{a}"' if a == b else f' pages="{a}-{b}"'
        return out

    def render(self) -> str:
        head, tail = document_tag(self.name, self.attrs())
        return head + self.text.strip("\n") + tail

    def label(self) -> str:
        where = self.name
        if self.pages:
            a, b = self.pages
            where += f" p. {a}" if a == b else f" pp. {a}-{b}"
        elif self.part:
            where += f" part {self.part[0]}/{self.part[1]}"
        return where


@dataclass
class Chunk:
    pieces: list[Piece]
    tokens: int = 0  # documents only, for the chosen model

    def label(self) -> str:
        names = [p.label() for p in self.pieces]
        return names[0] if len(names) == 1 else f"{names[0]} … {names[-1]} ({len(names)} documents)"

    def content(self, i: int, n: int, prompt: str) -> str:
        docs = "\n\n".join(p.render() for p in self.pieces)
        return f"{docs}\n\n{MAP_INSTRUCTIONS.format(i=i, n=n)}\n\nQuestion: {prompt}"


# --- splitting ------------------------------------------------------------------------------


def _last_end(pattern: re.Pattern, text: str, lo: int, hi: int) -> int | None:
    end = None
    for m in pattern.finditer(text, lo, hi):
        end = m.end()
    return end


def find_cut(text: str, lo: int, hi: int, pages: tuple[int, ...] = ()) -> int:
    """Where to end a chunk that must end in (lo, hi]: the strongest boundary, latest first."""
    if pages:
        k = bisect_right(pages, hi) - 1
        if k >= 0 and pages[k] > lo:
            return pages[k]
    for pattern in (_HEADING, _PARAGRAPH, _LINE, _SENTENCE, _CLAUSE, _SPACE):
        end = _last_end(pattern, text, lo, hi)
        if end is not None and end > lo:
            return end
    return hi  # one unbroken run (a hash, a base64 blob): nothing better exists


def split_spans(text: str, tokens: int, target: int, pages: tuple[int, ...] = ()) -> list[tuple[int, int]]:
    """Cut `text` (about `tokens` tokens) into spans of about `target` tokens, on structure."""
    n = len(text)
    if tokens <= target or n < 2:
        return [(0, n)]
    per_char = tokens / n
    size = max(1, int(target / per_char))
    spans, pos = [], 0
    while n - pos > size:
        hi = pos + size
        cut = find_cut(text, pos + max(1, int(size * 0.6)), hi, pages)
        if cut <= pos:
            cut = hi
        spans.append((pos, cut))
        pos = cut
    spans.append((pos, n))
    return spans


def _pages_of(pages: tuple[int, ...], a: int, b: int) -> tuple[int, int] | None:
    if not pages:
        return None
    return bisect_right(pages, a) or 1, bisect_right(pages, max(a, b - 1)) or 1


def split_document(name: str, text: str, stats: TextStats, pages: tuple[int, ...], budget: int,
                   est: Estimator) -> list[Piece]:
    """A document as pieces of at most `budget` tokens (tags included) for `est`'s model."""
    head, tail = document_tag(name, ' part="00 of 00" pages="0000-0000"')
    tag = est(text_stats(head + tail)) + 2
    whole = est(stats) + tag
    if whole <= budget:
        return [Piece(name, text, stats, whole, None, _pages_of(pages, 0, len(text)) if pages else None)]
    room = budget - tag
    parts = -(-whole // room)
    target = min(room, int(whole / parts * 1.08))
    out: list[tuple[int, int, TextStats, int]] = []
    todo = [(0, len(text), whole, target)]
    while todo:
        a, b, tokens, tgt = todo.pop(0)
        sub = text[a:b]
        local_pages = tuple(p - a for p in pages[bisect_left(pages, a):bisect_left(pages, b)]) if pages else ()
        for x, y in split_spans(sub, tokens, tgt, local_pages):
            s = text_stats(sub[x:y])
            t = est(s) + tag
            if t > budget and y - x > 1:
                # Denser than the average (code in prose, a table of figures): cut finer.
                todo.insert(0, (a + x, a + y, t, max(1, int(tgt * room / t * 0.9))))
            else:
                out.append((a + x, a + y, s, t))
    out.sort(key=lambda r: r[0])
    m = len(out)
    return [Piece(name, text[a:b], s, t, (k, m), _pages_of(pages, a, b)) for k, (a, b, s, t) in enumerate(out, 1)]


def pack(pieces: list[Piece], budget: int) -> list[Chunk]:
    """Consecutive pieces into chunks of at most `budget` tokens (small files share a chunk)."""
    chunks: list[Chunk] = []
    cur: list[Piece] = []
    total = 0
    for p in pieces:
        if cur and total + p.tokens > budget:
            chunks.append(Chunk(cur, total))
            cur, total = [], 0
        cur.append(p)
        total += p.tokens
    if cur:
        chunks.append(Chunk(cur, total))
    return chunks



"""Split `<think>…</think>` out of streamed content (older Ollama servers and model pulls)."""

from __future__ import annotations

from .base import Event, TextDelta, ThinkingDelta

OPEN, CLOSE = "<think>", "</think>"


class ThinkTagSplitter:
    """Incremental: a tag may be cut across chunks, so a possible tag prefix is held back."""

    def __init__(self) -> None:
        self.inside = False
        self.pending = ""
        self.seen_text = False  # a <think> only counts before the answer starts

    def feed(self, chunk: str) -> list[Event]:
        data = self.pending + chunk
        self.pending = ""
        out: list[Event] = []
        while data:
            tag = CLOSE if self.inside else OPEN
            if not self.inside and self.seen_text:
                out.append(TextDelta(data))
                break
            idx = data.find(tag)
            if idx >= 0:
                self._emit(out, data[:idx])
                data = data[idx + len(tag):]
                self.inside = not self.inside
                if not self.inside:
                    data = data.lstrip("\n")
                continue
            keep = _partial_suffix(data, tag)
            self._emit(out, data[: len(data) - keep])
            self.pending = data[len(data) - keep:]
            break
        return out

    def flush(self) -> list[Event]:
        out: list[Event] = []
        self._emit(out, self.pending)
        self.pending = ""
        return out

    def _emit(self, out: list[Event], text: str) -> None:
        if not text:
            return
        if self.inside:
            out.append(ThinkingDelta(text))
        elif text.strip() or self.seen_text:
            self.seen_text = True
            out.append(TextDelta(text))


def _partial_suffix(data: str, tag: str) -> int:
    """Length of the longest suffix of data that is a proper prefix of tag."""
    for n in range(min(len(tag) - 1, len(data)), 0, -1):
        if data.endswith(tag[:n]):
            return n
    return 0

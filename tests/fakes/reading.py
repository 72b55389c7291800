"""Reading what the fakes send, for the tests that check their wire shapes."""

from __future__ import annotations

import json


def sse_data(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    out = []
    for event in text.replace("\r\n", "\n").split("\n\n"):
        for line in event.split("\n"):
            if line.startswith("data: "):
                out.append(line[6:])
    return out


def sse_events(text: str) -> list[tuple[str, dict]]:
    """(event name, parsed data) of each named SSE event."""
    out = []
    for event in text.split("\n\n"):
        name, data = None, None
        for line in event.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if name:
            out.append((name, data))
    return out

"""Times as the jobs file and the run log keep them: ISO 8601, UTC, milliseconds."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ...store import now_iso

__all__ = ["iso_from_unix", "ms_between", "now_iso", "parse_iso", "rfc3339"]


def iso_from_unix(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def rfc3339(text: Any) -> str | None:
    """A provider's RFC 3339 time ("2026-11-28T09:00:00.123456Z") in our form; None if unreadable."""
    when = parse_iso(text)
    return when.isoformat(timespec="milliseconds") if when else None


def parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    t = text.strip().replace("Z", "+00:00")
    # Python before 3.11 takes at most 6 fraction digits; Google sends 9.
    head, dot, rest = t.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        t = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        when = datetime.fromisoformat(t)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def ms_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_iso(start), parse_iso(end)
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds() * 1000.0)

"""What every backend shares: the call it receives, the events it yields, the errors it raises.

A backend knows its wire protocol and nothing else: no routing, pricing or storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, Union


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    first_token: float = 120.0  # first byte of the body; local models may need to load
    total: float = 900.0  # the whole call; enforced by the executor


@dataclass
class Call:
    """One request to one model, in provider-neutral form."""

    model: str  # the provider's own model name, without the "provider/" prefix
    messages: list[dict[str, str]]  # [{"role": "user"|"assistant", "content": "..."}]
    system: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    think: bool | str | None = None
    # Protocol-specific settings chosen by the router, e.g. {"num_ctx": 65536, "truncate": False}.
    backend_options: dict[str, Any] = field(default_factory=dict)
    # The runner's own estimate of the input, so a backend can spot a server that cut it.
    est_input_tokens: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass
class TextDelta:
    text: str


@dataclass
class ThinkingDelta:
    text: str


@dataclass
class Usage:
    input_tokens: int | None = None  # total input, cache reads included
    output_tokens: int | None = None  # total billed output, reasoning included
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int | None = None


@dataclass
class Done:
    usage: Usage
    finish_reason: str | None = None  # normalised: "stop", "length", or the provider's word
    metrics: dict[str, Any] = field(default_factory=dict)  # raw extras, e.g. Ollama durations


Event = Union[TextDelta, ThinkingDelta, Done]


class BackendError(Exception):
    """A failed call. `retryable` says whether trying the same model again may help."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # One of: connect, timeout, rate_limit, overloaded, server, auth, bad_request,
        # not_found, context, truncated, stream, blocked.
        self.kind = kind
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}


def error_from_status(status: int, message: str, retry_after: float | None = None) -> BackendError:
    """Map an HTTP status to the error taxonomy shared by all backends."""
    if status == 429:
        kind = "rate_limit"
    elif status == 529:
        kind = "overloaded"
    elif status in (401, 403):
        kind = "auth"
    elif status == 404:
        kind = "not_found"
    elif status == 413:
        kind = "context"
    elif status == 408:
        kind = "timeout"
    elif status >= 500 or status == 409:
        kind = "server"
    else:
        kind = "bad_request"
    return BackendError(
        f"HTTP {status}: {message}" if message else f"HTTP {status}",
        kind=kind,
        retryable=status in RETRYABLE_STATUS or status >= 500,
        status=status,
        retry_after=retry_after,
    )


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait, from `retry-after-ms`, then `retry-after` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    from datetime import datetime, timezone

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class Backend(Protocol):
    """One wire protocol. `stream` yields TextDelta/ThinkingDelta events, then exactly one Done.

    It raises BackendError for every failure, including one that arrives mid-stream; a stream
    that ends without the protocol's end marker is a failure, never a short answer.
    """

    def warm(self, timeouts: Timeouts) -> None:
        """Build clients and load modules now, so a metered call times the server, not our setup."""
        ...

    async def stream(self, call: Call) -> AsyncIterator[Event]: ...

    async def aclose(self) -> None: ...


def tls_context():
    """One TLS context for every client: building one loads the CA bundle (~40 ms each)."""
    global _TLS
    if _TLS is None:
        import ssl

        import certifi  # httpx's own CA bundle, so verification behaves exactly as its default

        _TLS = ssl.create_default_context(cafile=certifi.where())
    return _TLS


_TLS = None


def warm_http() -> None:
    """httpx defers some imports to its first request (httpcore's anyio backend); do them now."""
    try:
        import anyio

        anyio.Event()
    except Exception:  # only a warm-up: the real call reports any problem
        pass

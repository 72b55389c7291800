"""How a call fails, in one taxonomy every backend maps its protocol's errors to."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    """Why an attempt failed. Stored in the run log by value; the executor, the re-planner and
    the batch engine decide on these, never on message text."""

    CONNECT = "connect"  # nothing listening, DNS, TLS
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"  # 429: slow down
    OVERLOADED = "overloaded"  # 529 / "overloaded": try later or elsewhere
    SERVER = "server"  # 5xx
    AUTH = "auth"  # 401/403, a bad key
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"  # unknown model (Ollama: not pulled)
    CONTEXT = "context"  # the prompt is over the model's window: re-plan, never retry as is
    TRUNCATED = "truncated"  # the server cut the prompt and answered anyway
    STREAM = "stream"  # the stream broke or ended without the protocol's finish signal
    BLOCKED = "blocked"  # refused or filtered by the provider
    INTERNAL = "internal"  # a bug or an unforeseen reply on our side


RATE_LIMITED = (ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED)


class BackendError(Exception):
    """A failed call. `retryable` says whether trying the same model again may help."""

    def __init__(self, message: str, *, kind: ErrorKind, retryable: bool = False, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = ErrorKind(kind)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}


def error_from_status(status: int, message: str, retry_after: float | None = None) -> BackendError:
    """Map an HTTP status to the error taxonomy shared by all backends."""
    if status == 429:
        kind = ErrorKind.RATE_LIMIT
    elif status == 529:
        kind = ErrorKind.OVERLOADED
    elif status in (401, 403):
        kind = ErrorKind.AUTH
    elif status == 404:
        kind = ErrorKind.NOT_FOUND
    elif status == 413:
        kind = ErrorKind.CONTEXT
    elif status == 408:
        kind = ErrorKind.TIMEOUT
    elif status >= 500 or status == 409:
        kind = ErrorKind.SERVER
    else:
        kind = ErrorKind.BAD_REQUEST
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
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())

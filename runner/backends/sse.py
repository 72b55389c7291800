"""Server-sent events, and the HTTP plumbing the hosted backends share.

`parse_sse` turns lines into `(event, data)` pairs. `SSEClient` (an `HttpClient`: httpx, or the
gateway's aiohttp wire for streams) POSTs a request and turns every failure (transport error,
non-2xx status) into a `BackendError` whose message has the API key redacted.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
from typing import Any, AsyncIterable, AsyncIterator, Iterable

import httpx

from .base import Call
from .errors import BackendError, ErrorKind, error_from_status, parse_retry_after
from .http import JSON_CONTENT, HttpClient, http_timeout, json_body
from ..redact import redact

_NEWLINE = re.compile(r"\r\n|\r|\n")


async def sse_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """Split a UTF-8 byte stream into lines at CRLF, CR or LF only.

    Not `Response.aiter_lines()`: that also splits at U+2028, U+2029 and U+0085, which JSON
    allows unescaped inside strings, so model text containing them would corrupt a `data:` line.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        # A trailing CR may be the first half of a CRLF split across chunks: hold it back.
        hold_cr = pending.endswith("\r")
        if hold_cr:
            pending = pending[:-1]
        *lines, pending = _NEWLINE.split(pending)
        for line in lines:
            yield line
        if hold_cr:
            pending += "\r"
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending[:-1] if pending.endswith("\r") else pending


async def parse_sse(lines: AsyncIterable[str]) -> AsyncIterator[tuple[str, str]]:
    """Yield `(event, data)` per dispatched event; `event` is "message" when the server gave none.

    Follows the WHATWG event-stream rules: `data:` lines join with "\\n", `:` starts a comment,
    a blank line dispatches, an event with no data is dropped. Unlike the spec, a final event
    with no trailing blank line is still dispatched (some servers end the body right after it),
    and an `error:` line (llama.cpp) is yielded at once as `("error", value)`.
    """
    event = ""
    data: list[str] = []
    first = True
    async for line in lines:
        line = line.rstrip("\r\n")
        if first:
            line, first = line.removeprefix("\ufeff"), False
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "error":
            # Not SSE: llama.cpp's server reports a mid-stream failure as an `error: {...}` line.
            yield "error", value
        # id: and retry: are irrelevant for a single POST that we never resume.
    if data:
        yield event or "message", "\n".join(data)


DRAIN_TIMEOUT = 2.0


async def drain(events: AsyncIterator[Any]) -> None:
    """Read the rest of a finished stream so its connection can return to the pool.

    Servers end the body right after the end marker; one that does not costs DRAIN_TIMEOUT.
    Whatever arrives after the end marker, an error included, no longer matters.
    """
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT):
            async for _ in events:
                pass
    except (BackendError, TimeoutError):
        pass


# --- errors -----------------------------------------------------------------------------------

_CONTEXT_RE = re.compile(
    r"context[ _](length|window|size|limit)|maximum context|prompt is too long|too many (input )?tokens"
    r"|input token count.*exceed",
    re.IGNORECASE,
)

# Provider error types and codes (OpenAI `type`/`code`, Anthropic `error.type`, Google `status`).
_ERROR_TYPES: dict[str, tuple[str, bool]] = {
    "overloaded_error": (ErrorKind.OVERLOADED, True),
    "unavailable": (ErrorKind.OVERLOADED, True),
    "rate_limit_error": (ErrorKind.RATE_LIMIT, True),
    "rate_limit_exceeded": (ErrorKind.RATE_LIMIT, True),
    "resource_exhausted": (ErrorKind.RATE_LIMIT, True),
    "api_error": (ErrorKind.SERVER, True),
    "server_error": (ErrorKind.SERVER, True),
    "internal": (ErrorKind.SERVER, True),
    "internal_error": (ErrorKind.SERVER, True),
    "deadline_exceeded": (ErrorKind.TIMEOUT, True),
    "timeout_error": (ErrorKind.TIMEOUT, True),
    "authentication_error": (ErrorKind.AUTH, False),
    "permission_error": (ErrorKind.AUTH, False),
    "unauthenticated": (ErrorKind.AUTH, False),
    "permission_denied": (ErrorKind.AUTH, False),
    "invalid_api_key": (ErrorKind.AUTH, False),
    "not_found_error": (ErrorKind.NOT_FOUND, False),
    "not_found": (ErrorKind.NOT_FOUND, False),
    "model_not_found": (ErrorKind.NOT_FOUND, False),
    "request_too_large": (ErrorKind.CONTEXT, False),
    "context_length_exceeded": (ErrorKind.CONTEXT, False),
    "exceed_context_size_error": (ErrorKind.CONTEXT, False),  # llama.cpp
    "invalid_request_error": (ErrorKind.BAD_REQUEST, False),
    "invalid_argument": (ErrorKind.BAD_REQUEST, False),
}


def error_detail(body: Any) -> tuple[str, str | None, Any]:
    """`(message, type, code)` from a provider's error body (parsed JSON, or raw bytes/text).

    Handles `{"error": {...}}` (OpenAI, Anthropic, Google), `{"error": "..."}`, a bare
    `{"message", "type", "code"}` object (vLLM, llama.cpp, Mistral) and Google's list wrapper.
    """
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            body = json.loads(text)
        except ValueError:
            page = html_title(text)
            if page is not None:
                return f"{page} (an HTML error page: a proxy in front of the server?)", None, None
            return " ".join(text.split())[:500], None, None
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return str(body)[:500], None, None
    err = body.get("error", body)
    if isinstance(err, str):
        return err, None, None
    if not isinstance(err, dict):
        return json.dumps(body)[:500], None, None
    message = err.get("message") or err.get("detail") or ""
    if not isinstance(message, str):  # Mistral nests pydantic validation details here
        message = json.dumps(message)
    etype = err.get("type") or err.get("status")
    return message[:2000], str(etype) if etype else None, err.get("code")


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>|<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)


def html_title(text: str) -> str | None:
    """The title of an HTML page (nginx's "502 Bad Gateway"), or None when `text` is not one."""
    head = text.lstrip()[:200].lower()
    if not (head.startswith("<!doctype html") or head.startswith("<html") or "<body" in head):
        return None
    m = _TITLE.search(text)
    title = (m.group(1) or m.group(2) or "") if m else re.sub(r"<[^>]*>", " ", text)
    return " ".join(title.split())[:200] or "an HTML page"


def _is_context(etype: str | None, code: Any, message: str) -> bool:
    # The router reacts to "context" (try a bigger window), so find overflows hidden behind 400.
    names = {str(etype).lower(), str(code).lower()}
    return bool(names & {"context_length_exceeded", "exceed_context_size_error"}) or bool(
        _CONTEXT_RE.search(message)
    )


def load_json(data: str, secrets: Iterable[str | None] = ()) -> dict[str, Any]:
    """One event's JSON object; anything else means the stream is garbled."""
    try:
        obj = json.loads(data)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise BackendError(
            redact(f"malformed stream event: {data[:200]!r}", secrets), kind=ErrorKind.STREAM, retryable=True
        )
    return obj


def stream_error(body: Any, secrets: Iterable[str | None]) -> BackendError:
    """An error event that arrived after HTTP 200; retryable when it looks transient."""
    message, etype, code = error_detail(body)
    message = redact(message, secrets)
    if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
        mapped = error_from_status(int(code), "")  # Google, vLLM, llama.cpp: an HTTP-like status
        kind, retryable = mapped.kind, mapped.retryable
    else:
        kind, retryable = _ERROR_TYPES.get(str(code).lower()) or _ERROR_TYPES.get(
            str(etype).lower(), (None, False)
        )
    if not kind:
        text = f"{etype} {message}".lower()
        if "overload" in text:
            kind, retryable = ErrorKind.OVERLOADED, True
        elif "rate limit" in text or "rate_limit" in text or "too many requests" in text:
            kind, retryable = ErrorKind.RATE_LIMIT, True
        elif any(w in text for w in ("server", "internal", "unavailable", "timeout", "timed out")):
            kind, retryable = ErrorKind.SERVER, True
        else:
            kind, retryable = ErrorKind.STREAM, False
    if kind in (ErrorKind.BAD_REQUEST, ErrorKind.STREAM) and _is_context(etype, code, message):
        kind, retryable = ErrorKind.CONTEXT, False
    label = f"{etype}: " if etype else ""
    return BackendError(f"error mid-stream: {label}{message}", kind=kind, retryable=retryable)


def _retry_delay(content: bytes) -> float | None:
    """Google's wait hint: `error.details[].retryDelay` ("20s"), often sent without Retry-After."""
    try:
        body = json.loads(content)
        if isinstance(body, list):
            body = body[0]
        for detail in body["error"].get("details") or []:
            if isinstance(detail, dict) and str(detail.get("retryDelay", "")).endswith("s"):
                return max(0.0, float(detail["retryDelay"][:-1]))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        pass
    return None


def not_a_stream(resp: httpx.Response, where: str, secrets: Iterable[str | None]) -> BackendError:
    """A 2xx reply to a streamed request that is not an event stream (a proxy, a gateway)."""
    ctype = resp.headers.get("content-type", "").split(";")[0].strip()
    try:
        body = json.loads(resp.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("error") or body.get("object") == "error"):
        return stream_error(body, secrets)
    message, _, _ = error_detail(resp.content)
    return BackendError(redact(f"{where} answered a streamed request with {ctype}, not an event stream: "
                               f"{message[:200]}", secrets), kind=ErrorKind.STREAM)


def status_error(resp: httpx.Response, secrets: Iterable[str | None]) -> BackendError:
    """The BackendError for a non-2xx response whose body has been read."""
    message, etype, code = error_detail(resp.content)
    message = redact(message, secrets)
    retry_after = parse_retry_after(resp.headers)
    if retry_after is None:
        retry_after = _retry_delay(resp.content)
    err = error_from_status(resp.status_code, message, retry_after)
    if err.kind == ErrorKind.BAD_REQUEST and _is_context(etype, code, message):
        err.kind = ErrorKind.CONTEXT
    if resp.status_code == 404 and "model" not in message.lower():
        # Not an unknown model: nothing at that path, so the base URL is wrong.
        path = resp.request.url.path
        hint = " (OpenAI-compatible servers usually need /v1 at the end of base_url)" if "/v1" not in path else ""
        err.message += f" — nothing at {path}: check the provider's base_url{hint}"
    return err


# --- the client -------------------------------------------------------------------------------


class SSEClient(HttpClient):
    """SSE POSTs over the backend's shared client, every failure a redacted BackendError."""

    async def events(
        self,
        call: Call,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> AsyncIterator[tuple[str, str]]:
        """POST `body` as JSON to `url` and yield its SSE `(event, data)` pairs."""
        try:
            async with self.post_stream(url, json_body(body), {**headers, **JSON_CONTENT},
                                        http_timeout(call.timeouts)) as reply:
                if not reply.is_success:
                    raise status_error(await reply.response(), self.secrets)
                ctype = reply.headers.get("content-type", "")
                if "json" in ctype or "html" in ctype:
                    raise not_a_stream(await reply.response(), self.where, self.secrets)
                async for item in parse_sse(sse_lines(reply.chunks())):
                    yield item
        except httpx.HTTPError as exc:
            raise self.transport_error(exc, call.timeouts) from exc

    async def post_json(self, call: Call, url: str, body: dict[str, Any],
                        headers: dict[str, str]) -> dict[str, Any] | None:
        """POST `body` as JSON and return the JSON reply; None when the server has no such route
        (404/405: an endpoint this server does not offer). Other failures: a BackendError."""
        t = call.timeouts
        try:
            resp = await self.client().post(url, json=body, headers={**headers, "accept": "application/json"},
                                            timeout=httpx.Timeout(connect=t.connect, read=t.total, write=t.total, pool=t.total))
        except httpx.HTTPError as exc:
            raise self.transport_error(exc, t) from exc
        if resp.status_code in (404, 405):
            return None
        if not resp.is_success:
            raise status_error(resp, self.secrets)
        try:
            data = resp.json()
        except ValueError:
            raise BackendError(f"{self.where} answered {url.rsplit('/', 1)[-1]} with no JSON",
                               kind=ErrorKind.STREAM) from None
        if not isinstance(data, dict):
            raise BackendError(f"{self.where} answered {url.rsplit('/', 1)[-1]} with an unexpected reply",
                               kind=ErrorKind.STREAM)
        return data

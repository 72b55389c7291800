"""The HTTP plumbing every backend shares: one TLS context, one keep-alive client per backend,
one timeout policy, and one mapping from transport failures to BackendError."""

from __future__ import annotations

import contextlib
import json
from typing import Any, AsyncIterator, Iterable

import httpx

from .base import Timeouts
from .errors import BackendError, ErrorKind
from ..redact import display_url, redact

_TLS = None


def tls_context():
    """One TLS context for every client: building one loads the CA bundle (~40 ms each)."""
    global _TLS
    if _TLS is None:
        import ssl

        import certifi  # httpx's own CA bundle, so verification behaves exactly as its default

        _TLS = ssl.create_default_context(cafile=certifi.where())
    return _TLS


_WARM = False


def warm_http() -> None:
    """httpx defers some imports to its first request (httpcore's anyio backend); do them now."""
    global _WARM
    if _WARM:
        return
    _WARM = True
    try:
        import anyio

        anyio.Event()
    except Exception:  # only a warm-up: the real call reports any problem
        pass


READ_GRACE_S = 1.0


def http_timeout(t: Timeouts) -> httpx.Timeout:
    # `read` bounds every gap between bytes (a stalled stream); the first token and the whole
    # call are the executor's to enforce, so `read` leaves it a moment to fire first. 60 s for a
    # write: a long document over a slow uplink.
    return httpx.Timeout(connect=t.connect, read=t.first_token + READ_GRACE_S, write=60.0, pool=60.0)


def json_body(body: Any) -> bytes:
    """A request body as httpx's `json=` encodes it (compact, UTF-8, no NaN), encoded here once
    so the request is built from bytes."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


JSON_CONTENT = {"content-type": "application/json"}


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


CALLS_PER_CLIENT = 16  # streams one httpx client carries before another is opened (see HttpClient)


class HttpClient:
    """A backend's keep-alive httpx clients, with its secrets for redaction.

    httpcore's connection pool spends time that grows with the square of its open connections
    (encode/httpcore#1035): one pool carrying 200 concurrent streams (the gateway under load)
    adds seconds to each. So streams are spread over several clients, each carrying at most
    CALLS_PER_CLIENT at once; one client serves the usual case.

    `wire` (the gateway's aiohttp_wire.AiohttpWire) carries the streams (`post_stream`) instead
    of httpx; everything else stays on httpx."""

    def __init__(self, base_url: str, secrets: Iterable[str | None], *,
                 transport: httpx.AsyncBaseTransport | None = None, wire: Any = None) -> None:
        self.base_url = base_url
        self.secrets = [s for s in secrets if s]
        self._transport = transport
        self._wire = wire
        self._clients: list[httpx.AsyncClient] = []
        self._busy: list[int] = []  # streams in flight per client
        self._urls: dict[str, httpx.URL] = {}

    def url(self, url: str) -> httpx.URL:
        """`url` parsed once: httpx parses a string URL on every request (tens of µs)."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    @property
    def where(self) -> str:
        return self.redact(display_url(self.base_url))

    def warm(self) -> None:
        warm_http()
        self.client()

    def client(self) -> httpx.AsyncClient:
        """The least busy client, for a short call; a stream takes one with `lease()`."""
        return self._clients[self._pick()]

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient]:
        i = self._pick()
        self._busy[i] += 1
        try:
            yield self._clients[i]
        finally:
            self._busy[i] -= 1

    @contextlib.asynccontextmanager
    async def post_stream(self, url: str, content: bytes, headers: dict[str, str],
                          timeout: httpx.Timeout) -> AsyncIterator[Any]:
        """POST and stream the reply (HttpxReply, or the wire's); failures are httpx exceptions."""
        if self._wire is not None:
            async with self._wire.post(url, content, headers, timeout) as reply:
                yield reply
            return
        async with self.lease() as client, client.stream("POST", self.url(url), content=content, headers=headers,
                                                         timeout=timeout) as resp:
            yield HttpxReply(resp)

    def _pick(self) -> int:
        if self._busy:
            i = min(range(len(self._busy)), key=self._busy.__getitem__)
            if self._busy[i] < CALLS_PER_CLIENT:
                return i
        self._clients.append(httpx.AsyncClient(
            transport=self._transport, timeout=http_timeout(Timeouts()), verify=tls_context(),
            # The per-provider limiter caps concurrency, not the pool: httpx's defaults (100
            # connections, 20 kept alive) would reconnect on every call beyond 20 at once.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        ))
        self._busy.append(0)
        return len(self._clients) - 1

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def transport_error(self, exc: httpx.HTTPError, timeouts: Timeouts) -> BackendError:
        """The one-line BackendError for a failure below HTTP (connect, timeouts, a broken stream)."""
        where = self.where
        if isinstance(exc, (httpx.ConnectError, httpx.ProxyError)):
            return BackendError(self.redact(f"cannot connect to {where}: {describe(exc)}"),
                                kind=ErrorKind.CONNECT, retryable=True)
        if isinstance(exc, httpx.ConnectTimeout):
            return BackendError(f"timed out connecting to {where} after {timeouts.connect:g}s",
                                kind=ErrorKind.TIMEOUT, retryable=True)
        if isinstance(exc, httpx.ReadTimeout):
            return BackendError(f"no data from {where} for {timeouts.first_token + READ_GRACE_S:g}s",
                                kind=ErrorKind.TIMEOUT, retryable=True)
        if isinstance(exc, httpx.TimeoutException):  # pool or write
            return BackendError(f"timed out talking to {where} ({type(exc).__name__})",
                                kind=ErrorKind.TIMEOUT, retryable=True)
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.NetworkError)):  # read/write/close errors
            return BackendError(self.redact(f"connection to {where} broke: {describe(exc)}"),
                                kind=ErrorKind.STREAM, retryable=True)
        if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
            return BackendError(self.redact(f"bad base URL {where}: {describe(exc)}"), kind=ErrorKind.BAD_REQUEST)
        # anything else httpx raises (e.g. a body that fails to decode)
        return BackendError(self.redact(f"request to {where} failed: {describe(exc)}"), kind=ErrorKind.STREAM)

    async def aclose(self) -> None:
        clients, self._clients, self._busy = self._clients, [], []
        for client in clients:
            await client.aclose()
        if self._wire is not None:
            await self._wire.aclose()


class HttpxReply:
    """A streamed reply through httpx: status, headers, the body's chunks, the whole response."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.is_success = response.is_success

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.aiter_bytes()

    async def response(self) -> httpx.Response:
        await self._response.aread()
        return self._response

"""Streamed POSTs over aiohttp, for the long-running gateway.

`runner serve` pays its HTTP client's cost on every request it relays. Through httpx (its
own transport: httpcore over anyio, h11 parsing in Python) a streamed completion cost the
gateway about 1.2 ms of CPU on this machine; aiohttp (llhttp in C) about 0.3 ms, and httpx's
request and response objects around it would cost half of what is saved. So the backends'
streams (`HttpClient.post_stream`) take this path when the gateway gives them a wire, and
every other call, and every one-shot command (for which importing aiohttp costs more start-up
than it saves), stays on httpx.

aiohttp's exceptions are turned into httpx's, so `HttpClient.transport_error` words every
failure the same way whichever path it came by. (httpx-aiohttp, an httpx transport over
aiohttp, maps every connection error — a refused connection, a server hanging up mid-stream —
to ConnectTimeout, which would tell the user the wrong thing.)
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from typing import AsyncIterator, Iterator

import aiohttp
import httpx

from .http import tls_context

# aiohttp's exceptions → httpx's, most specific first (the first match wins).
_MAP: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),  # e.g. a chunked body cut short
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a malformed response
    (aiohttp.InvalidURL, httpx.InvalidURL),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),  # reset, broken pipe after connecting
    (aiohttp.ClientError, httpx.NetworkError),
)


def convert(exc: BaseException, *, connecting: bool = False) -> httpx.HTTPError:
    """The httpx exception for an aiohttp one (or a bare timeout)."""
    for source, target in _MAP:
        if isinstance(exc, source):
            if target is httpx.InvalidURL:
                return httpx.InvalidURL(str(exc))
            return target(str(exc) or type(exc).__name__)
    if connecting:  # aiohttp's `connect` timeout (pool wait + connect) can be a bare TimeoutError
        return httpx.ConnectTimeout(str(exc) or "timed out connecting")
    return httpx.ReadTimeout(str(exc) or "timed out")


@contextlib.contextmanager
def mapped(*, connecting: bool = False) -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise convert(exc, connecting=connecting) from exc


class AiohttpReply:
    """A streamed POST's reply (the shape of http.HttpxReply)."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self._url = url
        self.status_code = response.status
        self.headers = response.headers  # case-insensitive, like httpx's

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    async def chunks(self) -> AsyncIterator[bytes]:
        with mapped():
            async for chunk in self._response.content.iter_any():  # whatever has arrived, at once
                yield chunk

    async def response(self) -> httpx.Response:
        """The whole reply as an httpx.Response, for the error helpers (a rare path)."""
        with mapped():
            body = await self._response.read()
        # aiohttp has decoded the body already: its content-encoding no longer applies.
        headers = [(k, v) for k, v in self._response.raw_headers if k.lower() != b"content-encoding"]
        return httpx.Response(self.status_code, headers=headers, content=body,
                              request=httpx.Request("POST", self._url))


class AiohttpWire:
    """One aiohttp session (keep-alive pool, our TLS context) per backend, opened on the first
    request inside the running loop. Proxies come from the environment, read once, as httpx
    reads them; not through aiohttp's trust_env, which also reads ~/.netrc in a worker thread
    on every request (httpx sends no netrc credentials)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._proxies = urllib.request.getproxies_environment()
        self._proxy_for: dict[str, str | None] = {}  # by URL: a backend posts to a few

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # limit=0: the per-provider limiter caps concurrency, not the pool (as in HttpClient).
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=tls_context()))
        return self._session

    def _proxy(self, url: str) -> str | None:
        if url not in self._proxy_for:
            parsed = httpx.URL(url)
            proxy = self._proxies.get(parsed.scheme) or self._proxies.get("all")
            if proxy and urllib.request.proxy_bypass_environment(parsed.host, self._proxies):
                proxy = None
            self._proxy_for[url] = proxy
        return self._proxy_for[url]

    @contextlib.asynccontextmanager
    async def post(self, url: str, content: bytes, headers: dict[str, str],
                   timeout: httpx.Timeout) -> AsyncIterator[AiohttpReply]:
        with mapped(connecting=True):
            response = await self._open().post(
                url, data=content, headers=headers, allow_redirects=False, proxy=self._proxy(url),
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout.pool, sock_connect=timeout.connect,
                                              sock_read=timeout.read))
        try:
            yield AiohttpReply(response, url)
        finally:
            # Read to the end, the connection goes back to the pool; stopped early (a cancelled
            # answer), it is closed, so the server sees the client leave.
            if response.content.at_eof():
                response.release()
            else:
                response.close()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

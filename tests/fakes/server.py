"""A minimal HTTP/1.1 loopback server for protocol fakes (stdlib asyncio, own loop in a thread).

Subclasses implement ``async def handle(self, req: Recorded)`` and return a ``Reply`` (Content-Length
body), a ``StreamReply`` (chunked body from an iterable of byte strings, flushed per item), or
``DROP`` (close the connection without any response). A stream may yield ``ABORT`` to close the
connection at once, without the terminating zero-length chunk (a dropped stream).

A ``StreamReply`` with ``ping=(seconds, make_bytes)`` also writes keep-alive bytes (SSE comments)
every ``seconds`` while the stream waits between items (``ttft_s`` / ``chunk_delay_s`` pacing), as
sse-starlette does for llama-cpp-python's server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

from .tokens import default_reply as _default_reply


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-case keys (last one wins)
    json: Any | None  # parsed body, None when empty or not JSON
    time: float  # time.monotonic() when the request was fully read
    body: bytes = b""
    conn: int = 0  # serial number of the TCP connection (keep-alive reuse shows as equal numbers)


@dataclass
class Fault:
    """A one-shot deviation, queued with ``FakeServer.push_fault`` (generation endpoints only).

    Most fields are failures; ``finish_reason``, ``usage`` and ``json_body`` reshape an otherwise
    normal answer (each fake's docstring says what they mean in its protocol).
    """

    status: int | None = None  # reply with this HTTP status and the protocol's error body
    message: str = "fake failure"
    error_type: str | None = None  # protocol's error type/code where it has one
    retry_after: str | None = None  # sets `retry-after`
    retry_after_ms: str | None = None  # sets `retry-after-ms` (OpenAI-style)
    mid_stream: bool = False  # some content with 200, then the protocol's in-stream error, then end
    drop: bool = False  # some content, then close the connection with no end marker
    hang_s: float = 0.0  # sleep this long before sending anything
    # Some content, then the body ENDS CLEANLY (complete HTTP response) without the protocol's
    # completion signal: OpenAI no finish_reason but `data: [DONE]` (llama-cpp-python when a second
    # request interrupts a stream), Anthropic no message_delta/message_stop, Gemini no finishReason,
    # Ollama no `done: true` line.
    cut: bool = False
    finish_reason: str | None = None  # report this finish/stop/done reason (see each fake)
    usage: dict[str, Any] | None = None  # deep-merged into the usage object the fake reports
    json_body: bool = False  # answer a STREAMED request with the non-streamed JSON body (200, application/json)
    raw_body: bytes | None = None  # with ``status``: send exactly these bytes, not the protocol's error body
    content_type: str = "text/html"  # of ``raw_body``

    def headers(self) -> dict[str, str]:
        h = {}
        if self.retry_after is not None:
            h["retry-after"] = str(self.retry_after)
        if self.retry_after_ms is not None:
            h["retry-after-ms"] = str(self.retry_after_ms)
        return h

    def raw_reply(self) -> "Reply":
        """The ``raw_body`` reply (status, bytes as given, ``content_type``, retry headers)."""
        return Reply(self.status or 502, self.raw_body or b"", self.content_type, self.headers() or None)


# nginx's own error page for a dead upstream (CRLF line endings, content-type text/html), as a
# reverse proxy in front of Ollama or an OpenAI-compatible server sends it.
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def nginx_502(**kwargs: Any) -> Fault:
    """``Fault`` for nginx's HTML 502 page (``status``/``raw_body``/headers can be overridden)."""
    kwargs.setdefault("status", 502)
    kwargs.setdefault("raw_body", NGINX_502)
    kwargs.setdefault("content_type", "text/html")
    return Fault(**kwargs)


def deep_merge(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in (nested dicts merged, other values replaced)."""
    out = dict(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


@dataclass
class StreamReply:
    chunks: Iterable[Any]  # bytes items; ABORT closes the connection without the end of the body
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] | None = None
    # (interval_s, make_bytes): keep-alive bytes written every interval_s while the stream waits
    ping: tuple[float, Callable[[], bytes]] | None = None


def _generates(path: str) -> bool:
    return path.endswith(("/api/chat", "/chat/completions", "/messages")) or "GenerateContent" in path


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ABORT = _Marker("ABORT")  # inside a stream: close the connection now (no terminating chunk)
DROP = _Marker("DROP")  # as a reply: close the connection without sending any response

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS.update({529: "Site Overloaded", 499: "Client Closed Request"})


def dumps(obj: Any) -> str:
    """Compact JSON, UTF-8 kept raw (as the real servers send it)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, dumps(obj).encode(), "application/json", headers)


class FakeServer:
    """Base loopback server. ``start()`` returns self; also a context manager."""

    #: default for the ``replies``/``default_reply`` behaviour of every fake
    def __init__(
        self,
        *,
        replies: dict[str, str] | None = None,
        default_reply: Callable[[str, list[dict[str, str]]], str] | None = None,
        ttft_s: float = 0.0,
        header_delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.replies: dict[str, str] = dict(replies or {})
        self.default_reply = default_reply or _default_reply
        self.ttft_s = ttft_s
        self.header_delay_s = header_delay_s
        self.chunk_delay_s = chunk_delay_s
        self.host = host
        self.port = port
        # True: answer every STREAMED generation request with the non-streamed JSON body (200,
        # application/json) instead of a stream, as some proxies do (one-shot: Fault(json_body=True)).
        self.stream_as_json = False
        self.url = ""
        self.requests: list[Recorded] = []
        self.tool_requests = 0  # generation requests that offered tools (tools.py)
        self.errors: list[BaseException] = []  # exceptions raised inside the fake's handlers (bugs)
        self.max_concurrent_seen = 0
        self.connections_opened = 0
        self._in_flight = 0
        self._answering = 0
        # Generation requests only (chat, messages, generateContent): a client's probes and
        # /api/ps calls run beside them and are not what a concurrency limit bounds.
        self.max_concurrent_answers = 0
        self._faults: list[tuple[str | None, Fault]] = []
        self._fault_lock = threading.Lock()
        self._conn_ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "FakeServer":
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._client, self.host, self.port, limit=1 << 20, backlog=4096
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as e:  # noqa: BLE001 - reported to the starting thread
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        if failure:
            self._thread = None
            raise failure[0]
        self.url = f"http://{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        except Exception:  # noqa: BLE001 - best effort
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = self._server = None

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- faults & replies

    def push_fault(self, fault: Fault, model: str | None = None) -> None:
        """Queue ``fault`` for the next generation request for ``model`` (None: any model)."""
        with self._fault_lock:
            self._faults.append((model, fault))

    def take_fault(self, model: str | None) -> Fault | None:
        if not self._faults:
            return None
        with self._fault_lock:
            for i, (m, f) in enumerate(self._faults):
                if m is None or m == model:
                    del self._faults[i]
                    return f
        return None

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    def wants_json(self, fault: Fault | None) -> bool:
        """Should a streamed request get the plain JSON body (``stream_as_json`` / ``Fault.json_body``)?"""
        return self.stream_as_json or (fault is not None and fault.json_body)

    async def begin(self, model: str | None) -> Fault | None:
        """Take the fault for this generation request and sleep its ``hang_s``."""
        fault = self.take_fault(model)
        if fault is not None and fault.hang_s > 0:
            await asyncio.sleep(fault.hang_s)
        return fault

    def reply_text(self, model: str, messages: list[dict[str, str]]) -> str:
        r = self.replies.get(model)
        if r is not None:
            return r
        if messages and messages[-1].get("role") == "tool":  # the answer after a tool ran (tools.py)
            from .tools import tool_result_reply

            return tool_result_reply(model, messages[-1].get("name") or "?", messages[-1].get("content") or "")
        return self.default_reply(model, messages)

    async def generating(self, n_chunks: int) -> None:
        """For non-streamed replies: the time a stream of ``n_chunks`` would have taken."""
        delay = self.ttft_s + self.chunk_delay_s * max(0, n_chunks - 1)
        if delay > 0:
            await asyncio.sleep(delay)

    def clear(self) -> None:
        """Forget recorded requests and pending faults (keeps model state)."""
        self.requests.clear()
        with self._fault_lock:
            self._faults.clear()
        self.max_concurrent_seen = self.max_concurrent_answers = 0

    # ---------------------------------------------------------------- to override

    async def handle(self, req: Recorded) -> Reply | StreamReply | _Marker:
        return Reply(404, b"404 page not found", "text/plain")

    # ---------------------------------------------------------------- HTTP

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = next(self._conn_ids)
        self.connections_opened += 1
        try:
            while True:
                req, keep = await self._read_request(reader, writer, conn)
                if req is None:
                    break
                self.requests.append(req)
                self._in_flight += 1
                if self._in_flight > self.max_concurrent_seen:
                    self.max_concurrent_seen = self._in_flight
                answering = _generates(req.path)
                if answering:
                    self._answering += 1
                    self.max_concurrent_answers = max(self.max_concurrent_answers, self._answering)
                try:
                    keep = await self._respond(req, writer, keep)
                finally:
                    if answering:
                        self._answering -= 1
                    self._in_flight -= 1
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int
    ) -> tuple[Recorded | None, bool]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None, False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            return None, False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(parts)
        else:
            n = int(headers.get("content-length") or 0)
            body = await reader.readexactly(n) if n else b""
        data = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
        if "?" in target:
            u = urlsplit(target)
            path, query = u.path, dict(parse_qsl(u.query, keep_blank_values=True))
        else:
            path, query = target, {}
        conn_hdr = headers.get("connection", "").lower()
        keep = version == "HTTP/1.1" and conn_hdr != "close" or (
            version == "HTTP/1.0" and conn_hdr == "keep-alive"
        )
        return Recorded(method, path, query, headers, data, time.monotonic(), body, conn), keep

    @staticmethod
    def _head(
        status: int, ctype: str, headers: dict[str, str] | None, length: int | None, keep: bool
    ) -> bytes:
        out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\ncontent-type: {ctype}\r\n"]
        if length is None:
            out.append("transfer-encoding: chunked\r\n")
        else:
            out.append(f"content-length: {length}\r\n")
        if headers:
            for k, v in headers.items():
                out.append(f"{k}: {v}\r\n")
        if not keep:
            out.append("connection: close\r\n")
        out.append("\r\n")
        return "".join(out).encode("latin-1")

    async def _respond(self, req: Recorded, writer: asyncio.StreamWriter, keep: bool) -> bool:
        try:
            reply = await self.handle(req)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in the fake: make it loud
            self.errors.append(e)
            reply = Reply(500, f"fake server bug: {e!r}".encode(), "text/plain")
        if reply is DROP:
            return False
        if self.header_delay_s > 0:
            await asyncio.sleep(self.header_delay_s)
        if isinstance(reply, Reply):
            writer.write(self._head(reply.status, reply.content_type, reply.headers, len(reply.body), keep))
            if reply.body and req.method != "HEAD":
                writer.write(reply.body)
            await writer.drain()
            return keep
        assert isinstance(reply, StreamReply)
        writer.write(self._head(reply.status, reply.content_type, reply.headers, None, keep))
        ttft, gap = self.ttft_s, self.chunk_delay_s
        paced = ttft > 0 or gap > 0
        first = True
        pending: list[bytes] = []
        ping_every, make_ping = reply.ping if reply.ping and reply.ping[0] > 0 else (0.0, None)
        next_ping = time.monotonic() + ping_every

        async def pause(delay: float) -> None:
            """Sleep ``delay`` s, writing the keep-alive pings that fall due meanwhile."""
            nonlocal next_ping
            end = time.monotonic() + delay
            while make_ping is not None and next_ping <= end:
                await asyncio.sleep(max(0.0, next_ping - time.monotonic()))
                if writer.transport.is_closing():
                    return
                ping = make_ping()
                writer.write(b"%x\r\n%s\r\n" % (len(ping), ping))
                await writer.drain()
                next_ping += ping_every
            await asyncio.sleep(max(0.0, end - time.monotonic()))

        for item in reply.chunks:
            if item is ABORT:
                if pending:
                    writer.write(b"".join(pending))
                await writer.drain()
                writer.close()
                return False
            if not item:
                continue
            frame = b"%x\r\n%s\r\n" % (len(item), item)
            if paced:
                delay = ttft if first else gap
                first = False
                if delay > 0:
                    await pause(delay)
                if writer.transport.is_closing():
                    return False
                writer.write(frame)
                await writer.drain()
            else:
                pending.append(frame)
        pending.append(b"0\r\n\r\n")
        writer.write(b"".join(pending))
        await writer.drain()
        return keep

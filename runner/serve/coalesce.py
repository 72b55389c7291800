"""uvicorn's HTTP protocol, sending a reply's status line together with what follows it.

An ASGI app sends a streamed reply's status line and its first token as two messages, and
uvicorn writes each at once: two packets, so the client wakes twice for the first token, and
on a machine with few cores it takes the CPU from the gateway in between. Here the status line
and headers are held until the next write, which takes them along at once, or until the end of
the current loop turn, whichever comes first. Every other write goes out as it comes.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """A transport that holds a reply's head for the write that follows it in the same loop
    turn (everything else passes through)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._pending:  # what follows the head: both go out now
            self._pending.append(data)
            self.flush()
        elif data.startswith(b"HTTP/"):  # a reply's status line and headers: held
            self._pending.append(data)
            self._loop.call_soon(self.flush)
        elif not self._transport.is_closing():
            self._transport.write(data)

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()  # what was written before close still goes out, as with a plain transport
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:  # get_extra_info, pause_reading, is_closing, …
        return getattr(self._transport, name)


def protocol_class() -> type:
    """The protocol uvicorn would pick ("auto": httptools when installed, else h11), coalescing."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools is optional: uvicorn's pure-Python h11 then
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class Coalescing(Base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(CoalescingTransport(transport, asyncio.get_running_loop()))

    Coalescing.__name__ = f"Coalescing{Base.__name__}"
    return Coalescing

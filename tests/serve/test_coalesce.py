"""serve/coalesce.py: a reply's status line goes out joined with its first body write; a head
alone waits no longer than the loop turn it was written in; every other write goes at once."""

from __future__ import annotations

import asyncio

import httpx

from runner.serve.coalesce import CoalescingTransport, protocol_class
from tests.serve.harness import Served


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_the_head_goes_with_the_first_body_write_and_other_writes_go_at_once():
    async def main() -> None:
        raw = Recorder()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert raw.writes == [] and t.get_write_buffer_size() == 19  # held for what follows
        t.write(b"data: first\n\n")
        assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\ndata: first\n\n"]  # at once, joined
        t.write(b"data: last\n\n")
        assert raw.writes[-1] == b"data: last\n\n"  # a body write is not held
        t.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # a head with nothing after it
        await asyncio.sleep(0)  # waits for the end of the turn, no longer
        assert raw.writes[-1] == b"HTTP/1.1 204 No Content\r\n\r\n" and len(raw.writes) == 3
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else passes through

    asyncio.run(main())


def test_close_sends_what_was_written_first_and_abort_drops_it():
    async def main() -> None:
        raw = Recorder()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.close()
        assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n"] and raw.closed
        other = Recorder()
        t = CoalescingTransport(other, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.abort()
        await asyncio.sleep(0)
        assert other.writes == [] and other.aborted

    asyncio.run(main())


def test_the_gateway_serves_through_the_coalescing_protocol(fake_openai, use):
    use(fake_openai, "openai")
    with Served() as served:
        assert served.server.config.http.__name__.startswith("Coalescing")
        assert issubclass(served.server.config.http, protocol_class().__mro__[1])
        body = {"model": "openai/gpt-4.1", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream("POST", served.url + "/v1/chat/completions", json=body, timeout=10) as resp:
            lines = [line for line in resp.iter_lines() if line]
        assert resp.status_code == 200 and lines[-1] == "data: [DONE]"
        # Keep-alive still works: a second request on a fresh client answers too.
        assert httpx.get(served.url + "/v1/models", timeout=10).status_code == 200

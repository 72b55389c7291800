"""serve/coalesce.py: a reply's status line goes out joined with its first body write, and
nothing written waits past the loop turn it was written in."""

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


def test_two_writes_in_a_turn_are_one_and_a_lone_write_goes_out_at_the_end_of_the_turn():
    async def main() -> None:
        raw = Recorder()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert raw.writes == []  # held for what follows
        t.write(b"data: first\n\n")
        assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\ndata: first\n\n"]  # at once, joined
        t.write(b"data: last\n\n")
        assert len(raw.writes) == 1 and t.get_write_buffer_size() == len(b"data: last\n\n")
        await asyncio.sleep(0)  # the end of the turn
        assert raw.writes[-1] == b"data: last\n\n"
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else passes through

    asyncio.run(main())


def test_close_sends_what_was_written_first_and_abort_drops_it():
    async def main() -> None:
        raw = Recorder()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"bye")
        t.close()
        assert raw.writes == [b"bye"] and raw.closed
        other = Recorder()
        t = CoalescingTransport(other, asyncio.get_running_loop())
        t.write(b"never")
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

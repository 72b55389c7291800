"""The gateway's streams go over aiohttp (backends/aiohttp_wire.py), the commands' over httpx.
Each backend must answer, fail and word its failures the same way by either path: every case
here runs once through httpx and once through the wire, against the same fake, and compares."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from runner.backends.aiohttp_wire import AiohttpWire
from runner.backends.anthropic import AnthropicBackend
from runner.backends.base import BackendError, Call, Done, TextDelta, Timeouts
from runner.backends.errors import ErrorKind
from runner.backends.gemini import GeminiBackend
from runner.backends.ollama import OllamaBackend
from runner.backends.openai import OpenAIBackend
from tests.backends.test_hosted import _partial_then_error
from tests.fakes import Fault
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import nginx_502

KEY = "test-key"

BACKENDS = {
    "openai": (lambda: FakeOpenAI(), lambda url, wire: OpenAIBackend(url + "/v1", KEY, wire=wire), "gpt-4.1"),
    "anthropic": (lambda: FakeAnthropic(), lambda url, wire: AnthropicBackend(url, KEY, wire=wire),
                  "claude-sonnet-4-5"),
    "gemini": (lambda: FakeGemini(), lambda url, wire: GeminiBackend(url, KEY, wire=wire), "gemini-2.5-flash"),
    "ollama": (lambda: FakeOllama(), lambda url, wire: OllamaBackend(url, wire=wire), "qwen2.5:7b"),
}

FAULTS = {
    "answer": None,
    "dropped connection": Fault(drop=True),
    "clean end without a finish": Fault(cut=True),
    "error mid-stream": Fault(mid_stream=True),
    "rate limited": Fault(status=429, retry_after=7),
    "server error": Fault(status=503),
    "proxy HTML page": nginx_502(),
    "JSON reply to a stream": Fault(json_body=True),
    "silent server": Fault(hang_s=3.0),
}


def outcome(make, url: str, model: str, wire: bool) -> tuple[list[Any], BackendError | None]:
    call = Call(model=model, messages=[{"role": "user", "content": "hello there"}],
                timeouts=Timeouts(connect=2, first_token=0.5, total=10))
    return asyncio.run(_partial_then_error(make(url, AiohttpWire() if wire else None), call))


def shape(events: list[Any]) -> list[Any]:
    return [(type(e).__name__, getattr(e, "text", None)) if not isinstance(e, Done) else ("Done", e.finish_reason)
            for e in events]


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("protocol", list(BACKENDS))
def test_the_same_answer_or_failure_through_httpx_and_aiohttp(protocol, fault):
    start, make, model = BACKENDS[protocol]
    results = []
    with start() as fake:
        for wire in (False, True):
            if FAULTS[fault] is not None:
                fake.push_fault(FAULTS[fault])
            results.append(outcome(make, fake.url, model, wire))
    (events_a, err_a), (events_b, err_b) = results
    assert shape(events_a) == shape(events_b)
    if fault == "answer" or (protocol, fault) == ("ollama", "JSON reply to a stream"):  # one JSON line: an answer
        assert err_a is None and err_b is None and any(isinstance(e, TextDelta) for e in events_b)
        return
    assert err_a is not None and err_b is not None, (err_a, err_b)
    assert (err_a.kind, err_a.retryable, err_a.retry_after) == (err_b.kind, err_b.retryable, err_b.retry_after)
    if err_a.kind in (ErrorKind.STREAM, ErrorKind.TIMEOUT) and "broke" in err_a.message + err_b.message:
        # A broken connection is worded by the HTTP library underneath; what it means is ours.
        assert err_a.message.split(":")[0] == err_b.message.split(":")[0]
    else:
        assert err_a.message == err_b.message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("protocol", list(BACKENDS))
def test_a_refused_connection_is_a_connect_error_either_way(protocol):
    _, make, model = BACKENDS[protocol]
    url = f"http://127.0.0.1:{free_port()}"
    errors = [outcome(make, url, model, wire)[1] for wire in (False, True)]
    for err in errors:
        assert err is not None and err.kind == ErrorKind.CONNECT and err.retryable
    # The same words, but for the library's own reason after the address.
    assert errors[0].message.split(": ")[0] == errors[1].message.split(": ")[0]
    assert url in errors[1].message


def test_a_cancelled_stream_closes_its_connection_so_the_server_sees_it():
    async def main(fake) -> None:
        backend = OpenAIBackend(fake.url + "/v1", KEY, wire=AiohttpWire())
        call = Call(model="gpt-4.1", messages=[{"role": "user", "content": "hello"}])
        events = backend.stream(call)
        async for event in events:
            if isinstance(event, TextDelta):
                break  # the consumer stops after the first token (a client that left)
        await events.aclose()
        for _ in range(100):
            if fake.connections_opened and fake._in_flight == 0:
                break
            await asyncio.sleep(0.02)
        assert fake._in_flight == 0  # the fake saw the connection go, mid-answer
        await backend.aclose()

    with FakeOpenAI() as fake:
        fake.chunk_delay_s = 0.05  # a slow answer, so the stop comes mid-stream
        asyncio.run(main(fake))

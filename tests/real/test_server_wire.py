"""What llama-cpp-python's server really sends, byte for byte (raw sockets, no HTTP client in
between). These are the facts the runner's OpenAI backend has to handle; if an upgrade of
llama-cpp-python changes one, this file says which before the runner tests fail obscurely.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from .harness import N_CTX
from .texts import unknown_words


class Raw:
    """One HTTP/1.1 exchange read to the end of the connection, with arrival times."""

    def __init__(self, port: int, body: dict | None, path: str = "/v1/chat/completions", keep_alive: bool = False,
                 read_for: float | None = None) -> None:
        """POST `body` as JSON to `path` (GET when `body` is None)."""
        data = b"" if body is None else json.dumps(body).encode()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(60)
        self.t0 = time.monotonic()
        head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" if body is None else
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n") + ("" if keep_alive else "Connection: close\r\n") + "\r\n"
        self.sock.sendall(head.encode() + data)
        self.raw = b""
        self.arrivals: list[tuple[float, bytes]] = []
        self.closed = False
        deadline = None if read_for is None else self.t0 + read_for
        while True:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                self.closed = True
                break
            self.raw += chunk
            self.arrivals.append((time.monotonic() - self.t0, chunk))

    @property
    def head(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[0]

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]

    def dechunked(self) -> tuple[bytes, bool]:
        """(payload, whether the chunked body ended with its zero-length terminator)."""
        rest, out = self.body, b""
        while rest:
            size_line, sep, rest = rest.partition(b"\r\n")
            if not sep:
                return out, False
            size = int(size_line, 16)
            if size == 0:
                return out, rest.startswith(b"\r\n")
            out, rest = out + rest[:size], rest[size + 2:]
        return out, False

    def events(self) -> list[bytes]:
        return [e for e in self.dechunked()[0].split(b"\n\n") if e]

    def close(self) -> None:
        self.sock.close()


def chat(content: str = "hi", **extra) -> dict:
    return {"model": "any-name", "messages": [{"role": "user", "content": content}], **extra}


def test_streamed_answer_events_finish_reason_and_no_usage(server):
    r = Raw(server.port, chat(max_tokens=5, stream=True, stream_options={"include_usage": True}))
    payload, terminated = r.dechunked()
    events = r.events()
    assert r.status == 200 and b"content-type: text/event-stream; charset=utf-8" in r.head
    assert terminated
    datas = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert events[-1] == b"data: [DONE]"
    assert datas[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert datas[0]["choices"][0]["finish_reason"] is None
    assert [len(d["choices"][0]["delta"]["content"]) for d in datas[1:-1]] == [1] * 5  # one token per event
    assert datas[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert all("usage" not in d for d in datas)  # include_usage is ignored
    assert datas[0]["model"] == "any-name"  # any model name is served (and echoed)


def test_unstreamed_answer_has_usage(server):
    r = Raw(server.port, chat(max_tokens=5))
    body = json.loads(r.body)
    assert r.status == 200
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    assert body["usage"]["prompt_tokens"] > 0


def test_max_completion_tokens_is_ignored(server):
    # A prompt near the window keeps the run short: without max_tokens it runs to the window.
    prompt = unknown_words(260)  # ~1,700 real tokens
    r = Raw(server.port, chat(prompt, max_completion_tokens=3))
    body = json.loads(r.body)
    assert r.status == 200
    assert body["usage"]["completion_tokens"] > 3
    assert body["usage"]["total_tokens"] == N_CTX  # it generated until the window was full
    assert body["choices"][0]["finish_reason"] == "length"


def test_prompt_plus_max_tokens_over_the_window_is_quietly_shortened(server):
    prompt = unknown_words(260)
    r = Raw(server.port, chat(prompt, max_tokens=N_CTX))
    body = json.loads(r.body)
    assert r.status == 200
    assert body["usage"]["total_tokens"] == N_CTX
    assert body["usage"]["completion_tokens"] < N_CTX - body["usage"]["prompt_tokens"] + 1
    assert body["choices"][0]["finish_reason"] == "length"


def test_streamed_overflow_is_an_empty_200_then_the_connection_closes(server):
    prompt = unknown_words(600)  # ~3,900 real tokens
    r = Raw(server.port, chat(prompt, max_tokens=16, stream=True), keep_alive=True, read_for=5.0)
    assert r.status == 200
    assert b"transfer-encoding: chunked" in r.head.lower()
    assert r.body == b"0\r\n\r\n"  # no event, no error, no [DONE]: a well-formed empty body
    assert r.closed  # and the keep-alive connection is closed right after it
    assert server.overflows()[-1] > N_CTX  # only the server's log says why


def test_unstreamed_overflow_is_a_400_context_length_exceeded(server):
    prompt = unknown_words(600)
    r = Raw(server.port, chat(prompt, max_tokens=16))
    assert r.status == 400
    err = json.loads(r.body)["error"]
    assert err["code"] == "context_length_exceeded"
    assert err["type"] == "invalid_request_error"
    assert err["param"] == "messages"
    assert err["message"].startswith(f"This model's maximum context length is {N_CTX} tokens. However, you requested ")


def test_a_new_request_cuts_the_running_stream(server):
    out: dict[str, Raw] = {}
    first = threading.Thread(target=lambda: out.setdefault("a", Raw(server.port, chat(max_tokens=1500, stream=True))))
    first.start()
    time.sleep(0.3)
    second = Raw(server.port, chat(max_tokens=3, stream=True))
    first.join(60)
    cut = out["a"]
    payload, terminated = cut.dechunked()
    events = cut.events()
    assert cut.status == 200
    assert events[-1] == b"data: [DONE]"
    datas = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert datas[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(d["choices"][0]["finish_reason"] is None for d in datas)  # never says it finished
    assert len(datas) - 1 < 1500
    assert not terminated and cut.closed  # no zero-length chunk: the connection just closes
    assert second.events()[-2:][0].endswith(b'"finish_reason": "length"}]}')  # the newcomer completes
    assert server.cut_streams() == 1


def test_any_request_for_the_model_cuts_the_running_stream(server):
    """Not only a chat request: GET /v1/models and /extras/tokenize wait for the model's lock too,
    and any waiting request cuts the running stream. A client that lists models or counts tokens
    while one of its own answers streams cuts that answer."""
    for path, body in (("/v1/models", None), ("/extras/tokenize", {"input": "hello"}),
                       ("/extras/tokenize/count", {"input": "hello"})):
        out: dict[str, Raw] = {}
        first = threading.Thread(target=lambda: out.setdefault("a", Raw(server.port, chat(max_tokens=1500, stream=True))))
        first.start()
        time.sleep(0.3)
        assert Raw(server.port, body, path=path).status == 200
        first.join(60)
        events = out["a"].events()
        assert events[-1] == b"data: [DONE]", path
        assert b'"finish_reason": "length"' not in b"".join(events), path
        assert len(events) < 1500, path
    assert server.cut_streams() == 3


def test_tokenize_endpoints(server):
    assert Raw(server.port, {"content": "the water"}, path="/tokenize").status == 404
    r = Raw(server.port, {"input": "the water"}, path="/extras/tokenize")
    tokens = json.loads(r.body)["tokens"]
    assert r.status == 200 and len(tokens) == 3 and tokens[0] == 1  # BOS, "▁the", "▁water"
    r = Raw(server.port, {"input": "the water"}, path="/extras/tokenize/count")
    assert json.loads(r.body) == {"count": 3}
    r = Raw(server.port, {"tokens": tokens[1:]}, path="/extras/detokenize")
    assert json.loads(r.body)["text"].strip() == "the water"


def test_ping_comments_every_15s_before_the_first_token(start_server):
    """A request queued behind another gets its headers at once, then only `: ping` comments
    every 15 s until its turn: a read timeout that any byte resets never fires."""
    server = start_server("--interrupt_requests", "false", "--n_ctx", "32768")
    busy = threading.Thread(target=lambda: Raw(server.port, chat(max_tokens=30000, stream=True), read_for=17.0),
                            daemon=True)
    busy.start()
    time.sleep(0.5)
    queued = Raw(server.port, chat(max_tokens=3, stream=True), read_for=16.0)
    queued.close()
    first_data = next((t for t, b in queued.arrivals if b"data:" in b), None)
    if first_data is not None and first_data < 15.0:
        pytest.skip(f"the busy request ended after {first_data:.1f}s: too fast a machine to queue for 15s")
    pings = [(t, b) for t, b in queued.arrivals if b": ping" in b]
    assert queued.status == 200 and queued.arrivals[0][0] < 1.0  # headers at once
    assert len(pings) == 1 and 14.5 < pings[0][0] < 16.0, queued.arrivals
    # e.g. b'2b\r\n: ping - 2026-11-28 08:40:47.025756+00:00\n\n\r\n'
    assert pings[0][1].split(b"\r\n")[1].startswith(b": ping - ")

"""`runner serve`'s app on a free loopback port, served by uvicorn in a thread (its own loop),
as the CLI runs it: the same app, socket and server class. For tests and the benchmark."""

from __future__ import annotations

import threading
import time

from runner.serve.app import build_app
from runner.serve.auth import Keys
from runner.serve.server import _server_class, listen, uvicorn_config


class Served:
    def __init__(self, config=None, *, keys: Keys | None = None, max_body_bytes: int = 32 * 1024 * 1024,
                 grace_s: int = 5, session=None) -> None:
        self.config = config
        self.keys = keys or Keys()
        self.max_body_bytes = max_body_bytes
        self.grace_s = grace_s
        self.session = session
        self.lines: list[str] = []  # the per-request lines `serve` prints
        self.server = None
        self.thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self):
        return self.app.state.gateway

    def start(self) -> "Served":
        import uvicorn

        from runner.config import load_config

        config = self.config or load_config()
        self.app = build_app(config, self.keys, max_body_bytes=self.max_body_bytes, session=self.session,
                             note=self.lines.append)
        sock = listen("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.server = _server_class(uvicorn)(uvicorn_config(self.app, self.grace_s))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name="runner-serve")
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("runner serve did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(30)
            self.server = self.thread = None

    def __enter__(self) -> "Served":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

"""FakeOllama as one machine of a pool: it knows the ``num_parallel`` the runner's config gives it
(``write_pool_config``), counts how many chats it ran at once (so a test sees the runner keep to
that), and can be killed mid-run: streams in flight break and its port refuses connections, as a
machine that went down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from .ollama import FakeOllama
from .server import Recorded


class OllamaHost(FakeOllama):
    def __init__(self, models=None, *, num_parallel: int | None = None, weight: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(models, **kwargs)
        self.num_parallel = num_parallel  # what the config says; the fake itself takes any number
        self.weight = weight
        self.chats_running = 0
        self.max_chats_at_once = 0  # chats generating at once (probes such as /api/ps not counted)

    async def _respond(self, req: Recorded, writer, keep: bool) -> bool:
        if req.path != "/api/chat":
            return await super()._respond(req, writer, keep)
        self.chats_running += 1
        self.max_chats_at_once = max(self.max_chats_at_once, self.chats_running)
        try:
            return await super()._respond(req, writer, keep)
        finally:
            self.chats_running -= 1

    def chats(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/api/chat" and isinstance(r.json, dict) and r.json.get("messages")]

    def prompts(self) -> list[str]:
        """The last user message of each chat it received, in order."""
        return [r.json["messages"][-1]["content"] for r in self.chats()]

    def preload(self, model: str, num_ctx: int = 4096) -> None:
        """As if an earlier call had loaded `model` with that window (shows in /api/ps)."""
        self.loaded[model] = {"num_ctx": num_ctx, "expires": None}

    def kill(self) -> None:
        """The machine goes down: streams in flight break, new connections are refused."""
        self.stop()


def write_pool_config(home: Path, hosts: Iterable[OllamaHost | dict | str], extra: str = "") -> None:
    """$RUNNER_HOME/config.yaml with `ollama: {hosts: [...]}` (each a fake, a {url, num_parallel,
    weight} mapping, or a URL), quick timeouts, and `extra` YAML appended."""
    items = []
    for h in hosts:
        if isinstance(h, OllamaHost):
            items.append({"url": h.url, **({"num_parallel": h.num_parallel} if h.num_parallel else {}),
                          **({"weight": h.weight} if h.weight else {})})
        else:
            items.append(h)
    text = ("retries: 1\ntimeouts: {connect_s: 2, first_token_s: 10, total_s: 30}\n"
            f"ollama:\n  hosts: {json.dumps(items)}\n" + extra)
    (home / "config.yaml").write_text(text)


def kill_after(host: OllamaHost, chats: int, timeout_s: float = 30.0):
    """Kill `host` from another thread as soon as it has received `chats` chats (mid-run).
    Returns the thread; join it to be sure the kill happened."""
    import threading
    import time

    def watch() -> None:
        end = time.monotonic() + timeout_s
        while len(host.chats()) < chats and time.monotonic() < end:
            time.sleep(0.002)
        host.kill()

    thread = threading.Thread(target=watch, name="kill-after", daemon=True)
    thread.start()
    return thread

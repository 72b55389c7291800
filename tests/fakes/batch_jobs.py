"""What the three batch fakes share: a job that lives through several polls, answers its rows a
few at a time while it runs, and can partially fail, expire, fail validation or be cancelled.

A job's life is counted in polls (`schedule = (queued, running, finishing)`): each status request
of the job moves it one step, as a real job moves on between two polls. While it runs, each poll
answers the next share of its rows through the fake's own live endpoint (so a batch row is held to
exactly the rules a live request is: unknown model, bad parameters, queued ``Fault``s…).

Scripting a job (``fake.next_job = {...}`` applies to the next job created only, or set the
fields on ``fake.jobs[id]`` after):
- ``expire_after=N``: the job expires once N rows are answered; the rest expire;
- ``fail_validation="message"``: the whole job fails before any row runs;
- cancel: the protocol's cancel request; the job is cancelling for one poll, then cancelled, with
  the rows answered so far kept and the others cancelled.

Counters: ``fake.received`` counts every row of every created job by its prompt (the last user
message), so a test asserts one submission per row; ``fake.created`` lists the jobs in order.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

Answer = Callable[[Any], Awaitable[tuple[int, Any]]]  # request body → (HTTP status, JSON body)


@dataclass
class FakeJob:
    id: str
    rows: list[tuple[str, Any]]  # (custom id, request body)
    schedule: tuple[int, int, int]
    created: float
    label: str | None = None
    expire_after: int | None = None
    fail_validation: str | None = None
    state: str = "queued"  # queued | running | finishing | cancelling | ended
    outcome: str | None = None  # completed | failed | expired | cancelled
    polls: int = 0
    results: dict[str, tuple[int, Any]] = field(default_factory=dict)  # custom id → (status, body)
    missing: dict[str, str] = field(default_factory=dict)  # custom id → why it has no answer
    ended_at: float | None = None
    cancel_at: float | None = None
    cancel_polls: int = 0

    @property
    def answered(self) -> int:
        return len(self.results)

    @property
    def succeeded(self) -> int:
        return sum(1 for s, _ in self.results.values() if s == 200)

    @property
    def errored(self) -> int:
        return len(self.results) - self.succeeded

    async def step(self, answer: Answer, now: float) -> None:
        """One poll's worth of progress."""
        if self.state == "ended":
            return
        self.polls += 1
        if self.state == "cancelling":
            if self.cancel_polls > 0:  # still winding down
                self.cancel_polls -= 1
                return
            self._end("cancelled", "cancelled", now)
            return
        queued, running, finishing = self.schedule
        if self.state == "queued":
            if self.fail_validation:
                self._end("failed", "failed", now, rows=False)
                return
            if self.polls >= queued:
                self.state = "running"
            return
        if self.state == "running":
            share = max(1, math.ceil(len(self.rows) / max(1, running)))
            for cid, body in self.rows[self.answered:self.answered + share]:
                if self.expire_after is not None and self.answered >= self.expire_after:
                    self._end("expired", "expired", now)
                    return
                self.results[cid] = await answer(body)
            if self.answered >= len(self.rows):
                self.state = "finishing" if finishing else "ended"
                if self.state == "ended":
                    self._end("completed", None, now)
            return
        if self.state == "finishing":
            self._end("completed", None, now)

    def cancel(self, now: float, polls: int = 1) -> None:
        """Cancelling for `polls` more polls, then cancelled (answered rows kept)."""
        if self.state != "ended":
            self.state = "cancelling"
            self.cancel_at = now
            self.cancel_polls = polls

    def _end(self, outcome: str, rest: str | None, now: float, rows: bool = True) -> None:
        self.state, self.outcome, self.ended_at = "ended", outcome, now
        if rest and rows:
            for cid, _ in self.rows:
                if cid not in self.results:
                    self.missing[cid] = rest


class Counting:
    """The counters every batch fake keeps."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()  # prompt → times it arrived in a created job
        self.created: list[str] = []  # job ids, in order

    def count(self, prompt: str) -> None:
        self.received[prompt] += 1

    @property
    def rows_received(self) -> int:
        return sum(self.received.values())


def last_user_text(messages: Any) -> str:
    """The prompt of a chat-style request: its last user message, as text."""
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(str(b.get("text") or "") for b in content if isinstance(b, dict))
    return ""

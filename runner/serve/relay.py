"""One chat request through the server's Session, whichever protocol it came in.

The answer runs in its own task. Streamed, each token is forwarded as it arrives (`events()`);
not streamed, the caller waits for the outcome. Either way the task can be cancelled with a
reason — the client disconnected, the server is shutting down — and the run log records it.

Fallback and a stream already under way: before an attempt has produced anything, a failure is
invisible to the client (the executor retries or falls back, and the client simply gets the next
model's answer). Once an attempt has forwarded text, thinking or a tool call, its failure ends
the run (StopRun): the client gets an error chunk instead of a second answer run on after half
of the first. A non-streamed request always gets one whole answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from ..backends import ErrorKind, TextDelta, ThinkingDelta, ToolCallDelta
from ..backends.errors import RATE_LIMITED
from ..errors import UserError
from ..execute import RunResult
from ..meter import AttemptResult
from ..records import RunRecord
from ..redact import redact
from ..request import Prepared, Request
from ..session import Session, StopRun
from .errors import ApiError

FORWARDED = (TextDelta, ThinkingDelta, ToolCallDelta)


class ToolCalls:
    """An attempt's tool calls, put together from their pieces, in OpenAI's shape."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call = self.calls.setdefault(delta.index, {"id": None, "name": None, "arguments": []})
        if delta.id:
            call["id"] = delta.id
        if delta.name:
            call["name"] = delta.name
        if delta.arguments:
            call["arguments"].append(delta.arguments)

    def openai(self) -> list[dict[str, Any]]:
        from ..backends.tools import new_call_id

        return [{"id": c["id"] or new_call_id(), "type": "function",
                 "function": {"name": c["name"] or "", "arguments": "".join(c["arguments"]) or "{}"}}
                for _, c in sorted(self.calls.items())]


@dataclass
class Outcome:
    """How a request ended: the answer (result.ok), or the error to send."""

    prepared: Prepared | None = None
    result: RunResult | None = None
    run_id: int | None = None
    error: ApiError | None = None
    record: dict[str, Any] = field(default_factory=dict)  # RunRecord.json(): model, cost, timings…
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # the answer's, in OpenAI's shape

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok

    @property
    def answer(self) -> AttemptResult | None:
        return self.result.answer if self.result is not None else None


END = object()  # queue marker: the outcome is ready (or the task was cancelled)


class Relay:
    def __init__(self, session: Session, request: Request, *, client: str | None, stream: bool,
                 secrets: list[str | None], track: Callable[[asyncio.Task], None] | None = None,
                 note: Callable[[str], None] | None = None) -> None:
        self.session = session
        self.request = request
        self.client = client
        self.stream = stream
        self.secrets = secrets  # upstream keys: never in anything we send
        self.track = track
        self.note = note  # where a bug is reported on the server's side
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.forwarded = False  # anything at all went to the client
        self._attempt_sent = False  # the running attempt has forwarded something
        self._calls = ToolCalls()  # the running attempt's tool calls
        self._answer_calls: list[dict[str, Any]] = []

    # --- running ------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())
            if self.track is not None:
                self.track(self.task)
        return self.task

    def cancel(self, reason: str) -> None:
        """Stop the answer (and so the upstream call); the run log records `reason`."""
        if self.task is not None and not self.task.done():
            self.task.cancel(reason)

    async def outcome(self) -> Outcome | None:
        """Wait for the answer; None when it was cancelled."""
        task = self.start()
        await asyncio.wait({task})
        return None if task.cancelled() else task.result()

    async def _run(self) -> Outcome:
        try:
            out = await self._answer()
        except asyncio.CancelledError:
            self.queue.put_nowait(END)
            raise
        except UserError as exc:  # e.g. the run log cannot be written
            out = Outcome(error=ApiError(503, redact(str(exc), self.secrets), code="runner_unavailable"))
        except Exception as exc:  # a bug: one line to the client, never a traceback
            if self.note is not None:
                self.note(redact(f"internal error: {type(exc).__name__}: {exc}", self.secrets))
            out = Outcome(error=ApiError(500, f"internal error in runner serve: {type(exc).__name__}",
                                         code="internal_error"))
        self.queue.put_nowait(END)
        return out

    async def _answer(self) -> Outcome:
        prepared = await self.session.prepare(self.request)
        result, run_id = await self.session.answer(
            prepared, kind="serve", client=self.client, on_event=self._on_event, on_attempt=self._on_attempt)
        out = Outcome(prepared, result, run_id, tool_calls=self._answer_calls if result.ok else [])
        out.record = RunRecord.from_result(prepared.profile.name, result, run_id).json()
        if not result.ok:
            out.error = failure(prepared, result, self.secrets)
        return out

    def _on_event(self, ref: str, event: Any) -> None:
        if isinstance(event, ToolCallDelta):
            self._calls.add(event)
        if isinstance(event, FORWARDED):
            self._attempt_sent = True
            if self.stream:
                self.forwarded = True
                self.queue.put_nowait((ref, event))

    def _on_attempt(self, att: AttemptResult) -> None:
        sent, self._attempt_sent = self._attempt_sent, False
        calls, self._calls = self._calls, ToolCalls()
        if att.outcome == "ok":
            self._answer_calls = calls.openai()
        if att.outcome != "ok" and sent and self.stream:
            raise StopRun(f"{att.model} failed after part of its answer was streamed to the client "
                          f"({att.error or 'failed'}); not retried, so the client never gets two answers run together")

    # --- reading ------------------------------------------------------------------------

    async def next(self, timeout: float | None = None) -> Any:
        """The next forwarded (ref, event), END, or None when `timeout` passed first."""
        if timeout is None:
            return await self.queue.get()
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    def finished(self) -> Outcome | None:
        """The outcome, once the task is done (None if it was cancelled)."""
        task = self.task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.result()


def failure(prepared: Prepared, result: RunResult, secrets: list[str | None]) -> ApiError:
    """The HTTP status and message for a run that produced no answer."""
    message = redact(result.error or "no model answered", secrets)
    if not result.attempts:  # nothing could take it: every candidate skipped, with its reason
        if prepared.plan.too_long:
            return ApiError(400, message, code="context_length_exceeded", param="messages")
        return ApiError(503, message, code="no_model_available")
    failed = [a for a in result.attempts if a.outcome != "ok"]
    kinds = {a.error_kind for a in failed}
    if kinds and kinds <= set(RATE_LIMITED):
        waits = [a.retry_after for a in failed if a.retry_after]
        headers = {"retry-after": str(max(1, round(min(waits))))} if waits else {}
        return ApiError(429, message, code="rate_limit_exceeded", headers=headers)
    if kinds and kinds <= {ErrorKind.CONTEXT, ErrorKind.TRUNCATED}:
        return ApiError(400, message, code="context_length_exceeded", param="messages")
    if kinds == {ErrorKind.NOT_FOUND}:
        return ApiError(404, message, code="model_not_found", param="model")
    if kinds == {ErrorKind.BAD_REQUEST}:
        return ApiError(400, message, code="upstream_rejected_request")
    return ApiError(502, message, code="upstream_failed")

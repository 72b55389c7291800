"""Ollama's native /api/chat, streamed as NDJSON over httpx.

The native API (not /v1) because only it honours `options.num_ctx`. The router sizes num_ctx
to fit the prompt; this module also checks `prompt_eval_count` afterwards, because an older
server cuts an over-long prompt from the front with HTTP 200 and says nothing.

Not the official `ollama` client: its `chat()` cannot send `truncate` or `shift` (the two fields
that make a too-long prompt an error instead of a silent cut), so using it meant calling its
private `_request`; and importing it (pydantic) cost ~0.3 s of every local call's start-up.
The protocol is one POST and one JSON object per line.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, AsyncIterator

import httpx

from ..tokens import ESTIMATE_MARGIN
from .base import Call, Done, Event, ThinkingDelta, Timeouts, ToolCallDelta, Usage
from .errors import BackendError, ErrorKind, error_from_status, parse_retry_after
from .http import JSON_CONTENT, HttpClient, describe, http_timeout, json_body
from ..redact import display_url
from .sse import error_detail, sse_lines
from .thinktags import ThinkTagSplitter
from .tools import calls_of, new_call_id, result_name, tool_names

METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")


class OllamaBackend:
    def __init__(self, host: str, *, keep_alive: str | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 wire: Any = None) -> None:
        self.host = host
        self.keep_alive = keep_alive
        self._http = HttpClient(host, [], transport=transport, wire=wire)
        # model → the window a cut proved this server really used, whatever num_ctx asked for:
        # later, when the prompt cache makes counts small, they are judged against it.
        self._proven_window: dict[str, int] = {}

    @classmethod
    def from_provider(cls, provider: Any, settings: Any, wire: Any = None) -> "OllamaBackend":
        return cls(provider.base_url, keep_alive=settings.ollama_keep_alive, wire=wire)

    def warm(self, timeouts: Timeouts) -> None:
        self._http.warm()

    async def aclose(self) -> None:
        await self._http.aclose()

    def request_body(self, call: Call) -> dict[str, Any]:
        messages = _messages(call.messages)
        if call.system:
            messages = [{"role": "system", "content": call.system}, *messages]
        options: dict[str, Any] = {}
        if "num_ctx" in call.backend_options:
            options["num_ctx"] = call.backend_options["num_ctx"]
        if call.max_output_tokens is not None:
            options["num_predict"] = call.max_output_tokens
        if call.temperature is not None:
            options["temperature"] = call.temperature
        if call.seed is not None:
            options["seed"] = call.seed
        if call.top_p is not None:
            options["top_p"] = call.top_p
        if call.stop:
            options["stop"] = call.stop
        body: dict[str, Any] = {"model": call.model, "messages": messages, "stream": True, "options": options}
        if call.json_mode:
            body["format"] = "json"
        if call.tools and call.tool_choice != "none":  # the same shape as OpenAI's; no tool_choice here
            body["tools"] = call.tools
        for key in ("truncate", "shift"):
            if key in call.backend_options:
                body[key] = call.backend_options[key]
        if call.think is not None:
            body["think"] = call.think
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return body

    async def _lines(self, call: Call, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST /api/chat and yield each NDJSON object; every failure is a BackendError."""
        try:
            async with self._http.post_stream(f"{self.host}/api/chat", json_body(body), dict(JSON_CONTENT),
                                              http_timeout(call.timeouts)) as reply:
                if not reply.is_success:
                    raise _status_error(await reply.response(), call.model)
                async for line in sse_lines(reply.chunks()):  # CR/LF only, as in sse.py
                    if not line.strip():
                        continue
                    part = json.loads(line)
                    if not isinstance(part, dict):
                        raise ValueError("not a JSON object")
                    if part.get("error"):
                        # An error after the stream began: HTTP stayed 200, the answer is incomplete.
                        raise BackendError(f"Ollama failed mid-stream: {part['error']}", kind=ErrorKind.STREAM,
                                           retryable=True)
                    yield part
        except httpx.ConnectError:
            raise BackendError(f"Ollama not reachable at {display_url(self.host)}", kind=ErrorKind.CONNECT,
                               retryable=True) from None
        except httpx.TimeoutException:
            raise BackendError(f"Ollama at {display_url(self.host)} timed out", kind=ErrorKind.TIMEOUT,
                               retryable=True) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise BackendError(f"Ollama stream broke off: {describe(exc)}", kind=ErrorKind.STREAM,
                               retryable=True) from None
        except httpx.HTTPError as exc:
            raise BackendError(f"Ollama request failed: {type(exc).__name__}", kind=ErrorKind.STREAM,
                               retryable=True) from None
        except ValueError as exc:  # a line that is not JSON, or JSON that is not a chat chunk
            raise BackendError(f"Ollama sent a malformed reply ({type(exc).__name__})", kind=ErrorKind.STREAM,
                               retryable=True) from None

    async def stream(self, call: Call) -> AsyncIterator[Event]:
        body = self.request_body(call)
        splitter = ThinkTagSplitter()
        final: dict[str, Any] | None = None
        calls = 0
        checked = not self._may_be_cut(call)
        parts = self._lines(call, body)
        async with contextlib.aclosing(parts):  # a consumer that stops early hangs up at once
            async for part in parts:
                msg = part.get("message") or {}
                if not checked:
                    # Before showing a word: a window smaller than the prompt means the server
                    # cut it, whatever was asked for (a proxy that drops options, an old server).
                    checked = True
                    await self._check_window(call)  # raising hangs up: the server stops generating
                if isinstance(msg.get("thinking"), str) and msg["thinking"]:
                    yield ThinkingDelta(msg["thinking"])
                if isinstance(msg.get("content"), str) and msg["content"]:
                    for event in splitter.feed(msg["content"]):
                        yield event
                for tc in msg.get("tool_calls") or []:  # whole calls, arguments as an object
                    fn = tc.get("function") or {}
                    yield ToolCallDelta(calls, tc.get("id") or new_call_id(), fn.get("name"),
                                        json.dumps(fn.get("arguments") or {}))
                    calls += 1
                if part.get("done"):
                    final = part
        for event in splitter.flush():
            yield event
        if final is None:
            raise BackendError("Ollama stream ended without its final (done) line", kind=ErrorKind.STREAM, retryable=True)
        reason = final.get("done_reason") or "stop"  # servers before 0.1.30 sent none
        if reason not in ("stop", "length"):
            # "load"/"unload": the model was (un)loaded and nothing was generated.
            raise BackendError(f"Ollama ended with done_reason {reason!r}: not an answer", kind=ErrorKind.STREAM,
                               retryable=True)
        metrics = {k: final.get(k) for k in METRICS}
        metrics["num_ctx"] = body["options"].get("num_ctx")
        await self._check_truncation(call, final.get("prompt_eval_count"), body["options"].get("num_ctx"))
        # The server's count as it gave it, even when it covers only what its prompt cache did not
        # hold (some versions): an estimate never replaces it.
        usage = Usage(input_tokens=final.get("prompt_eval_count"), output_tokens=final.get("eval_count"),
                      cache_read_tokens=final.get("prompt_eval_cached_count") or 0)
        yield Done(usage=usage, finish_reason="tool_calls" if calls and reason == "stop" else reason, metrics=metrics)

    @staticmethod
    def _may_be_cut(call: Call) -> bool:
        est = call.est_input_tokens
        return bool(est) and int(est * (1 - ESTIMATE_MARGIN)) > 2048  # 2048: the smallest default window

    async def _check_window(self, call: Call) -> None:
        est = call.est_input_tokens or 0
        window = await self._allocated_window(call) or self._proven_window.get(call.model)
        if window is not None and int(est * (1 - ESTIMATE_MARGIN)) > window:
            raise BackendError(
                f"truncated by the server: at most {window:,} of ~{est:,} tokens evaluated (window {window:,})",
                kind=ErrorKind.TRUNCATED,
            )

    async def _check_truncation(self, call: Call, evaluated: int | None, num_ctx: int | None) -> bool:
        """Fail the call if the server evaluated less of the prompt than could have fit; return
        True when the low count is explained by the prompt cache instead.

        A low count alone is not proof: some Ollama versions reuse a cached prompt prefix and
        then report only the new part. So a low count is checked against the window the server
        actually allocated (/api/ps); if that is unknown, a count of a window's size means a cut.
        """
        est = call.est_input_tokens
        if evaluated is None:
            return False
        if num_ctx and evaluated >= num_ctx:
            # The prompt filled the whole window: it was cut, whatever the estimate said (an old
            # server counts exactly num_ctx for a prompt it cut to fit).
            raise BackendError(f"truncated by the server: {evaluated:,} tokens evaluated, the whole {num_ctx:,} "
                               "window (the prompt was longer)", kind=ErrorKind.TRUNCATED)
        if not est:
            return False
        est_low = int(est * (1 - ESTIMATE_MARGIN))
        if evaluated >= est_low:
            return False
        window = await self._allocated_window(call) or self._proven_window.get(call.model)
        if window is not None:
            cut = est_low > window
        else:
            cut = est_low > (num_ctx or 4096) or evaluated >= 1024
        if cut:
            if evaluated >= 1024:
                self._proven_window[call.model] = min(evaluated, self._proven_window.get(call.model, evaluated))
            raise BackendError(
                f"truncated by the server: {evaluated:,} of ~{est:,} tokens evaluated"
                + (f" (window {window:,})" if window else ""),
                kind=ErrorKind.TRUNCATED,
            )
        return True

    async def _allocated_window(self, call: Call) -> int | None:
        try:
            resp = await self._http.client().get(f"{self.host}/api/ps", timeout=http_timeout(call.timeouts))
            resp.raise_for_status()
            loaded = resp.json().get("models") or []
        except Exception:  # any failure here means "unknown", and the caller stays safe
            return None
        for m in loaded:
            names = (m.get("model"), m.get("name"))
            if call.model in names or (m.get("model") or "").split(":")[0] == call.model:
                return m.get("context_length")
        return None

    async def loaded_models(self, timeout_s: float = 1.0) -> dict[str, int | None] | None:
        """The models this server has loaded now (/api/ps), each with its allocated window (None
        where the server does not say); None when it cannot be asked. A pool prefers a host where
        the model is loaded already, so no call waits for a load."""
        try:
            resp = await self._http.client().get(f"{self.host}/api/ps", timeout=timeout_s)
            resp.raise_for_status()
            loaded = resp.json().get("models") or []
            return {m.get("model") or m.get("name"): m.get("context_length") for m in loaded
                    if isinstance(m, dict) and (m.get("model") or m.get("name"))}
        except Exception:  # only a preference: no answer means "unknown"
            return None


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as /api/chat takes it: tool calls with their arguments as objects, a tool
    result with the function's name (`tool_name`)."""
    names = tool_names(messages)
    out = []
    for m in messages:
        msg: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        if m.get("tool_calls"):
            msg["tool_calls"] = [{"function": {"name": name, "arguments": args}} for _, name, args in calls_of(m)]
        if m["role"] == "tool":
            msg["tool_name"] = result_name(m, names)
        out.append(msg)
    return out


def _status_error(resp: httpx.Response, model: str) -> BackendError:
    message, _, _ = error_detail(resp.content)
    message = message.strip()
    status = resp.status_code
    if status == 404 and "model" in message.lower():
        return BackendError(f"{message} (ollama pull {model})", kind=ErrorKind.NOT_FOUND, status=404)
    if status == 404:
        return BackendError(f"{display_url(str(resp.request.url).rsplit('/api/', 1)[0])} does not serve Ollama's "
                            f"/api/chat (HTTP 404: {message}); if it speaks the OpenAI API, add it under "
                            "`endpoints:` in config.yaml instead", kind=ErrorKind.NOT_FOUND, status=404)
    if "context length" in message or "context window" in message:
        return BackendError(f"Ollama refused the prompt: {message}", kind=ErrorKind.CONTEXT, status=status)
    return error_from_status(status, message, parse_retry_after(resp.headers))

"""Anthropic Messages API, streamed."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncIterator

import httpx

from .base import Call, Done, Event, TextDelta, ThinkingDelta, ToolCallDelta, Usage, Timeouts
from .errors import BackendError, ErrorKind
from .sse import SSEClient, drain, load_json, stream_error
from .tools import calls_of, forced_name, functions

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the API requires max_tokens
MIN_THINKING_BUDGET = 1024  # the API's floor
_LEVEL_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}

JSON_MODE_INSTRUCTION = "Answer with one valid JSON object and nothing else: no prose, no Markdown code fence."

# What count_tokens accepts of a Messages request (it refuses max_tokens, stream, sampling).
_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")

# The stop reasons of a complete answer; anything else is not one (see `finished`).
_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


class AnthropicBackend:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        wire: Any = None,
    ) -> None:
        # The convention is a base without /v1; tolerate one rather than POST /v1/v1/messages.
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self._headers = {"anthropic-version": API_VERSION, "accept": "text/event-stream"}
        if api_key:
            self._headers["x-api-key"] = api_key
        self._http = SSEClient(self.base_url, [api_key], transport=transport, wire=wire)

    @classmethod
    def from_provider(cls, provider: Any, settings: Any, wire: Any = None) -> "AnthropicBackend":
        return cls(provider.base_url, provider.api_key(), wire=wire)

    def request_body(self, call: Call) -> dict[str, Any]:
        # Anthropic has no system role in messages: fold any into the top-level system.
        system = [call.system] if call.system else []
        system += [m["content"] for m in call.messages if m["role"] == "system"]
        messages = _messages([m for m in call.messages if m["role"] != "system"])
        max_tokens = call.max_output_tokens or DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {
            "model": call.model,
            "max_tokens": max_tokens,
            "messages": messages,
            "stream": True,
        }
        if call.json_mode:  # no JSON switch in this API: ask for it in words
            system.append(JSON_MODE_INSTRUCTION)
        if system:
            body["system"] = "\n\n".join(system)
        if call.stop:
            body["stop_sequences"] = call.stop
        if call.tools:
            body["tools"] = [{"name": name, **({"description": desc} if desc else {}), "input_schema": params}
                             for name, desc, params in functions(call.tools)]
            choice = _tool_choice(call.tool_choice)
            if choice is not None:
                body["tool_choice"] = choice
        if call.think:
            budget = _thinking_budget(call, max_tokens)
            if budget >= max_tokens:
                # Thinking counts against max_tokens; keep the caller's cap for the answer.
                body["max_tokens"] = budget + max_tokens
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        elif call.temperature is not None:  # the API rejects temperature with thinking on
            body["temperature"] = call.temperature
        elif call.top_p is not None:  # newer models refuse temperature and top_p together
            body["top_p"] = call.top_p
        return body

    def warm(self, timeouts: Timeouts) -> None:
        self._http.warm()

    async def stream(self, call: Call) -> AsyncIterator[Event]:
        input_tokens = cache_read = cache_write = cache_write_1h = 0
        output_tokens: int | None = None
        have_usage = False
        stop_reason: str | None = None
        stopped = False
        tool_index: dict[int, int] = {}  # content block index → tool call index
        url = f"{self.base_url}/v1/messages"
        events = self._http.events(call, url, self.request_body(call), self._headers)
        async with aclosing(events):
            async for event, data in events:
                if event == "ping":
                    continue
                obj = load_json(data, self._http.secrets)
                kind = obj.get("type") or event
                if kind == "error":
                    raise stream_error(obj, self._http.secrets)
                if kind == "message_start":
                    u = (obj.get("message") or {}).get("usage") or {}
                    have_usage = "input_tokens" in u
                    input_tokens = u.get("input_tokens") or 0
                    cache_read = u.get("cache_read_input_tokens") or 0
                    cache_write = u.get("cache_creation_input_tokens") or 0
                    cache_write_1h = (u.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0
                    output_tokens = u.get("output_tokens")
                elif kind == "content_block_start":
                    block = obj.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        tool_index[obj.get("index", 0)] = n = len(tool_index)
                        yield ToolCallDelta(n, block.get("id"), block.get("name"))
                elif kind == "content_block_delta":
                    delta = obj.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield TextDelta(delta["text"])
                    elif delta.get("type") == "thinking_delta" and delta.get("thinking"):
                        yield ThinkingDelta(delta["thinking"])
                    elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                        n = tool_index.get(obj.get("index", 0))
                        if n is not None:
                            yield ToolCallDelta(n, arguments=delta["partial_json"])
                elif kind == "message_delta":
                    stop_reason = (obj.get("delta") or {}).get("stop_reason") or stop_reason
                    u = obj.get("usage") or {}
                    # Cumulative counts: the last one is the total.
                    if u.get("output_tokens") is not None:
                        output_tokens = u["output_tokens"]
                    # Newer servers may restate the input side here; prefer the later figure.
                    if u.get("input_tokens"):
                        input_tokens, have_usage = u["input_tokens"], True
                    cache_read = u.get("cache_read_input_tokens") or cache_read
                    cache_write = u.get("cache_creation_input_tokens") or cache_write
                    cache_write_1h = (u.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or cache_write_1h
                elif kind == "message_stop":
                    stopped = True
                    break
            if stopped:
                await drain(events)
        if not stopped:
            raise BackendError(
                "stream ended before message_stop (connection dropped?)", kind=ErrorKind.STREAM, retryable=True
            )
        usage = Usage(
            # input_tokens excludes cache reads and writes; ours is the total input.
            input_tokens=input_tokens + cache_read + cache_write if have_usage else None,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=cache_write_1h,
        )
        yield Done(usage=usage, finish_reason=finished(stop_reason))

    async def count_tokens(self, call: Call) -> int | None:
        """The input tokens of `call` by the API's own count (`POST /v1/messages/count_tokens`, free);
        None when the server has no such endpoint (a compatible gateway)."""
        body = {k: v for k, v in self.request_body(call).items() if k in _COUNT_FIELDS}
        data = await self._http.post_json(call, f"{self.base_url}/v1/messages/count_tokens", body, self._headers)
        n = (data or {}).get("input_tokens")
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    async def aclose(self) -> None:
        await self._http.aclose()


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation in this API's terms: an assistant's tool calls are `tool_use` blocks,
    each tool result a `tool_result` block in a user turn; turns of one role are merged, as the
    API wants user and assistant to alternate."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "tool":
            role = "user"
            content: Any = [{"type": "tool_result", "tool_use_id": m.get("tool_call_id") or "",
                             "content": m["content"] or ""}]
        elif m["role"] == "assistant" and m.get("tool_calls"):
            role = "assistant"
            content = [{"type": "text", "text": m["content"]}] if m["content"] else []
            content += [{"type": "tool_use", "id": call_id, "name": name, "input": args}
                        for call_id, name, args in calls_of(m)]
        else:
            role, content = m["role"], m["content"]
        if out and out[-1]["role"] == role:
            out[-1]["content"] = _blocks(out[-1]["content"]) + _blocks(content)
        else:
            out.append({"role": role, "content": content})
    return out


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    name = forced_name(choice)
    if name:
        return {"type": "tool", "name": name}
    return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(choice)


def finished(reason: str | None) -> str:
    """The normalised stop reason of a complete answer; a BackendError for anything else."""
    if reason == "refusal":
        raise BackendError("the model refused to answer (stop_reason: refusal)", kind=ErrorKind.BLOCKED)
    if reason == "model_context_window_exceeded":
        raise BackendError("the model's context window filled up before the answer was complete "
                           "(stop_reason: model_context_window_exceeded)", kind=ErrorKind.CONTEXT)
    if reason == "pause_turn":
        raise BackendError("the model paused its turn (stop_reason: pause_turn): not a complete answer",
                           kind=ErrorKind.STREAM, retryable=True)
    if reason not in _STOP:
        raise BackendError(f"the stream ended with stop_reason {reason!r}: not a complete answer",
                           kind=ErrorKind.STREAM, retryable=True)
    return _STOP[reason]


def parse_message(body: dict[str, Any]) -> tuple[str, str, Done]:
    """A whole, non-streamed `message` body (a Message Batches result): its text, its thinking
    and its Done. A BackendError when it is not a complete answer."""
    blocks = [b for b in body.get("content") or [] if isinstance(b, dict)]
    text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
    thinking = "".join(b.get("thinking") or "" for b in blocks if b.get("type") == "thinking")
    u = body.get("usage") or {}
    cache_read = u.get("cache_read_input_tokens") or 0
    cache_write = u.get("cache_creation_input_tokens") or 0
    usage = Usage(
        # input_tokens excludes cache reads and writes; ours is the total input.
        input_tokens=(u.get("input_tokens") or 0) + cache_read + cache_write if "input_tokens" in u else None,
        output_tokens=u.get("output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=(u.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0,
    )
    return text, thinking, Done(usage=usage, finish_reason=finished(body.get("stop_reason")))


def _thinking_budget(call: Call, max_tokens: int) -> int:
    explicit = call.backend_options.get("thinking_budget")
    if explicit:
        wanted = int(explicit)
    elif isinstance(call.think, str) and call.think in _LEVEL_BUDGET:
        wanted = min(_LEVEL_BUDGET[call.think], max_tokens // 2)
    else:
        wanted = max_tokens // 2  # leave half the cap for the answer
    return max(MIN_THINKING_BUDGET, wanted)

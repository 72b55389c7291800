"""Google Gemini (Generative Language API), streamed with `alt=sse`."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any, AsyncIterator
from urllib.parse import quote

import httpx

from .base import Call, Done, Event, TextDelta, ThinkingDelta, ToolCallDelta, Usage, Timeouts
from .errors import BackendError, ErrorKind
from ..redact import redact
from .sse import SSEClient, load_json, stream_error
from .tools import calls_of, forced_name, functions, new_call_id, result_name, tool_names

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}  # the endings of a complete answer
MAX_LEGS = 16  # requests for one answer that keeps asking to continue
# Endings where Google withheld (part of) the answer: an error, never a short answer.
_BLOCKED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}


class GeminiBackend:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        wire: Any = None,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1beta")
        # The key goes in a header, never in the URL, so it cannot leak into error text.
        self._headers = {"accept": "text/event-stream"}
        if api_key:
            self._headers["x-goog-api-key"] = api_key
        self._http = SSEClient(self.base_url, [api_key], transport=transport, wire=wire)

    def url(self, model: str) -> str:
        model = quote(model.removeprefix("models/"), safe="")
        return f"{self.base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"

    @classmethod
    def from_provider(cls, provider: Any, settings: Any, wire: Any = None) -> "GeminiBackend":
        return cls(provider.base_url, provider.api_key(), wire=wire)

    def request_body(self, call: Call) -> dict[str, Any]:
        system = [call.system] if call.system else []
        system += [m["content"] for m in call.messages if m["role"] == "system"]
        contents = _contents([m for m in call.messages if m["role"] != "system"])
        body: dict[str, Any] = {"contents": contents}
        if call.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": name, **({"description": desc} if desc else {}), "parametersJsonSchema": params}
                for name, desc, params in functions(call.tools)]}]
            mode = _tool_mode(call.tool_choice)
            if mode is not None:
                body["toolConfig"] = {"functionCallingConfig": mode}
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        config: dict[str, Any] = {}
        if call.max_output_tokens is not None:
            config["maxOutputTokens"] = call.max_output_tokens
        if call.temperature is not None:
            config["temperature"] = call.temperature
        if call.top_p is not None:
            config["topP"] = call.top_p
        if call.stop:
            config["stopSequences"] = call.stop
        if call.json_mode:
            config["responseMimeType"] = "application/json"
        if call.seed is not None:
            config["seed"] = call.seed
        if call.think:
            config["thinkingConfig"] = {"includeThoughts": True}
            if call.backend_options.get("thinking_budget") is not None:
                config["thinkingConfig"]["thinkingBudget"] = int(call.backend_options["thinking_budget"])
        if config:
            body["generationConfig"] = config
        return body

    def warm(self, timeouts: Timeouts) -> None:
        self._http.warm()

    async def stream(self, call: Call) -> AsyncIterator[Event]:
        """One answer, however many requests it takes: a response that stops at a per-request
        limit (finishReason CONTINUATION, with a continuationToken) is asked again with the token,
        as the official SDK does, and every leg is metered."""
        body = self.request_body(call)
        legs: list[dict[str, Any] | None] = []
        calls = 0
        for _ in range(MAX_LEGS):
            leg = _Leg()
            leg.calls = calls
            async for event in self._leg(call, body, leg):
                yield event
            legs.append(leg.meta)
            calls = leg.calls
            if leg.finish != "CONTINUATION":
                break
            if not leg.token:
                raise BackendError("Gemini stopped with finishReason CONTINUATION but sent no continuationToken",
                                   kind=ErrorKind.STREAM, retryable=True)
            body = {**body, "continuationToken": leg.token}
        else:
            raise BackendError(f"Gemini asked to continue more than {MAX_LEGS} times", kind=ErrorKind.STREAM)
        finish = "tool_calls" if calls and leg.finish == "STOP" else _FINISH[leg.finish]
        yield Done(usage=_usage_of_legs(legs), finish_reason=finish)

    async def _leg(self, call: Call, body: dict[str, Any], leg: "_Leg") -> AsyncIterator[Event]:
        events = self._http.events(call, self.url(call.model), body, self._headers)
        async with aclosing(events):
            async for _event, data in events:
                chunk = load_json(data, self._http.secrets)
                if chunk.get("error"):
                    raise stream_error(chunk, self._http.secrets)
                feedback = chunk.get("promptFeedback") or {}
                if feedback.get("blockReason"):
                    detail = feedback.get("blockReasonMessage")
                    message = f"prompt blocked by Gemini: {feedback['blockReason']}"
                    if detail:
                        message = redact(f"{message} ({detail})", self._http.secrets)
                    raise BackendError(message, kind=ErrorKind.BLOCKED)
                if chunk.get("usageMetadata"):  # running totals: the last one wins
                    leg.meta = chunk["usageMetadata"]
                if chunk.get("continuationToken"):
                    leg.token = chunk["continuationToken"]
                for candidate in (chunk.get("candidates") or [])[:1]:
                    for part in (candidate.get("content") or {}).get("parts") or []:
                        text = part.get("text")
                        if text:
                            yield ThinkingDelta(text) if part.get("thought") else TextDelta(text)
                        fn = part.get("functionCall")
                        if isinstance(fn, dict):  # whole calls, never fragments, in this protocol
                            yield ToolCallDelta(leg.calls, fn.get("id") or new_call_id(), fn.get("name"),
                                                json.dumps(fn.get("args") or {}))
                            leg.calls += 1
                    reason = candidate.get("finishReason")
                    if reason in _BLOCKED:
                        raise BackendError(
                            f"response blocked by Gemini: finishReason {reason}", kind=ErrorKind.BLOCKED
                        )
                    if reason and reason != "FINISH_REASON_UNSPECIFIED":
                        leg.finish = reason
        # No end marker in this protocol: a finishReason followed by the end of the body is it.
        if leg.finish is None:
            raise BackendError(
                "stream ended without a finishReason (connection dropped?)", kind=ErrorKind.STREAM, retryable=True
            )
        if leg.finish not in _FINISH and leg.finish != "CONTINUATION":
            # MALFORMED_RESPONSE, OTHER, and whatever Google adds next: not a complete answer.
            raise BackendError(f"Gemini ended with finishReason {leg.finish}: not a complete answer",
                               kind=ErrorKind.STREAM, retryable=leg.finish == "MALFORMED_RESPONSE")

    async def count_tokens(self, call: Call) -> int | None:
        """The input tokens of `call` by the API's own count (`models/{m}:countTokens`, free): the
        whole request as a `generateContentRequest`, so the system instruction counts too."""
        model = self.url(call.model).rsplit("/", 1)[-1].split(":", 1)[0]
        request = {k: v for k, v in self.request_body(call).items() if k != "generationConfig"}
        body = {"generateContentRequest": {"model": f"models/{model}", **request}}
        url = f"{self.base_url}/v1beta/models/{model}:countTokens"
        data = await self._http.post_json(call, url, body, self._headers)
        n = (data or {}).get("totalTokens")
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    async def aclose(self) -> None:
        await self._http.aclose()


def parse_response(body: dict[str, Any]) -> tuple[str, str, Done]:
    """A whole, non-streamed `GenerateContentResponse` (a batch job's result): its text, its
    thoughts and its Done. A BackendError when it is not a complete answer (blocked, or ended
    with any reason but STOP / MAX_TOKENS — a batch result cannot be continued)."""
    feedback = body.get("promptFeedback") or {}
    if feedback.get("blockReason"):
        raise BackendError(f"prompt blocked by Gemini: {feedback['blockReason']}", kind=ErrorKind.BLOCKED)
    candidate = next(iter(body.get("candidates") or []), None) or {}
    parts = [p for p in (candidate.get("content") or {}).get("parts") or [] if isinstance(p, dict)]
    text = "".join(p.get("text") or "" for p in parts if not p.get("thought"))
    thinking = "".join(p.get("text") or "" for p in parts if p.get("thought"))
    reason = candidate.get("finishReason")
    if reason in _BLOCKED:
        raise BackendError(f"response blocked by Gemini: finishReason {reason}", kind=ErrorKind.BLOCKED)
    if reason not in _FINISH:
        raise BackendError(f"Gemini ended with finishReason {reason}: not a complete answer",
                           kind=ErrorKind.STREAM, retryable=True)
    return text, thinking, Done(usage=_usage(body.get("usageMetadata")), finish_reason=_FINISH[reason])


def _contents(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as `contents`: tool calls are `functionCall` parts of a model turn, tool
    results `functionResponse` parts of a user turn; turns of one role are merged, so all the
    answers to one turn's calls arrive together, as the API wants."""
    names = tool_names(messages)
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "tool":
            role = "user"
            parts = [{"functionResponse": {"name": result_name(m, names), "response": _response(m["content"])}}]
        elif m["role"] == "assistant" and m.get("tool_calls"):
            role = "model"
            parts = [{"text": m["content"]}] if m["content"] else []
            parts += [{"functionCall": {"name": name, "args": args}} for _, name, args in calls_of(m)]
        else:
            role, parts = ("model" if m["role"] == "assistant" else "user"), [{"text": m["content"]}]
        if out and out[-1]["role"] == role:
            out[-1]["parts"] += parts
        else:
            out.append({"role": role, "parts": parts})
    return out


def _response(content: str) -> dict[str, Any]:
    """A tool's result as the object `functionResponse.response` must be."""
    try:
        value = json.loads(content)
    except (TypeError, ValueError):
        return {"result": content}
    return value if isinstance(value, dict) else {"result": value}


def _tool_mode(choice: Any) -> dict[str, Any] | None:
    name = forced_name(choice)
    if name:
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(choice)
    return {"mode": mode} if mode else None


class _Leg:
    """One request of an answer: its finish reason, usage and continuation token."""

    def __init__(self) -> None:
        self.finish: str | None = None
        self.token: str | None = None
        self.meta: dict[str, Any] | None = None
        self.calls = 0  # tool calls of the answer so far


def _usage_of_legs(legs: list[dict[str, Any] | None]) -> Usage:
    """Each leg is a request of its own, billed for its prompt and its output: add them up."""
    parts = [_usage(meta) for meta in legs]
    if any(p.input_tokens is None for p in parts):
        return Usage()
    reasoning = [p.reasoning_tokens for p in parts if p.reasoning_tokens is not None]
    return Usage(
        input_tokens=sum(p.input_tokens for p in parts),
        output_tokens=sum(p.output_tokens or 0 for p in parts),
        cache_read_tokens=sum(p.cache_read_tokens for p in parts),
        reasoning_tokens=sum(reasoning) if reasoning else None,
    )


def _usage(meta: dict[str, Any] | None) -> Usage:
    if not meta or meta.get("promptTokenCount") is None:
        return Usage()
    thoughts = meta.get("thoughtsTokenCount")
    return Usage(
        input_tokens=meta["promptTokenCount"],  # includes cachedContentTokenCount
        output_tokens=(meta.get("candidatesTokenCount") or 0) + (thoughts or 0),
        cache_read_tokens=meta.get("cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
    )

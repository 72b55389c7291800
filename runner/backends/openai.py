"""OpenAI Chat Completions, streamed: OpenAI and every compatible server.

DeepSeek, xAI, Mistral, LM Studio, vLLM, llama.cpp and Ollama's /v1 all speak it, with small
differences handled here: where reasoning text streams, how cache hits and reasoning tokens are
counted, and which request fields a server rejects.
"""

from __future__ import annotations

import json
import re
from contextlib import aclosing
from typing import Any, AsyncIterator

import httpx

from .base import Call, Done, Event, TextDelta, ThinkingDelta, ToolCallDelta, Usage, Timeouts
from .errors import BackendError, ErrorKind
from .sse import SSEClient, drain, load_json, stream_error
from ..tokens import MESSAGE_OVERHEAD

# The endings that make a complete answer, in the words compatible servers use for them.
# Anything else (none at all, an abort, a word we don't know) is not a complete answer.
_FINISH = {
    "stop": "stop",
    "eos": "stop",
    "eos_token": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",  # Mistral: the context window filled up
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}

_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret")

# OpenAI's reasoning models take only the default temperature: any other value is a 400.
_FIXED_TEMPERATURE = re.compile(r"^(o\d|gpt-5)")


class OpenAIBackend:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        provider: str = "openai",
        max_tokens_field: str = "max_completion_tokens",
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        wire: Any = None,
    ) -> None:
        if max_tokens_field not in ("max_completion_tokens", "max_tokens"):
            raise ValueError(f"max_tokens_field: {max_tokens_field!r}")
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.max_tokens_field = max_tokens_field
        self._headers = {"accept": "text/event-stream", **(headers or {})}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        # Extra headers may carry credentials too (Azure's api-key, gateway tokens).
        secrets = [api_key] + [
            v for k, v in (headers or {}).items() if any(w in k.lower() for w in _SECRET_HEADER_WORDS)
        ]
        self._http = SSEClient(self.base_url, secrets, transport=transport, wire=wire)
        self._count_path: str | None = None  # the tokenize route that answered (count_tokens)

    @classmethod
    def from_provider(cls, provider: Any, settings: Any, wire: Any = None) -> "OpenAIBackend":
        return cls(provider.base_url, provider.api_key(), provider=provider.name,
                   max_tokens_field=provider.max_tokens_field, wire=wire)

    def request_body(self, call: Call) -> dict[str, Any]:
        messages = [{"role": "system", "content": call.system}] if call.system else []
        messages += [_message(m) for m in call.messages]
        body: dict[str, Any] = {"model": call.model, "messages": messages, "stream": True}
        if call.tools:
            body["tools"] = call.tools
            if call.tool_choice is not None:
                body["tool_choice"] = call.tool_choice
        # Mistral rejects stream_options with a 422 (and sends usage anyway) and calls seed
        # random_seed.
        mistral = self.provider == "mistral"
        if not mistral:
            body["stream_options"] = {"include_usage": True}
        if call.max_output_tokens is not None:
            body[self.max_tokens_field] = call.max_output_tokens
        fixed = self.provider == "openai" and _FIXED_TEMPERATURE.match(call.model)
        if call.temperature is not None and not fixed:
            body["temperature"] = call.temperature
        if call.top_p is not None and not fixed:  # reasoning models take only the default top_p too
            body["top_p"] = call.top_p
        if call.stop:
            body["stop"] = call.stop
        if call.json_mode:
            body["response_format"] = {"type": "json_object"}
        if call.seed is not None:
            body["random_seed" if mistral else "seed"] = call.seed
        if isinstance(call.think, str):  # "low" | "medium" | "high" on reasoning models
            body["reasoning_effort"] = call.think
        # Extra fields for one server, named like the OpenAI SDK's extra_body.
        body.update(call.backend_options.get("extra_body") or {})
        return body

    def warm(self, timeouts: Timeouts) -> None:
        self._http.warm()

    async def stream(self, call: Call) -> AsyncIterator[Event]:
        usage: dict[str, Any] | None = None
        finish: str | None = None
        done = False
        seen = 0  # events received: none at all is a reply of its own (below)
        events = self._http.events(
            call, f"{self.base_url}/chat/completions", self.request_body(call), self._headers
        )
        async with aclosing(events):
            async for event, data in events:
                seen += 1
                if data.strip() == "[DONE]":
                    done = True
                    break
                chunk = load_json(data, self._http.secrets)
                # {"error": {...}} (OpenAI), {"object": "error", ...} (vLLM), `error:` (llama.cpp)
                if chunk.get("error") or chunk.get("object") == "error" or event == "error":
                    raise stream_error(chunk, self._http.secrets)
                if chunk.get("usage"):  # vLLM may repeat it per chunk: the last one wins
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    if choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    # DeepSeek: reasoning_content; Ollama /v1, vLLM, OpenRouter: reasoning.
                    for key in ("reasoning_content", "reasoning"):
                        if isinstance(delta.get(key), str) and delta[key]:
                            yield ThinkingDelta(delta[key])
                    if isinstance(delta.get("content"), str) and delta["content"]:
                        yield TextDelta(delta["content"])
                    for piece in delta.get("tool_calls") or []:
                        fn = piece.get("function") or {}
                        yield ToolCallDelta(piece.get("index", 0), piece.get("id"), fn.get("name"),
                                            fn.get("arguments") or "")
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
            if done:
                await drain(events)
        if not seen:
            # llama-cpp-python answers a streamed prompt over its window with 200 and no body at all.
            raise BackendError(
                "the server sent an empty reply (llama.cpp's server does this for a prompt over its "
                "context window)", kind=ErrorKind.CONTEXT)
        if not done:
            raise BackendError(
                "stream ended before data: [DONE] (connection dropped?)", kind=ErrorKind.STREAM, retryable=True
            )
        yield Done(usage=_usage(usage), finish_reason=finished(finish))

    async def count_tokens(self, call: Call) -> int | None:
        """The input tokens of `call` by a llama.cpp server's tokenizer, at the server's root (not
        under /v1): llama-cpp-python's `POST /extras/tokenize/count` or llama-server's
        `POST /tokenize`; None for a server with neither (hosted APIs, vLLM, LM Studio, Ollama).
        The text is every message's content; the chat template is counted as runner's estimate
        counts it (MESSAGE_OVERHEAD per message). A call to a local server must hold its
        concurrency slot: llama-cpp-python cuts a running stream when any request arrives."""
        root = self.base_url.removesuffix("/v1")
        messages = ([call.system] if call.system else []) + [_content_text(m) for m in call.messages]
        text = "\n".join(messages)
        if call.tools:
            text += "\n" + json.dumps(call.tools)
        n = None
        for path in ([self._count_path] if self._count_path else ["/extras/tokenize/count", "/tokenize"]):
            body = {"input": text, "model": call.model} if path.startswith("/extras") else {"content": text}
            data = await self._http.post_json(call, root + path, body, self._headers)
            if data is None:
                continue
            n = data.get("count") if path.startswith("/extras") else len(data.get("tokens") or [])
            self._count_path = path
            break
        if not isinstance(n, int) or isinstance(n, bool):
            return None
        return n + MESSAGE_OVERHEAD * len(messages)

    async def aclose(self) -> None:
        await self._http.aclose()


def _message(m: dict[str, Any]) -> dict[str, Any]:
    """One message of the conversation as the API takes it (tool calls and results kept)."""
    out: dict[str, Any] = {"role": m["role"], "content": m["content"]}
    if m.get("tool_calls"):
        out["tool_calls"] = m["tool_calls"]
        out["content"] = m["content"] or None
    if m["role"] == "tool":
        out["tool_call_id"] = m.get("tool_call_id")
    return out


def finished(reason: str | None) -> str:
    """The normalised finish reason of a complete answer; a BackendError for anything else."""
    if reason is None:
        # llama-cpp-python ends a stream this way when another request cuts it off.
        raise BackendError("the stream ended without a finish_reason: the answer is incomplete (a local "
                           "server that serves one request at a time cuts a stream when another arrives)",
                           kind=ErrorKind.STREAM, retryable=True)
    if reason == "content_filter":
        raise BackendError("response stopped by the provider's content filter", kind=ErrorKind.BLOCKED)
    if reason not in _FINISH:
        raise BackendError(f"the stream ended with finish_reason {reason!r}: not a complete answer",
                           kind=ErrorKind.STREAM, retryable=True)
    return _FINISH[reason]


def parse_completion(body: dict[str, Any]) -> tuple[str, str, Done]:
    """A whole, non-streamed `chat.completion` body (a provider batch's result): its text, its
    reasoning text and its Done. A BackendError when it is not a complete answer."""
    choice = next((c for c in body.get("choices") or [] if isinstance(c, dict) and c.get("index", 0) == 0), None)
    if choice is None:
        raise BackendError("the response has no answer (no choices)", kind=ErrorKind.STREAM, retryable=True)
    message = choice.get("message") or {}
    thinking = message.get("reasoning_content") or message.get("reasoning") or ""
    text = message.get("content") or ""
    return text, thinking if isinstance(thinking, str) else "", Done(usage=_usage(body.get("usage")),
                                                                      finish_reason=finished(choice.get("finish_reason")))


def _content_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return content if isinstance(content, str) else ""


def _usage(u: dict[str, Any] | None) -> Usage:
    """Usage in our terms; None fields when the server sent none (the caller estimates)."""
    if not u:
        return Usage()
    prompt = u.get("prompt_tokens")
    completion = u.get("completion_tokens")
    details = u.get("prompt_tokens_details") or {}
    # DeepSeek counts its cache hits apart (genai-prices' extractor misses them).
    cached = details.get("cached_tokens") or u.get("prompt_cache_hit_tokens") or 0
    written = details.get("cache_write_tokens") or 0
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens")
    output = completion
    # xAI counts reasoning outside completion_tokens (total = prompt + completion + reasoning);
    # OpenAI and DeepSeek count it inside. The total tells which.
    total = u.get("total_tokens")
    if reasoning and None not in (prompt, completion, total) and total == prompt + completion + reasoning:
        output = completion + reasoning
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )

"""OpenAI Chat Completions: a request body in, the answer out as the official `openai` SDK
parses it (a `chat.completion` object, or `chat.completion.chunk` SSE events ending in
`data: [DONE]`), errors as `{"error": {"message", "type", "param", "code"}}`.

Thinking streams as `reasoning_content` (DeepSeek's field; clients that don't know it ignore it).
The final chunk carries an extra `runner` field (model, task, cost, timings, attempts, run id).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from ..backends import TextDelta, ThinkingDelta, ToolCallDelta
from ..options import THINK_LEVELS, GenerationOptions
from .errors import ApiError
from .relay import Outcome

ROLES = ("system", "developer", "user", "assistant", "tool")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")


@dataclass
class ChatRequest:
    """A client's request, checked and in runner's terms."""

    model: str
    messages: list[dict[str, Any]]  # OpenAI's shape, text content only
    options: GenerationOptions
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    has_system: bool = False

    @property
    def prompt(self) -> str:
        """The last user message: what the run log shows as the prompt."""
        return last_user_text(self.messages)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user" and m.get("content"):
            return m["content"]
    return next((m["content"] for m in reversed(messages) if m.get("content")), "")


def bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, code=code, param=param)


def text_of(content: Any, where: str) -> str:
    """A message's content as text: a string, or a list of text parts joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "input_audio", "file"):
                raise bad(f"{where}[{i}] is {part['type']}: runner serve takes text only for now", f"{where}[{i}]")
            else:
                raise bad(f"{where}[{i}] must be a text part ({{\"type\": \"text\", \"text\": …}})", f"{where}[{i}]")
        return "\n".join(parts)
    raise bad(f"{where} must be a string or a list of text parts", where)


def parse_tool_calls(raw: Any, where: str) -> list[dict[str, Any]]:
    """An assistant turn's tool_calls, checked, as [{"id", "type": "function", "function": {"name", "arguments"}}]."""
    if not isinstance(raw, list):
        raise bad(f"{where} must be a list of tool calls", where)
    out = []
    for j, call in enumerate(raw):
        at = f"{where}[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise bad(f"{at} must be {{\"id\", \"type\": \"function\", \"function\": {{\"name\", \"arguments\"}}}}", at)
        args = fn.get("arguments")
        if args is None:
            args = "{}"
        elif isinstance(args, dict):
            args = json.dumps(args)
        elif not isinstance(args, str):
            raise bad(f"{at}.function.arguments must be JSON text", f"{at}.function.arguments")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise bad(f"{at}.id is required", f"{at}.id")
        out.append({"id": call_id, "type": "function", "function": {"name": fn["name"], "arguments": args}})
    return out


def parse_messages(raw: Any) -> tuple[list[dict[str, Any]], bool]:
    """(messages in OpenAI's shape with text content, whether one is a system message).
    A tool result gets the `name` of the function it answers, where the conversation says."""
    if not isinstance(raw, list) or not raw:
        raise bad("messages must be a non-empty list of {role, content}", "messages",
                  "missing_required_parameter" if raw is None else "invalid_value")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id → function name
    has_system = False
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f"{where} must be an object with role and content", where)
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}", f"{where}.role")
        if role == "developer":
            role = "system"
        content = text_of(m.get("content"), f"{where}.content")
        msg: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant" and m.get("tool_calls"):
            msg["tool_calls"] = parse_tool_calls(m["tool_calls"], f"{where}.tool_calls")
            names.update((c["id"], c["function"]["name"]) for c in msg["tool_calls"])
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad(f"{where}.tool_call_id is required for a tool result", f"{where}.tool_call_id")
            msg["tool_call_id"] = call_id
            name = m.get("name") if isinstance(m.get("name"), str) else names.get(call_id)
            if name:
                msg["name"] = name
        has_system = has_system or role == "system"
        out.append(msg)
    return out, has_system


def parse_chat(body: Any) -> ChatRequest:
    """A /v1/chat/completions body, checked: an ApiError 400 names the bad field."""
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object", None, "invalid_request")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad("model is required: a task (e.g. coding) or a provider/model", "model", "missing_required_parameter")
    messages, has_system = parse_messages(body.get("messages"))
    n = body.get("n")
    if n not in (None, 1):
        raise bad("n must be 1: runner serve gives one answer per request", "n")
    max_tokens = body.get("max_completion_tokens")
    max_param = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, max_param = body.get("max_tokens"), "max_tokens"
    json_mode = None
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_object":
            json_mode = True
        elif kind == "json_schema":
            raise bad("response_format json_schema is not supported by runner serve; use {\"type\": \"json_object\"}",
                      "response_format")
        elif kind != "text":
            raise bad("response_format must be {\"type\": \"text\"} or {\"type\": \"json_object\"}", "response_format")
    effort = body.get("reasoning_effort")
    think = None
    if effort is not None:
        if effort in THINK_LEVELS:
            think = effort
        elif effort in ("none", "minimal"):
            think = False
        else:
            raise bad("reasoning_effort must be none, minimal, low, medium or high", "reasoning_effort")
    tools = body.get("tools") or None
    tool_choice = body.get("tool_choice") if tools else None
    fields = {"max_output_tokens": (max_tokens, max_param), "temperature": (body.get("temperature"), "temperature"),
              "top_p": (body.get("top_p"), "top_p"), "stop": (body.get("stop"), "stop"),
              "seed": (body.get("seed"), "seed"), "json_mode": (json_mode, "response_format"),
              "think": (think, "reasoning_effort"), "tools": (tools, "tools"),
              "tool_choice": (tool_choice, "tool_choice")}
    options = GenerationOptions(**{k: v for k, (v, _) in fields.items()})
    for name, why in options.problems():
        param = fields[name][1]
        raise bad(f"{param} {why}", param)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream must be true or false", "stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise bad("stream_options must be an object", "stream_options")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad("user must be a string", "user")
    return ChatRequest(model.strip(), messages, options, stream, bool(stream_options.get("include_usage")),
                       user or None, has_system)


# --- answers ---------------------------------------------------------------------------


def new_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def finish_reason(outcome: Outcome) -> str:
    ans = outcome.answer
    reason = ans.finish_reason if ans is not None else None
    if outcome.tool_calls and reason in (None, "stop"):
        return "tool_calls"
    return reason if reason in FINISH_REASONS else "stop"


def usage(outcome: Outcome) -> dict[str, Any]:
    ans = outcome.answer
    prompt = (ans.input_tokens if ans else None) or 0
    completion = (ans.output_tokens if ans else None) or 0
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if ans is not None and ans.cache_read_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": ans.cache_read_tokens}
    return out


def runner_field(outcome: Outcome) -> dict[str, Any]:
    """What runner adds to the final chunk (and sends as headers when not streamed)."""
    r = outcome.record
    return {"model": r.get("model"), "task": r.get("task"), "cost_usd": r.get("cost_usd"),
            "latency_ms": r.get("latency_ms"), "ttft_ms": r.get("ttft_ms"), "attempts": len(r.get("attempts") or []),
            "input_tokens": r.get("input_tokens"), "output_tokens": r.get("output_tokens"),
            "tokens_estimated": r.get("tokens_estimated"), "run_id": r.get("id")}


def runner_headers(outcome: Outcome) -> dict[str, str]:
    meta = runner_field(outcome)

    def show(value: Any) -> str:
        return "unknown" if value is None else str(value)

    headers = {"x-runner-model": show(meta["model"]), "x-runner-task": show(meta["task"]),
               "x-runner-cost-usd": show(meta["cost_usd"]), "x-runner-latency-ms": show(meta["latency_ms"]),
               "x-runner-ttft-ms": show(meta["ttft_ms"]), "x-runner-attempts": str(meta["attempts"])}
    if meta["run_id"] is not None:
        headers["x-runner-run-id"] = str(meta["run_id"])
    return headers


def completion(outcome: Outcome) -> dict[str, Any]:
    ans = outcome.answer
    message: dict[str, Any] = {"role": "assistant", "content": ans.text if ans else "", "refusal": None}
    if outcome.tool_calls:
        message["tool_calls"] = outcome.tool_calls
        message["content"] = message["content"] or None
    if ans is not None and ans.thinking:
        message["reasoning_content"] = ans.thinking
    return {
        "id": new_id(), "object": "chat.completion", "created": int(time.time()),
        "model": ans.model if ans else outcome.record.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(outcome)}],
        "usage": usage(outcome),
    }


def error_body(err: ApiError) -> dict[str, Any]:
    return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


class SSEWriter:
    """The chunks of one streamed answer."""

    media_type = "text/event-stream"

    def __init__(self, include_usage: bool) -> None:
        self.id = new_id()
        self.created = int(time.time())
        self.include_usage = include_usage
        self.model: str | None = None
        self.started = False
        self.calls: dict[int, bool] = {}  # tool call index → some arguments were sent

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        out = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if self.include_usage:
            out["usage"] = None
        out.update(extra)
        return out

    def event(self, ref: str, event: Any) -> bytes:
        self.model = ref
        if isinstance(event, TextDelta):
            delta: dict[str, Any] = {"content": event.text}
        elif isinstance(event, ThinkingDelta):
            delta = {"reasoning_content": event.text}
        elif isinstance(event, ToolCallDelta):
            piece: dict[str, Any] = {"index": event.index}
            if event.index not in self.calls:
                piece.update(id=event.id, type="function")
                piece["function"] = {"name": event.name or "", "arguments": event.arguments}
            else:
                piece["function"] = {"arguments": event.arguments}
            self.calls[event.index] = self.calls.get(event.index, False) or bool(event.arguments)
            delta = {"tool_calls": [piece]}
        else:
            return b""
        if not self.started:
            self.started = True
            delta = {"role": "assistant", **delta}
        return _sse(self._chunk(delta))

    def end(self, outcome: Outcome) -> bytes:
        if not outcome.ok:
            return self.error(outcome.error)
        self.model = outcome.answer.model if outcome.answer else self.model
        meta = {"runner": runner_field(outcome)}
        delta = {} if self.started else {"role": "assistant", "content": ""}
        # A call whose arguments never came (Anthropic sends none for an empty input): "{}".
        empty = [{"index": i, "function": {"arguments": "{}"}} for i, sent in sorted(self.calls.items()) if not sent]
        if empty:
            delta = {**delta, "tool_calls": empty}
        if not self.include_usage:
            return _sse(self._chunk(delta, finish_reason(outcome), **meta)) + b"data: [DONE]\n\n"
        last = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage(outcome), **meta}
        return _sse(self._chunk(delta, finish_reason(outcome))) + _sse(last) + b"data: [DONE]\n\n"

    def error(self, err: ApiError | None) -> bytes:
        err = err or ApiError(502, "the answer was cut off", code="upstream_failed")
        return _sse(error_body(err))

    def ping(self) -> bytes:
        return b": ping\n\n"

"""Ollama's native API, as a tool configured for Ollama speaks it: `POST /api/chat` (NDJSON
stream, or one JSON object with `stream: false`), `GET /api/tags`, `POST /api/show`,
`GET /api/version`. Errors are `{"error": "…"}` with the HTTP status.

A client's `options.num_ctx` is a floor: runner still sizes the window to the whole prompt, so
nothing is cut. The final line (`done: true`) carries an extra `runner` field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..backends import TextDelta, ThinkingDelta
from ..options import THINK_LEVELS, GenerationOptions
from .errors import ApiError
from .models import Listed
from .openai_api import last_user_text, runner_field
from .relay import Outcome

# The Ollama API version whose behaviour this endpoint follows (clients check it for features).
COMPAT_VERSION = "0.12.6"
ROLES = ("system", "user", "assistant", "tool")


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    options: GenerationOptions
    stream: bool = True
    has_system: bool = False

    @property
    def prompt(self) -> str:
        return last_user_text(self.messages)


def bad(message: str) -> ApiError:
    return ApiError(400, message, code="invalid_request")


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_messages(raw: Any) -> tuple[list[dict[str, Any]], bool]:
    """(the conversation in OpenAI's shape, whether it has a system message). Ollama's tool calls
    carry no id: each gets one, and each tool result is paired with the first unanswered call of
    its `tool_name` (or the first unanswered call), as Anthropic and Gemini need."""
    if raw is None:
        return [], False
    if not isinstance(raw, list):
        raise bad("messages must be a list of {role, content}")
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (id, name) of calls not answered yet
    has_system = False
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise bad(f"messages[{i}] must be an object with role and content")
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"messages[{i}].role must be one of {', '.join(ROLES)}, not {role!r}")
        if m.get("images"):
            raise bad(f"messages[{i}] has images: runner serve takes text only for now")
        content = m.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise bad(f"messages[{i}].content must be a string")
        has_system = has_system or role == "system"
        msg: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant" and m.get("tool_calls"):
            msg["tool_calls"] = _tool_calls(m["tool_calls"], i)
            pending = [(c["id"], c["function"]["name"]) for c in msg["tool_calls"]]
        elif role == "tool":
            name = m.get("tool_name") or m.get("name")
            match = next((c for c in pending if c[1] == name), None) if name else None
            match = match or (pending[0] if pending else None)
            if match is not None:
                pending.remove(match)
            msg["tool_call_id"] = match[0] if match else f"call_{i}"
            if name or match:
                msg["name"] = name or match[1]
        out.append(msg)
    return out, has_system


def _tool_calls(raw: Any, i: int) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise bad(f"messages[{i}].tool_calls must be a list")
    out = []
    for j, call in enumerate(raw):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise bad(f"messages[{i}].tool_calls[{j}] must be {{\"function\": {{\"name\", \"arguments\"}}}}")
        args = fn.get("arguments")
        args = args if isinstance(args, str) else json.dumps(args if args is not None else {})
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else f"call_{i}_{j}"
        out.append({"id": call_id, "type": "function", "function": {"name": fn["name"], "arguments": args}})
    return out


def parse_chat(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad("model is required")
    messages, has_system = parse_messages(body.get("messages"))
    opts = body.get("options") or {}
    if not isinstance(opts, dict):
        raise bad("options must be an object")
    num_predict = opts.get("num_predict")
    if isinstance(num_predict, int) and not isinstance(num_predict, bool) and num_predict < 0:
        num_predict = None  # -1: no limit, -2: fill the window
    fmt = body.get("format")
    json_mode = None
    if fmt == "json":
        json_mode = True
    elif isinstance(fmt, dict):
        raise bad("format with a JSON schema is not supported by runner serve; use \"json\"")
    elif fmt not in (None, ""):
        raise bad("format must be \"json\"")
    think = body.get("think")
    if think is not None and not isinstance(think, bool) and think not in THINK_LEVELS:
        raise bad("think must be true, false, low, medium or high")
    tools = body.get("tools") or None
    names = {"tools": "tools", "max_output_tokens": "options.num_predict", "temperature": "options.temperature",
             "top_p": "options.top_p", "seed": "options.seed", "stop": "options.stop", "num_ctx": "options.num_ctx",
             "json_mode": "format", "think": "think"}
    options = GenerationOptions(max_output_tokens=num_predict, temperature=opts.get("temperature"),
                                top_p=opts.get("top_p"), seed=opts.get("seed"), stop=opts.get("stop") or None,
                                num_ctx=opts.get("num_ctx"), json_mode=json_mode, think=think, tools=tools)
    for name, why in options.problems():
        raise bad(f"{names[name]} {why}")
    stream = body.get("stream", True)
    if not isinstance(stream, bool):
        raise bad("stream must be true or false")
    return ChatRequest(model.strip(), messages, options, stream, has_system)


# --- answers ---------------------------------------------------------------------------


def _ns(ms: float | None) -> int:
    return int((ms or 0.0) * 1_000_000)


def final_fields(outcome: Outcome) -> dict[str, Any]:
    """The `done: true` object's metrics, from the answering attempt."""
    ans = outcome.answer
    latency, ttft = (ans.latency_ms, ans.ttft_ms) if ans else (0.0, 0.0)
    reason = ans.finish_reason if ans and ans.finish_reason in ("stop", "length") else "stop"
    return {"done": True, "done_reason": reason, "total_duration": _ns(latency), "load_duration": 0,
            "prompt_eval_count": (ans.input_tokens if ans else None) or 0, "prompt_eval_duration": _ns(ttft),
            "eval_count": (ans.output_tokens if ans else None) or 0,
            "eval_duration": max(1, _ns((latency or 0) - (ttft or 0)))}


def tool_calls(outcome: Outcome) -> list[dict[str, Any]]:
    """The answer's tool calls as Ollama writes them: arguments as an object."""
    from ..backends.tools import arguments_object

    return [{"function": {"name": c["function"]["name"], "arguments": arguments_object(c["function"]["arguments"])}}
            for c in outcome.tool_calls]


def chat_response(name: str, outcome: Outcome) -> dict[str, Any]:
    ans = outcome.answer
    message: dict[str, Any] = {"role": "assistant", "content": ans.text if ans else ""}
    if ans is not None and ans.thinking:
        message["thinking"] = ans.thinking
    if outcome.tool_calls:
        message["tool_calls"] = tool_calls(outcome)
    return {"model": name, "created_at": now(), "message": message, **final_fields(outcome)}


def load_response(name: str) -> dict[str, Any]:
    """Ollama's answer to a chat request without messages (it loads the model): nothing to do."""
    return {"model": name, "created_at": now(), "message": {"role": "assistant", "content": ""},
            "done": True, "done_reason": "load"}


def error_body(err: ApiError) -> dict[str, Any]:
    return {"error": err.message}


def _line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class NDJSONWriter:
    media_type = "application/x-ndjson"

    def __init__(self, name: str) -> None:
        self.name = name  # the model as the client named it

    def event(self, ref: str, event: Any) -> bytes:
        if isinstance(event, TextDelta):
            message = {"role": "assistant", "content": event.text}
        elif isinstance(event, ThinkingDelta):
            message = {"role": "assistant", "content": "", "thinking": event.text}
        else:
            return b""
        return _line({"model": self.name, "created_at": now(), "message": message, "done": False})

    def end(self, outcome: Outcome) -> bytes:
        if not outcome.ok:
            return self.error(outcome.error)
        calls = b""
        if outcome.tool_calls:  # whole calls, in one line before the last, as Ollama sends them
            calls = _line({"model": self.name, "created_at": now(), "done": False,
                           "message": {"role": "assistant", "content": "", "tool_calls": tool_calls(outcome)}})
        return calls + _line({"model": self.name, "created_at": now(), "message": {"role": "assistant", "content": ""},
                              **final_fields(outcome), "runner": runner_field(outcome)})

    def error(self, err: ApiError | None) -> bytes:
        return _line({"error": err.message if err else "the answer was cut off"})

    def ping(self) -> bytes:
        return b""  # NDJSON has no comments: a client would choke on anything but a JSON line


# --- model list --------------------------------------------------------------------------


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _details(item: Listed) -> dict[str, Any]:
    return {"parent_model": "", "format": "runner" if item.kind == "task" else "gguf" if item.local else "api",
            "family": "task" if item.kind == "task" else item.owned_by, "families": None,
            "parameter_size": "", "quantization_level": ""}


def tags(items: list[Listed], since: str) -> dict[str, Any]:
    return {"models": [{"name": it.id, "model": it.id, "modified_at": since, "size": 0, "digest": _digest(it.id),
                        "details": _details(it)} for it in items]}


def show(item: Listed, since: str) -> dict[str, Any]:
    capabilities = ["completion"] + (["tools"] if item.tools else [])
    info: dict[str, Any] = {"general.architecture": "runner"}
    if item.context:
        info["runner.context_length"] = item.context
    what = f"task '{item.id}': {item.description}" if item.kind == "task" else f"model {item.id}"
    return {"license": "", "modelfile": f"# runner serve: {what}\n", "parameters": "", "template": "",
            "details": _details(item), "model_info": info, "capabilities": capabilities, "modified_at": since}


def version() -> dict[str, Any]:
    return {"version": COMPAT_VERSION}

"""Tool calls across protocols. A conversation reaches a backend in OpenAI's shape (Call.messages):
an assistant turn's `tool_calls` ([{"id", "type": "function", "function": {"name", "arguments":
JSON text}}]) and `tool` messages with `tool_call_id` (and `name`). These helpers give each
backend what its protocol needs: arguments as an object, the function name of a tool result, an
id where a protocol has none (Gemini, Ollama), the tool definitions' parts."""

from __future__ import annotations

import json
import secrets
from typing import Any, Iterator


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def arguments_object(text: Any) -> dict[str, Any]:
    """A call's arguments (JSON text, or already an object) as the object Anthropic, Gemini and
    Ollama take. Empty is {}; JSON that is not an object is wrapped as {"value": …}."""
    if isinstance(text, dict):
        return text
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"value": text}
    return value if isinstance(value, dict) else {"value": value}


def calls_of(message: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, arguments object) of each tool call in an assistant message."""
    out = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        out.append((call.get("id") or "", fn.get("name") or "", arguments_object(fn.get("arguments"))))
    return out


def tool_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call_id → function name, from the assistant turns that made the calls."""
    names: dict[str, str] = {}
    for m in messages:
        for call_id, name, _ in calls_of(m):
            if call_id:
                names[call_id] = name
    return names


def result_name(message: dict[str, Any], names: dict[str, str]) -> str:
    """The function a tool result answers: its own `name`, else the call's."""
    return message.get("name") or names.get(message.get("tool_call_id") or "", "")


def functions(tools: list[dict[str, Any]] | None) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(name, description, JSON-schema parameters) of each function tool."""
    for tool in tools or []:
        fn = tool.get("function") or {}
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        yield fn.get("name") or "", fn.get("description"), params


def forced_name(tool_choice: Any) -> str | None:
    """The function a `{"type": "function", "function": {"name"}}` tool_choice forces, if any."""
    if isinstance(tool_choice, dict):
        return (tool_choice.get("function") or {}).get("name")
    return None

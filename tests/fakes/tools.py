"""Tool calling in the four fakes, as each real API does it (checked against the public API
references and the official SDKs' types):

- a request that offers tools, whose conversation ends with a user turn (not a tool result), and
  whose tool choice is not "none", is answered with ONE call to the forced tool or else the
  first one, with arguments made from its JSON schema (see ``args_for``): OpenAI
  ``message.tool_calls`` / streamed ``delta.tool_calls`` fragments and ``finish_reason:
  "tool_calls"``; Anthropic a ``tool_use`` block (streamed as ``input_json_delta`` fragments) and
  ``stop_reason: "tool_use"``; Gemini a ``functionCall`` part and ``finishReason: "STOP"``; Ollama
  ``message.tool_calls`` with the arguments as an object, ``done_reason: "stop"``.
- a conversation that ends with a tool result is answered in text:
  ``[MODEL] tool NAME returned: CONTENT`` (``tool_result_reply``).
- a tool result that answers no call made earlier in the conversation is a 400, worded as each
  API words it (OpenAI: unknown ``tool_call_id``; Anthropic: a ``tool_result`` whose ``tool_use_id``
  is not in the previous assistant turn, or tool blocks without ``tools``; Gemini: a
  ``functionResponse`` whose name was not called in the previous model turn; Ollama: a ``tool``
  message with no assistant ``tool_calls`` before it).

``fake.tool_requests`` counts the requests that offered tools.
"""

from __future__ import annotations

import json
from typing import Any

from .tokens import count_tokens


def args_for(schema: Any) -> dict[str, Any]:
    """Arguments valid for a JSON schema's properties: strings ``"<name>-1"``, numbers 1, booleans
    true, arrays of one such item, enums their first value; every property, required or not."""
    props = (schema or {}).get("properties") or {}
    return {name: _value(name, spec if isinstance(spec, dict) else {}) for name, spec in props.items()}


def _value(name: str, spec: dict[str, Any]) -> Any:
    if spec.get("enum"):
        return spec["enum"][0]
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return [_value(name, spec.get("items") or {})]
    if kind == "object":
        return args_for(spec)
    return f"{name}-1"


def tool_result_reply(model: str, name: str, content: str) -> str:
    return f"[{model}] tool {name} returned: {content}"


def pick(tools: list[tuple[str, Any]], forced: str | None) -> tuple[str, Any] | None:
    if not tools:
        return None
    if forced:
        return next((t for t in tools if t[0] == forced), None)
    return tools[0]


def args_json(args: dict[str, Any]) -> str:
    return json.dumps(args, separators=(",", ":"))


def fragments(text: str, n: int = 3) -> list[str]:
    """``text`` in ``n`` pieces (as streamed argument JSON arrives), never empty ones."""
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def output_tokens(args: dict[str, Any]) -> int:
    return count_tokens(args_json(args)) + 4


def tools_tokens(tools: Any) -> int:
    return count_tokens(json.dumps(tools)) if tools else 0

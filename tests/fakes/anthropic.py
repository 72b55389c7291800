"""FakeAnthropic: the Messages API (``POST /v1/messages``, ``POST /v1/messages/count_tokens``).

Prompt caching follows the explicit ``cache_control`` breakpoints (system or message content
blocks): the first request writes the prefix up to the last breakpoint
(``cache_creation_input_tokens``), later ones with the same prefix read it
(``cache_read_input_tokens``); ``input_tokens`` EXCLUDES both. Prefixes under 1024 tokens (2048 for
haiku) are not cached. Thinking (``thinking: {"type": "enabled", "budget_tokens": N}``) streams a
thinking block at index 0; its text is ``thinking[model]`` or a generated sentence.

``cache_creation_detail = True`` adds the current API's breakdown to every usage object:
``"cache_creation": {"ephemeral_5m_input_tokens": A, "ephemeral_1h_input_tokens": B}`` (A + B =
``cache_creation_input_tokens``; a write goes to the 1h bucket when its breakpoint's
``cache_control`` has ``"ttl": "1h"``).

``Fault`` extras: ``finish_reason`` sets ``stop_reason`` (e.g. ``refusal``, ``pause_turn``,
``model_context_window_exceeded``: the stream still ends with message_delta + message_stop, as the
real API does); ``usage`` is deep-merged into the usage of message_start (and of a non-streamed
body); when it has ``cache_creation`` but no ``cache_creation_input_tokens``, the latter becomes the
sum of the buckets; its ``output_tokens`` also goes to message_delta. ``cut``: message_start and the
first block's start/delta, then the body ends cleanly (no message_delta, no message_stop).
``json_body`` / ``stream_as_json``: a streamed request gets the non-streamed message body.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from . import tools as tooling
from .server import ABORT, DROP, FakeServer, Recorded, Reply, StreamReply, deep_merge, dumps, json_reply
from .tokens import (
    MESSAGE_OVERHEAD,
    chunk_words,
    content_text,
    count_tokens,
    cut_output,
    head_tokens,
    message_tokens,
)

_ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_body(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def _err(status: int, message: str, type_: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(status, error_body(type_ or _ERROR_TYPE.get(status, "api_error"), message), headers)


def _bad(message: str) -> Reply:
    return _err(400, message, "invalid_request_error")


def _ev(type_: str, data: dict[str, Any]) -> bytes:
    return f"event: {type_}\ndata: {dumps(data)}\n\n".encode()


def _block_text(b: dict[str, Any]) -> str:
    """The text a content block puts in front of the model (tool calls and results included)."""
    kind = b.get("type")
    if kind == "tool_result":
        return content_text(b.get("content"))
    if kind == "tool_use":
        return json.dumps(b.get("input"))
    return content_text(b) if kind in ("text", None) else content_text(b.get("text"))


class FakeAnthropic(FakeServer):
    def __init__(
        self,
        models: dict[str, int] | None = None,
        api_key: str | None = "test-key",
        thinking: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.models: dict[str, int] = dict(models if models is not None else {"claude-sonnet-4-5": 200_000})
        self.api_key = api_key
        self.thinking: dict[str, str] = dict(thinking or {})
        self._breakpoints: dict[str, set[int]] = {}
        self._ids = itertools.count(1)
        self.cache_creation_detail = False  # True: usage carries the cache_creation 5m/1h breakdown

    async def handle(self, req: Recorded) -> Any:
        path = req.path.rstrip("/")
        if path in ("/v1/messages", "/v1/messages/count_tokens"):
            if req.method != "POST":
                return _err(405, "Method Not Allowed", "invalid_request_error")
            return await self._messages(req, count_only=path.endswith("count_tokens"))
        return _err(404, "Not Found", "not_found_error")

    # ---------------------------------------------------------------- request parsing

    def _parse(self, body: dict[str, Any]) -> tuple[list[dict[str, str]], list[tuple[Any, int, Any]]] | Reply:
        """Normalised messages (system first) and the cacheable units (key, tokens, cache_control or None)."""
        norm: list[dict[str, str]] = []
        units: list[tuple[Any, int, Any]] = []
        system = body.get("system")
        if system is not None:
            if isinstance(system, str):
                blocks = [{"type": "text", "text": system}]
            elif isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in system):
                blocks = system
            else:
                return _bad("system: Input should be a valid string or a list of text blocks")
            texts = []
            for j, b in enumerate(blocks):
                t = b.get("text") or ""
                texts.append(t)
                units.append((("system", t), count_tokens(t) + (MESSAGE_OVERHEAD if j == 0 else 0), b.get("cache_control") or None))
            if blocks:
                norm.append({"role": "system", "content": "\n".join(texts)})
        raw = body.get("messages")
        if not isinstance(raw, list):
            return _bad("messages: Field required")
        if not raw:
            return _bad("messages: at least one message is required")
        for i, m in enumerate(raw):
            if not isinstance(m, dict):
                return _bad(f"messages.{i}: Input should be a valid dictionary")
            role = m.get("role")
            if role == "system":
                return _bad(
                    'messages: Unexpected role "system". The Messages API accepts a top-level '
                    '`system` parameter, not "system" as an input message role.'
                )
            if role not in ("user", "assistant"):
                return _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            content = m.get("content")
            if isinstance(content, str):
                blocks = [{"type": "text", "text": content}]
            elif isinstance(content, list):
                blocks = [b for b in content if isinstance(b, dict)]
            else:
                return _bad(f"messages.{i}.content: Input should be a valid string or list")
            texts = []
            for j, b in enumerate(blocks):
                t = _block_text(b)
                texts.append(t)
                units.append(((role, t), count_tokens(t) + (MESSAGE_OVERHEAD if j == 0 else 0), b.get("cache_control") or None))
            if not blocks:
                units.append(((role, ""), MESSAGE_OVERHEAD, None))
            norm.append({"role": role, "content": "\n".join(texts)})
        return norm, units

    def _tool_turn(self, body: dict[str, Any], name: str, messages: list[dict[str, Any]], prompt: int,
                   max_tokens: int) -> Any:
        """Tools (see tools.py): a 400 for tool blocks without `tools` or a tool_result that answers
        no tool_use of the previous assistant turn; the tool_use reply when one is due; else None
        (a turn of tool results becomes a "tool" message in ``messages`` for the reply text)."""
        raw = body["messages"]
        offered = body.get("tools") or []
        offset = len(messages) - len(raw)  # the system prompt, when there is one
        previous: dict[str, str] = {}  # the last assistant turn's tool_use ids → names
        for i, m in enumerate(raw):
            blocks = m["content"] if isinstance(m["content"], list) else []
            kinds = {b.get("type") for b in blocks if isinstance(b, dict)}
            if kinds & {"tool_use", "tool_result"} and not offered:
                return _bad("Requests which include `tool_use` or `tool_result` blocks must define tools.")
            results = [b for b in blocks if b.get("type") == "tool_result"]
            for b in results:
                if b.get("tool_use_id") not in previous:
                    return _bad(f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                                f"{b.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                                "`tool_use` block in the previous message.")
            if results:
                messages[offset + i].update(role="tool", name=previous[results[-1]["tool_use_id"]])
            if m["role"] == "assistant":
                previous = {b.get("id"): b.get("name") for b in blocks if b.get("type") == "tool_use"}
        if offered:
            self.tool_requests += 1
        for t in offered:
            if not isinstance(t, dict) or not t.get("name") or not isinstance(t.get("input_schema"), dict):
                return _bad("tools.0.custom.input_schema: Field required")
        choice = body.get("tool_choice") or {"type": "auto"}
        last = raw[-1]
        ends_with_user_text = last["role"] == "user" and messages[-1]["role"] != "tool"
        if not offered or choice.get("type") == "none" or not ends_with_user_text:
            return None
        tool = tooling.pick([(t["name"], t["input_schema"]) for t in offered],
                            choice.get("name") if choice.get("type") == "tool" else None)
        if tool is None:
            return _bad(f"tool_choice.tool.name: tool '{choice.get('name')}' not found in tools")
        args = tooling.args_for(tool[1])
        mid, tid = f"msg_fake{next(self._ids):020d}", f"toolu_fake{next(self._ids):014d}"
        usage = {"input_tokens": prompt + tooling.tools_tokens(offered), "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0, "output_tokens": tooling.output_tokens(args)}
        if not body.get("stream"):
            return json_reply(200, {"id": mid, "type": "message", "role": "assistant", "model": name,
                                    "content": [{"type": "tool_use", "id": tid, "name": tool[0], "input": args}],
                                    "stop_reason": "tool_use", "stop_sequence": None, "usage": usage})
        events = [_ev("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": name, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}}),
            _ev("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "tool_use", "id": tid, "name": tool[0], "input": {}}})]
        # An empty input streams no input_json_delta at all, as the real API does.
        text = tooling.args_json(args) if args else ""
        events += [_ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "input_json_delta", "partial_json": piece}})
                   for piece in (tooling.fragments(text) if text else [])]
        events += [_ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
                   _ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use",
                                                                            "stop_sequence": None},
                                         "usage": {"output_tokens": usage["output_tokens"]}}),
                   _ev("message_stop", {"type": "message_stop"})]
        return StreamReply(events, 200, "text/event-stream; charset=utf-8")

    def _cache(self, name: str, units: list[tuple[Any, int, Any]]) -> tuple[int, int, int]:
        """(cache_read, cache_write, of which 1h writes) for this prompt, then remember its breakpoints."""
        marks = [i for i, u in enumerate(units) if u[2]]
        if not marks:
            return 0, 0, 0
        minimum = 2048 if "haiku" in name else 1024
        seen = self._breakpoints.setdefault(name, set())
        hashes, totals = [], []
        h, total = 0, 0
        for key, tokens, _ in units[: marks[-1] + 1]:
            h = hash((h, key))
            total += tokens
            hashes.append(h)
            totals.append(total)
        read = 0
        for i in range(len(hashes) - 1, -1, -1):
            if hashes[i] in seen:
                read = totals[i]
                break
        write = 0
        for i in marks:
            if totals[i] >= minimum and hashes[i] not in seen:
                seen.add(hashes[i])
        write_1h = 0
        if totals[marks[-1]] >= minimum:
            write = totals[marks[-1]] - read
            floor = read  # each breakpoint's segment beyond what was read goes to its ttl's bucket
            for i in marks:
                part = max(0, totals[i] - floor)
                floor = max(floor, totals[i])
                cc = units[i][2]
                if isinstance(cc, dict) and cc.get("ttl") == "1h":
                    write_1h += part
        return read, write, write_1h

    # ---------------------------------------------------------------- /v1/messages

    async def _messages(self, req: Recorded, count_only: bool) -> Any:
        if self.api_key is not None and req.headers.get("x-api-key") != self.api_key:
            return _err(401, "invalid x-api-key", "authentication_error")
        if not req.headers.get("anthropic-version"):
            return _bad("anthropic-version: header is required")
        body = req.json
        if not isinstance(body, dict):
            return _bad("There was an issue with your request body: invalid JSON")
        name = body.get("model")
        if not isinstance(name, str) or not name:
            return _bad("model: Field required")
        fault = None if count_only else await self.begin(name)
        if fault is not None and fault.status:
            if fault.raw_body is not None:
                return fault.raw_reply()
            return _err(fault.status, fault.message, fault.error_type, fault.headers())
        if name not in self.models:
            return _err(404, f"model: {name}", "not_found_error")
        window = self.models[name]
        parsed = self._parse(body)
        if isinstance(parsed, Reply):
            return parsed
        messages, units = parsed
        prompt = message_tokens(messages)
        if count_only:
            return json_reply(200, {"input_tokens": prompt})

        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            return _bad("max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return _bad("max_tokens: Input should be greater than or equal to 1")
        thinking_cfg = body.get("thinking")
        budget = None
        if thinking_cfg is not None:
            if not isinstance(thinking_cfg, dict) or thinking_cfg.get("type") not in ("enabled", "disabled"):
                return _bad("thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled'")
            if thinking_cfg.get("type") == "enabled":
                budget = thinking_cfg.get("budget_tokens")
                if not isinstance(budget, int) or budget < 1024:
                    return _bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
                if max_tokens <= budget:
                    return _bad("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
        temp = body.get("temperature")
        if temp is not None:
            if not isinstance(temp, (int, float)) or not 0 <= temp <= 1:
                return _bad("temperature: range: 0..1")
            if budget is not None and temp != 1:
                return _bad("`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility")
        turn = self._tool_turn(body, name, messages, prompt, max_tokens)
        if turn is not None:
            return turn
        if prompt > window:
            return _bad(f"prompt is too long: {prompt} tokens > {window} maximum")
        if prompt + max_tokens > window:
            return _bad(
                f"input length and `max_tokens` exceed context limit: {prompt} + {max_tokens} > "
                f"{window}, decrease input length or `max_tokens` and try again"
            )

        cache_read, cache_write, cache_write_1h = self._cache(name, units)
        input_tokens = prompt - cache_read - cache_write
        thinking = ""
        if budget is not None:
            thinking = head_tokens(
                self.thinking.get(name) or f"The user sent {prompt} tokens. Let me think about an answer.",
                budget,
            )
        reply = self.reply_text(name, messages)
        thinking, content, cut = cut_output(thinking, reply, max_tokens)
        output_tokens = count_tokens(thinking) + count_tokens(content)
        stop_reason = "max_tokens" if cut else "end_turn"
        if fault is not None and fault.finish_reason:
            stop_reason = fault.finish_reason
        mid = f"msg_fake{next(self._ids):020d}"
        signature = "fakesig" + mid[-8:]
        usage: dict[str, Any] = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "output_tokens": output_tokens,
        }
        if self.cache_creation_detail:
            usage["cache_creation"] = {"ephemeral_5m_input_tokens": cache_write - cache_write_1h,
                                       "ephemeral_1h_input_tokens": cache_write_1h}
        if fault is not None and fault.usage:
            usage = deep_merge(usage, fault.usage)
            cc = fault.usage.get("cache_creation")
            if isinstance(cc, dict) and "cache_creation_input_tokens" not in fault.usage:
                usage["cache_creation_input_tokens"] = sum(
                    v for v in usage["cache_creation"].values() if isinstance(v, int))
            output_tokens = usage.get("output_tokens", output_tokens)
        blocks: list[tuple[str, str]] = []
        if budget is not None:
            blocks.append(("thinking", thinking))
        if content or budget is None:
            blocks.append(("text", content))

        if not body.get("stream") or self.wants_json(fault):
            if fault is not None and fault.mid_stream:
                return _err(529, "Overloaded", "overloaded_error")
            if fault is not None and fault.drop:
                return DROP
            await self.generating(sum(len(chunk_words(t)) for _, t in blocks) + 1)
            out_content = [
                {"type": "thinking", "thinking": t, "signature": signature} if k == "thinking" else {"type": "text", "text": t}
                for k, t in blocks
            ]
            return json_reply(200, {
                "id": mid, "type": "message", "role": "assistant", "model": name,
                "content": out_content, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": usage,
            })

        writes: list[bytes] = []
        message_start = _ev("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": name, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }})
        cur = [message_start]
        for idx, (kind, text) in enumerate(blocks):
            start_block = {"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking" else {"type": "text", "text": ""}
            cur.append(_ev("content_block_start", {"type": "content_block_start", "index": idx, "content_block": start_block}))
            if idx == 0:
                cur.append(_ev("ping", {"type": "ping"}))
            for piece in chunk_words(text):
                delta = {"type": "thinking_delta", "thinking": piece} if kind == "thinking" else {"type": "text_delta", "text": piece}
                cur.append(_ev("content_block_delta", {"type": "content_block_delta", "index": idx, "delta": delta}))
                writes.append(b"".join(cur))
                cur = []
            if kind == "thinking":
                cur.append(_ev("content_block_delta", {"type": "content_block_delta", "index": idx,
                                                       "delta": {"type": "signature_delta", "signature": signature}}))
            cur.append(_ev("content_block_stop", {"type": "content_block_stop", "index": idx}))
        cur.append(_ev("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                         "usage": {"output_tokens": output_tokens}}))
        cur.append(_ev("message_stop", {"type": "message_stop"}))
        writes.append(b"".join(cur))

        def events():
            if fault is not None and fault.cut:
                # message_start, the first block's start (+ ping) and first delta; then a clean end
                yield writes[0] if len(writes) > 1 else message_start
                return
            if fault is not None and (fault.mid_stream or fault.drop):
                n = min(2, len(writes) - 1)
                yield from writes[:n] if n else [message_start]
                if fault.mid_stream:
                    if fault.error_type:
                        err = error_body(fault.error_type, fault.message)
                    else:
                        err = error_body("overloaded_error", "Overloaded")
                    yield _ev("error", err)
                else:
                    yield ABORT
                return
            yield from writes

        return StreamReply(events(), 200, "text/event-stream; charset=utf-8")

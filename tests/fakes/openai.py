"""FakeOpenAI: the Chat Completions API as OpenAI, DeepSeek, xAI, Mistral and Ollama's /v1 speak it.

Serves ``POST /chat/completions`` and ``POST /v1/chat/completions`` (DeepSeek's base URL has no
/v1), plus ``GET /models`` and ``GET /v1/models``.

Flavors:
- ``"openai"``: reasoning (``reasoning[model]``) is never streamed, only counted in
  ``completion_tokens_details.reasoning_tokens``; prompt-cache hits in 128-token steps from 1024.
- ``"deepseek"``: reasoning streams in ``delta.reasoning_content`` (with ``"content": null``);
  usage adds ``prompt_cache_hit_tokens``/``prompt_cache_miss_tokens`` (64-token steps).
- ``"ollama"``: reasoning streams in ``delta.reasoning``; an over-long prompt is cut from the front
  SILENTLY to the model's window (Ollama's /v1 ignores num_ctx), no cache reporting.
- ``"llamacpp"``: llama-cpp-python's ``python -m llama_cpp.server`` (checked against its source,
  llama_cpp/server/app.py, errors.py, and backends.md "Seen against real servers"). Only
  ``/v1/chat/completions``, ``/v1/models``, ``/extras/tokenize`` (``{"input"}`` -> ``{"tokens"}``) and
  ``/extras/tokenize/count``; any other path is FastAPI's 404 ``{"detail":"Not Found"}``. An unknown
  model name is served by the first model. Knows ``max_tokens`` only (``max_completion_tokens`` is
  ignored); no reasoning, no cache reporting, usage has the three counts only and is NEVER streamed
  (``stream_options`` ignored). Stream: ``{"delta":{"role":"assistant"}}``, content deltas, a last
  chunk ``{"delta":{},"finish_reason":…}``, ``data: [DONE]``; ``: ping - <time>`` SSE comments every
  ``ping_interval_s`` (real: 15 s) while it waits. ``interrupt_streams`` (default on, as the real
  server): a request arriving while a stream runs (any path: the model lock) ends that stream after
  its current chunk with ``data: [DONE]`` and no finish_reason (only paced streams have a "while":
  set ``ttft_s``/``chunk_delay_s``). Over-window prompt (``prompt >= window``): streamed -> 200,
  ``text/event-stream``, EMPTY body; not streamed -> 400 ``context_length_exceeded``. A prompt that
  fits but with ``max_tokens`` that does not is capped silently (``finish_reason: "length"``).
- ``"llama-server"``: llama.cpp's server: OpenAI-style streaming, no cache reporting, ``/tokenize``
  (``{"content"}`` -> ``{"tokens"}``), overflow ``exceed_context_size_error`` as a 400 (streamed too).

``overflow`` picks the 400 body for a prompt over the window, whatever the flavor (except
``"ollama"``, which cuts silently): ``"openai"``, ``"llamacpp"`` (see above), ``"llama-server"``
(``request (N tokens) exceeds the available context size (C tokens), try increasing it`` with
``n_prompt_tokens``/``n_ctx``), ``"llama-server-old"`` (``the request exceeds the available context size,
try increasing it``), ``"vllm"`` (top-level ``{"object":"error",…,"type":"BadRequestError","code":400}``).

``Fault`` extras: ``cut`` (role chunk, then ``data: [DONE]``: no finish_reason, no usage),
``finish_reason`` (relabels the answer's finish_reason), ``usage`` (deep-merged into ``usage``, e.g.
``{"prompt_tokens_details": {"cache_write_tokens": 1200}}``), ``json_body`` / ``stream_as_json``
(a streamed request gets the chat.completion JSON body).
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from . import tools as tooling
from .server import ABORT, DROP, FakeServer, Recorded, Reply, StreamReply, deep_merge, dumps, json_reply
from .tokens import (
    MESSAGE_OVERHEAD,
    PrefixCache,
    chunk_words,
    content_text,
    count_tokens,
    cut_output,
    message_tokens,
    token_ids,
    token_pieces,
    truncate_messages,
)

FLAVORS = ("openai", "deepseek", "ollama", "mistral", "llamacpp", "llama-server")
OVERFLOWS = ("openai", "llamacpp", "llama-server", "llama-server-old", "vllm")
_LOCAL = ("llamacpp", "llama-server")  # local servers: no prompt-cache reporting, no reasoning
# sse-starlette's headers (llama-cpp-python streams through EventSourceResponse)
_SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}
_DONE = b"data: [DONE]\n\n"


def sse_ping() -> bytes:
    """sse-starlette's default keep-alive comment (llama-cpp-python uses ``sep="\\n"``)."""
    return f": ping - {datetime.now(timezone.utc)}\n\n".encode()


def _not_found() -> Reply:
    return json_reply(404, {"detail": "Not Found"})  # FastAPI's default 404

_O_SERIES = re.compile(r"^(o\d|gpt-5)")  # reasoning models: max_completion_tokens, temperature 1
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_DEFAULT_TYPE = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", None),
    408: ("timeout", None),
    409: ("conflict", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def mask_key(key: str) -> str:
    """How OpenAI echoes a rejected key: never the whole key."""
    if len(key) <= 6:
        return "*" * len(key)
    return f"{key[:2]}***{key[-2:]}"


def error_body(message: str, type_: str | None, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _err(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    return json_reply(status, error_body(message, type_, code, param), headers)


class FakeOpenAI(FakeServer):
    def __init__(
        self,
        models: dict[str, int] | None = None,
        api_key: str | None = "test-key",
        flavor: str = "openai",
        reasoning: dict[str, str] | None = None,
        *,
        overflow: str | None = None,
        interrupt_streams: bool | None = None,
        ping_interval_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {flavor!r}")
        if overflow is not None and overflow not in OVERFLOWS:
            raise ValueError(f"unknown overflow style {overflow!r}")
        super().__init__(**kwargs)
        self.models: dict[str, int] = dict(models if models is not None else {"gpt-4.1": 1_047_576})
        self.api_key = api_key
        self.flavor = flavor
        self.reasoning: dict[str, str] = dict(reasoning or {})
        self.cache = PrefixCache()
        self._ids = itertools.count(1)
        # which 400 body an over-window prompt gets (see the module docstring)
        self.overflow = overflow or (flavor if flavor in _LOCAL else "openai")
        # a new request ends a running stream (llama-cpp-python's default `interrupt_requests`)
        self.interrupt_streams = flavor == "llamacpp" if interrupt_streams is None else interrupt_streams
        # SSE keep-alive comments while a stream waits (sse-starlette: every 15 s); 0 = none
        self.ping_interval_s = (15.0 if flavor == "llamacpp" else 0.0) if ping_interval_s is None else ping_interval_s
        self.streams_interrupted = 0  # streams ended early by interrupt_streams
        self._arrivals = 0  # requests received so far (interrupt_streams compares it)

    # ---------------------------------------------------------------- routing

    async def handle(self, req: Recorded) -> Any:
        self._arrivals += 1
        path = req.path.rstrip("/")
        if self.flavor == "llamacpp":
            return await self._llamacpp_route(req, path)
        if path in ("/chat/completions", "/v1/chat/completions"):
            if req.method != "POST":
                return _err(405, f"Invalid method for URL ({req.method} {req.path})")
            return await self._chat(req)
        if path in ("/models", "/v1/models") and req.method == "GET":
            denied = self._auth(req)
            if denied is not None:
                return denied
            data = [
                {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}
                for m in self.models
            ]
            return json_reply(200, {"object": "list", "data": data})
        if self.flavor == "llama-server" and path == "/tokenize" and req.method == "POST":
            # llama.cpp tools/server README: {"content", "add_special"?, "with_pieces"?} -> {"tokens"}
            body = req.json if isinstance(req.json, dict) else {}
            text = body.get("content")
            if not isinstance(text, str):
                return json_reply(400, {"error": {"code": 400, "message": "\"content\" must be provided",
                                                  "type": "invalid_request_error"}})
            ids = token_ids(text)
            if body.get("with_pieces"):
                pieces = token_pieces(text)
                return json_reply(200, {"tokens": [{"id": i, "piece": p} for i, p in zip(ids, pieces)]})
            return json_reply(200, {"tokens": ids})
        return _err(404, f"Invalid URL ({req.method} {req.path})", code=None)

    async def _llamacpp_route(self, req: Recorded, path: str) -> Any:
        """llama-cpp-python's routes (llama_cpp/server/app.py); no /v1-less aliases, no /tokenize."""
        if path == "/v1/chat/completions" and req.method == "POST":
            return await self._chat(req)
        if path == "/v1/models" and req.method == "GET":
            denied = self._auth(req)
            if denied is not None:
                return denied
            data = [{"id": m, "object": "model", "owned_by": "me", "permissions": []} for m in self.models]
            return json_reply(200, {"object": "list", "data": data})
        if path in ("/extras/tokenize", "/extras/tokenize/count") and req.method == "POST":
            denied = self._auth(req)
            if denied is not None:
                return denied
            body = req.json if isinstance(req.json, dict) else {}
            text = body.get("input")
            if not isinstance(text, str):  # pydantic's 422
                return json_reply(422, {"detail": [{"type": "missing", "loc": ["body", "input"],
                                                    "msg": "Field required", "input": body}]})
            ids = token_ids(text)  # assumption: no BOS (model dependent in the real server)
            if path.endswith("/count"):
                return json_reply(200, {"count": len(ids)})
            return json_reply(200, {"tokens": ids})
        return _not_found()

    def _interrupted(self, start: int) -> bool:
        """True (and counted) when ``interrupt_streams`` is on and a request arrived since ``start``."""
        if self.interrupt_streams and self._arrivals != start:
            self.streams_interrupted += 1
            return True
        return False

    def _auth(self, req: Recorded) -> Reply | None:
        if self.api_key is None:
            return None
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token == self.api_key:
            return None
        if not token or scheme.lower() != "bearer":
            return _err(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )
        return _err(
            401,
            f"Incorrect API key provided: {mask_key(token)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def _fault_reply(self, fault: Any) -> Reply:
        type_, code = _DEFAULT_TYPE.get(fault.status, ("server_error", None))
        if fault.error_type:
            type_ = code = fault.error_type
        return _err(fault.status, fault.message, type_, code, None, fault.headers())

    # ---------------------------------------------------------------- chat

    async def _chat(self, req: Recorded) -> Any:
        denied = self._auth(req)
        if denied is not None:
            return denied
        body = req.json
        if not isinstance(body, dict):
            return _err(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.",
            )
        name = body.get("model")
        if not isinstance(name, str) or not name:
            return _err(400, "you must provide a model parameter", param="model")
        fault = await self.begin(name)
        if fault is not None and fault.status:
            return fault.raw_reply() if fault.raw_body is not None else self._fault_reply(fault)
        if name not in self.models and self.flavor == "llamacpp" and self.models:
            window = next(iter(self.models.values()))  # llama-cpp-python serves its default model
        elif name not in self.models:
            return _err(
                404,
                f"The model `{name}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        else:
            window = self.models[name]
        raw = body.get("messages")
        if not isinstance(raw, list):
            return _err(400, "Missing required parameter: 'messages'.", code="missing_required_parameter", param="messages")
        if not raw:
            return _err(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
                "an empty array instead.",
                code="empty_array",
                param="messages",
            )
        messages = []
        for i, m in enumerate(raw):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in _ROLES:
                return _err(
                    400,
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                    "'function', 'tool', and 'developer'.",
                    code="invalid_value",
                    param=f"messages[{i}].role",
                )
            messages.append(
                {"role": "system" if role == "developer" else role, "content": content_text(m.get("content"))}
            )
        if _O_SERIES.match(name):
            if body.get("max_tokens") is not None:
                return _err(
                    400,
                    "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                    "'max_completion_tokens' instead.",
                    code="unsupported_parameter",
                    param="max_tokens",
                )
            temp = body.get("temperature")
            if temp is not None and temp != 1:
                return _err(
                    400,
                    f"Unsupported value: 'temperature' does not support {temp} with this model. "
                    "Only the default (1) value is supported.",
                    code="unsupported_value",
                    param="temperature",
                )
        if self.flavor == "openai" and body.get("stream_options") is not None and not body.get("stream"):
            return _err(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        if self.flavor == "mistral":
            # Mistral validates strictly: OpenAI-only fields are a 422, not ignored.
            extra = [k for k in ("stream_options", "max_completion_tokens") if k in body]
            if extra:
                detail = [{"type": "extra_forbidden", "loc": ["body", k], "msg": "Extra inputs are not permitted",
                           "input": body[k]} for k in extra]
                return json_reply(422, {"object": "error", "message": {"detail": detail},
                                        "type": "invalid_request_message_error", "param": None, "code": None})
        limit = None if self.flavor == "llamacpp" else body.get("max_completion_tokens")  # unknown there
        limit_name = "max_completion_tokens"
        if limit is None:
            limit, limit_name = body.get("max_tokens"), "max_tokens"
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            return _err(
                400,
                f"Invalid '{limit_name}': integer below minimum value. Expected a value >= 1, but "
                f"got {limit} instead.",
                code="integer_below_min_value",
                param=limit_name,
            )

        turn = self._tool_turn(body, name, raw, messages)
        if turn is not None:
            return turn

        prompt = message_tokens(messages)
        stream = bool(body.get("stream"))
        if self.flavor == "ollama":
            if prompt > window:
                messages = truncate_messages(messages, window)
                prompt = message_tokens(messages)
        else:
            over = self._overflow(prompt, limit, window, stream and not self.wants_json(fault))
            if over is not None:
                return over

        # prompt cache
        raw_hit = 0
        if self.flavor not in ("ollama",) + _LOCAL:
            raw_hit = self.cache.hit(
                name,
                (((m["role"], m["content"]), count_tokens(m["content"]) + MESSAGE_OVERHEAD) for m in messages),
            )
        if self.flavor == "deepseek":
            cached = raw_hit // 64 * 64
        elif self.flavor == "openai" and raw_hit >= 1024:
            cached = 1024 + (raw_hit - 1024) // 128 * 128
        else:
            cached = 0

        reasoning = "" if self.flavor in _LOCAL else self.reasoning.get(name, "")
        reply = self.reply_text(name, messages)
        cap = limit
        if self.flavor != "ollama":  # Ollama shifts its context window instead of stopping
            room = max(0, window - prompt)
            cap = room if limit is None else min(limit, room)
        reasoning, content, cut = cut_output(reasoning, reply, cap)
        reasoning_tokens = count_tokens(reasoning)
        completion = reasoning_tokens + count_tokens(content)
        finish = "length" if cut else "stop"
        if fault is not None and fault.finish_reason:
            finish = fault.finish_reason
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        if self.flavor == "deepseek":
            usage["prompt_cache_hit_tokens"] = cached
            usage["prompt_cache_miss_tokens"] = prompt - cached
        if self.flavor == "llamacpp":
            usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if fault is not None and fault.usage:
            usage = deep_merge(usage, fault.usage)

        cid = f"chatcmpl-fake{next(self._ids):06d}"
        created = int(time.time())
        reasoning_field = {"deepseek": "reasoning_content", "ollama": "reasoning"}.get(self.flavor)
        has_reasoning = name in self.reasoning
        shown_reasoning = reasoning if reasoning_field else ""
        pieces = [("r", p) for p in chunk_words(shown_reasoning)] + [("c", p) for p in chunk_words(content)]

        if not stream or self.wants_json(fault):
            if fault is not None and fault.mid_stream:
                return self._fault_reply(_with_status(fault, 500))
            if fault is not None and fault.drop:
                return DROP
            await self.generating(len(pieces) + 1)
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
            if reasoning_field and has_reasoning:
                message[reasoning_field] = reasoning
            if self.flavor == "llamacpp":
                return json_reply(200, {
                    "id": cid, "object": "chat.completion", "created": created, "model": name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "logprobs": None, "finish_reason": finish}],
                    "usage": usage,
                })
            out = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": name,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
                "system_fingerprint": "fp_fake",
            }
            return json_reply(200, out)

        start = self._arrivals
        ping = (self.ping_interval_s, sse_ping) if self.ping_interval_s > 0 else None
        if self.flavor == "llamacpp":
            return StreamReply(self._llamacpp_events(cid, created, name, content, finish, fault, start),
                               200, "text/event-stream; charset=utf-8", dict(_SSE_HEADERS), ping)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        usage_on_last = self.flavor == "mistral"  # Mistral puts usage on the finishing chunk, unasked
        head = f'data: {{"id":"{cid}","object":"chat.completion.chunk","created":{created},"model":{dumps(name)},"system_fingerprint":"fp_fake","choices":['
        tail = ',"usage":null}\n\n' if include_usage else "}\n\n"
        flavor = self.flavor

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            if usage_on_last and finish_reason is not None:
                return (head + dumps(choice) + '],"usage":' + dumps(usage) + "}\n\n").encode()
            return (head + dumps(choice) + "]" + tail).encode()

        def events():
            yield chunk({"role": "assistant", "content": ""})
            if fault is not None and fault.cut:
                yield _DONE
                return
            last_content = max((i for i, (k, _) in enumerate(pieces) if k == "c"), default=None)
            for i, (kind, text) in enumerate(pieces):
                if fault is not None and (fault.mid_stream or fault.drop) and i >= 2:
                    break
                if self._interrupted(start):
                    yield _DONE
                    return
                if kind == "r":
                    delta: dict[str, Any] = {"content": None if flavor == "deepseek" else "", reasoning_field: text}
                else:
                    delta = {"content": text}
                    if flavor == "deepseek" and has_reasoning:
                        delta["reasoning_content"] = None
                yield chunk(delta, finish if i == last_content else None)
            if fault is not None and fault.mid_stream:
                type_ = fault.error_type or "server_error"
                yield b"data: " + dumps(error_body(fault.message, type_, fault.error_type)).encode() + b"\n\n"
                return
            if fault is not None and fault.drop:
                yield ABORT
                return
            end = b""
            if last_content is None:
                end += chunk({}, finish)
            if include_usage:
                u = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                     "system_fingerprint": "fp_fake", "choices": [], "usage": usage}
                end += b"data: " + dumps(u).encode() + b"\n\n"
            yield end + b"data: [DONE]\n\n"

        return StreamReply(events(), 200, "text/event-stream; charset=utf-8", None, ping)

    def _tool_turn(self, body: dict[str, Any], name: str, raw: list, messages: list[dict[str, Any]]) -> Any:
        """Tools (see tools.py): a 400 for a tool result that answers no call, the reply with a
        tool call when one is due, else None (an ordinary answer; a tool result's names are
        written into ``messages`` for the reply text)."""
        calls: dict[str, str] = {}
        for i, m in enumerate(raw):
            for c in m.get("tool_calls") or []:
                calls[c.get("id")] = (c.get("function") or {}).get("name")
            if m.get("role") == "tool":
                if m.get("tool_call_id") not in calls:
                    return _err(400, "Invalid parameter: messages with role 'tool' must be a response to a "
                                     "preceeding message with 'tool_calls'.", param=f"messages.[{i}].role")
                messages[i]["name"] = calls[m["tool_call_id"]]
        offered = body.get("tools") or []
        if offered:
            self.tool_requests += 1
        choice = body.get("tool_choice")
        if not offered or choice == "none" or raw[-1].get("role") != "user":
            return None
        forced = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        tool = tooling.pick([((t.get("function") or {}).get("name"), (t.get("function") or {}).get("parameters"))
                             for t in offered], forced)
        if tool is None:
            return _err(400, f"Invalid value for 'tool_choice': no function named '{forced}' was specified in "
                             "the 'tools' parameter.", param="tool_choice")
        args = tooling.args_for(tool[1])
        text = tooling.args_json(args)
        cid, created, call_id = f"chatcmpl-fake{next(self._ids):06d}", int(time.time()), f"call_fake{next(self._ids):06d}"
        prompt = message_tokens(messages) + tooling.tools_tokens(offered)
        done = tooling.output_tokens(args)
        usage = {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}
        call = {"id": call_id, "type": "function", "function": {"name": tool[0], "arguments": text}}
        if not body.get("stream"):
            return json_reply(200, {"id": cid, "object": "chat.completion", "created": created, "model": name,
                                    "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls",
                                                 "message": {"role": "assistant", "content": None,
                                                             "tool_calls": [call], "refusal": None}}],
                                    "usage": usage})

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            return b"data: " + dumps(out).encode() + b"\n\n"

        first = {"index": 0, "id": call_id, "type": "function", "function": {"name": tool[0], "arguments": ""}}
        events = [chunk({"role": "assistant", "content": None, "tool_calls": [first]})]
        events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                   for piece in tooling.fragments(text)]
        end = chunk({}, "tool_calls")
        if (body.get("stream_options") or {}).get("include_usage"):
            end += b"data: " + dumps({"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                                      "choices": [], "usage": usage}).encode() + b"\n\n"
        events.append(end + _DONE)
        return StreamReply(events, 200, "text/event-stream; charset=utf-8")

    def _llamacpp_events(self, cid: str, created: int, name: str, content: str, finish: str,
                         fault: Any, start: int):
        """llama-cpp-python's chat stream (llama_chat_format._convert_text_completion_chunks_to_chat)."""
        base = {"id": cid, "model": name, "created": created, "object": "chat.completion.chunk"}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return b"data: " + dumps({**base, "choices": [choice]}).encode() + b"\n\n"

        yield chunk({"role": "assistant"})  # sent with the first token
        if fault is not None and fault.cut:
            yield _DONE
            return
        for i, text in enumerate(chunk_words(content)):
            if self._interrupted(start):
                yield _DONE
                return
            if fault is not None and (fault.mid_stream or fault.drop) and i >= 2:
                break
            yield chunk({"content": text})
        if fault is not None and fault.mid_stream:
            yield b"data: " + dumps(error_body(fault.message, fault.error_type or "internal_server_error")).encode() + b"\n\n"
            return
        if fault is not None and fault.drop:
            yield ABORT
            return
        if self._interrupted(start):
            yield _DONE
            return
        yield chunk({}, finish) + _DONE

    def _overflow(self, prompt: int, limit: int | None, window: int, stream: bool) -> Reply | StreamReply | None:
        """The reply for a prompt the window cannot take, in the ``overflow`` style; None if it fits."""
        style = self.overflow
        if style == "llamacpp":
            if prompt < window:  # llama.py: `if len(prompt_tokens) >= n_ctx: raise ValueError(...)`
                return None
            if stream:
                # the ValueError is raised inside the SSE publisher: headers went out, no event did
                return StreamReply([], 200, "text/event-stream; charset=utf-8", dict(_SSE_HEADERS))
            # errors.py formats "Requested tokens (N) exceed context window of C" (N = prompt only)
            # with the request's max_tokens, printed as Python does: "None" when absent
            return _err(
                400,
                f"This model's maximum context length is {window} tokens. However, you requested "
                f"{prompt + (limit or 0)} tokens ({prompt} in the messages, {limit} in the completion). "
                "Please reduce the length of the messages or completion.",
                code="context_length_exceeded",
                param="messages",
            )
        if style in ("llama-server", "llama-server-old"):
            if prompt < window:
                return None
            if style == "llama-server-old":
                return json_reply(400, {"error": {
                    "code": 400, "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error"}})
            return json_reply(400, {"error": {
                "code": 400,
                "message": f"request ({prompt} tokens) exceeds the available context size ({window} tokens), "
                           "try increasing it",
                "type": "exceed_context_size_error", "n_prompt_tokens": prompt, "n_ctx": window}})
        if style == "vllm":
            if limit is None:
                if prompt < window:
                    return None
                message = (f"This model's maximum context length is {window} tokens. However, you requested "
                           f"{prompt} tokens in the messages, Please reduce the length of the messages.")
            elif prompt + limit > window:
                message = (f"This model's maximum context length is {window} tokens. However, you requested "
                           f"{prompt + limit} tokens ({prompt} in the messages, {limit} in the completion). "
                           "Please reduce the length of the messages or completion.")
            else:
                return None
            return json_reply(400, {"object": "error", "message": message, "type": "BadRequestError",
                                    "param": None, "code": 400})
        # "openai"
        if prompt > window or (limit is not None and prompt + limit > window):
            if limit is not None and prompt <= window:
                detail = (
                    f"However, you requested {prompt + limit} tokens ({prompt} in the messages, "
                    f"{limit} in the completion)."
                )
            else:
                detail = f"However, your messages resulted in {prompt} tokens."
            return _err(
                400,
                f"This model's maximum context length is {window} tokens. {detail} Please reduce "
                "the length of the messages or completion.",
                code="context_length_exceeded",
                param="messages",
            )
        return None


def _with_status(fault: Any, status: int) -> Any:
    return replace(fault, status=status)


"""FakeOllama: Ollama's native API (/api/chat, /api/show, /api/tags, /api/ps, /api/version).

Includes the context trap: the window is ``options.num_ctx`` or the server default (4096), capped
by the model's context_length; a longer prompt is cut from the front SILENTLY (HTTP 200) unless
the request sends ``truncate: false`` to a server >= 0.12.4, which makes it a 400.

Thinking (``FakeModel.thinking_style``):
- ``"field"``: with ``think`` truthy the reasoning streams in ``message.thinking``; with
  ``think: false`` there is none; with ``think`` ABSENT the model still thinks and the reasoning
  arrives inline as ``<think>…</think>`` at the start of ``content`` (the legacy behaviour).
- ``"tags"``: ``content`` always starts with ``<think>…</think>`` (old pulls), whatever ``think`` says.
- ``None``: no reasoning.

A request with NO messages is a load-only request, as in Ollama's ChatHandler (server/routes.go):
one JSON object (``application/json``, even when streaming was asked)
``{"model","created_at","message":{"role":"assistant","content":""},"done":true,"done_reason":"load"}``;
with ``keep_alive: 0`` it unloads instead (``"done_reason":"unload"``). ``load_requests=False``
turns this off (empty messages then get an ordinary answer, as before).

Other switches (constructor):
- ``truncated_prompt_count``: what ``prompt_eval_count`` says after a silent cut: ``"kept"`` (the
  tokens kept; default), ``"window"`` (EXACTLY ``num_ctx``: old servers), ``"half"`` (``num_ctx // 2``).
- ``tags_only=True``: a proxy that only knows ``/``, ``/api/version`` and ``/api/tags``; every other
  path (``/api/chat``, ``/api/show``…) is FastAPI's 404 ``{"detail":"Not Found"}``.

``Fault`` extras: ``finish_reason="load"|"unload"`` answers THIS request like a load-only one (the
object above, whatever the messages); any other ``finish_reason`` relabels ``done_reason``; ``usage``
is deep-merged into the final object (the metrics); ``cut``: the first lines, then the body ends
cleanly with no ``done: true`` line; ``json_body`` / ``stream_as_json``: a streamed request gets the
``stream: false`` JSON body. 429/503 with ``Retry-After`` / ``retry-after-ms``:
``Fault(status=503, retry_after="2", retry_after_ms="1500")``; nginx's HTML 502: ``nginx_502()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from . import tools as tooling
from .server import ABORT, DROP, FakeServer, Recorded, Reply, StreamReply, deep_merge
from .tokens import chunk_words, content_text, count_tokens, cut_output, message_tokens, truncate_messages

LOAD_NS = 1_500_000_000  # load_duration reported when a model is (re)loaded; no real sleep
WARM_LOAD_NS = 2_000_000  # load_duration when already loaded with the same window
_FOREVER = datetime(2318, 1, 1, tzinfo=timezone.utc)


@dataclass
class FakeModel:
    context_length: int = 32768
    arch: str = "qwen2"
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    thinking_style: str | None = None  # None | "field" | "tags"
    thinking: str | None = None  # reasoning text; a default is generated when None
    size: int = 4_700_000_000
    parameter_size: str = "7.6B"
    quantization: str = "Q4_K_M"


def default_models() -> dict[str, FakeModel]:
    """The models the ``fake_ollama`` fixture has pulled."""
    return {
        "qwen2.5:7b": FakeModel(32768, "qwen2", ["completion", "tools"]),
        "qwen2.5:14b": FakeModel(
            32768, "qwen2", ["completion", "tools"], size=9_000_000_000, parameter_size="14.8B"
        ),
        "deepseek-r1:8b": FakeModel(
            131072, "qwen3", ["completion", "thinking"], thinking_style="field",
            size=5_200_000_000, parameter_size="8.2B",
        ),
        "qwen3:8b": FakeModel(
            40960, "qwen3", ["completion", "tools", "thinking"], thinking_style="field",
            size=5_200_000_000, parameter_size="8.2B",
        ),
    }


def _go_json(obj: Any) -> bytes:
    """Go's encoding/json output: compact, UTF-8 raw, but <, > and & escaped."""
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    if "<" in s or ">" in s or "&" in s or "\u2028" in s or "\u2029" in s:
        s = (
            s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        )
    return s.encode()


def _err(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, _go_json({"error": message}), "application/json; charset=utf-8", headers)


def _prompt_counts(style: str, prompt: int, cached: int) -> dict[str, int]:
    if not cached or style == "total":
        return {"prompt_eval_count": prompt, **({"prompt_eval_cached_count": cached} if cached else {})}
    if style == "new_only":
        return {"prompt_eval_count": max(1, prompt - cached)}
    return {}  # "omit": the field is simply missing


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


_DURATION = re.compile(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_keep_alive(value: Any) -> float | None:
    """Seconds to stay loaded; None = forever (negative). Raises ValueError when invalid."""
    if value is None:
        return 300.0
    if isinstance(value, bool):
        raise ValueError("invalid keep_alive")
    if isinstance(value, (int, float)):
        secs = float(value)
    else:
        s = str(value).strip()
        try:
            secs = float(s)
        except ValueError:
            neg = s.startswith("-")
            body = s.lstrip("+-")
            parts = _DURATION.findall(body)
            if not parts or "".join(a + b for a, b in parts) != body:
                raise ValueError(f'time: invalid duration "{s}"') from None
            secs = sum(float(a) * _UNIT[b] for a, b in parts) * (-1 if neg else 1)
    return None if secs < 0 else secs


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for p in re.split(r"[.\-+]", v):
        if not p.isdigit():
            break
        out.append(int(p))
    return tuple(out)


class FakeOllama(FakeServer):
    def __init__(
        self,
        models: dict[str, FakeModel] | None = None,
        version: str = "0.12.6",
        default_num_ctx: int = 4096,
        honour_num_ctx: bool = True,
        honour_truncate: bool = True,
        ps_context: bool = True,
        prompt_cache: str = "total",
        truncated_prompt_count: str = "kept",
        load_requests: bool = True,
        tags_only: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if truncated_prompt_count not in ("kept", "window", "half"):
            raise ValueError(f"truncated_prompt_count: {truncated_prompt_count!r}")
        self.truncated_prompt_count = truncated_prompt_count
        self.load_requests = load_requests
        self.tags_only = tags_only
        self.models: dict[str, FakeModel] = dict(default_models() if models is None else models)
        self.version = version
        self.default_num_ctx = default_num_ctx
        # False: behave like a proxy in front of Ollama that drops `options` (so num_ctx) or the
        # `truncate` flag: the window is the default and a long prompt is cut silently anyway.
        self.honour_num_ctx = honour_num_ctx
        self.honour_truncate = honour_truncate
        self.ps_context = ps_context  # False: /api/ps without context_length, as older servers
        # How a prompt prefix reused from the KV cache shows in prompt_eval_count, by version:
        # "total" (newest: the whole prompt, plus prompt_eval_cached_count), "new_only" (some
        # versions count only newly evaluated tokens), "omit" (old ones drop the field).
        if prompt_cache not in ("total", "new_only", "omit"):
            raise ValueError(f"prompt_cache: {prompt_cache!r}")
        self.prompt_cache = prompt_cache
        self._last_prompt: dict[str, tuple[str, int]] = {}  # model -> (prompt text, tokens) in its KV cache
        # name -> {"num_ctx": window, "expires": datetime | None (forever), "loaded_at": ...}
        self.loaded: dict[str, dict[str, Any]] = {}
        self._started = datetime.now(timezone.utc)

    # ---------------------------------------------------------------- helpers

    def _lookup(self, name: str) -> tuple[str, FakeModel] | None:
        if name in self.models:
            return name, self.models[name]
        alt = name[: -len(":latest")] if name.endswith(":latest") else name + ":latest"
        if alt in self.models:
            return alt, self.models[alt]
        return None

    def _digest(self, name: str) -> str:
        return hashlib.sha256(name.encode()).hexdigest()

    def _details(self, m: FakeModel) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": m.arch,
            "families": [m.arch],
            "parameter_size": m.parameter_size,
            "quantization_level": m.quantization,
        }

    def _is_loaded(self, name: str, now: datetime) -> dict[str, Any] | None:
        st = self.loaded.get(name)
        if st is None:
            return None
        if st["expires"] is not None and st["expires"] <= now:
            del self.loaded[name]
            return None
        return st

    # ---------------------------------------------------------------- routing

    async def handle(self, req: Recorded) -> Any:
        path, method = req.path.rstrip("/") or "/", req.method
        if self.tags_only and path not in ("/", "/api/version", "/api/tags"):
            return Reply(404, b'{"detail":"Not Found"}', "application/json")  # the proxy's (FastAPI) 404
        if path == "/api/chat":
            if method != "POST":
                return Reply(405, b"405 method not allowed", "text/plain")
            return await self._chat(req)
        if path == "/":
            if method in ("GET", "HEAD"):
                return Reply(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif path == "/api/version" and method in ("GET", "HEAD"):
            return Reply(200, _go_json({"version": self.version}), "application/json; charset=utf-8")
        elif path == "/api/tags" and method in ("GET", "HEAD"):
            return self._tags()
        elif path == "/api/ps" and method in ("GET", "HEAD"):
            return self._ps()
        elif path == "/api/show" and method == "POST":
            return self._show(req)
        return Reply(404, b"404 page not found", "text/plain")

    def _tags(self) -> Reply:
        modified = _iso(self._started)
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": modified,
                "size": m.size,
                "digest": self._digest(name),
                "details": self._details(m),
            }
            for name, m in self.models.items()
        ]
        return Reply(200, _go_json({"models": models}), "application/json; charset=utf-8")

    def _ps(self) -> Reply:
        now = datetime.now(timezone.utc)
        out = []
        for name in list(self.loaded):
            st = self._is_loaded(name, now)
            if st is None or name not in self.models:
                continue
            m = self.models[name]
            size = m.size + st["num_ctx"] * 57_344  # a KV-cache-ish growth with the window
            out.append(
                {
                    "name": name,
                    "model": name,
                    "size": size,
                    "digest": self._digest(name),
                    "details": self._details(m),
                    "expires_at": _iso(st["expires"] or _FOREVER),
                    "size_vram": size,
                    **({"context_length": st["num_ctx"]} if self.ps_context else {}),
                }
            )
        return Reply(200, _go_json({"models": out}), "application/json; charset=utf-8")

    def _show(self, req: Recorded) -> Reply:
        body = req.json if isinstance(req.json, dict) else {}
        name = body.get("model") or body.get("name")
        if not name:
            return _err(400, "model is required")
        found = self._lookup(name)
        if found is None:
            return _err(404, f"model '{name}' not found")
        _, m = found
        arch = m.arch
        info = {
            "general.architecture": arch,
            "general.file_type": 15,
            "general.parameter_count": int(float(m.parameter_size.rstrip("BM")) * 1e9),
            "general.quantization_version": 2,
            f"{arch}.context_length": m.context_length,
            f"{arch}.embedding_length": 3584,
            f"{arch}.block_count": 28,
            f"{arch}.attention.head_count": 28,
        }
        out = {
            "license": "",
            "modelfile": f"FROM {name}\n",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": self._details(m),
            "model_info": info,
            "capabilities": list(m.capabilities),
            "modified_at": _iso(self._started),
        }
        return Reply(200, _go_json(out), "application/json; charset=utf-8")

    # ---------------------------------------------------------------- /api/chat

    async def _chat(self, req: Recorded) -> Any:
        t_start = time.perf_counter_ns()
        body = req.json
        if not isinstance(body, dict):
            return _err(400, "invalid request body" if req.body else "EOF")
        name = body.get("model")
        if not isinstance(name, str) or not name:
            return _err(400, "model is required")
        fault = await self.begin(name)
        if fault is not None and fault.status:
            if fault.raw_body is not None:
                return fault.raw_reply()
            return _err(fault.status, fault.message, fault.headers())
        found = self._lookup(name)
        if found is None:
            return _err(404, f"model '{name}' not found")
        key, model = found
        think = body.get("think")
        if think not in (None, False) and "thinking" not in model.capabilities:
            return _err(400, f'"{name}" does not support thinking')
        raw = body.get("messages") or []
        if not isinstance(raw, list):
            return _err(400, "json: cannot unmarshal messages")
        messages = [
            {"role": str(m.get("role", "user")), "content": content_text(m.get("content")),
             **({"name": m["tool_name"]} if m.get("tool_name") else {})}
            for m in raw
            if isinstance(m, dict)
        ]
        options = body.get("options") or {}
        if not isinstance(options, dict):
            return _err(400, "json: cannot unmarshal options")
        try:
            num_ctx = int(options["num_ctx"]) if options.get("num_ctx") else None
            num_predict = int(options["num_predict"]) if options.get("num_predict") is not None else None
            keep_alive = parse_keep_alive(body.get("keep_alive"))
        except (TypeError, ValueError) as e:
            return _err(400, str(e) or "invalid options")
        if not self.honour_num_ctx:
            num_ctx = None
        window = min(num_ctx or self.default_num_ctx, model.context_length)

        load_only = fault is not None and fault.finish_reason in ("load", "unload")
        if (self.load_requests and not raw) or load_only:
            return self._load_only(key, name, window, keep_alive, fault.finish_reason if load_only else None)

        turn = self._tool_turn(body, name, model, raw, messages, t_start)
        if turn is not None:
            return turn

        prompt = message_tokens(messages)
        reported_prompt = None  # what prompt_eval_count says after a silent cut, if not the kept size
        if prompt > window:
            if body.get("truncate") is False and self.honour_truncate and _version_tuple(self.version) >= (0, 12, 4):
                return _err(400, "the input length exceeds the context length")
            messages = truncate_messages(messages, window)  # silent, as the real server does
            prompt = message_tokens(messages)
            reported_prompt = {"window": window, "half": window // 2}.get(self.truncated_prompt_count)

        # load / reload
        now = datetime.now(timezone.utc)
        st = self._is_loaded(key, now)
        warm = st is not None and st["num_ctx"] == window
        load_ns = WARM_LOAD_NS if warm else LOAD_NS
        # The KV cache: a prompt that starts with the previous one reuses its tokens (all but the
        # last, which is evaluated again), as long as the model stayed loaded with that window.
        text = "\x00".join(m["role"] + "\x01" + m["content"] for m in messages)
        prev = self._last_prompt.get(key) if warm else None
        cached = max(0, prev[1] - 1) if prev and text.startswith(prev[0]) else 0
        self._last_prompt[key] = (text, prompt)
        if keep_alive == 0:
            self.loaded.pop(key, None)
        else:
            expires = None if keep_alive is None else now + timedelta(seconds=keep_alive)
            self.loaded[key] = {"num_ctx": window, "expires": expires}

        # what the model says
        reply = self.reply_text(name, messages)
        if body.get("format") and name not in self.replies:
            reply = json.dumps({"answer": reply})
        thinking = ""
        inline_think = model.thinking_style == "tags" or (
            model.thinking_style == "field" and think is None
        )
        if model.thinking_style and (inline_think or think not in (None, False)):
            thinking = model.thinking or f"The user sent {prompt} tokens. Let me think about an answer."
        limit = None
        if num_predict is not None and num_predict >= 0:
            limit = num_predict
        elif num_predict == -2:
            limit = max(0, window - prompt)
        if body.get("shift") is False:
            room = max(0, window - prompt)
            limit = room if limit is None else min(limit, room)
        if inline_think and thinking:
            content, cut = cut_output("", f"<think>{thinking}</think>\n\n{reply}", limit)[1:]
            thinking = ""
        else:
            thinking, content, cut = cut_output(thinking, reply, limit)
        eval_count = count_tokens(thinking) + count_tokens(content)
        done_reason = "length" if cut else "stop"
        if fault is not None and fault.finish_reason:
            done_reason = fault.finish_reason
        created = _iso(now)
        counted = prompt if reported_prompt is None else reported_prompt

        def final(t_first: int, t_end: int, message: dict[str, Any]) -> dict[str, Any]:
            out = {
                "model": name,
                "created_at": created,
                "message": message,
                "done": True,
                "done_reason": done_reason,
                "total_duration": max(1, t_end - t_start) + load_ns,
                "load_duration": load_ns,
                **_prompt_counts(self.prompt_cache, counted, cached),
                "prompt_eval_duration": max(1, t_first - t_start),
                "eval_count": eval_count,
                "eval_duration": max(1, t_end - t_first),
            }
            return deep_merge(out, fault.usage) if fault is not None and fault.usage else out

        pieces = [("thinking", p) for p in chunk_words(thinking)] + [
            ("content", p) for p in chunk_words(content)
        ]

        if body.get("stream", True) is False or self.wants_json(fault):
            if fault is not None and fault.mid_stream:
                return _err(500, fault.message)
            if fault is not None and fault.drop:
                return DROP
            if self.ttft_s > 0:
                await asyncio.sleep(self.ttft_s)
            t_first = time.perf_counter_ns()
            if self.chunk_delay_s > 0 and len(pieces) > 1:
                await asyncio.sleep(self.chunk_delay_s * (len(pieces) - 1))
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            return Reply(200, _go_json(final(t_first, time.perf_counter_ns(), message)),
                         "application/json; charset=utf-8")

        def lines():
            t_first = None
            for i, (kind, text) in enumerate(pieces):
                if fault is not None and (fault.mid_stream or fault.drop or fault.cut) and i >= 2:
                    break
                msg = {"role": "assistant", "content": text if kind == "content" else ""}
                if kind == "thinking":
                    msg["thinking"] = text
                yield _go_json({"model": name, "created_at": created, "message": msg, "done": False}) + b"\n"
                if t_first is None:
                    t_first = time.perf_counter_ns()
            if fault is not None and fault.mid_stream:
                yield _go_json({"error": fault.message}) + b"\n"
                return
            if fault is not None and fault.drop:
                yield ABORT
                return
            if fault is not None and fault.cut:
                return  # a clean end of the body, without the `done: true` line
            t_end = time.perf_counter_ns()
            yield _go_json(
                final(t_first or t_end, t_end, {"role": "assistant", "content": ""})
            ) + b"\n"

        return StreamReply(lines(), 200, "application/x-ndjson")

    def _tool_turn(self, body: dict[str, Any], name: str, model: FakeModel, raw: list, messages: list[dict[str, Any]],
                   t_start: int) -> Any:
        """Tools (see tools.py): a 400 for tools sent to a model without the capability or a tool
        message with no call before it; the tool_calls reply when one is due; else None."""
        offered = body.get("tools") or []
        if offered:
            self.tool_requests += 1
            if "tools" not in model.capabilities:
                return _err(400, f'registry.ollama.ai/library/{name} does not support tools')
        called: list[str] = []
        for i, m in enumerate(raw):
            if not isinstance(m, dict):
                continue
            if m.get("tool_calls"):
                called = [(c.get("function") or {}).get("name") for c in m["tool_calls"]]
            if m.get("role") == "tool":
                if not called or (m.get("tool_name") and m["tool_name"] not in called):
                    return _err(400, f"messages[{i}]: a tool message needs an assistant message with its tool_calls before it")
                messages[i].setdefault("name", m.get("tool_name") or called[0])
        if not offered or not raw or raw[-1].get("role") != "user":
            return None
        tool = tooling.pick([((t.get("function") or {}).get("name"), (t.get("function") or {}).get("parameters"))
                             for t in offered], None)
        args = tooling.args_for(tool[1])
        now = datetime.now(timezone.utc)
        prompt = message_tokens(messages) + tooling.tools_tokens(offered)
        t_end = time.perf_counter_ns()
        final = {"model": name, "created_at": _iso(now), "done": True, "done_reason": "stop",
                 "total_duration": max(1, t_end - t_start), "load_duration": WARM_LOAD_NS,
                 "prompt_eval_count": prompt, "prompt_eval_duration": 1000,
                 "eval_count": tooling.output_tokens(args), "eval_duration": 1000}
        call = {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": tool[0], "arguments": args}}]}
        if body.get("stream", True) is False:
            return Reply(200, _go_json({**final, "message": call}), "application/json; charset=utf-8")
        lines = [_go_json({"model": name, "created_at": _iso(now), "message": call, "done": False}) + b"\n",
                 _go_json({**final, "message": {"role": "assistant", "content": ""}}) + b"\n"]
        return StreamReply(lines, 200, "application/x-ndjson")

    def _load_only(self, key: str, name: str, window: int, keep_alive: float | None, reason: str | None) -> Reply:
        """Ollama's answer to a request with no messages (routes.go ChatHandler): load, or unload
        with ``keep_alive: 0``; ``reason`` forces one. One JSON object, never a stream."""
        if reason is None:
            reason = "unload" if keep_alive == 0 else "load"
        now = datetime.now(timezone.utc)
        if reason == "unload":
            self.loaded.pop(key, None)
        else:
            expires = None if keep_alive is None else now + timedelta(seconds=keep_alive)
            self.loaded[key] = {"num_ctx": window, "expires": expires}
        out = {"model": name, "created_at": _iso(now), "message": {"role": "assistant", "content": ""},
               "done": True, "done_reason": reason}
        return Reply(200, _go_json(out), "application/json; charset=utf-8")

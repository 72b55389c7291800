"""FakeGemini: the Gemini API (v1beta) ``generateContent`` / ``streamGenerateContent`` / ``countTokens``.

Models named in ``thinking`` think by default, like Gemini 2.5: ``thoughtsTokenCount`` is billed
even when ``includeThoughts`` is off, ``maxOutputTokens`` caps thoughts + text together (so a small
limit can end in ``MAX_TOKENS`` with no text at all), ``thinkingBudget: 0`` turns thinking off
(a 400 for "pro" models). Zero counts are OMITTED from ``usageMetadata``, as Google does
(proto3 JSON): read them with a default. Implicit prompt caching reports
``cachedContentTokenCount`` for a repeated prefix of >= 1024 tokens (2048 for pro).

``Fault`` extras (a stream is complete only with ``STOP`` or ``MAX_TOKENS``; backends.md):
- ``finish_reason="STOP"|"MAX_TOKENS"``: the full answer, relabelled.
- ``finish_reason="CONTINUATION"``: the answer stops after the first half of its chunks; the chunk
  with ``finishReason: "CONTINUATION"`` (the body, when not streamed) also has a TOP-LEVEL
  ``"continuationToken"``. Re-sending the SAME request (same model and contents) with that token as a
  top-level ``"continuationToken"`` in the request JSON (an assumption: the SDK source at hand has no
  such field yet) continues the answer from where it stopped and ends with ``STOP`` (or with the next
  queued fault's reason: queue two CONTINUATION faults for three legs). Each leg's ``usageMetadata``
  is its own: ``promptTokenCount`` = the re-sent prompt (cache hits as usual), candidates/thoughts
  = that leg's output only (thoughts on the first leg only); meter the whole by adding the legs.
  An unknown token, or one sent with other contents/model, is a 400 ``INVALID_ARGUMENT``.
- any other ``finish_reason`` (``MALFORMED_RESPONSE``, ``OTHER``, ``SAFETY``, ``RECITATION``,
  ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``, an unknown ``NEW_REASON_2027``…): the first half of
  the answer's chunks, then a chunk with no ``content`` and that ``finishReason`` (``SAFETY`` adds
  ``safetyRatings``).
- ``usage``: deep-merged into every chunk's ``usageMetadata``. ``cut``: the first half of the chunks,
  none with a finishReason, then the stream ends cleanly. ``json_body`` / ``stream_as_json``:
  ``streamGenerateContent`` answers with the generateContent body (one JSON object).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from typing import Any

from . import tools as tooling
from .server import ABORT, DROP, FakeServer, Recorded, Reply, StreamReply, deep_merge
from .tokens import MESSAGE_OVERHEAD, PrefixCache, chunk_words, count_tokens, cut_output, head_tokens, message_tokens

_PATH = re.compile(r"^/v1beta/models/([^/:]+):(streamGenerateContent|generateContent|countTokens)$")
STATUS_WORD = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)  # Google's SSE lines: one line, ", " and ": "


def error_body(code: int, message: str, status: str | None = None, details: list | None = None) -> dict:
    err: dict[str, Any] = {"code": code, "message": message, "status": status or STATUS_WORD.get(code, "UNKNOWN")}
    if details:
        err["details"] = details
    return {"error": err}


def _err(code: int, message: str, status: str | None = None, details: list | None = None,
         headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(error_body(code, message, status, details), ensure_ascii=False, indent=2).encode()
    return Reply(code, body, "application/json; charset=UTF-8", headers)


def _ok(obj: Any) -> Reply:
    return Reply(200, json.dumps(obj, ensure_ascii=False, indent=2).encode(), "application/json; charset=UTF-8")


def _get(d: dict, camel: str, snake: str) -> Any:
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _part_text(p: dict[str, Any]) -> str:
    """What a part puts in front of the model: its text, or a function call or response as JSON."""
    if isinstance(p.get("functionCall"), dict):
        return json.dumps(p["functionCall"].get("args"))
    if isinstance(p.get("functionResponse"), dict):
        return json.dumps(p["functionResponse"].get("response"))
    return p.get("text") or ""


class FakeGemini(FakeServer):
    def __init__(
        self,
        models: dict[str, int] | None = None,
        api_key: str | None = "test-key",
        thinking: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.models: dict[str, int] = dict(models if models is not None else {"gemini-2.5-flash": 1_048_576})
        self.api_key = api_key
        self.thinking: dict[str, str] = dict(thinking or {})
        self.cache = PrefixCache()
        self._ids = itertools.count(1)
        # continuationToken -> {"model", "key" (the request's contents), "rest" (text still to send)}
        self.continuations: dict[str, dict[str, Any]] = {}

    # ---------------------------------------------------------------- routing

    async def handle(self, req: Recorded) -> Any:
        m = _PATH.match(req.path)
        if m is None:
            listing = req.path.rstrip("/") == "/v1beta/models" or (
                req.path.startswith("/v1beta/models/") and ":" not in req.path
            )
            if req.method == "GET" and listing:
                denied = self._auth(req)
                if denied is not None:
                    return denied
                return self._list(req.path)
            return Reply(404, b"<html><body>Error 404 (Not Found)</body></html>", "text/html; charset=UTF-8")
        if req.method != "POST":
            return _err(404, "Method not found.", "NOT_FOUND")
        denied = self._auth(req)
        if denied is not None:
            return denied
        return await self._generate(req, m.group(1), m.group(2))

    def _auth(self, req: Recorded) -> Reply | None:
        if self.api_key is None:
            return None
        key = req.headers.get("x-goog-api-key") or req.query.get("key")
        if key == self.api_key:
            return None
        if not key:
            return _err(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
                "PERMISSION_DENIED",
            )
        return _err(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        ])

    def _model_info(self, name: str) -> dict[str, Any]:
        return {
            "name": f"models/{name}", "version": "001", "displayName": name,
            "inputTokenLimit": self.models[name], "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
            "thinking": name in self.thinking,
        }

    def _list(self, path: str) -> Reply:
        name = path.rstrip("/")[len("/v1beta/models/"):] if path.startswith("/v1beta/models/") else ""
        if name:
            if name not in self.models:
                return _err(404, f"models/{name} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.")
            return _ok(self._model_info(name))
        return _ok({"models": [self._model_info(n) for n in self.models]})

    # ---------------------------------------------------------------- generate

    def _parse(self, body: dict[str, Any]) -> list[dict[str, str]] | Reply:
        norm: list[dict[str, str]] = []
        system = _get(body, "systemInstruction", "system_instruction")
        if system is not None:
            if not isinstance(system, dict) or not isinstance(system.get("parts"), list):
                return _err(400, "Invalid JSON payload received. Unknown name \"systemInstruction\": expected a Content object.")
            text = "\n".join(p.get("text") or "" for p in system["parts"] if isinstance(p, dict))
            norm.append({"role": "system", "content": text})
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return _err(400, "* GenerateContentRequest.contents: contents is not specified\n")
        for i, c in enumerate(contents):
            if not isinstance(c, dict):
                return _err(400, f"Invalid JSON payload received. contents[{i}] must be an object.")
            role = c.get("role") or "user"
            if role not in ("user", "model"):
                return _err(400, "Please use a valid role: user, model.")
            parts = c.get("parts")
            if not isinstance(parts, list) or not parts:
                return _err(400, f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n")
            text = "".join(_part_text(p) for p in parts if isinstance(p, dict) and not p.get("thought"))
            norm.append({"role": "user" if role == "user" else "assistant", "content": text})
        return norm

    def _tool_turn(self, req: Recorded, body: dict[str, Any], name: str, messages: list[dict[str, Any]],
                   prompt: int, method: str) -> Any:
        """Tools (see tools.py): a 400 for a functionResponse that answers no functionCall of the
        previous model turn (or a different number of them); the functionCall reply when one is
        due; else None (a turn of responses becomes a "tool" message for the reply text)."""
        contents = body["contents"]
        offset = len(messages) - len(contents)
        called: list[str] = []
        for i, c in enumerate(contents):
            parts = [p for p in c.get("parts") or [] if isinstance(p, dict)]
            answers = [p["functionResponse"] for p in parts if isinstance(p.get("functionResponse"), dict)]
            if answers:
                if len(answers) != len(called):
                    return _err(400, "Please ensure that the number of function response parts is equal to the "
                                     "number of function call parts of the function call turn.")
                for a in answers:
                    if a.get("name") not in called:
                        return _err(400, f"* GenerateContentRequest.contents[{i}].parts: function response "
                                         f"'{a.get('name')}' does not match any function call of the previous turn.\n")
                    if not isinstance(a.get("response"), dict):
                        return _err(400, f"* GenerateContentRequest.contents[{i}].parts.function_response.response: "
                                         "must be an object.\n")
                messages[offset + i].update(role="tool", name=answers[-1]["name"],
                                            content=json.dumps(answers[-1]["response"]))
            called = [p["functionCall"].get("name") for p in parts if isinstance(p.get("functionCall"), dict)]
        declarations = [d for t in body.get("tools") or [] for d in (t.get("functionDeclarations") or [])]
        if declarations:
            self.tool_requests += 1
        for d in declarations:
            if not d.get("name"):
                return _err(400, "* GenerateContentRequest.tools[0].function_declarations[0].name: Name cannot be empty.\n")
            if "parameters" in d and "parametersJsonSchema" in d:
                return _err(400, "Only one of parameters and parametersJsonSchema may be set.")
        fcc = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        mode = fcc.get("mode", "AUTO")
        if not declarations or mode == "NONE" or contents[-1].get("role", "user") != "user" \
                or messages[-1]["role"] == "tool":
            return None
        allowed = fcc.get("allowedFunctionNames") or []
        tool = tooling.pick([(d["name"], d.get("parametersJsonSchema") or d.get("parameters")) for d in declarations],
                            allowed[0] if allowed else None)
        if tool is None:
            return _err(400, "allowedFunctionNames names a function that is not declared.")
        args = tooling.args_for(tool[1])
        out = tooling.output_tokens(args)
        total = prompt + tooling.tools_tokens(body.get("tools"))
        response = {"candidates": [{"content": {"parts": [{"functionCall": {"name": tool[0], "args": args}}],
                                                "role": "model"}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": {"promptTokenCount": total, "candidatesTokenCount": out,
                                      "totalTokenCount": total + out},
                    "modelVersion": name, "responseId": f"fake{next(self._ids):012d}"}
        if method == "generateContent":
            return _ok(response)
        return self._stream(req, [_line(response)], None)

    async def _generate(self, req: Recorded, name: str, method: str) -> Any:
        body = req.json
        if not isinstance(body, dict):
            return _err(400, "Invalid JSON payload received.")
        if method == "countTokens":
            # CountTokensRequest has `contents` or `generateContentRequest` (model, contents,
            # systemInstruction, tools, ...), never both; a system instruction goes in the latter.
            unknown = [k for k in body if k not in ("contents", "generateContentRequest")]
            if unknown:
                return _err(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
            inner = body.get("generateContentRequest")
            if inner is not None:
                if "contents" in body:
                    return _err(400, "Only one of contents or generate_content_request may be set.")
                if not isinstance(inner, dict) or inner.get("model") != f"models/{name}":
                    return _err(400, "* CountTokensRequest.generate_content_request.model: model must be the same as the one in the URL.\n")
                body = {k: v for k, v in inner.items() if k != "model"}
        fault = None if method == "countTokens" else await self.begin(name)
        if fault is not None and fault.status:
            details = None
            if fault.retry_after and fault.retry_after.isdigit():
                details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{fault.retry_after}s"}]
            if fault.raw_body is not None:
                return fault.raw_reply()
            return _err(fault.status, fault.message, fault.error_type, details, fault.headers())
        if name not in self.models:
            return _err(404, f"models/{name} is not found for API version v1beta, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods.")
        window = self.models[name]
        parsed = self._parse(body)
        if isinstance(parsed, Reply):
            return parsed
        messages = parsed
        prompt = message_tokens(messages)
        if method == "countTokens":
            return _ok({"totalTokens": prompt, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]})
        turn = self._tool_turn(req, body, name, messages, prompt, method)
        if turn is not None:
            return turn
        if prompt > window:
            return _err(400, f"The input token count ({prompt}) exceeds the maximum number of tokens allowed ({window}).")

        config = _get(body, "generationConfig", "generation_config") or {}
        max_out = _get(config, "maxOutputTokens", "max_output_tokens")
        temp = config.get("temperature")
        if temp is not None and (not isinstance(temp, (int, float)) or not 0 <= temp <= 2):
            return _err(400, "* GenerateContentRequest.generation_config.temperature: temperature must be in the range [0.0, 2.0]\n")
        if max_out is not None and (not isinstance(max_out, int) or max_out < 1):
            return _err(400, "* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must be positive.\n")
        tcfg = _get(config, "thinkingConfig", "thinking_config") or {}
        budget = _get(tcfg, "thinkingBudget", "thinking_budget")
        include_thoughts = bool(_get(tcfg, "includeThoughts", "include_thoughts"))
        thinks = name in self.thinking
        if budget == 0 and thinks:
            if "pro" in name:
                return _err(400, "Budget 0 is invalid. This model only works in thinking mode.")
            thinks = False

        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        leg = None  # the continuation this request asks for
        if "continuationToken" in body:
            token_in = body.get("continuationToken")
            leg = self.continuations.get(token_in) if isinstance(token_in, str) else None
            if leg is None or leg["model"] != name or leg["key"] != key:
                return _err(400, "Invalid continuation token: it is unknown or was issued for another request.")
            del self.continuations[token_in]

        minimum = 2048 if "pro" in name else 1024
        hit = self.cache.hit(name, (((m["role"], m["content"]), count_tokens(m["content"]) + MESSAGE_OVERHEAD) for m in messages))
        cached = hit if hit >= minimum else 0

        rid = f"fake{next(self._ids):012d}"
        if fault is not None and fault.error_type == "blocked":
            blocked = {"promptFeedback": {"blockReason": "SAFETY"},
                       "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
                       "modelVersion": name, "responseId": rid}
            if method == "generateContent":
                return _ok(blocked)
            return self._stream(req, [_line(blocked)], None)

        thought = ""
        if thinks and leg is None:
            thought = self.thinking[name] or f"The user sent {prompt} tokens. Let me think about an answer."
            if isinstance(budget, int) and budget > 0:
                thought = head_tokens(thought, budget)
        reply = leg["rest"] if leg is not None else self.reply_text(name, messages)
        thought, content, cut = cut_output(thought, reply, max_out)
        thoughts_total = count_tokens(thought)
        finish = "MAX_TOKENS" if cut else "STOP"
        reason = fault.finish_reason if fault is not None else None
        top: dict[str, Any] = {}  # top-level extras of the finishing chunk / body
        bare_final = False  # the finishReason comes on a chunk of its own, without content
        if reason in ("STOP", "MAX_TOKENS"):
            finish = reason
        elif reason == "CONTINUATION":
            words = chunk_words(content)
            half = (len(words) + 1) // 2
            content = "".join(words[:half])
            token = f"fake-continuation-{next(self._ids):08d}"
            self.continuations[token] = {"model": name, "key": key, "rest": "".join(words[half:])}
            finish, top = reason, {"continuationToken": token}
        elif reason:
            words = chunk_words(content)
            content = "".join(words[: len(words) // 2])
            finish, bare_final = reason, True

        def usage(cand: int, thoughts: int) -> dict[str, Any]:
            u: dict[str, Any] = {"promptTokenCount": prompt}
            if cand:
                u["candidatesTokenCount"] = cand
            u["totalTokenCount"] = prompt + cand + thoughts
            if cached:
                u["cachedContentTokenCount"] = cached
            u["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
            if cached:
                u["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
            if thoughts:
                u["thoughtsTokenCount"] = thoughts
            return deep_merge(u, fault.usage) if fault is not None and fault.usage else u

        def response(parts: list[dict[str, Any]] | None, finish_reason: str | None, cand: int, thoughts: int,
                     bare: bool = False) -> dict:
            content_obj: dict[str, Any] = {"role": "model"}
            if parts:
                content_obj = {"parts": parts, "role": "model"}
            cand_obj: dict[str, Any] = {} if bare else {"content": content_obj}
            if finish_reason:
                cand_obj["finishReason"] = finish_reason
                if finish_reason == "SAFETY":
                    cand_obj["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                                  "probability": "HIGH", "blocked": True}]
            cand_obj["index"] = 0
            out = {"candidates": [cand_obj], "usageMetadata": usage(cand, thoughts), "modelVersion": name, "responseId": rid}
            return {**out, **top} if finish_reason else out

        pieces = ([("thought", p) for p in chunk_words(thought)] if include_thoughts else []) + [
            ("text", p) for p in chunk_words(content)
        ]

        if method == "generateContent" or self.wants_json(fault):
            if fault is not None and fault.mid_stream:
                return _err(500, fault.message, fault.error_type or "INTERNAL")
            if fault is not None and fault.drop:
                return DROP
            await self.generating(len(pieces))
            parts = []
            if include_thoughts and thought:
                parts.append({"text": thought, "thought": True})
            if content:
                parts.append({"text": content})
            return _ok(response(parts, finish, count_tokens(content), thoughts_total, bare_final and not parts))

        lines: list[str] = []
        cand_sofar = 0
        thoughts_sofar = 0 if include_thoughts else thoughts_total
        cut_stream = fault is not None and fault.cut
        for i, (kind, text) in enumerate(pieces):
            if kind == "thought":
                thoughts_sofar += count_tokens(text)
                part = {"text": text, "thought": True}
            else:
                cand_sofar += count_tokens(text)
                part = {"text": text}
            last = i == len(pieces) - 1 and not bare_final and not cut_stream
            lines.append(_line(response([part], finish if last else None, cand_sofar, thoughts_total if last else thoughts_sofar)))
        if cut_stream:  # the first half, no finishReason anywhere; the body then ends cleanly
            lines = lines[: max(1, len(lines) // 2)] or [_line(response(None, None, 0, thoughts_sofar))]
        elif bare_final or not pieces:
            lines.append(_line(response(None, finish, cand_sofar, thoughts_total, bare_final)))
        return self._stream(req, lines, fault)

    def _stream(self, req: Recorded, lines: list[str], fault: Any) -> StreamReply:
        sse = req.query.get("alt") == "sse"
        broken = fault is not None and (fault.mid_stream or fault.drop)
        if broken:
            lines = lines[:1]

        def frames():
            for i, line in enumerate(lines):
                if sse:
                    yield f"data: {line}\r\n\r\n".encode()
                else:
                    yield (("[" if i == 0 else ",\r\n") + line).encode()
            if broken and fault.mid_stream:
                err = _line(error_body(500, fault.message, fault.error_type or "INTERNAL"))
                yield (f"data: {err}\r\n\r\n" if sse else f",\r\n{err}]").encode()
                return
            if broken:
                yield ABORT
                return
            if not sse:
                yield b"]"

        if sse:
            return StreamReply(frames(), 200, "text/event-stream")
        return StreamReply(frames(), 200, "application/json; charset=UTF-8")

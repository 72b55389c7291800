"""Ollama's native /api/chat through the official `ollama` client.

The native API (not /v1) because only it honours `options.num_ctx`. The router sizes num_ctx
to fit the prompt; this module also checks `prompt_eval_count` afterwards, because an older
server cuts an over-long prompt from the front with HTTP 200 and says nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

import httpx

from .base import BackendError, Call, Done, Event, ThinkingDelta, Usage, Timeouts, tls_context
from .redact import display_url
from .thinktags import ThinkTagSplitter
from ..tokens import ESTIMATE_MARGIN


class OllamaBackend:
    def __init__(self, host: str, *, keep_alive: str | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.host = host
        self.keep_alive = keep_alive
        self._transport = transport
        self._client = None
        # model → the window a cut proved this server really used, whatever num_ctx asked for:
        # later, when the prompt cache makes counts small, they are judged against it.
        self._proven_window: dict[str, int] = {}

    def warm(self, timeouts: Timeouts) -> None:
        from .base import warm_http

        warm_http()
        self._client_for(timeouts)

    def _get_client(self, call: Call):
        return self._client_for(call.timeouts)

    def _client_for(self, t: Timeouts):
        import ollama  # heavy (pydantic): loaded only when a local call is made

        if self._client is None:
            kwargs: dict[str, Any] = {"verify": tls_context()}
            if self._transport is not None:
                kwargs["transport"] = self._transport
            # The client's default timeout is none at all; a stalled server would hang forever.
            # Each chat passes its own timeouts; this default covers the small /api/ps calls.
            self._client = ollama.AsyncClient(host=self.host, timeout=_timeout(t), **kwargs)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client._client.aclose()
            self._client = None

    def request_body(self, call: Call) -> dict[str, Any]:
        messages = list(call.messages)
        if call.system:
            messages = [{"role": "system", "content": call.system}, *messages]
        options: dict[str, Any] = {}
        if "num_ctx" in call.backend_options:
            options["num_ctx"] = call.backend_options["num_ctx"]
        if call.max_output_tokens is not None:
            options["num_predict"] = call.max_output_tokens
        if call.temperature is not None:
            options["temperature"] = call.temperature
        if call.seed is not None:
            options["seed"] = call.seed
        body: dict[str, Any] = {"model": call.model, "messages": messages, "stream": True, "options": options}
        for key in ("truncate", "shift"):
            if key in call.backend_options:
                body[key] = call.backend_options[key]
        if call.think is not None:
            body["think"] = call.think
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return body

    async def stream(self, call: Call) -> AsyncIterator[Event]:
        import ollama

        client = self._get_client(call)
        body = self.request_body(call)
        splitter = ThinkTagSplitter()
        final = None
        checked = not self._may_be_cut(call)
        try:
            # chat() has no `truncate` argument, so the body goes through the client's own
            # request path: same transport, NDJSON parsing and error types as chat().
            parts = await client._request(ollama.ChatResponse, "POST", "/api/chat", json=body, stream=True,
                                          timeout=_timeout(call.timeouts))
            async with contextlib.aclosing(parts):  # a consumer that stops early hangs up at once
                async for part in parts:
                    msg = part.message
                    if not checked:
                        # Before showing a word: a window smaller than the prompt means the server
                        # cut it, whatever was asked for (a proxy that drops options, an old server).
                        checked = True
                        await self._check_window(call)  # raising hangs up: the server stops generating
                    if msg is not None and msg.thinking:
                        yield ThinkingDelta(msg.thinking)
                    if msg is not None and msg.content:
                        for event in splitter.feed(msg.content):
                            yield event
                    if part.done:
                        final = part
        except ollama.ResponseError as exc:
            raise _response_error(exc, call.model) from None
        except (ConnectionError, httpx.ConnectError):
            raise BackendError(f"Ollama not reachable at {display_url(self.host)}", kind="connect", retryable=True) from None
        except httpx.TimeoutException:
            raise BackendError(f"Ollama at {display_url(self.host)} timed out", kind="timeout", retryable=True) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise BackendError(f"Ollama stream broke off: {exc}", kind="stream", retryable=True) from None
        except httpx.HTTPError as exc:
            raise BackendError(f"Ollama request failed: {type(exc).__name__}", kind="stream", retryable=True) from None
        except ValueError as exc:  # a line that is not JSON, or JSON that is not a chat chunk
            raise BackendError(f"Ollama sent a malformed reply ({type(exc).__name__})", kind="stream",
                               retryable=True) from None
        for event in splitter.flush():
            yield event
        if final is None:
            raise BackendError("Ollama stream ended without its final (done) line", kind="stream", retryable=True)
        metrics = {
            k: getattr(final, k, None)
            for k in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")
        }
        metrics["num_ctx"] = body["options"].get("num_ctx")
        cached = await self._check_truncation(call, final.prompt_eval_count, body["options"].get("num_ctx"))
        # A count that only covers what the KV cache did not hold is not the prompt's size: leave
        # it unknown, and the runner records its own estimate, marked as one.
        usage = Usage(input_tokens=None if cached else final.prompt_eval_count, output_tokens=final.eval_count)
        yield Done(usage=usage, finish_reason=final.done_reason, metrics=metrics)

    @staticmethod
    def _may_be_cut(call: Call) -> bool:
        est = call.est_input_tokens
        return bool(est) and int(est * (1 - ESTIMATE_MARGIN)) > 2048  # 2048: the smallest default window

    async def _check_window(self, call: Call) -> None:
        est = call.est_input_tokens or 0
        window = await self._allocated_window(call) or self._proven_window.get(call.model)
        if window is not None and int(est * (1 - ESTIMATE_MARGIN)) > window:
            raise BackendError(
                f"truncated by the server: at most {window:,} of ~{est:,} tokens evaluated (window {window:,})",
                kind="truncated",
            )

    async def _check_truncation(self, call: Call, evaluated: int | None, num_ctx: int | None) -> bool:
        """Fail the call if the server evaluated less of the prompt than could have fit; return
        True when the low count is explained by the prompt cache instead.

        A low count alone is not proof: some Ollama versions reuse a cached prompt prefix and
        then report only the new part. So a low count is checked against the window the server
        actually allocated (/api/ps); if that is unknown, a count of a window's size means a cut.
        """
        est = call.est_input_tokens
        if not est or evaluated is None:
            return False
        est_low = int(est * (1 - ESTIMATE_MARGIN))
        if evaluated >= est_low:
            return False
        window = await self._allocated_window(call) or self._proven_window.get(call.model)
        if window is not None:
            cut = est_low > window
        else:
            cut = est_low > (num_ctx or 4096) or evaluated >= 1024
        if cut:
            if evaluated >= 1024:
                self._proven_window[call.model] = min(evaluated, self._proven_window.get(call.model, evaluated))
            raise BackendError(
                f"truncated by the server: {evaluated:,} of ~{est:,} tokens evaluated"
                + (f" (window {window:,})" if window else ""),
                kind="truncated",
            )
        return True

    async def _allocated_window(self, call: Call) -> int | None:
        try:
            loaded = await self._get_client(call).ps()
        except Exception:  # any failure here means "unknown", and the caller stays safe
            return None
        for m in loaded.models:
            if call.model in (m.model, m.name) or (m.model or "").split(":")[0] == call.model:
                return m.context_length
        return None


def _timeout(t: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(connect=t.connect, read=t.first_token, write=60.0, pool=60.0)


def _response_error(exc: Any, model: str) -> BackendError:
    message = str(getattr(exc, "error", exc)).strip()
    status = getattr(exc, "status_code", None)
    if status == -1 or status is None:
        # An error line after the stream began: HTTP stayed 200, the answer is incomplete.
        return BackendError(f"Ollama failed mid-stream: {message}", kind="stream", retryable=True)
    if status == 404 and "not found" in message:
        return BackendError(f"{message} (ollama pull {model})", kind="not_found", status=404)
    if "context length" in message or "context window" in message:
        return BackendError(f"Ollama refused the prompt: {message}", kind="context", status=status)
    from .base import error_from_status

    return error_from_status(status, message)

"""The gateway's ASGI app (Starlette): routes, keys, the body limit, and the streamed response.

    POST /v1/chat/completions   GET /v1/models   GET /v1/models/{id}          (OpenAI)
    POST /api/chat   GET /api/tags   POST /api/show   GET /api/version         (Ollama)

One Session serves every request for the app's lifetime, so per-provider limits, cool-downs and
the availability probe are shared by all clients. Each chat request runs as a Relay (relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..config import Config
from ..request import Request
from ..session import Session
from . import models, ollama_api, openai_api
from .auth import Keys, presented_key
from .errors import ApiError
from .relay import END, Outcome, Relay

HEADER_WAIT_S = 5.0  # a streamed reply's status waits this long for the first token (or the failure)
PING_S = 15.0  # then an SSE comment this often while nothing comes, so proxies keep the stream open
AVAILABILITY_TTL_S = 60.0  # probe Ollama servers and keys again this often (models pulled later)
SHUTDOWN_REASON = "server shut down before the answer was complete"
DISCONNECT_REASON = "client disconnected"


class Gateway:
    def __init__(self, config: Config, keys: Keys, *, max_body_bytes: int,
                 session: Session | None = None, note: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self._given_session = session
        self.session: Session | None = session
        self.note = note  # one line per chat request (server.py prints it to stderr)
        self.tasks: set[asyncio.Task] = set()
        self.draining = False
        self.header_wait_s = HEADER_WAIT_S
        self.ping_s = PING_S
        self.started = datetime.now(timezone.utc)
        # Upstream keys, so nothing we send can contain one, whatever a backend let through.
        self.secrets = [p.usable_key() for p in config.providers.values()]

    # --- lifetime -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        if self.session is None:
            from ..backends.aiohttp_wire import AiohttpWire

            # Relaying is per-request work: streams over aiohttp cost the gateway a quarter of the
            # CPU they cost through httpx (backends/aiohttp_wire.py).
            self.session = Session(self.config, availability_ttl_s=AVAILABILITY_TTL_S, wire=AiohttpWire)
        try:
            yield
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Answers still running (their clients gone or the grace period over) are cancelled
        and logged as such; then the run log is closed."""
        self.draining = True
        pending = [t for t in self.tasks if not t.done()]
        for task in pending:
            task.cancel(SHUTDOWN_REASON)
        if pending:
            await asyncio.wait(pending, timeout=10)
        if self.session is not None and self._given_session is None:
            await self.session.aclose()

    def track(self, task: asyncio.Task) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def stop_reason(self) -> str:
        return SHUTDOWN_REASON if self.draining else DISCONNECT_REASON

    # --- plumbing -----------------------------------------------------------------------

    def authenticate(self, request: HttpRequest) -> str | None:
        """The client's name (None when unnamed); ApiError 401 for a missing or wrong key."""
        ok, name = self.keys.check(presented_key(request.headers))
        if not ok:
            raise ApiError(401, "missing or wrong API key: send it as Authorization: Bearer KEY",
                           code="invalid_api_key")
        return name

    async def read_json(self, request: HttpRequest) -> Any:
        limit = self.max_body_bytes
        too_big = ApiError(413, f"the request body is over the {_size(limit)} limit (runner serve --max-body-mb)",
                           code="request_too_large")
        length = request.headers.get("content-length")
        over = bool(length and length.isdigit() and int(length) > limit)
        body = bytearray()
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if not over:
                body += chunk
                if len(body) > limit:
                    over, body = True, bytearray()
            # Past the limit the rest is read without being kept (up to 8x the limit), so the
            # client is still listening when the 413 comes instead of seeing its upload cut off.
            if over and seen > 8 * limit:
                break
        if over:
            raise too_big
        try:
            return json.loads(body)
        except ValueError:
            raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None

    @staticmethod
    def privacy(request: HttpRequest) -> bool:
        value = (request.headers.get("x-runner-privacy") or "").strip().lower()
        if value in ("", "any"):
            return False
        if value == "local-only":
            return True
        raise ApiError(400, "X-Runner-Privacy must be local-only or any", code="invalid_header")

    async def availability(self):
        return await self.session.availability(models.ollama_refs(self.config))

    async def resolve(self, name: str) -> models.Target:
        try:
            return models.resolve(name, self.config)
        except ApiError:
            pulled = models.pulled_refs(self.config, await self.availability())
            return models.resolve(name, self.config, pulled)

    async def listing(self) -> list[models.Listed]:
        return models.listing(self.config, await self.availability())

    async def find(self, name: str) -> models.Listed:
        target = await self.resolve(name)
        wanted = target.model or target.task
        for item in await self.listing():
            if item.id == wanted:
                return item
        raise ApiError(404, f"model '{name}' is not available now", code="model_not_found", param="model")

    def relay(self, request: Request, *, client: str | None, stream: bool) -> Relay:
        return Relay(self.session, request, client=client, stream=stream, secrets=self.secrets, track=self.track,
                     note=self.note)

    async def wait(self, relay: Relay, http: HttpRequest) -> Outcome | None:
        """A non-streamed answer; a client that leaves meanwhile cancels it (None)."""
        relay.start()
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(http.receive, relay, self.stop_reason))
        try:
            return await relay.outcome()
        except asyncio.CancelledError:
            relay.cancel(self.stop_reason())
            raise
        finally:
            watcher.cancel()

    def log_line(self, path: str, status: int, target: models.Target, client: str | None, outcome: Outcome | None,
                 started: float) -> None:
        if self.note is None:
            return
        from ..render import fmt_cost

        rec = outcome.record if outcome is not None else {}
        model = rec.get("model")
        cost = fmt_cost(rec.get("cost_usd"), self.config.is_local(model)) if model else ""
        self.note(f"{path} {status} {target.name} → {model or '–'} {(time.perf_counter() - started) * 1000:.0f} ms "
                  f"{cost}{' client=' + client if client else ''}".rstrip())

    # --- OpenAI -------------------------------------------------------------------------

    async def openai_chat(self, http: HttpRequest) -> Response:
        started = time.perf_counter()
        key_name = self.authenticate(http)
        chat = openai_api.parse_chat(await self.read_json(http))
        target = await self.resolve(chat.model)
        request = Request(prompt=chat.prompt, task=target.task, model=target.model, messages=chat.messages,
                          system="" if chat.has_system else None, local_only=self.privacy(http),
                          options=chat.options)
        client = key_name or chat.user
        relay = self.relay(request, client=client, stream=chat.stream)
        done = lambda status, out: self.log_line("/v1/chat/completions", status, target, client, out, started)  # noqa: E731
        if chat.stream:
            return RelayStream(self, relay, openai_api.SSEWriter(chat.include_usage), "openai", done)
        outcome = await self.wait(relay, http)
        if outcome is None:
            return Response(status_code=499)
        if outcome.error is not None:
            done(outcome.error.status, outcome)
            return error_response(outcome.error, "openai", outcome)
        done(200, outcome)
        return JSONResponse(openai_api.completion(outcome), headers=openai_api.runner_headers(outcome))

    async def openai_models(self, http: HttpRequest) -> Response:
        self.authenticate(http)
        created = int(self.started.timestamp())
        data = [{"id": it.id, "object": "model", "created": created, "owned_by": it.owned_by}
                for it in await self.listing()]
        return JSONResponse({"object": "list", "data": data})

    async def openai_model(self, http: HttpRequest) -> Response:
        self.authenticate(http)
        item = await self.find(http.path_params["model"])
        return JSONResponse({"id": item.id, "object": "model", "created": int(self.started.timestamp()),
                             "owned_by": item.owned_by})

    # --- Ollama -------------------------------------------------------------------------

    async def ollama_chat(self, http: HttpRequest) -> Response:
        started = time.perf_counter()
        client = self.authenticate(http)
        chat = ollama_api.parse_chat(await self.read_json(http))
        target = await self.resolve(chat.model)
        if not chat.messages:
            return JSONResponse(ollama_api.load_response(chat.model))
        request = Request(prompt=chat.prompt, task=target.task, model=target.model, messages=chat.messages,
                          system="" if chat.has_system else None, local_only=self.privacy(http),
                          options=chat.options)
        relay = self.relay(request, client=client, stream=chat.stream)
        done = lambda status, out: self.log_line("/api/chat", status, target, client, out, started)  # noqa: E731
        if chat.stream:
            return RelayStream(self, relay, ollama_api.NDJSONWriter(chat.model), "ollama", done)
        outcome = await self.wait(relay, http)
        if outcome is None:
            return Response(status_code=499)
        if outcome.error is not None:
            done(outcome.error.status, outcome)
            return error_response(outcome.error, "ollama", outcome)
        done(200, outcome)
        return JSONResponse(ollama_api.chat_response(chat.model, outcome), headers=openai_api.runner_headers(outcome))

    async def ollama_tags(self, http: HttpRequest) -> Response:
        self.authenticate(http)
        return JSONResponse(ollama_api.tags(await self.listing(), _iso(self.started)))

    async def ollama_show(self, http: HttpRequest) -> Response:
        self.authenticate(http)
        body = await self.read_json(http)
        name = (body.get("model") or body.get("name")) if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "model is required", code="invalid_request")
        return JSONResponse(ollama_api.show(await self.find(name), _iso(self.started)))

    async def ollama_version(self, http: HttpRequest) -> Response:
        self.authenticate(http)
        return JSONResponse(ollama_api.version())

    async def root(self, http: HttpRequest) -> Response:
        return PlainTextResponse("runner serve is running (OpenAI API under /v1, Ollama API under /api)")


def _size(n: int) -> str:
    mib = n / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{n:,} bytes"


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def protocol_of(path: str) -> str:
    return "ollama" if path.startswith("/api/") else "openai"


def error_response(err: ApiError, protocol: str, outcome: Outcome | None = None) -> Response:
    body = ollama_api.error_body(err) if protocol == "ollama" else openai_api.error_body(err)
    headers = dict(err.headers)
    if outcome is not None and outcome.record:
        headers.update(openai_api.runner_headers(outcome))
    return JSONResponse(body, status_code=err.status, headers=headers)


async def _watch_disconnect(receive, relay: Relay, reason: Callable[[], str]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            relay.cancel(reason())
            return


class RelayStream:
    """A streamed answer as an ASGI response: SSE or NDJSON, each token as it arrives.

    The status waits for the first token (up to HEADER_WAIT_S): a request that fails before
    any token gets its real status (429, 502, …) and error body, not a 200 with an error inside.
    After that, a failure is an error chunk (OpenAI `data: {"error": …}`, Ollama `{"error": …}`).
    A client that disconnects cancels the answer, and with it the upstream call."""

    def __init__(self, gateway: Gateway, relay: Relay, writer: Any, protocol: str,
                 done: Callable[[int, Outcome | None], None]) -> None:
        self.gateway = gateway
        self.relay = relay
        self.writer = writer
        self.protocol = protocol
        self.done = done

    async def __call__(self, scope, receive, send) -> None:
        relay, writer = self.relay, self.writer
        relay.start()
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, relay, self.gateway.stop_reason))
        try:
            item = await relay.next(self.gateway.header_wait_s)
            if item is END:
                outcome = relay.finished()
                if outcome is None:
                    return
                if outcome.error is not None and not relay.forwarded:
                    self.done(outcome.error.status, outcome)
                    await error_response(outcome.error, self.protocol, outcome)(scope, receive, send)
                    return
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", writer.media_type.encode()), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]})
            while True:
                # What is already waiting goes out in one write: fewer syscalls under load.
                chunks = [] if item is END else [writer.ping() if item is None else writer.event(*item)]
                while item is not END and not relay.queue.empty():
                    item = relay.queue.get_nowait()
                    if item is not END:
                        chunks.append(writer.event(*item))
                if item is END:
                    outcome = relay.finished()
                    if outcome is None:  # cancelled: the client is gone
                        return
                    body = b"".join(chunks) + writer.end(outcome)
                    await send({"type": "http.response.body", "body": body, "more_body": False})
                    self.done(200 if outcome.ok else outcome.error.status, outcome)
                    return
                data = b"".join(chunks)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                item = await relay.next(self.gateway.ping_s)
        except asyncio.CancelledError:
            relay.cancel(self.gateway.stop_reason())
            raise
        except OSError:  # the client went away while we wrote
            relay.cancel(self.gateway.stop_reason())
        finally:
            watcher.cancel()


def build_app(config: Config, keys: Keys, *, max_body_bytes: int = 32 * 1024 * 1024,
              session: Session | None = None, note: Callable[[str], None] | None = None) -> Starlette:
    """The gateway as an ASGI app. `session`: reuse one (tests, benchmarks); otherwise the app
    makes its own at startup and closes it at shutdown."""
    gw = Gateway(config, keys, max_body_bytes=max_body_bytes, session=session, note=note)

    def endpoint(handler):
        async def run(request: HttpRequest) -> Response:
            try:
                return await handler(request)
            except ApiError as err:
                return error_response(err, protocol_of(request.url.path))
        return run

    routes = [
        Route("/v1/chat/completions", endpoint(gw.openai_chat), methods=["POST"]),
        Route("/chat/completions", endpoint(gw.openai_chat), methods=["POST"]),
        Route("/v1/models", endpoint(gw.openai_models), methods=["GET"]),
        Route("/v1/models/{model:path}", endpoint(gw.openai_model), methods=["GET"]),
        Route("/api/chat", endpoint(gw.ollama_chat), methods=["POST"]),
        Route("/api/tags", endpoint(gw.ollama_tags), methods=["GET"]),
        Route("/api/show", endpoint(gw.ollama_show), methods=["POST"]),
        Route("/api/version", endpoint(gw.ollama_version), methods=["GET"]),
        Route("/", gw.root, methods=["GET", "HEAD"]),
    ]

    async def http_error(request: HttpRequest, exc: HTTPException) -> Response:
        words = {404: "no such endpoint", 405: "method not allowed here"}.get(exc.status_code, exc.detail)
        err = ApiError(exc.status_code, f"{words}: {request.method} {request.url.path}", code="not_found"
                       if exc.status_code == 404 else "method_not_allowed")
        return error_response(err, protocol_of(request.url.path))

    app = Starlette(routes=routes, lifespan=gw.lifespan, exception_handlers={404: http_error, 405: http_error})
    app.state.gateway = gw
    return app


def print_note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)

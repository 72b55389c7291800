"""Ask an Ollama server what it has: version, pulled models, each model's context length.

Plain httpx rather than the official client: these are three small GETs/POSTs on the routing
path, and importing `ollama` (pydantic) would cost more than the calls themselves. `/api/show`
answers are cached on disk by model digest, so a model is asked about once per pull; and what a
reachable server said (version, pulled models) is reused for `fresh_s` seconds, so `runner ask`
asked again a moment later goes straight to the model. A model asked for that the cached list
lacks (just pulled) means asking again; `forget` drops a server's entry after a failed call.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .http import tls_context
from ..redact import display_url


@dataclass(frozen=True)
class ServerInfo:
    """What one Ollama server said about itself."""

    host: str
    reachable: bool
    error: str | None = None
    version: str | None = None
    models: dict[str, dict] = field(default_factory=dict)  # name → {context_length, capabilities}


PROBE_TIMEOUT = httpx.Timeout(connect=1.5, read=5.0, write=5.0, pool=5.0)


async def probe_ollama(host: str, cache_file: Path | None = None,
                       transport: httpx.AsyncBaseTransport | None = None, *, fresh_s: float = 0.0,
                       wanted: tuple[str, ...] = ()) -> ServerInfo:
    """Status of the server at `host`, with the context length and capabilities of each pulled
    model. With `fresh_s`, what the server said that recently is reused (see the module's doc)."""
    if fresh_s and cache_file is not None:
        recent = _recent(cache_file, host, fresh_s, wanted)
        if recent is not None:
            return recent
    # A TLS context loads the CA bundle (~40 ms): only for a server that speaks TLS.
    verify = tls_context() if host.startswith("https:") else False
    async with httpx.AsyncClient(base_url=host, timeout=PROBE_TIMEOUT, transport=transport, verify=verify) as client:
        try:
            version_resp, tags_resp = await asyncio.gather(client.get("/api/version"), client.get("/api/tags"))
            tags_resp.raise_for_status()
        except httpx.ConnectError:
            return ServerInfo(host, False, "connection refused")
        except httpx.TimeoutException:
            return ServerInfo(host, False, "timed out")
        except (httpx.HTTPError, ValueError) as exc:
            return ServerInfo(host, False, type(exc).__name__)
        version = None
        if version_resp.status_code == 200:
            try:
                version = version_resp.json().get("version")
            except ValueError:
                pass
        try:
            pulled = {m.get("name") or m.get("model"): m.get("digest", "") for m in tags_resp.json().get("models", [])}
        except (ValueError, AttributeError):
            return ServerInfo(host, False, "unexpected answer from /api/tags")

        cache = _read_cache(cache_file)
        where = display_url(host)  # the cache file must not hold credentials from the URL
        todo = [n for n in pulled if f"{where}|{n}|{pulled[n]}" not in cache]
        shows = await asyncio.gather(*(_show(client, n) for n in todo))
        for name, info in zip(todo, shows):
            if info is not None:
                cache[f"{where}|{name}|{pulled[name]}"] = info
        if todo and cache_file is not None:
            _write_cache(cache_file, cache)

        models = {name: cache.get(f"{where}|{name}|{pulled[name]}") or {} for name in pulled}
        if cache_file is not None:
            _remember(cache_file, where, version, pulled)
        return ServerInfo(host, True, None, version, models)


def _probes_file(cache_file: Path) -> Path:
    return cache_file.with_name("ollama-probe.json")


def _recent(cache_file: Path, host: str, fresh_s: float, wanted: tuple[str, ...]) -> ServerInfo | None:
    """The server's answer of less than `fresh_s` seconds ago, if it names every model wanted and
    the /api/show cache holds each; else None (ask the server)."""
    where = display_url(host)
    entry = _read_cache(_probes_file(cache_file)).get(where)
    if not isinstance(entry, dict) or not 0 <= time.time() - entry.get("at", 0) < fresh_s:
        return None
    pulled = entry.get("models") or {}
    if any(name not in pulled and f"{name}:latest" not in pulled for name in wanted):
        return None
    shows = _read_cache(cache_file)
    models = {name: shows.get(f"{where}|{name}|{digest}") for name, digest in pulled.items()}
    if any(info is None for info in models.values()):
        return None
    return ServerInfo(host, True, None, entry.get("version"), models)


def _remember(cache_file: Path, where: str, version: str | None, pulled: dict[str, str]) -> None:
    path = _probes_file(cache_file)
    probes = _read_cache(path)
    probes[where] = {"at": time.time(), "version": version, "models": pulled}
    _write_cache(path, probes)


def forget(cache_file: Path, host: str) -> None:
    """Drop what the server at `host` said: the next call asks it again."""
    path = _probes_file(cache_file)
    probes = _read_cache(path)
    if probes.pop(display_url(host), None) is not None:
        _write_cache(path, probes)


async def _show(client: httpx.AsyncClient, name: str) -> dict | None:
    try:
        resp = await client.post("/api/show", json={"model": name})
        resp.raise_for_status()
        data = resp.json()
    except (httpx.HTTPError, ValueError):
        return None
    info = data.get("model_info") or {}
    arch = info.get("general.architecture")
    context = info.get(f"{arch}.context_length") if arch else None
    if context is None:  # some GGUFs name the key differently; any *.context_length will do
        context = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    return {"context_length": context, "capabilities": data.get("capabilities") or []}


def _read_cache(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)
    except OSError:
        pass  # a cache that can't be written only costs a re-ask next time

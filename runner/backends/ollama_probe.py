"""Ask an Ollama server what it has: version, pulled models, each model's context length.

Plain httpx rather than the official client: these are three small GETs/POSTs on the routing
path, and importing `ollama` (pydantic) would cost more than the calls themselves. `/api/show`
answers are cached on disk by model digest, so a model is asked about once per pull.
"""

from __future__ import annotations

import asyncio
import json
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
                       transport: httpx.AsyncBaseTransport | None = None) -> ServerInfo:
    """Status of the server at `host`, with the context length and capabilities of each pulled model."""
    async with httpx.AsyncClient(base_url=host, timeout=PROBE_TIMEOUT, transport=transport, verify=tls_context()) as client:
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
        return ServerInfo(host, True, None, version, models)


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

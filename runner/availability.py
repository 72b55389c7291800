"""Gather what the router needs to know about the world: keys set, Ollama servers and models."""

from __future__ import annotations

import asyncio

from .config import Config
from .router import Availability, OllamaStatus


async def gather_availability(config: Config, refs: list[str]) -> Availability:
    """Probe only what the candidate refs need: an Ollama server nobody asked for is not asked."""
    from .backends.ollama_probe import probe_ollama

    from .errors import UserError

    keys, key_errors = set(), {}
    for name, p in config.providers.items():
        try:
            if p.key_env and p.api_key():
                keys.add(name)
        except UserError as exc:  # a mangled key skips its provider, with the reason; others still run
            key_errors[name] = str(exc)
    names: list[str] = []
    for ref in refs:
        name = ref.partition("/")[0]
        provider = config.providers.get(name)
        if provider is not None and provider.protocol == "ollama" and name not in names:
            names.append(name)
    cache = config.home / "cache" / "ollama-show.json"
    statuses = await asyncio.gather(*(probe_ollama(config.providers[n].base_url, cache) for n in names))
    ollama: dict[str, OllamaStatus] = dict(zip(names, statuses))
    return Availability(ollama=ollama, keys=frozenset(keys), key_errors=key_errors)

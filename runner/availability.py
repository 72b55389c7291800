"""What the router needs to know about the world: which keys are set, which Ollama servers are
up and what they have. Gathered here (the only I/O before routing); the router only reads it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .config import Config


@dataclass(frozen=True)
class LocalModel:
    context_length: int | None
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class OllamaStatus:
    host: str
    reachable: bool
    error: str | None = None
    version: str | None = None
    models: dict[str, LocalModel] = field(default_factory=dict)


@dataclass(frozen=True)
class Availability:
    ollama: dict[str, OllamaStatus] = field(default_factory=dict)  # provider name → status
    keys: frozenset[str] = frozenset()  # providers whose API key is set
    cooling: dict[str, str] = field(default_factory=dict)  # provider → why it is cooling down
    key_errors: dict[str, str] = field(default_factory=dict)  # provider → why its key can't be used


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
    infos = await asyncio.gather(*(probe_ollama(config.providers[n].base_url, cache) for n in names))
    ollama = {name: _status(info) for name, info in zip(names, infos)}
    return Availability(ollama=ollama, keys=frozenset(keys), key_errors=key_errors)


def _status(info) -> OllamaStatus:
    models = {name: LocalModel(m.get("context_length"), tuple(m.get("capabilities", ()))) for name, m in info.models.items()}
    return OllamaStatus(info.host, info.reachable, info.error, info.version, models)

"""What the router needs to know about the world: which keys are set, which Ollama servers are
up and what they have. Gathered here (the only I/O before routing); the router only reads it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

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


PROBE_FRESH_S = 30.0  # what an Ollama server said is reused this long (routing skips a probe)


def probe_cache(config: Config) -> Path:
    return config.home / "cache" / "ollama-show.json"


async def gather_availability(config: Config, refs: list[str], fresh_s: float = PROBE_FRESH_S) -> Availability:
    """Probe only what the candidate refs need: an Ollama server nobody asked for is not asked.
    What a reachable server said `fresh_s` seconds ago or less is reused (0: ask it now)."""
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
    cache = probe_cache(config)
    # One model asked by name (`-m`) and missing from what the server said may have just been
    # pulled: ask again. Among a profile's candidates, a model not pulled is the usual case.
    asked = {n: [ref.partition("/")[2] for ref in refs if ref.partition("/")[0] == n] for n in names}
    wanted = {n: tuple(models) if len(models) == 1 else () for n, models in asked.items()}
    infos = await asyncio.gather(*(probe_ollama(config.providers[n].base_url, cache, fresh_s=fresh_s, wanted=wanted[n])
                                   for n in names))
    ollama = {name: _status(info) for name, info in zip(names, infos)}
    return Availability(ollama=ollama, keys=frozenset(keys), key_errors=key_errors)


def forget_ollama(config: Config, provider: str) -> None:
    """After a failed call: the next request asks this Ollama server again."""
    from .backends.ollama_probe import forget

    p = config.providers.get(provider)
    if p is not None and p.protocol == "ollama":
        forget(probe_cache(config), p.base_url)


def _status(info) -> OllamaStatus:
    models = {name: LocalModel(m.get("context_length"), tuple(m.get("capabilities", ()))) for name, m in info.models.items()}
    return OllamaStatus(info.host, info.reachable, info.error, info.version, models)

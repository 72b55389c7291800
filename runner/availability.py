"""What the router needs to know about the world: which keys are set, which Ollama servers are
up and what they have. Gathered here (the only I/O before routing); the router only reads it.

A provider with several hosts (a pool) has each host probed at once; its status is their union
(`pool_status`), with each host's own status in `hosts`."""

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
    # A pool: each host's own status, in the config's order; this status is their union. Empty
    # for a provider with one host.
    hosts: tuple["OllamaStatus", ...] = ()


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
    jobs = [(n, host.url) for n in names for host in config.providers[n].host_list]  # every host at once
    infos = await asyncio.gather(*(probe_ollama(url, cache, fresh_s=fresh_s, wanted=wanted[n]) for n, url in jobs))
    hosts: dict[str, list[OllamaStatus]] = {}
    for (name, _), info in zip(jobs, infos):
        hosts.setdefault(name, []).append(_status(info))
    ollama = {name: pool_status(statuses) for name, statuses in hosts.items()}
    return Availability(ollama=ollama, keys=frozenset(keys), key_errors=key_errors)


def pool_status(statuses: list[OllamaStatus]) -> OllamaStatus:
    """One provider's status from its hosts': reachable if any is; each model any reachable host
    has, with the largest window among them (the router reads each host's own); the hosts' errors,
    without credentials, when none is up. One host: its status as it is."""
    if len(statuses) == 1:
        return statuses[0]
    from .redact import display_url

    up = [s for s in statuses if s.reachable]
    models: dict[str, LocalModel] = {}
    for s in up:
        for name, m in s.models.items():
            if name not in models or (m.context_length or 0) > (models[name].context_length or 0):
                models[name] = m
    error = None if up else "; ".join(f"{display_url(s.host)}: {s.error or 'not reachable'}" for s in statuses)
    first = up[0] if up else statuses[0]
    return OllamaStatus(first.host, bool(up), error, first.version, models, tuple(statuses))


def forget_ollama(config: Config, provider: str) -> None:
    """After a failed call: the next request asks this Ollama server again."""
    from .backends.ollama_probe import forget

    p = config.providers.get(provider)
    if p is not None and p.protocol == "ollama":
        for host in p.host_list:
            forget(probe_cache(config), host.url)


def _status(info) -> OllamaStatus:
    models = {name: LocalModel(m.get("context_length"), tuple(m.get("capabilities", ()))) for name, m in info.models.items()}
    return OllamaStatus(info.host, info.reachable, info.error, info.version, models)

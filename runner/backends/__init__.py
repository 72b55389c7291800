"""One module per wire protocol (see registry.py); the shared call, events and errors.

Backend modules are imported on first use so that `runner --help` loads none of them.
"""

from __future__ import annotations

from typing import Any, Callable

from .base import Backend, Call, Done, Event, TextDelta, ThinkingDelta, Timeouts, ToolCallDelta, Usage
from .errors import BackendError, ErrorKind
from .registry import backend_class

__all__ = ["Backend", "BackendError", "BackendPool", "Call", "Done", "ErrorKind", "Event", "TextDelta",
           "ThinkingDelta", "Timeouts", "ToolCallDelta", "Usage", "make_backend"]


def make_backend(provider: Any, settings: Any, wire: Any = None) -> Backend:
    """The backend for a provider (anything with `protocol`, `base_url`, `name`, `api_key()`);
    `wire`: what carries its streams (None: httpx; see http.HttpClient)."""
    return backend_class(provider.protocol).from_provider(provider, settings, wire=wire)


class BackendPool:
    """One backend (and so one connection pool) per provider and host, shared by every call in a
    run. A provider with several hosts (a pool of machines) has one backend for each."""

    def __init__(self, providers: dict[str, Any], settings: Any,
                 wire: Callable[[], Any] | None = None) -> None:
        """`wire`: makes what carries each backend's streams (None: httpx)."""
        self.providers = providers
        self.settings = settings
        self.wire = wire
        self._backends: dict[str | tuple[str, str], Backend] = {}  # provider, or (provider, other host)

    def get(self, provider_name: str, host: str | None = None) -> Backend:
        """The backend for `host` (a URL of the provider's; None: its `base_url`)."""
        provider = self.providers[provider_name]
        key = provider_name if host is None or host == provider.base_url else (provider_name, host)
        backend = self._backends.get(key)
        if backend is None:
            if key != provider_name:
                from dataclasses import replace

                provider = replace(provider, base_url=host)
            backend = make_backend(provider, self.settings, self.wire() if self.wire else None)
            self._backends[key] = backend
        return backend

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()

"""One module per wire protocol (see registry.py); the shared call, events and errors.

Backend modules are imported on first use so that `runner --help` loads none of them.
"""

from __future__ import annotations

from typing import Any

from .base import Backend, Call, Done, Event, TextDelta, ThinkingDelta, Timeouts, Usage
from .errors import BackendError, ErrorKind
from .registry import backend_class

__all__ = ["Backend", "BackendError", "BackendPool", "Call", "Done", "ErrorKind", "Event", "TextDelta",
           "ThinkingDelta", "Timeouts", "Usage", "make_backend"]


def make_backend(provider: Any, settings: Any) -> Backend:
    """The backend for a provider (anything with `protocol`, `base_url`, `name`, `api_key()`)."""
    return backend_class(provider.protocol).from_provider(provider, settings)


class BackendPool:
    """One backend (and so one connection pool) per provider, shared by every call in a run."""

    def __init__(self, providers: dict[str, Any], settings: Any) -> None:
        self.providers = providers
        self.settings = settings
        self._backends: dict[str, Backend] = {}

    def get(self, provider_name: str) -> Backend:
        backend = self._backends.get(provider_name)
        if backend is None:
            backend = make_backend(self.providers[provider_name], self.settings)
            self._backends[provider_name] = backend
        return backend

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()

"""One module per wire protocol; `make_backend` picks the one a provider speaks.

Backend modules are imported on first use so that `runner --help` loads none of them.
"""

from __future__ import annotations

from ..config import Config, Provider
from .base import Backend, BackendError, Call, Done, Event, TextDelta, ThinkingDelta, Timeouts, Usage

__all__ = ["Backend", "BackendError", "BackendPool", "Call", "Done", "Event", "TextDelta",
           "ThinkingDelta", "Timeouts", "Usage", "make_backend"]


def make_backend(provider: Provider, config: Config) -> Backend:
    if provider.protocol == "ollama":
        from .ollama import OllamaBackend

        return OllamaBackend(provider.base_url, keep_alive=config.settings.ollama_keep_alive)
    if provider.protocol == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend(provider.base_url, provider.api_key(), provider=provider.name,
                             max_tokens_field=provider.max_tokens_field)
    if provider.protocol == "anthropic":
        from .anthropic import AnthropicBackend

        return AnthropicBackend(provider.base_url, provider.api_key())
    if provider.protocol == "gemini":
        from .gemini import GeminiBackend

        return GeminiBackend(provider.base_url, provider.api_key())
    raise ValueError(f"unknown protocol {provider.protocol}")


class BackendPool:
    """One backend (and so one connection pool) per provider, shared by every call in a run."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._backends: dict[str, Backend] = {}

    def get(self, provider_name: str) -> Backend:
        backend = self._backends.get(provider_name)
        if backend is None:
            backend = make_backend(self.config.providers[provider_name], self.config)
            self._backends[provider_name] = backend
        return backend

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()

"""Which module speaks each wire protocol. Names only: nothing is imported until a provider
that speaks the protocol is used, so `runner --help` loads no backend.

A new protocol is one module in runner/backends/ with a class that has
`from_provider(provider, settings)`, plus one line here (and its catalog entries)."""

PROTOCOLS: dict[str, str] = {
    "ollama": "runner.backends.ollama:OllamaBackend",
    "openai": "runner.backends.openai:OpenAIBackend",
    "anthropic": "runner.backends.anthropic:AnthropicBackend",
    "gemini": "runner.backends.gemini:GeminiBackend",
}


def backend_class(protocol: str) -> type:
    import importlib

    module, _, name = PROTOCOLS[protocol].partition(":")
    return getattr(importlib.import_module(module), name)

"""What every backend shares: the call it receives, the events it yields, the errors it raises.

A backend knows its wire protocol and nothing else: no routing, pricing or storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, Union

from .errors import BackendError, ErrorKind  # noqa: F401 - the errors a backend raises


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    first_token: float = 120.0  # first byte of the body; local models may need to load
    total: float = 900.0  # the whole call; enforced by the executor


@dataclass
class Call:
    """One request to one model, in provider-neutral form."""

    model: str  # the provider's own model name, without the "provider/" prefix
    # OpenAI Chat Completions' shape: {"role": "system"|"user"|"assistant"|"tool", "content": str},
    # an assistant turn may carry "tool_calls" ([{"id", "type": "function", "function": {"name",
    # "arguments": JSON text}}]), a tool result "tool_call_id" and "name" (the function's name).
    messages: list[dict[str, Any]]
    system: str | None = None  # None or "": no system prompt
    max_output_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    think: bool | str | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    json_mode: bool = False  # answer with one JSON object
    tools: list[dict[str, Any]] | None = None  # OpenAI's shape: [{"type": "function", "function": {...}}]
    tool_choice: str | dict[str, Any] | None = None  # "auto" | "none" | "required" | {"type": "function", ...}
    # Protocol-specific settings chosen by the router, e.g. {"num_ctx": 65536, "truncate": False}.
    backend_options: dict[str, Any] = field(default_factory=dict)
    # The runner's own estimate of the input, so a backend can spot a server that cut it.
    est_input_tokens: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass
class TextDelta:
    text: str


@dataclass
class ThinkingDelta:
    text: str


@dataclass
class ToolCallDelta:
    """A piece of a tool call the model makes. The first piece of call `index` has its `id`
    and `name`; `arguments` (JSON text) may come whole or in fragments to be joined in order."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class Usage:
    input_tokens: int | None = None  # total input, cache reads included
    output_tokens: int | None = None  # total billed output, reasoning included
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # all cache writes, the 1-hour ones included
    cache_write_1h_tokens: int = 0  # Anthropic's 1-hour cache writes cost more than 5-minute ones
    reasoning_tokens: int | None = None


@dataclass
class Done:
    usage: Usage
    finish_reason: str | None = None  # normalised: "stop", "length", or the provider's word
    metrics: dict[str, Any] = field(default_factory=dict)  # raw extras, e.g. Ollama durations


Event = Union[TextDelta, ThinkingDelta, ToolCallDelta, Done]


class Backend(Protocol):
    """One wire protocol. `stream` yields TextDelta/ThinkingDelta (and ToolCallDelta, when the
    call offered tools) events, then exactly one Done (finish reason "tool_calls" when the model
    stopped to call tools).

    It raises BackendError for every failure, including one that arrives mid-stream; a stream
    that ends without the protocol's end marker is a failure, never a short answer.

    Optional: `async def count_tokens(call) -> int | None`, the server's own count of the call's
    input where it is free (Anthropic count_tokens, Gemini countTokens, a llama.cpp server's
    tokenizer), None when this server has no way to count. Ollama's backend has none.
    """

    def warm(self, timeouts: Timeouts) -> None:
        """Build clients and load modules now, so a metered call times the server, not our setup."""
        ...

    async def stream(self, call: Call) -> AsyncIterator[Event]: ...

    async def aclose(self) -> None: ...

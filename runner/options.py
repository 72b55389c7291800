"""Generation options (max output tokens, temperature, top_p, stop, seed, JSON mode, thinking):
their names, their valid values, and the one check every way in uses: profiles and config (YAML,
with file and line), the command line, and the HTTP gateway (`runner serve`).

A few options only a request can carry (REQUEST_ONLY: a client's tools, its tool choice, an
Ollama client's minimum window); profiles cannot set them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

THINK_LEVELS = ("low", "medium", "high")


def _number(value: Any, *, whole: bool = False, low: float | None = None, high: float | None = None) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return False
    if value != value or value in (float("inf"), float("-inf")):  # nan, inf
        return False
    return (low is None or value >= low) and (high is None or value <= high)


# name → (what a valid value is, in words; the check)
SPEC: dict[str, tuple[str, Any]] = {
    "max_output_tokens": ("a whole number of tokens, 1 or more", lambda v: _number(v, whole=True, low=1)),
    "temperature": ("a number from 0 to 2", lambda v: _number(v, low=0, high=2)),  # OpenAI and Gemini; beyond it, no API
    "seed": ("a whole number", lambda v: _number(v, whole=True)),
    "think": ("true, false, low, medium or high", lambda v: isinstance(v, bool) or v in THINK_LEVELS),
    "top_p": ("a number from 0 to 1", lambda v: _number(v, low=0, high=1)),
    "stop": ("a text or a list of texts", lambda v: _texts(v)),
    "json_mode": ("true or false", lambda v: isinstance(v, bool)),
}

TOOL_CHOICES = ("auto", "none", "required")

# Options only a request carries (the gateway's clients), never a profile.
REQUEST_ONLY: dict[str, tuple[str, Any]] = {
    "tools": ("a list of function tools ({\"type\": \"function\", \"function\": {\"name\": …}})", lambda v: _tools(v)),
    "tool_choice": ("auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}",
                    lambda v: v in TOOL_CHOICES or _named_function(v)),
    "num_ctx": ("a whole number of tokens, 1 or more", lambda v: _number(v, whole=True, low=1)),
}


def _texts(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def _named_function(value: Any) -> bool:
    if not isinstance(value, dict) or value.get("type", "function") != "function":
        return False
    fn = value.get("function")
    return isinstance(fn, dict) and isinstance(fn.get("name"), str) and bool(fn["name"])


def _tools(value: Any) -> bool:
    if not isinstance(value, list) or not value:
        return False
    for tool in value:
        if not _named_function(tool):
            return False
        params = tool["function"].get("parameters")
        if params is not None and not isinstance(params, dict):
            return False
    return True


def stop_list(value: str | list[str] | None) -> list[str] | None:
    """`stop` as every protocol takes it: a list (or None)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def problem(name: str, value: Any) -> str | None:
    """Why `value` is not valid for option `name` ("must be …"), or None when it is (None always is)."""
    if value is None:
        return None
    what, ok = SPEC[name] if name in SPEC else REQUEST_ONLY[name]
    if ok(value):
        return None
    shown = repr(value)
    return f"must be {what}, not {shown if len(shown) <= 60 else shown[:57] + '…'}"


@dataclass(frozen=True)
class GenerationOptions:
    """What a command asked for; None means "the profile's, or the model's default"."""

    max_output_tokens: int | None = None
    temperature: float | None = None
    think: bool | str | None = None
    seed: int | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    json_mode: bool | None = None
    # REQUEST_ONLY
    tools: list[dict] | None = None
    tool_choice: str | dict | None = None
    num_ctx: int | None = None  # an Ollama client's minimum window; runner may choose a larger one

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for f in fields(self):
            why = problem(f.name, getattr(self, f.name))
            if why:
                out.append((f.name, why))
        return out

    def as_dict(self) -> dict[str, Any]:
        """The options that were given (None left out), as profiles write them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

"""Generation options (max output tokens, temperature, thinking, seed): their names, their valid
values, and the one check every way in uses: profiles and config (YAML, with file and line),
the command line, and later the HTTP gateway."""

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
    "temperature": ("a number, 0 or more", lambda v: _number(v, low=0)),
    "seed": ("a whole number", lambda v: _number(v, whole=True)),
    "think": ("true, false, low, medium or high", lambda v: isinstance(v, bool) or v in THINK_LEVELS),
}


def problem(name: str, value: Any) -> str | None:
    """Why `value` is not valid for option `name` ("must be …"), or None when it is (None always is)."""
    if value is None:
        return None
    what, ok = SPEC[name]
    return None if ok(value) else f"must be {what}, not {value!r}"


@dataclass(frozen=True)
class GenerationOptions:
    """What a command asked for; None means "the profile's, or the model's default"."""

    max_output_tokens: int | None = None
    temperature: float | None = None
    think: bool | str | None = None
    seed: int | None = None

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

"""What a command asks for (Request) and what it becomes once sized and routed (Prepared)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .documents import Document
from .errors import UserError
from .options import GenerationOptions

if TYPE_CHECKING:
    from .config import Profile
    from .estimate import Planner, RequestStats
    from .router import Need, RoutePlan


@dataclass
class Request:
    prompt: str
    task: str
    documents: list[Document] = field(default_factory=list)
    system: str | None = None  # --system; otherwise the profile's
    model: str | None = None  # --model: bypass routing
    local_only: bool = False
    max_cost_usd: float | None = None
    options: GenerationOptions = field(default_factory=GenerationOptions)  # the command's; win over the profile's
    # A whole conversation sent as is (the gateway's clients); `prompt` then names it in the log.
    messages: list[dict] | None = None


@dataclass
class Prepared:
    """A request sized, routed and ready to run (or to explain)."""

    request: Request
    profile: "Profile"
    messages: list[dict]
    system: str | None
    plan: "RoutePlan"
    stats: "RequestStats"  # the size scan, reused when the documents are split
    planner: "Planner"  # plans more calls of this request: chunks, combining, a re-plan
    split: Any = None  # longdoc.SplitPlan: nothing can read the documents whole
    split_error: str | None = None

    @property
    def need(self) -> "Need":
        return self.plan.need

    @property
    def factors(self) -> dict[str, float]:
        return self.planner.factors

    @property
    def availability(self):
        return self.planner.availability


def user_content(prompt: str, documents: list[Document]) -> str:
    parts = [f'<document name="{d.name}">\n{d.text}\n</document>' for d in documents]
    parts.append(prompt)
    return "\n\n".join(p for p in parts if p)


def ensure_prompt(prompt: str) -> str:
    if not prompt.strip():
        raise UserError("no prompt: give one as an argument, with -f files, or on standard input")
    return prompt


def check_max_cost(value: float | None, option: str = "--max-cost") -> None:
    """A budget is zero or more US dollars (typer takes -1 and nan as floats)."""
    if value is not None and not value >= 0:
        raise UserError(f"{option} must be zero or more US dollars, not {value:g}")

"""The request's size, before anything is sent: one scan of the prompt and each document, then
a per-candidate estimate (the candidate's tokenizer family, corrected by what the run log
taught about that family) that the router checks against each window.

The scan is kept (`RequestStats`) so that splitting a long document reuses the counts instead
of reading the text again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import ceil
from typing import Iterable

from .availability import Availability
from .config import Config, Profile
from .documents import Document
from .router import MIN_OUTPUT_TOKENS, Attempt, ModelEstimate, Need, Pricer, RoutePlan, Skip, pick_num_ctx, plan
from .tokens import (
    LEARN_MIN_ESTIMATE,
    MESSAGE_OVERHEAD,
    TextStats,
    correction_factor,
    learning_key,
    text_kind,
    text_stats,
    tokenizer_family,
    tokens_for,
)


def document_tag(name: str, extra: str = "") -> tuple[str, str]:
    """The lines around a document in the prompt; the name goes with the text so answers cite it."""
    safe = name.replace('"', "'")
    return f'<document name="{safe}"{extra}>\n', "\n</document>"


@dataclass(frozen=True)
class RequestStats:
    docs: tuple[TextStats, ...]  # one per document, in order
    wrap: TextStats  # the prompt, the system prompt and the document tags
    messages: int  # chat messages (each costs MESSAGE_OVERHEAD template tokens)

    @property
    def total(self) -> TextStats:
        out = self.wrap
        for s in self.docs:
            out = out + s
        return out


def request_stats(prompt: str, documents: list[Document], system: str | None,
                  history: list[dict] | None = None) -> RequestStats:
    """The size scan of a request; `history` is a conversation sent as is (the gateway's)."""
    docs = tuple(text_stats(d.text) for d in documents)
    wrap = text_stats(system or "")
    if history:
        for m in history:
            wrap = wrap + text_stats(message_text(m))
        return RequestStats(docs, wrap, len(history) + (1 if system else 0))
    wrap = wrap + text_stats(prompt)
    for d in documents:
        head, tail = document_tag(d.name)
        wrap = wrap + text_stats(head + tail + "\n\n")
    return RequestStats(docs, wrap, 1 + (1 if system else 0))


def message_text(message: dict) -> str:
    """All the text of a chat message that the model reads (content parts, tool calls and results)."""
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    text = content if isinstance(content, str) else ""
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        text += f" {fn.get('name', '')} {fn.get('arguments', '')}"
    return text


class Estimator:
    """Tokens of a text for one model: its family's weights times its learned factor."""

    def __init__(self, family: str = "default", factor: float | None = None) -> None:
        self.family = family
        self.factor = factor

    def raw(self, stats: TextStats) -> int:
        return tokens_for(stats, self.family)

    def __call__(self, stats: TextStats) -> int:
        raw = self.raw(stats)
        return raw if self.factor is None else int(ceil(raw * self.factor))


def estimator_for(ref: str, config: Config, factors: dict[str, float], kind: str = "prose") -> Estimator:
    return Estimator(tokenizer_family(ref), factors.get(learning_key(ref, config.is_local(ref), kind)))


def build_need(stats: RequestStats, refs: Iterable[str], config: Config, factors: dict[str, float],
               output_tokens: int, extra_messages: int = 0, exact: dict[str, int] | None = None) -> Need:
    """The Need for the router: a default estimate plus each candidate's own. `exact`: models whose
    server counted this very request (ref → input tokens): routing takes that count, no margin."""
    overhead = (stats.messages + extra_messages) * MESSAGE_OVERHEAD
    total = stats.total
    kind = text_kind(total)
    base = tokens_for(total) + overhead
    per_model: dict[str, ModelEstimate] = {}
    for ref in refs:
        est = estimator_for(ref, config, factors, kind)
        raw = est.raw(total) + overhead
        tokens = est(total) + overhead
        if exact and ref in exact:  # the log still records the estimator's figure, to learn from
            per_model[ref] = ModelEstimate(exact[ref], raw, est.family, None, exact=True)
        elif est.family != "default" or est.factor is not None:
            per_model[ref] = ModelEstimate(tokens, raw, est.family, est.factor)
    return Need(base, output_tokens, per_model=per_model, text_kind=kind)


def learned_factors(config: Config, rows: Iterable[tuple]) -> dict[str, float]:
    """Per learning key (see tokens.learning_key: model family and kind of text): the median of
    real/estimated input tokens over its latest successful calls. `rows` are (model ref, real,
    estimate, kind of text), newest first; rows logged before kinds were recorded teach nothing."""
    ratios: dict[str, list[float]] = {}
    for ref, real, est, *rest in rows:
        kind = rest[0] if rest else None
        if est < LEARN_MIN_ESTIMATE or kind is None:
            continue
        key = learning_key(ref, config.is_local(ref), kind)
        ratios.setdefault(key, []).append(real / est)
    out = {}
    for key, values in ratios.items():
        factor = correction_factor(values)
        if factor is not None:
            out[key] = round(factor, 4)
    return out


@dataclass(frozen=True)
class Planner:
    """stats → need → plan, for one request: the whole prompt, a chunk of a split document, the
    call that combines the chunks' notes, or the request again after a server refused it."""

    config: Config
    profile: Profile
    availability: Availability
    pricer: Pricer
    factors: dict[str, float]
    output_tokens: int  # planned output (the options' max_output_tokens, else the default)
    local_only: bool = False
    max_cost_usd: float | None = None
    options: dict = field(default_factory=dict)  # the command's generation options, given ones only

    def need(self, stats: RequestStats, exact: dict[str, int] | None = None) -> Need:
        return build_need(stats, [c.model for c in self.profile.candidates], self.config, self.factors,
                          self.output_tokens, exact=exact)

    def plan(self, stats: RequestStats, exact: dict[str, int] | None = None) -> RoutePlan:
        """`exact`: servers' counts of this request (never of a chunk: stats must be the request's)."""
        return plan(self.need(stats, exact), self.profile, self.config, self.availability, self.pricer,
                    local_only=self.local_only, max_cost_usd=self.max_cost_usd, options=self.options)

    def with_factors(self, factors: dict[str, float]) -> "Planner":
        return replace(self, factors=factors)


def margin_dependent(route: RoutePlan) -> list[str]:
    """The candidates whose routing decision rests on the estimate's margin:
    those that would fit at the low end of the estimate but not at its high end
    (low + output ≤ window < high + output: skipped as too long, or their answer capped), and
    Ollama models whose num_ctx step differs between the two ends. An exact count decides these.
    The models that fit come first (in the plan's order), then those skipped."""
    need = route.need
    out_tokens = need.output_tokens
    refs = []
    for item in (*route.attempts, *route.skipped):
        ref = item.ref
        if need.exact_for(ref) or not item.context:
            continue
        if isinstance(item, Skip) and not item.too_small:
            continue
        est = need.input_for(ref)
        low, high = int(est * (1 - need.margin)), need.high_for(ref)
        window = item.context
        if low + min(out_tokens, MIN_OUTPUT_TOKENS) <= window < high + out_tokens:
            refs.append(ref)
        elif isinstance(item, Attempt) and item.protocol == "ollama" and "num_ctx" in item.backend_options:
            if pick_num_ctx(low + out_tokens, window) != pick_num_ctx(high + out_tokens, window):
                refs.append(ref)
    return refs

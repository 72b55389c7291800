"""Routing: a pure function from (need, profile, catalog, availability) to a RoutePlan.

No I/O here. Everything the router needs to know about the world (is Ollama up, which models
are pulled, their context lengths, which keys are set, what a model costs) is passed in, so a
plan is deterministic and every skipped candidate carries the reason a user can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .availability import Availability
from .config import Candidate, Config, Profile
from .tokens import ESTIMATE_MARGIN, fmt_tokens

MIN_OUTPUT_TOKENS = 256  # an answer capped to fit a small window gets at least this much room

# Ollama reloads a model whenever num_ctx changes, so windows come in a few fixed sizes.
NUM_CTX_STEPS = (4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576)


@dataclass(frozen=True)
class ModelEstimate:
    """One candidate's own estimate: its tokenizer family's count, corrected by what past calls
    of that family taught (real counts over estimates)."""

    tokens: int  # what routing uses
    raw: int  # the estimator's figure before the learned correction (what the log records)
    family: str = "default"
    factor: float | None = None  # learned correction, None while too few calls are logged
    exact: bool = False  # `tokens` is the server's own count (count_tokens, /tokenize): no margin


@dataclass(frozen=True)
class Need:
    input_tokens: int  # estimate of the whole request (default tokenizer family)
    output_tokens: int  # planned output (max_output_tokens)
    margin: float = ESTIMATE_MARGIN
    per_model: dict = field(default_factory=dict)  # ref → ModelEstimate, where it differs
    text_kind: str = "prose"  # what the learned corrections are kept per (tokens.text_kind)

    @property
    def input_high(self) -> int:
        return int(self.input_tokens * (1 + self.margin))

    def input_for(self, ref: str) -> int:
        est = self.per_model.get(ref)
        return est.tokens if est is not None else self.input_tokens

    def raw_for(self, ref: str) -> int:
        est = self.per_model.get(ref)
        return est.raw if est is not None else self.input_tokens

    def high_for(self, ref: str) -> int:
        if self.exact_for(ref):
            return self.input_for(ref)
        return int(self.input_for(ref) * (1 + self.margin))

    def exact_for(self, ref: str) -> bool:
        est = self.per_model.get(ref)
        return est is not None and est.exact

    def shown_input(self, ref: str) -> str:
        """The input size as a reason shows it: '~12K' for an estimate, '12,345 (exact count)'."""
        if self.exact_for(ref):
            return f"{self.input_for(ref):,} (exact count)"
        return f"~{fmt_tokens(self.input_for(ref))}"


@dataclass(frozen=True)
class Attempt:
    ref: str
    provider: str
    model: str
    protocol: str
    context: int | None
    options: dict  # generation options merged profile → candidate → command line
    backend_options: dict  # e.g. {"num_ctx": 65536, "truncate": False} for Ollama
    est_cost_usd: float | None
    local: bool
    est_input_tokens: int | None = None  # this model's estimate of the input (its tokenizer)
    est_raw_tokens: int | None = None  # the same before the learned correction
    note: str | None = None  # something the user should know, e.g. the answer was capped to fit
    # A provider with several hosts: those able to take this call (the model there, its window
    # large enough for num_ctx); the dispatcher picks one. Empty: any host of the provider.
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    ref: str
    reason: str
    too_small: bool = False  # skipped only because the prompt does not fit
    context: int | None = None  # the window considered, where known
    local: bool = False


@dataclass(frozen=True)
class RoutePlan:
    task: str
    need: Need
    attempts: tuple[Attempt, ...]
    skipped: tuple[Skip, ...]

    @property
    def too_long(self) -> bool:
        """Nothing can take the prompt, and at least one candidate failed only on size."""
        return not self.attempts and any(s.too_small for s in self.skipped)


Pricer = Callable[[str, int, int], "float | None"]


def pick_num_ctx(need_tokens: int, window: int) -> int:
    for step in NUM_CTX_STEPS:
        if step >= need_tokens:
            return min(step, window)
    return window


def version_at_least(version: str | None, wanted: tuple[int, ...]) -> bool:
    if not version:
        return False
    parts = []
    for piece in version.split("-")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= wanted


def plan(
    need: Need,
    profile: Profile,
    config: Config,
    availability: Availability,
    pricer: Pricer,
    *,
    local_only: bool = False,
    max_cost_usd: float | None = None,
    options: dict | None = None,
) -> RoutePlan:
    local_only = local_only or profile.privacy == "local-only"
    max_cost = max_cost_usd if max_cost_usd is not None else profile.max_cost_usd
    attempts: list[Attempt] = []
    skipped: list[Skip] = []
    seen: set[str] = set()
    for cand in profile.candidates:
        if cand.model in seen:
            continue
        seen.add(cand.model)
        result = _consider(cand, need, profile, config, availability, pricer, local_only, max_cost, options or {})
        (attempts if isinstance(result, Attempt) else skipped).append(result)
    return RoutePlan(profile.name, need, tuple(attempts), tuple(skipped))


def _consider(
    cand: Candidate,
    need: Need,
    profile: Profile,
    config: Config,
    availability: Availability,
    pricer: Pricer,
    local_only: bool,
    max_cost: float | None,
    cli_options: dict,
) -> Attempt | Skip:
    ref = cand.model
    provider_name, _, model = ref.partition("/")
    provider = config.providers.get(provider_name)
    if provider is None or not model:
        return Skip(ref, f"unknown provider '{provider_name}'")
    if local_only and not provider.local:
        return Skip(ref, "task is local-only")
    if provider_name in availability.cooling:
        return Skip(ref, availability.cooling[provider_name])

    opts = {**profile.options, **cand.options, **{k: v for k, v in cli_options.items() if v is not None}}
    out_tokens = int(opts.get("max_output_tokens") or need.output_tokens)
    input_tokens = need.input_for(ref)
    want = need.high_for(ref) + out_tokens
    backend_options: dict = {}
    note = None
    hosts: tuple[str, ...] = ()

    def fit_output(window: int) -> None:
        """A window too small for the planned answer but not for the prompt: answer shorter."""
        nonlocal out_tokens, want, opts, note
        room = window - need.high_for(ref)
        if want > window and room >= MIN_OUTPUT_TOKENS:
            note = f"answer capped at {room:,} tokens (not {out_tokens:,}) to fit the {fmt_tokens(window)} window"
            out_tokens, want = room, window
            opts = {**opts, "max_output_tokens": room}

    if provider.protocol == "ollama":
        status = availability.ollama.get(provider_name)
        pooled = status is not None and len(status.hosts) > 1
        if status is None or not status.reachable:
            why = f" ({status.error})" if status and status.error else ""
            if pooled:  # the error names each host, without credentials
                return Skip(ref, f"no Ollama host of {provider_name} reachable{why}")
            return Skip(ref, f"Ollama not reachable at {provider.shown_url}{why}")  # never credentials in OLLAMA_HOST
        local = status.models.get(model) or status.models.get(_with_latest(model))
        windows = _windows(status, model, config.settings.ollama_max_num_ctx)
        if local is None or not windows:
            return Skip(ref, f"not pulled (ollama pull {model})" + (" on any reachable host" if pooled else ""))
        if opts.get("tools") and local.capabilities and "tools" not in local.capabilities:  # /api/show
            return Skip(ref, "does not support tools", local=True)
        if opts.get("think") and local.capabilities and "thinking" not in local.capabilities:
            opts = {**opts, "think": None}  # asking would be a 400; the model simply answers
        ceiling = config.settings.ollama_max_num_ctx
        window, limit, _ = max(windows.values(), key=lambda w: w[1])  # the largest any host allows
        fit_output(limit)
        if want > limit:
            what = f"{fmt_tokens(limit)} context" + (f" (max_num_ctx {fmt_tokens(ceiling)})" if ceiling and ceiling < window else "")
            return Skip(ref, f"prompt {need.shown_input(ref)} tokens + {fmt_tokens(out_tokens)} output exceeds {what}",
                        too_small=True, context=limit, local=True)
        # Of a pool, only the hosts whose window holds the request; num_ctx fits the smallest of
        # them, so whichever the dispatcher picks runs it as planned.
        fits = {url: w for url, w in windows.items() if w[1] >= want}
        limit = min(w[1] for w in fits.values())
        hosts = tuple(fits) if pooled else ()
        # A client's own num_ctx (the gateway's Ollama clients) is a floor, never a cut.
        backend_options["num_ctx"] = pick_num_ctx(max(want, int(opts.get("num_ctx") or 0)), limit)
        if all(version_at_least(w[2], (0, 12, 4)) for w in fits.values()):
            # Refuse to cut an over-long prompt instead of truncating it silently.
            backend_options["truncate"] = False
            backend_options["shift"] = False
        context = limit
    else:
        context = config.model_info(ref).context
        if opts.get("tools") and not config.model_info(ref).tools:
            why = "does not support tools" if config.model_info(ref).tools is False else (
                "does not support tools as far as runner knows (if it does, set tools: true for it "
                "under models: in config.yaml)")
            return Skip(ref, why, context=context, local=provider.local)
        if provider_name in availability.key_errors:
            return Skip(ref, availability.key_errors[provider_name], context=context, local=provider.local)
        if provider.key_env and provider_name not in availability.keys:
            return Skip(ref, f"no {provider.key_env}", context=context, local=provider.local)
        if context is not None:
            fit_output(context)
        if context is not None and want > context:
            return Skip(ref, f"prompt {need.shown_input(ref)} tokens + {fmt_tokens(out_tokens)} output exceeds {fmt_tokens(context)} context",
                        too_small=True, context=context, local=provider.local)

    est = pricer(ref, input_tokens, out_tokens)
    if max_cost is not None and est is not None and est > max_cost:
        return Skip(ref, f"estimated ${est:.2f} over max_cost_usd {max_cost:.2f}", context=context, local=provider.local)
    return Attempt(ref, provider_name, model, provider.protocol, context, opts, backend_options, est, provider.local,
                   input_tokens, need.raw_for(ref), note, hosts=hosts)


def _with_latest(model: str) -> str:
    return model if ":" in model else model + ":latest"


def _windows(status, model: str, ceiling: int | None) -> dict[str, tuple[int, int, str | None]]:
    """Each reachable host that has `model`: (its context length, the num_ctx it allows there —
    capped by max_num_ctx —, its version). A status without a list of hosts is one host."""
    out = {}
    for host in status.hosts or (status,):
        found = host.models.get(model) or host.models.get(_with_latest(model))
        if host.reachable and found is not None:
            window = found.context_length or 4096
            out[host.host] = (window, min(window, ceiling) if ceiling else window, host.version)
    return out

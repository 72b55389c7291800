"""Aggregates over calls: one `Aggregate` per model (or column) gives calls, failures, p50/p95
time to first token and latency, median tokens/s, tokens and cost. `runner stats`, the batch
summary and compare's per-column summary all use it; `summarise` adds what local runs saved."""

from __future__ import annotations

import math
from array import array
from typing import Any, Iterable

from .config import Config
from .pricing import Pricing


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or below it
    (p50 of 1..10 is 5, p95 of 1..20 is 19); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered) - 1e-9) - 1))
    return ordered[k]


class Aggregate:
    """Figures over many calls, kept compact (arrays of floats) so a batch of 100,000 rows stays small.

    Timings, tokens/s and tokens count answered calls only; cost counts every call whose cost is
    known (a failed call may have been billed). `cost_usd` is None only when some answer's price
    is unknown and no cost at all is known."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.failed = 0
        self.ttft = array("d")
        self.latency = array("d")
        self.tps = array("d")
        self.input_tokens = 0
        self.output_tokens = 0
        self.estimated = 0  # answered calls whose token counts are estimates
        self.estimated_tokens = 0  # their tokens, in and out
        self.estimated_cost = 0.0  # their known cost: a price times an estimate
        self.known_cost = 0.0
        self.priced = 0  # calls whose cost is known
        self.unknown_cost = 0  # answered calls of unknown price

    def add(self, r: dict[str, Any]) -> None:
        """One call or run: a record with `ok` (or a log row with `outcome`) and the usual figures."""
        ok = r["ok"] if "ok" in r else r.get("outcome") == "ok"
        self.calls += 1
        cost = r.get("cost_usd")
        if cost is not None:
            self.known_cost += cost
            self.priced += 1
        if not ok:
            self.failed += 1
            return
        if cost is None:
            self.unknown_cost += 1
        for key, values in (("ttft_ms", self.ttft), ("latency_ms", self.latency)):
            if r.get(key) is not None:
                values.append(r[key])
        if r.get("tokens_per_s"):
            self.tps.append(r["tokens_per_s"])
        self.input_tokens += r.get("input_tokens") or 0
        self.output_tokens += r.get("output_tokens") or 0
        if r.get("tokens_estimated"):
            self.estimated += 1
            self.estimated_tokens += (r.get("input_tokens") or 0) + (r.get("output_tokens") or 0)
            self.estimated_cost += cost or 0.0

    @property
    def ok(self) -> int:
        return self.calls - self.failed

    @property
    def cost_usd(self) -> float | None:
        if self.priced == 0 and self.unknown_cost:
            return None
        return self.known_cost

    def estimated_share(self) -> dict[str, float]:
        """What part of the tokens and of the known cost rests on estimates (0 to 1)."""
        tokens = self.input_tokens + self.output_tokens
        return {"tokens": share(self.estimated_tokens, tokens), "cost_usd": share(self.estimated_cost, self.known_cost)}

    def p(self, which: str, q: float) -> float | None:
        return percentile({"ttft": self.ttft, "latency": self.latency, "tps": self.tps}[which], q)


def share(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def aggregate(rows: Iterable[dict[str, Any]], key: str = "model", missing: str = "(no model)") -> dict[str, Aggregate]:
    out: dict[str, Aggregate] = {}
    for r in rows:
        name = r.get(key) or missing
        agg = out.get(name)
        if agg is None:
            agg = out[name] = Aggregate(name)
        agg.add(r)
    return out


NO_HOST = "(not recorded)"  # calls logged before hosts were


def summarise_hosts(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """`runner stats --by host`: per server that took the calls (each machine of a pool), its
    calls, failures, latency and tokens/s, and the models it ran."""
    hosts = []
    models: dict[str, set[str]] = {}
    for r in attempts:
        models.setdefault(r.get("host") or NO_HOST, set()).add(r["model"])
    for host, agg in sorted(aggregate(attempts, key="host", missing=NO_HOST).items()):
        hosts.append({
            "host": host, "models": sorted(models[host]), "calls": agg.calls, "failed": agg.failed,
            "p50_ttft_ms": agg.p("ttft", 50), "p50_latency_ms": agg.p("latency", 50),
            "p95_latency_ms": agg.p("latency", 95), "tokens_per_s": agg.p("tps", 50),
            "input_tokens": agg.input_tokens, "output_tokens": agg.output_tokens,
            "estimated_share": agg.estimated_share(),
        })
    return {"hosts": hosts}


DEFERRED = " (deferred)"


def by_model(r: dict[str, Any]) -> str:
    """The row a call counts in: its model, or "model (deferred)" for a provider batch's call, whose
    latency is hours of waiting by design and must not mix with the live calls' percentiles."""
    name = r.get("model") or "(no model)"
    return name + DEFERRED if r.get("deferred") else name


def summarise(attempts: list[dict[str, Any]], config: Config, pricing: Pricing, versus: str) -> dict[str, Any]:
    """`runner stats`: per model (deferred calls apart), and what the local calls would have cost on
    `versus`."""
    models = []
    total, unknown = 0.0, 0
    everything = Aggregate("all")
    saved = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "versus_cost_usd": 0.0, "estimated_calls": 0}
    versus_costs: list[float | None] = []
    for model, agg in sorted(aggregate(({**r, "row": by_model(r)} for r in attempts), key="row").items()):
        local = config.is_local(model) and not model.endswith(DEFERRED)
        unknown += agg.unknown_cost
        total += agg.known_cost
        models.append({
            "model": model, "local": local, "deferred": model.endswith(DEFERRED), "calls": agg.calls, "failed": agg.failed,
            "p50_ttft_ms": agg.p("ttft", 50), "p50_latency_ms": agg.p("latency", 50),
            "p95_latency_ms": agg.p("latency", 95), "tokens_per_s": agg.p("tps", 50),
            "input_tokens": agg.input_tokens, "output_tokens": agg.output_tokens, "cost_usd": agg.cost_usd,
            "estimated_calls": agg.estimated, "estimated_share": agg.estimated_share(),
        })
    for r in attempts:
        everything.add(r)
        if r["outcome"] != "ok" or not config.is_local(r["model"]):
            continue
        saved["calls"] += 1
        saved["input_tokens"] += r["input_tokens"] or 0
        saved["output_tokens"] += r["output_tokens"] or 0
        saved["estimated_calls"] += bool(r.get("tokens_estimated"))
        # Each call priced on its own: prices are tiered by a call's size (e.g. above 200K
        # input tokens), so one giant call of the summed tokens would cost more.
        versus_costs.append(pricing.cost(versus, r["input_tokens"] or 0, r["output_tokens"] or 0))
    if saved["calls"]:
        saved["versus_cost_usd"] = None if None in versus_costs else sum(versus_costs)
    return {"models": models, "total_cost_usd": total, "unknown_cost_calls": unknown,
            "estimated_calls": everything.estimated, "estimated_share": everything.estimated_share(),
            "local_savings": {**saved, "versus": versus}}

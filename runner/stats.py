"""Aggregates over logged attempts: per-model latency percentiles, tokens, cost, local savings."""

from __future__ import annotations

import math
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


def summarise(attempts: list[dict[str, Any]], config: Config, pricing: Pricing, versus: str) -> dict[str, Any]:
    by_model: dict[str, list[dict]] = {}
    for a in attempts:
        by_model.setdefault(a["model"], []).append(a)
    models = []
    total, unknown = 0.0, 0
    saved = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "versus_cost_usd": 0.0}
    versus_costs: list[float | None] = []
    for model, rows in sorted(by_model.items()):
        ok = [r for r in rows if r["outcome"] == "ok"]
        provider = config.providers.get(model.partition("/")[0])
        local = bool(provider and provider.local)
        costs = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
        unknown += sum(1 for r in ok if r["cost_usd"] is None)
        total += sum(costs)
        tps = [r["tokens_per_s"] for r in ok if r["tokens_per_s"]]
        models.append({
            "model": model, "local": local, "calls": len(rows), "failed": len(rows) - len(ok),
            "p50_ttft_ms": percentile([r["ttft_ms"] for r in ok if r["ttft_ms"] is not None], 50),
            "p50_latency_ms": percentile([r["latency_ms"] for r in ok if r["latency_ms"] is not None], 50),
            "p95_latency_ms": percentile([r["latency_ms"] for r in ok if r["latency_ms"] is not None], 95),
            "tokens_per_s": sum(tps) / len(tps) if tps else None,
            "input_tokens": sum(r["input_tokens"] or 0 for r in ok),
            "output_tokens": sum(r["output_tokens"] or 0 for r in ok),
            "cost_usd": sum(costs) if costs or not ok else None,
        })
        if local:
            for r in ok:
                saved["calls"] += 1
                saved["input_tokens"] += r["input_tokens"] or 0
                saved["output_tokens"] += r["output_tokens"] or 0
                # Each call priced on its own: prices are tiered by a call's size (e.g. above 200K
                # input tokens), so one giant call of the summed tokens would cost more.
                versus_costs.append(pricing.cost(versus, r["input_tokens"] or 0, r["output_tokens"] or 0))
    if saved["calls"]:
        saved["versus_cost_usd"] = None if None in versus_costs else sum(versus_costs)
    return {"models": models, "total_cost_usd": total, "unknown_cost_calls": unknown,
            "local_savings": {**saved, "versus": versus}}

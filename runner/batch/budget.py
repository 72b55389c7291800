"""`--max-cost`: a budget for the whole results file.

Committed = spent (what the results file already records, then this run's) + what the running
rows may still cost. A row's reservation is its route's estimate, an upper bound (the whole
`max_output_tokens` answered); once rows of a model have finished, their real costs make a
tighter one (the dearest seen, plus a margin). A row that does not fit waits while other rows
run (they release their reservations as they finish); the batch stops only when nothing is
running and the next row still does not fit, so it stops within about one row's cost of the limit.
"""

from __future__ import annotations

from typing import Any

SEEN_MARGIN = 1.25  # over the dearest row seen: prompts vary in length
SEEN_ENOUGH = 3  # finished rows of a model before their costs replace the estimate


class Budget:
    def __init__(self, limit: float | None, spent_before: float) -> None:
        self.limit = limit
        self.spent = spent_before
        self.running: dict[str | None, float] = {}
        self.models: dict[str | None, str] = {}  # running row → the model it was routed to
        self.seen: dict[str, tuple[int, float]] = {}  # model → (rows finished, dearest cost)
        self.unknown_price = 0
        self.refused_estimate: float | None = None

    @property
    def committed(self) -> float:
        return self.spent + sum(self.running.values())

    def estimate(self, prepared: Any) -> float | None:
        if not prepared.plan.attempts:
            return 0.0
        first = prepared.plan.attempts[0]
        est = first.est_cost_usd
        n, dearest = self.seen.get(first.ref, (0, 0.0))
        if n >= SEEN_ENOUGH:
            tight = dearest * SEEN_MARGIN
            est = tight if est is None else min(est, tight)
        return est

    def admit(self, job: Any, prepared: Any) -> bool:
        est = self.estimate(prepared)
        unknown = est is None
        est = est or 0.0
        if self.limit is not None and self.committed + est > self.limit + 1e-12:
            self.refused_estimate = est
            return False
        self.refused_estimate = None
        self.unknown_price += unknown
        self.running[job.item_id] = est
        if prepared.plan.attempts:
            self.models[job.item_id] = prepared.plan.attempts[0].ref
        return True

    def finish(self, item_id: str | None, cost: float | None, model: str | None = None) -> None:
        self.running.pop(item_id, None)
        routed = self.models.pop(item_id, None)
        self.spent += cost or 0.0
        if cost is not None and routed is not None and model == routed:
            n, dearest = self.seen.get(routed, (0, 0.0))
            self.seen[routed] = (n + 1, max(dearest, cost))

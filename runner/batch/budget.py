"""`--max-cost`: a budget for the whole results file."""

from __future__ import annotations

from typing import Any


class Budget:
    """--max-cost: committed = spent (the results file's, then this run's) + estimates of running rows."""

    def __init__(self, limit: float | None, spent_before: float) -> None:
        self.limit = limit
        self.spent = spent_before
        self.running: dict[str | None, float] = {}
        self.unknown_price = 0
        self.refused_estimate: float | None = None

    @property
    def committed(self) -> float:
        return self.spent + sum(self.running.values())

    def admit(self, job: Any, prepared: Any) -> bool:
        est = prepared.plan.attempts[0].est_cost_usd if prepared.plan.attempts else 0.0
        if est is None:
            self.unknown_price += 1
            est = 0.0
        if self.limit is not None and self.committed + est > self.limit + 1e-12:
            self.refused_estimate = est
            return False
        self.running[job.item_id] = est
        return True

    def finish(self, item_id: str | None, cost: float | None) -> None:
        self.running.pop(item_id, None)
        self.spent += cost or 0.0

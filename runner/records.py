"""One record of a run, built in one place: from a live result, from a run-log row, or for a
request that never reached a model. Every `--json` record, results-file line and report row is
a RunRecord's `json()`.

Decided once here, for ask, batch, compare and the log alike:
- `model` is the model that answered; for a failed run, the last model tried (None if none).
- `cost_usd` is what the run spent: the sum of its attempts' known costs, failed attempts
  included; None when the answering model's price is unknown, or when no cost is known at all.
- times are rounded to 0.1 ms, tokens/s to 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

def round1(v: Any) -> Any:
    return round(v, 1) if isinstance(v, float) else v


def attempt_json(a: dict[str, Any]) -> dict[str, Any]:
    """One attempt for scripts, from a live attempt's record() or a run-log row."""
    get = a.get
    out: dict[str, Any] = {"model": a["model"], "outcome": a["outcome"]}
    if get("error"):
        out["error"] = a["error"]
    if get("part"):
        out["part"] = a["part"]
    if get("host"):
        out["host"] = a["host"]
    out["finish_reason"] = get("finish_reason")  # one by one: quicker than a loop over the names
    out["input_tokens"] = get("input_tokens")
    out["output_tokens"] = get("output_tokens")
    out["tokens_estimated"] = bool(get("tokens_estimated"))
    out["ttft_ms"] = round1(get("ttft_ms"))
    out["answer_ms"] = round1(get("answer_ms"))
    out["queue_ms"] = round1(get("queue_ms"))
    out["latency_ms"] = round1(get("latency_ms"))
    out["cost_usd"] = get("cost_usd")
    return out


def run_cost(costs: Iterable[float | None], answer_cost_known: bool | None) -> float | None:
    """What a run spent (see the module's docstring). `answer_cost_known` is None for a failed run."""
    known = [c for c in costs if c is not None]
    if answer_cost_known is False or not known:
        return None
    return sum(known)


@dataclass
class RunRecord:
    task: str | None
    ok: bool
    model: str | None = None
    error: str | None = None
    finish_reason: str | None = None  # the protocol's: "stop", or "length" (stopped at max tokens)
    text: str | None = None
    thinking: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    ttft_ms: float | None = None
    latency_ms: float | None = None
    tokens_per_s: float | None = None
    cost_usd: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)  # attempt_json() each
    id: int | None = None  # the run's id in the run log
    chunks: int | None = None  # a split document: how many parts were read

    # --- building -----------------------------------------------------------------------

    @classmethod
    def from_result(cls, task: str | None, result: Any, run_id: int | None = None) -> "RunRecord":
        """From a live RunResult (or a long document's SplitResult)."""
        return cls.from_summary(task, run_summary(result), [a.record() for a in result.attempts], run_id)

    @classmethod
    def from_summary(cls, task: str | None, s: dict[str, Any], attempts: list[dict[str, Any]],
                     run_id: int | None = None) -> "RunRecord":
        return cls(**_fields(task, s, attempts, run_id))

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> "RunRecord":
        """From a run-log row (Store.runs()), attempts included. A run still `running` is not ok
        (yet): the row alone cannot tell a run in progress from one that was killed."""
        return cls.from_summary(r["task"], r, r.get("attempts") or [], r["id"])

    @classmethod
    def never_ran(cls, task: str | None, error: str, model: str | None = None) -> "RunRecord":
        """A request that reached no model: no route, an unreadable document, a refused option."""
        return cls(task=task, ok=False, model=model, error=error)

    # --- output -------------------------------------------------------------------------

    def json(self) -> dict[str, Any]:
        """The script contract of `ask --json` (and every record built on it)."""
        out = {
            "id": self.id, "model": self.model, "task": self.task, "ok": self.ok, "error": self.error,
            "finish_reason": self.finish_reason, "text": self.text, "thinking": self.thinking, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "tokens_estimated": self.tokens_estimated,
            "ttft_ms": self.ttft_ms, "latency_ms": self.latency_ms, "tokens_per_s": self.tokens_per_s,
            "cost_usd": self.cost_usd, "attempts": self.attempts,
        }
        if self.chunks:
            out["chunks"] = self.chunks
        return out


def _fields(task: str | None, s: dict[str, Any], attempts: list[dict[str, Any]], run_id: int | None) -> dict[str, Any]:
    """A RunRecord's fields from a run's summary, in the order of its json()."""
    get = s.get
    return {
        "id": run_id, "model": get("model"), "task": task, "ok": s["outcome"] == "ok", "error": get("error"),
        "finish_reason": get("finish_reason"), "text": get("text"), "thinking": get("thinking"),
        "input_tokens": get("input_tokens"), "output_tokens": get("output_tokens"),
        "tokens_estimated": bool(get("tokens_estimated")), "ttft_ms": round1(get("ttft_ms")),
        "latency_ms": round1(get("latency_ms")), "tokens_per_s": round1(get("tokens_per_s")),
        "cost_usd": get("cost_usd"), "attempts": [attempt_json(a) for a in attempts], "chunks": get("chunks") or None,
    }


def summary_json(task: str | None, s: dict[str, Any], attempts: list[dict[str, Any]],
                 run_id: int | None = None) -> dict[str, Any]:
    """`RunRecord.from_summary(...).json()` without the object in between (rows collected by
    the 100,000)."""
    out = _fields(task, s, attempts, run_id)
    if not out["chunks"]:
        del out["chunks"]
    return out


def run_summary(result: Any) -> dict[str, Any]:
    """The run's row for the log: the answering attempt's figures, the run's cost; for a split
    document, the sums over every chunk and combine call."""
    ans = result.answer
    tried = result.attempts
    out: dict[str, Any] = {"outcome": "ok" if result.ok else "failed", "error": None if result.ok else result.error,
                           "model": ans.model if ans is not None else (tried[-1].model if tried else None)}
    out["cost_usd"] = run_cost((a.cost_usd for a in tried), None if ans is None else ans.cost_usd is not None)
    if ans is not None:
        out.update(text=ans.text, thinking=ans.thinking or None, finish_reason=ans.finish_reason,
                   input_tokens=ans.input_tokens, output_tokens=ans.output_tokens,
                   tokens_estimated=ans.tokens_estimated, ttft_ms=ans.ttft_ms, latency_ms=ans.latency_ms,
                   tokens_per_s=ans.tokens_per_s)
    totals = getattr(result, "totals", None)
    if totals:
        out.update(totals)
    return out

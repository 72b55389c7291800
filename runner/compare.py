"""`runner compare`: the same prompts on several models (or task routings), concurrently.

A comparison is a matrix: prompts × columns. A column is either a model (`-m`, which bypasses
routing as `ask --model` does) or a task (`--tasks`, routed by that task's profile). Each cell is
one run through the ordinary pipeline (`Session.prepare` → `Session.answer`), logged with kind
"compare", the comparison id as group_id and an item_id naming the prompt and the column
(`p3/c1/openai/gpt-4.1`, `p3/c2/task:coding`), so `compare_log.load_comparison` can rebuild the
whole matrix later without calling anything. An optional judge ranks each prompt's answers
(compare_judge).

Concurrency is the batch engine's (runner/batch_engine.py): at most `concurrency` cells at once,
each provider within its AdaptiveLimiter limit, and a slow local model never holds back the
hosted ones.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from .documents import Document
from .store import now_iso

TASK_PREFIX = "task:"
_ITEM = re.compile(r"^p(\d+)/c(\d+)/(.+)$")
_JUDGE_ITEM = re.compile(r"^p(\d+)/judge/(.+)$")


@dataclass(frozen=True)
class Column:
    """One contender: a model (routing bypassed) or a task (routed by its profile)."""

    key: str  # "openai/gpt-4.1" or "task:coding"

    @classmethod
    def for_model(cls, ref: str) -> "Column":
        return cls(ref)

    @classmethod
    def for_task(cls, task: str) -> "Column":
        return cls(TASK_PREFIX + task)

    @property
    def task(self) -> str | None:
        return self.key[len(TASK_PREFIX):] if self.key.startswith(TASK_PREFIX) else None

    @property
    def model(self) -> str | None:
        return None if self.task else self.key


@dataclass
class PromptItem:
    text: str
    files: list[str] = field(default_factory=list)  # document names, for the record
    label: str | None = None  # a prompt file's row id, when it has one
    system: str | None = None  # a prompt file's row system prompt (else the plan's)
    documents: list[Document] | None = None  # this prompt's documents (else the plan's); not logged


@dataclass
class Cell:
    """One prompt × column: the `ask --json` record of its run."""

    data: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.data.get("ok"))

    def get(self, key: str) -> Any:
        return self.data.get(key)


@dataclass
class Judgement:
    """A judge's ranking of one prompt's answers; `ranks` maps column index → rank (1 is best)."""

    model: str
    data: dict[str, Any] | None  # the judge call's `ask --json` record; None when not called
    ranks: dict[int, int] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)
    error: str | None = None
    labels: dict[str, int] = field(default_factory=dict)  # the letter each column was shown as

    @property
    def cost_usd(self) -> float | None:
        return None if self.data is None else self.data.get("cost_usd")


@dataclass
class Comparison:
    id: str
    time: str
    prompts: list[PromptItem]
    columns: list[Column]
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)
    judge: str | None = None
    judgements: dict[int, Judgement] = field(default_factory=dict)

    def cell(self, p: int, c: int) -> Cell | None:
        return self.cells.get((p, c))

    def row(self, p: int) -> list[Cell | None]:
        return [self.cells.get((p, c)) for c in range(len(self.columns))]


@dataclass
class Plan:
    """What to run: everything `run_comparison` needs besides the Session."""

    prompts: list[PromptItem]
    columns: list[Column]
    default_task: str
    documents: list[Document] = field(default_factory=list)
    system: str | None = None
    local_only: bool = False
    max_cost_usd: float | None = None
    options: dict = field(default_factory=dict)
    judge: str | None = None
    concurrency: int = 16


def new_comparison_id() -> str:
    return "c-" + secrets.token_hex(4)


def item_id(p: int, c: int, column: Column) -> str:
    return f"p{p}/c{c}/{column.key}"


def judge_item_id(p: int, model: str) -> str:
    return f"p{p}/judge/{model}"


def parse_item_id(value: str | None) -> tuple[int, int, Column] | None:
    m = _ITEM.match(value or "")
    return (int(m.group(1)), int(m.group(2)), Column(m.group(3))) if m else None


def parse_judge_item_id(value: str | None) -> tuple[int, str] | None:
    m = _JUDGE_ITEM.match(value or "")
    return (int(m.group(1)), m.group(2)) if m else None


def failed_record(task: str | None, error: str, model: str | None = None) -> dict[str, Any]:
    """A cell that never reached a model (e.g. no route): the `ask --json` shape, failed."""
    return {"id": None, "model": model, "task": task, "ok": False, "error": error, "text": None, "thinking": None,
            "input_tokens": None, "output_tokens": None, "tokens_estimated": False, "ttft_ms": None,
            "latency_ms": None, "tokens_per_s": None, "cost_usd": None, "attempts": []}


OnCell = Callable[[int, int, Cell], None]


async def run_comparison(session, plan: Plan, *, comparison_id: str | None = None,
                         on_cell: OnCell | None = None) -> Comparison:
    """Run every cell through the batch engine (global `concurrency`, per-provider lanes and
    limits, no head-of-line blocking); each prompt's judge starts as soon as its answers are in."""
    from .batch_engine import Job, Outcome, run_jobs
    from .session import Request, result_json

    comp = Comparison(comparison_id or new_comparison_id(), now_iso(), plan.prompts, plan.columns,
                      judge=plan.judge)
    n_columns = len(plan.columns)
    remaining = [n_columns] * len(plan.prompts)
    judging: list[asyncio.Task] = []

    def jobs():
        for p, prompt in enumerate(plan.prompts):
            for c, column in enumerate(plan.columns):
                request = Request(prompt=prompt.text, task=column.task or plan.default_task,
                                  documents=prompt.documents if prompt.documents is not None else plan.documents,
                                  system=prompt.system if prompt.system is not None else plan.system,
                                  model=column.model, local_only=plan.local_only,
                                  max_cost_usd=plan.max_cost_usd if column.task else None, options=plan.options)
                yield Job(request, item_id=item_id(p, c, column), key=(p, c))

    async def on_result(outcome: Outcome) -> None:
        p, c = outcome.job.key
        request = outcome.job.request
        if outcome.result is not None and outcome.prepared is not None:
            data = result_json(outcome.prepared.profile.name, outcome.result, outcome.run_id)
        else:  # never reached a model: no route, an unreadable document…
            data = failed_record(request.task, outcome.message or "failed", request.model)
        cell = comp.cells[(p, c)] = Cell(data)
        if on_cell is not None:
            on_cell(p, c, cell)
        remaining[p] -= 1
        if remaining[p] == 0 and plan.judge:
            judging.append(asyncio.ensure_future(_judge(session, comp, p, plan)))

    if plan.judge:
        await _check_judge(session, plan)
    _warm_up(session, plan)
    try:
        await run_jobs(session, jobs(), plan.concurrency, on_result, kind="compare", group_id=comp.id)
        await asyncio.gather(*judging)
    finally:
        for task in judging:
            task.cancel()
    return comp


async def _check_judge(session, plan: Plan) -> None:
    """A judge that cannot be reached is the user's to fix before anything is spent."""
    from .errors import UserError
    from .session import Request

    prepared = await session.prepare(Request(prompt="judge", task=plan.default_task, model=plan.judge,
                                             local_only=plan.local_only))
    if not prepared.plan.attempts:
        reasons = "; ".join(s.reason for s in prepared.plan.skipped) or "no route"
        raise UserError(f"--judge {plan.judge} cannot be used: {reasons}")


def _warm_up(session, plan: Plan) -> None:
    """Do the one-time work of a first call now (import the Ollama client, build each provider's
    HTTP client, load the price data): done mid-run it would block the event loop and be counted
    in whichever cells were streaming at that moment, so the latencies compared would not be
    the models' alone."""
    config = session.config
    refs = [c.model for c in plan.columns if c.model] + ([plan.judge] if plan.judge else [])
    for c in plan.columns:
        if c.task:
            refs += [cand.model for cand in config.profile(c.task).candidates]
    for ref in dict.fromkeys(refs):
        provider = config.providers.get(ref.partition("/")[0])
        if provider is None or (provider.key_env and not provider.usable_key()):
            continue  # not callable: its cells fail at once, with the reason
        try:
            session.pool.get(provider.name).warm(session.executor.timeouts())
            session.pricing.estimate(ref, 1000, 1000)
        except Exception:  # noqa: BLE001 - only a warm-up: the real call reports any problem
            pass


async def _judge(session, comp: Comparison, p: int, plan: Plan) -> None:
    from .compare_judge import judge_prompt_answers

    comp.judgements[p] = await judge_prompt_answers(session, comp, p, plan)

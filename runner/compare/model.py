"""What a comparison is made of: prompts × columns, cells, the judge's rankings; and how a cell
is named in the run log so `compare.log` can rebuild the matrix.

`runner compare`: the same prompts on several models (or task routings), concurrently.

A comparison is a matrix: prompts × columns. A column is either a model (`-m`, which bypasses
routing as `ask --model` does) or a task (`--tasks`, routed by that task's profile). Each cell is
one run through the ordinary pipeline (`Session.prepare` → `Session.answer`), logged with kind
"compare", the comparison id as group_id and an item_id naming the prompt and the column
(`p3/c1/openai/gpt-4.1`, `p3/c2/task:coding`), so `compare.log.load_comparison` can rebuild the
whole matrix later without calling anything. An optional judge ranks each prompt's answers
(compare.judge).

Concurrency is the batch engine's (runner/engine.py): at most `concurrency` cells at once,
each provider within its AdaptiveLimiter limit, and a slow local model never holds back the
hosted ones.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from ..documents import Document
from ..options import GenerationOptions

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
    options: GenerationOptions = field(default_factory=GenerationOptions)
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


OnCell = Callable[[int, int, Cell], None]

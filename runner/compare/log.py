"""Rebuild a past comparison from the run log: prompts, columns, answers, metrics and the judge's
ranking, without calling anything (`runner compare --from-log ID`)."""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..records import RunRecord
from ..store import Store
from .judge import judgement_from_reply
from .model import Cell, Column, Comparison, Judgement, PromptItem, parse_item_id, parse_judge_item_id

MAX_RUNS = 1_000_000


def load_comparison(store: Store, comparison_id: str) -> Comparison:
    comparison_id = comparison_id.strip()
    rows = store.runs(group_id=comparison_id, limit=MAX_RUNS, newest_first=False)
    cells = [(parse_item_id(r["item_id"]), r) for r in rows if r["kind"] == "compare"]
    cells = [(k, r) for k, r in cells if k is not None]
    if not cells:
        raise UserError(f"no comparison '{comparison_id}' in the run log "
                        "(the id is printed at the end of `runner compare`; `runner log` lists recent runs)")
    n_prompts = max(p for (p, _, _), _ in cells) + 1
    n_columns = max(c for (_, c, _), _ in cells) + 1
    prompts: list[PromptItem | None] = [None] * n_prompts
    columns: list[Column | None] = [None] * n_columns
    comp = Comparison(comparison_id, rows[0]["time"], [], [])
    for (p, c, column), r in cells:
        columns[c] = columns[c] or column
        if prompts[p] is None:
            prompts[p] = PromptItem(r["prompt"] or "", list(r["files"] or []))
        comp.cells[(p, c)] = Cell(record(r))
    comp.prompts = [x or PromptItem("(prompt not in the log)") for x in prompts]
    comp.columns = [x or Column(f"column {i + 1}") for i, x in enumerate(columns)]

    judges = [(parse_judge_item_id(r["item_id"]), r) for r in rows if r["kind"] == "judge"]
    if judges:
        for key, r in judges:
            if key is None:
                continue
            p, model = key
            comp.judge = comp.judge or model
            comp.judgements[p] = judgement_from_reply(comp, p, record(r))
        for p in range(n_prompts):  # the judge is not called for fewer than two answers
            comp.judgements.setdefault(p, Judgement(comp.judge or "?", None, error="fewer than two answers to rank"))
    return comp


def record(r: dict[str, Any]) -> dict[str, Any]:
    """A logged run as a live cell holds it. The comparison is over: a cell still `running` was
    interrupted."""
    rec = RunRecord.from_row(r).json()
    if r["outcome"] == "running":
        rec["error"] = "interrupted before it finished"
    return rec

"""Optional judging: a chosen model ranks one prompt's answers.

The answers are shown to the judge under anonymous letters (A, B, C…) in an order shuffled
deterministically from the comparison id and the prompt index (so neither a model's name nor its
column position can sway the judge, and the letters can be mapped back when the comparison is
re-rendered from the log). The judge is asked for JSON; `parse_ranking` also accepts the usual
ways models stray from it (code fences, prose around the object, "B > A > C").
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from ..errors import UserError
from ..records import RunRecord
from ..request import Request
from .model import Comparison, Judgement, Plan, judge_item_id

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

JUDGE_SYSTEM = (
    "You are an impartial judge of answers written by AI assistants. Judge only the content: "
    "correctness first, then completeness, clarity and concision. Ignore the answers' order and "
    "length for its own sake. Reply with JSON only."
)


def judge_order(comparison_id: str, p: int, columns: list[int]) -> list[int]:
    """The columns in the order the judge sees them (letter i ↔ returned[i])."""
    order = list(columns)
    random.Random(f"{comparison_id}:{p}").shuffle(order)
    return order


def build_prompt(prompt: str, files: list[str], answers: list[tuple[str, str]]) -> str:
    parts = ["Rank the answers below to the user's request, best first.", "", "<request>", prompt.strip(), "</request>"]
    if files:
        parts.append(f"(The user also attached: {', '.join(files)}; they are not repeated here.)")
    for letter, text in answers:
        parts += ["", f'<answer label="{letter}">', text.strip(), "</answer>"]
    letters = [letter for letter, _ in answers]
    example = ", ".join(f'"{x}"' for x in letters)
    parts += [
        "",
        "Reply with one JSON object and nothing else:",
        '{"ranking": [' + example + '], "reasons": {"' + letters[0] + '": "one short sentence", …}}',
        f"`ranking` lists every label ({', '.join(letters)}) exactly once, best first.",
    ]
    return "\n".join(parts)


_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)


def parse_ranking(text: str, letters: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Ranks (letter → 1-based rank, ties allowed) and reasons, from whatever the judge wrote.

    Raises ValueError when no ranking can be found.
    """
    valid = set(letters)
    text = _THINK.sub("", text or "")
    for obj in _json_objects(text):
        ranks = _ranks_from_obj(obj, valid)
        if ranks:
            reasons = obj.get("reasons") if isinstance(obj.get("reasons"), dict) else {}
            return ranks, {str(k).strip().upper(): str(v) for k, v in reasons.items() if str(k).strip().upper() in valid}
    # Prose: "B > A > C", "1. B  2. A", "Ranking: B, A, C".
    found = [m.group(1) for m in re.finditer(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])", text) if m.group(1) in valid]
    ordered = list(dict.fromkeys(found))
    if len(ordered) >= 2 or (len(ordered) == 1 and len(valid) == 1):
        return {x: i + 1 for i, x in enumerate(ordered)}, {}
    raise ValueError("the judge's reply holds no ranking")


def _json_objects(text: str):
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        start = chunk.find("{")
        while start != -1:
            try:
                obj, _ = json.JSONDecoder().raw_decode(chunk[start:])
            except ValueError:
                start = chunk.find("{", start + 1)
                continue
            if isinstance(obj, dict):
                yield obj
            start = chunk.find("{", start + 1)


def _ranks_from_obj(obj: dict, valid: set[str]) -> dict[str, int]:
    for key in ("ranking", "ranks", "rank", "order", "result"):
        value = obj.get(key)
        if isinstance(value, list):
            ordered = []
            for item in value:
                label = item.get("label") or item.get("answer") if isinstance(item, dict) else item
                label = str(label or "").strip().upper()
                if label in valid and label not in ordered:
                    ordered.append(label)
            if ordered:
                return {x: i + 1 for i, x in enumerate(ordered)}
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                label = str(k).strip().upper()
                try:
                    rank = int(v)
                except (TypeError, ValueError):
                    continue
                if label in valid and rank >= 1:
                    out[label] = rank
            if out:
                return out
    # {"A": 2, "B": 1}
    direct = {}
    for k, v in obj.items():
        label = str(k).strip().upper()
        if label in valid and isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            direct[label] = v
    return direct


def judgement_from_reply(comp: Comparison, p: int, data: dict[str, Any]) -> Judgement:
    """Map the judge's letters back to columns (used live and when re-rendering from the log)."""
    judged = judged_columns(comp, p)
    order = judge_order(comp.id, p, judged)
    letters = LETTERS[: len(order)]
    jm = Judgement(model=comp.judge or data.get("model") or "?", data=data, labels=dict(zip(letters, order)))
    if not data.get("ok"):
        jm.error = data.get("error") or "the judge failed"
        return jm
    try:
        ranks, reasons = parse_ranking(data.get("text") or "", list(letters))
    except ValueError as exc:
        jm.error = str(exc)
        return jm
    for letter, column in zip(letters, order):
        if letter in ranks:
            jm.ranks[column] = ranks[letter]
        if letter in reasons:
            jm.reasons[column] = reasons[letter]
    return jm


def judged_columns(comp: Comparison, p: int) -> list[int]:
    """The columns with an answer to judge, in column order."""
    return [c for c in range(len(comp.columns)) if (cell := comp.cell(p, c)) is not None and cell.ok and cell.get("text")]


async def judge_prompt_answers(session, comp: Comparison, p: int, plan: Plan) -> Judgement:
    judged = judged_columns(comp, p)
    model = plan.judge or ""
    if len(judged) < 2:
        return Judgement(model=model, data=None, error="fewer than two answers to rank")
    order = judge_order(comp.id, p, judged)
    answers = [(LETTERS[i], comp.cells[(p, c)].get("text")) for i, c in enumerate(order)]
    prompt = comp.prompts[p]
    request = Request(prompt=build_prompt(prompt.text, prompt.files, answers), task=plan.default_task,
                      system=JUDGE_SYSTEM, model=model, local_only=plan.local_only)
    try:
        prepared = await session.prepare(request)
        result, run_id = await session.answer(prepared, kind="judge", group_id=comp.id, item_id=judge_item_id(p, model))
        data = RunRecord.from_result(prepared.profile.name, result, run_id).json()
    except UserError as exc:
        data = RunRecord.never_ran(plan.default_task, str(exc), model).json()
    return judgement_from_reply(comp, p, data)

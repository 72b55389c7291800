"""`runner compare --json`: an array with one object per prompt × column, each with the fields of
`ask --json` plus where it sits in the comparison; a judge's calls follow as `"kind": "judge"`."""

from __future__ import annotations

from typing import Any

from ..compare.report import Report


def report_json(report: Report) -> list[dict[str, Any]]:
    comp = report.comparison
    out: list[dict[str, Any]] = []
    for pv in report.prompts:
        for v in pv.cells:
            out.append({
                "kind": "compare", "comparison_id": comp.id, "prompt_index": pv.index, "prompt": pv.prompt.text,
                "files": pv.prompt.files, "column": v.column.key, **v.data,
                "fastest": v.fastest, "cheapest": v.cheapest, "judge_rank": v.rank, "judge_reason": v.reason,
            })
    for pv in report.prompts:
        j = pv.judgement
        if j is None or j.data is None:
            continue
        ranks = {comp.columns[c].key: r for c, r in sorted(j.ranks.items())}
        out.append({"kind": "judge", "comparison_id": comp.id, "prompt_index": pv.index, "prompt": pv.prompt.text,
                    "files": pv.prompt.files, "column": None, **j.data, "ranks": ranks, "judge_error": j.error,
                    "labels": {letter: comp.columns[c].key for letter, c in j.labels.items()}})
    return out

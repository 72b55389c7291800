"""The batch results file: whole-record appends, torn tails cut on resume, last record wins,
compaction to one record per id, one writer at a time."""

from __future__ import annotations

import csv
import json

import pytest

from runner.batch.results import ResultsWriter, encode_csv, encode_jsonl, read_state
from runner.errors import UserError


def rec(rid: str, ok: bool = True, text: str = "answer", cost: float | None = 0.001) -> dict:
    return {"id": rid, "ok": ok, "model": "openai/gpt-4.1", "task": "general", "text": text if ok else None,
            "cost_usd": cost, "error": None if ok else "boom", "attempts": [], "batch_id": "b-1"}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_torn_tail_is_cut_and_resume_appends(tmp_path, fmt):
    path = tmp_path / f"out.{fmt}"
    w = ResultsWriter(path, fmt)
    assert w.open().records == 0
    w.write(rec("a", text="two\nlines, \"quoted\""))
    w.write(rec("b", ok=False))
    w.close()
    whole = path.read_bytes()
    torn = (encode_csv(rec("c", text="half\nof it")) if fmt == "csv" else encode_jsonl(rec("c")))
    for cut in (1, 10, len(torn) // 2, len(torn) - 1):  # every way a write can be cut short
        path.write_bytes(whole + torn[:cut])
        state, good = read_state(path, fmt)
        assert good == len(whole) and state.ok == {"a"} and state.failed == {"b"}, cut
        assert state.torn_bytes == cut
    w = ResultsWriter(path, fmt)
    state = w.open()
    assert path.read_bytes() == whole  # the torn record is gone before anything is appended
    assert state.batch_id == "b-1" and state.cost_usd == pytest.approx(0.002)
    w.write(rec("b"))  # the failed row, re-run: its new record supersedes the old one
    w.write(rec("c"))
    assert w.compact() == 1
    w.write(rec("d"))
    w.close()
    state, _ = read_state(path, fmt)
    assert state.ok == {"a", "b", "c", "d"} and not state.failed and state.records == 4
    if fmt == "csv":
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
        assert rows[0]["text"] == 'two\nlines, "quoted"' and rows[1]["ok"] == "true"
    else:
        lines = path.read_text().splitlines()
        assert [json.loads(x)["id"] for x in lines] == ["a", "b", "c", "d"]


def test_last_record_wins(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("".join(encode_jsonl(r).decode() for r in [rec("a", ok=False), rec("a"), rec("b"), rec("b", ok=False)]))
    state, _ = read_state(path, "jsonl")
    assert state.ok == {"a"} and state.failed == {"b"} and state.records == 4
    assert state.cost_usd == pytest.approx(0.004)  # every record's spend counts toward the budget


def test_refuses_a_file_that_is_not_a_results_file(tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"prompt": "this is a prompt file"}\n')
    with pytest.raises(UserError, match="not a runner batch JSONL results file"):
        ResultsWriter(notes, "jsonl").open()
    assert notes.read_text() == '{"prompt": "this is a prompt file"}\n'  # untouched
    table = tmp_path / "t.csv"
    table.write_text("name,score\nx,1\n")
    with pytest.raises(UserError, match="not a runner batch CSV results file"):
        ResultsWriter(table, "csv").open()
    w = ResultsWriter(table, "csv")
    w.open(overwrite=True)
    w.write(rec("a"))
    w.close()
    assert read_state(table, "csv")[0].ok == {"a"}


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "out.jsonl"
    first = ResultsWriter(path, "jsonl")
    first.open()
    with pytest.raises(UserError, match="being written by another `runner batch`"):
        ResultsWriter(path, "jsonl").open()
    first.close()
    second = ResultsWriter(path, "jsonl")
    second.open()
    second.close()


def test_bad_out_paths(tmp_path):
    with pytest.raises(UserError, match="is a folder"):
        ResultsWriter(tmp_path, "jsonl").open()
    with pytest.raises(UserError, match="does not exist"):
        ResultsWriter(tmp_path / "no" / "such" / "out.jsonl", "jsonl").open()


def test_csv_keeps_costs_at_full_precision(tmp_path):
    """A resume reads the costs back into the budget: a rounded cost (seen: 0.0123456 → 0.012)
    would be money spent and not counted."""
    path = tmp_path / "out.csv"
    w = ResultsWriter(path, "csv")
    w.open()
    costs = [0.0123456789, 1.23456789e-05, 2.0000000001]
    for i, cost in enumerate(costs):
        w.write(rec(f"r{i}", cost=cost))
    w.close()
    state, _ = read_state(path, "csv")
    assert state.cost_usd == sum(costs)
    with open(path, newline="") as f:
        assert [float(r["cost_usd"]) for r in csv.DictReader(f)] == costs

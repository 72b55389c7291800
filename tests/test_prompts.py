"""Prompt files for `runner batch`: the four formats, templates, ids, and bad rows by line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.prompts import BadRow, Row, detect_format, fill, read_rows
from runner.errors import UserError


def rows_of(path: Path, **kw) -> tuple[list[Row], list[BadRow]]:
    good, bad = [], []
    for r in read_rows(path, **kw):
        (bad if isinstance(r, BadRow) else good).append(r)
    return good, bad


def test_jsonl_good_and_bad_rows(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join([
        json.dumps({"id": "greet", "prompt": "Say hello to {name}", "vars": {"name": "Ada"}, "task": "fast"}),
        json.dumps({"prompt": "Literal {braces} stay when a row has no variables", "model": "openai/gpt-4.1"}),
        "",
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "greet", "prompt": "again"}),
        json.dumps({"promt": "typo"}),
        json.dumps({"prompt": "Use {missing}", "topic": "x"}),
        json.dumps("a bare string is a prompt"),
        json.dumps({"prompt": "Files", "files": "notes.md", "system": "Be {tone}", "tone": "brief"}),
        json.dumps({"prompt": 42}),
    ]) + "\n")
    good, bad = rows_of(f)
    assert [r.prompt for r in good] == ["Say hello to Ada", "Literal {braces} stay when a row has no variables",
                                        "a bare string is a prompt", "Files"]
    assert good[0].id == "greet" and good[0].task == "fast" and good[0].line == 1
    assert good[1].model == "openai/gpt-4.1" and good[1].id.startswith("p-")
    assert good[3].files == (str(tmp_path / "notes.md"),)  # relative to the prompt file
    assert good[3].system == "Be brief"  # other keys are variables, in the system prompt too
    assert [(b.line, b.error.split(" (")[0]) for b in bad] == [
        (4, "not valid JSON"),
        (5, "a row must be a JSON object with a 'prompt'"),
        (6, "duplicate id 'greet'"),
        (7, "no prompt"),
        (8, "the template uses {missing} but this row has no such variable"),
        (11, "'prompt' must be text, not int"),
    ]
    assert "misspelt 'prompt'" in bad[3].error


def test_ids_are_stable_and_unique(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "same"}\n{"prompt": "same"}\n{"prompt": "other"}\n')
    first = [r.id for r in read_rows(f)]
    assert first == [r.id for r in read_rows(f)]  # same file, same ids: resume can find them
    assert first[1] == first[0] + "-2" and len(set(first)) == 3
    f.write_text('{"prompt": "new row on top"}\n' + f.read_text())
    assert [r.id for r in read_rows(f)][1:] == first  # ids come from content, not position


def test_yaml_list_and_defaults(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        "defaults:\n"
        "  task: fast\n"
        "  prompt: \"Capital of {country}? Answer in {lang}.\"\n"
        "  vars: {lang: English}\n"
        "prompts:\n"
        "  - vars: {country: France}\n"
        "  - id: peru\n"
        "    vars: {country: Peru, lang: Spanish}\n"
        "    model: openai/gpt-4.1\n"
        "  - 42\n"
        "  - prompt: \"Own prompt, {{literal}} braces\"\n"
        "    vars: {x: 1}\n"
        "  - prompt: \"{nope}\"\n"
    )
    good, bad = rows_of(f)
    assert [r.prompt for r in good] == ["Capital of France? Answer in English.", "Capital of Peru? Answer in Spanish.",
                                        "Own prompt, {literal} braces"]
    assert all(r.task == "fast" for r in good) and good[1].model == "openai/gpt-4.1" and good[1].id == "peru"
    assert [b.line for b in bad] == [10, 13]
    g = tmp_path / "list.yml"
    g.write_text("- Tell me a joke\n- prompt: Summarise {t}\n  vars: {t: this}\n")
    good, bad = rows_of(g)
    assert [r.prompt for r in good] == ["Tell me a joke", "Summarise this"] and not bad
    h = tmp_path / "broken.yaml"
    h.write_text("prompts: [unclosed\n")
    with pytest.raises(UserError, match=r"broken.yaml, line \d+: not valid YAML"):
        list(read_rows(h))
    k = tmp_path / "keys.yaml"
    k.write_text("defaults: {taks: fast}\nprompts: [hi]\n")
    with pytest.raises(UserError, match=r"line 1: defaults.taks: unknown key \(did you mean 'task'\?\)"):
        list(read_rows(k))


def test_csv_columns_become_variables(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text(
        'id,prompt,lang,task\r\n'
        'r1,"Translate ""good morning"" to {lang},\nkeeping the line break",French,fast\r\n'
        'r2,too,few\r\n'
        ',Say hi in {lang},German,\r\n'
        'r4,Uses {region},Dutch,\r\n'
        '\r\n'
    )
    good, bad = rows_of(f)
    assert good[0].prompt == 'Translate "good morning" to French,\nkeeping the line break'
    assert good[0].task == "fast" and good[0].line == 2
    assert good[1].prompt == "Say hi in German" and good[1].task is None and good[1].line == 5
    assert [(b.line, b.error) for b in bad][0] == (4, "3 fields, the header has 4")
    assert bad[1].line == 6 and "{region}" in bad[1].error


def test_csv_with_template_and_tsv(tmp_path):
    f = tmp_path / "words.csv"
    f.write_text("word\ncat\ndog\n")
    good, bad = rows_of(f, template="Define {word} in one line")
    assert [r.prompt for r in good] == ["Define cat in one line", "Define dog in one line"] and not bad
    good, bad = rows_of(f)
    assert not good and len(bad) == 2
    assert all(b.error.startswith("no prompt (give the row a prompt, or the command --template") for b in bad)
    t = tmp_path / "p.tsv"
    t.write_text("prompt\tmodel\nHello there\tollama/qwen2.5:7b\n")
    (row,) = rows_of(t)[0]
    assert row.prompt == "Hello there" and row.model == "ollama/qwen2.5:7b"


def test_text_paragraphs(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("First prompt\nspans two lines {literally}\n\n\n\nSecond prompt\n   \nThird\n")
    good, bad = rows_of(f)
    assert [(r.line, r.prompt) for r in good] == [(1, "First prompt\nspans two lines {literally}"),
                                                  (6, "Second prompt"), (8, "Third")]
    assert not bad


def test_format_detection_and_file_errors(tmp_path):
    assert detect_format(Path("a.jsonl")) == "jsonl" and detect_format(Path("a.YML")) == "yaml"
    assert detect_format(Path("a.csv")) == "csv" and detect_format(Path("notes")) == "text"
    assert detect_format(Path("a.txt"), "jsonl") == "jsonl"
    with pytest.raises(UserError, match="unknown prompt file format 'xml'"):
        detect_format(Path("a.txt"), "xml")
    with pytest.raises(UserError, match="no such file"):
        list(read_rows(tmp_path / "missing.jsonl"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        list(read_rows(tmp_path / "latin1.txt"))


def test_fill():
    assert fill("{a} and {{a}} and {b.c}", {"a": 1, "b.c": True}) == "1 and {a} and true"
    with pytest.raises(KeyError):
        fill("{zzz}", {"a": 1})
    assert fill('{"json": "not a placeholder"}', {"a": 1}) == '{"json": "not a placeholder"}'


def test_shipped_examples_are_valid():
    root = Path(__file__).resolve().parents[1] / "prompts"
    examples = {"questions.jsonl": None, "review.yaml": None, "ideas.txt": None,
                "translate.csv": "Translate into {language}: {text}"}
    for name, template in examples.items():
        good, bad = rows_of(root / name, template=template)
        assert good and not bad, (name, bad)
    (private,) = [r for r in rows_of(root / "questions.jsonl")[0] if r.files]
    assert Path(private.files[0]).is_file()

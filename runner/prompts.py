"""Prompt files for `runner batch`: JSONL, YAML, CSV and plain text, read as a stream of rows.

Every format yields the same `Row` (id, prompt, task, model, system, files) or a `BadRow` (the
line number and why), in file order, without holding the file's rows in memory (YAML excepted:
it is parsed whole, and YAML files are small).

- JSONL: one object per line with `prompt` and optional `id`, `task`, `model`, `system`,
  `files` (a path or a list), `vars` (a mapping). Other keys become variables too (`vars` wins).
  A line holding a JSON string is a prompt on its own. Blank lines are skipped.
- YAML: a list of such objects (or of plain strings), or a mapping with `defaults:` (the same
  keys, inherited by every row; `vars` merge) and `prompts:` (the list). A `prompt` in
  `defaults` is the template for rows that have none.
- CSV (TSV for .tsv): a header row; the `prompt` column is the prompt, the `id`, `task`,
  `model`, `system` and `files` (paths separated by `;`) columns set those fields, every other
  column is a variable.
- Text: one prompt per paragraph (paragraphs are separated by blank lines), taken literally.

Templates: when a row has variables, `{name}` in its prompt and system is replaced by the value,
`{{` and `}}` stand for literal braces, and a `{name}` with no value makes the row bad. A row
without variables is taken literally, braces and all.

Ids: a row without an `id` gets `p-` + 12 hex digits of a hash of its own content (prompt after
templating, system, task, model, files), so the id is the same on every run and resume finds it.
Identical rows get `-2`, `-3`… suffixes in file order. Two rows with the same explicit id: the
second is bad.

Relative paths in `files` are resolved against the prompt file's folder.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError

FORMATS = ("jsonl", "yaml", "csv", "tsv", "text")
ROW_KEYS = ("id", "prompt", "task", "model", "system", "files", "vars")
_ROW_KEYS = frozenset(ROW_KEYS)
_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".yaml": "yaml", ".yml": "yaml",
           ".csv": "csv", ".tsv": "tsv", ".txt": "text", ".md": "text", ".text": "text", ".prompts": "text"}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


@dataclass(frozen=True)
class Row:
    id: str
    line: int
    prompt: str
    task: str | None = None
    model: str | None = None
    system: str | None = None
    files: tuple[str, ...] = ()  # resolved paths


@dataclass(frozen=True)
class BadRow:
    line: int
    error: str
    id: str | None = None


@dataclass
class _Raw:
    """A row as written, before templating, defaults and ids."""

    line: int
    data: dict[str, Any]
    extra_vars: dict[str, Any] = field(default_factory=dict)


def detect_format(path: Path, given: str | None = None) -> str:
    if given:
        given = given.lower()
        given = {"txt": "text", "ndjson": "jsonl", "yml": "yaml"}.get(given, given)
        if given not in FORMATS:
            raise UserError(f"unknown prompt file format '{given}'; use one of: {', '.join(FORMATS)}")
        return given
    return _SUFFIX.get(path.suffix.lower(), "text")


def read_rows(path: Path, fmt: str | None = None, *, template: str | None = None) -> Iterator[Row | BadRow]:
    """Stream the rows of a prompt file. `template` is the prompt of rows that have none.

    Raises UserError only for problems with the whole file (missing, unreadable, not UTF-8, a
    YAML syntax error); a problem with one row is a BadRow and the rest still come.
    """
    fmt = detect_format(path, fmt)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a prompt file (JSONL, YAML, CSV or text)")
    base = path.parent
    defaults: dict[str, Any] = {}
    if fmt == "yaml":
        raws, defaults = _yaml_raws(path)
    elif fmt == "jsonl":
        raws = _jsonl_raws(path)
    elif fmt in ("csv", "tsv"):
        raws = _csv_raws(path, "\t" if fmt == "tsv" else ",")
    else:
        raws = _text_raws(path)
    if template is not None and "prompt" not in defaults:
        defaults = {**defaults, "prompt": template}
    ids = _Ids()
    try:
        for raw in raws:
            yield _finish(raw, defaults, base, ids)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


# --- per format: raw rows ---------------------------------------------------------------


def _open_text(path: Path, newline: str | None = None):
    try:
        return open(path, encoding="utf-8-sig", newline=newline)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def _jsonl_raws(path: Path) -> Iterator[_Raw | BadRow]:
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            try:
                data = json.loads(text)
            except ValueError as exc:
                yield BadRow(n, f"not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            if isinstance(data, str):
                data = {"prompt": data}
            if not isinstance(data, dict):
                yield BadRow(n, "a row must be a JSON object with a 'prompt' (or a JSON string)")
                continue
            yield _Raw(n, data)


def _csv_raws(path: Path, delimiter: str) -> Iterator[_Raw | BadRow]:
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))  # long prompts in one cell
    with _open_text(path, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        start = 1
        header: list[str] | None = None
        try:
            for record in reader:
                line, start = start, reader.line_num + 1  # where this record began; the next one begins after it
                if header is None:
                    if not any(c.strip() for c in record):
                        continue
                    # Without a prompt column, --template supplies the prompt.
                    header = [h.lower() if h.lower() in ROW_KEYS else h for h in (c.strip() for c in record)]
                    dup = _first_duplicate(header)
                    if dup:
                        raise UserError(f"{path}, line {line}: the column '{dup}' appears twice in the header")
                    continue
                if not any(c.strip() for c in record):
                    continue
                if len(record) != len(header):
                    yield BadRow(line, f"{len(record)} fields, the header has {len(header)}")
                    continue
                data: dict[str, Any] = {}
                extra: dict[str, Any] = {}
                for key, value in zip(header, record):
                    if key in ROW_KEYS and key != "vars":
                        if key == "files":
                            value = [p.strip() for p in value.split(";") if p.strip()]
                        if value != "" and value != []:
                            data[key] = value
                    else:
                        extra[key] = value
                yield _Raw(line, data, extra)
        except csv.Error as exc:
            yield BadRow(reader.line_num, f"not valid CSV ({exc}); the rest of the file is skipped")


def _first_duplicate(items: list[str]) -> str | None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _text_raws(path: Path) -> Iterator[_Raw]:
    with _open_text(path) as f:
        para: list[str] = []
        first = 0
        for n, line in enumerate(f, 1):
            if line.strip():
                if not para:
                    first = n
                para.append(line.rstrip("\r\n"))
            elif para:
                yield _Raw(first, {"prompt": "\n".join(para).strip(), "_literal": True})
                para = []
        if para:
            yield _Raw(first, {"prompt": "\n".join(para).strip(), "_literal": True})


def _yaml_raws(path: Path) -> tuple[list[_Raw | BadRow], dict[str, Any]]:
    from .yamlfile import load_yaml

    doc = load_yaml(path)
    data = doc.data
    defaults: dict[str, Any] = {}
    items_path: tuple = ()
    if isinstance(data, dict):
        unknown = [k for k in data if k not in ("defaults", "prompts")]
        if unknown:
            raise doc.error((unknown[0],), "unknown key; a prompt file holds 'defaults' and 'prompts' (or is a list)")
        if "prompts" not in data:
            raise doc.error((), "missing 'prompts': the list of prompts")
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise doc.error(("defaults",), "must be a mapping (task, model, system, files, vars, prompt)")
        bad = [k for k in defaults if k not in ROW_KEYS or k == "id"]
        if bad:
            raise doc.error(("defaults", bad[0]), "unknown key" + _hint(bad[0], [k for k in ROW_KEYS if k != "id"]))
        err = _check_fields(defaults)
        if err:
            raise doc.error(("defaults",), err)
        items_path = ("prompts",)
        data = data["prompts"]
    elif data is None:
        data = []
    if not isinstance(data, list):
        raise doc.error(items_path, "must be a list of prompts")
    raws: list[_Raw | BadRow] = []
    for i, item in enumerate(data):
        line = doc.line(items_path + (i,)) or 0
        if isinstance(item, str):
            item = {"prompt": item}
        if not isinstance(item, dict):
            raws.append(BadRow(line, "a prompt must be text or a mapping with 'prompt'"))
            continue
        raws.append(_Raw(line, item))
    return raws, defaults


# --- from raw to Row --------------------------------------------------------------------


def _hint(key: str, choices) -> str:
    near = difflib.get_close_matches(str(key), list(choices), n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def _check_fields(data: dict[str, Any]) -> str | None:
    for key in ("prompt", "task", "model", "system"):
        v = data.get(key)
        if v is not None and not isinstance(v, str):
            return f"'{key}' must be text, not {type(v).__name__}"
    files = data.get("files")
    if files is not None and not isinstance(files, str) and not (
            isinstance(files, list) and all(isinstance(f, str) for f in files)):
        return "'files' must be a path or a list of paths"
    v = data.get("vars")
    if v is not None and not isinstance(v, dict):
        return "'vars' must be a mapping of names to values"
    rid = data.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int))):
        return "'id' must be text or a number"
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def fill(template: str, variables: dict[str, Any]) -> str:
    """Replace `{name}` with its value; `{{`/`}}` are literal braces. Unknown names raise KeyError."""
    missing: list[str] = []

    def sub(m: re.Match) -> str:
        whole = m.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        name = m.group(1)
        if name in variables:
            return _text(variables[name])
        missing.append(name)
        return whole

    out = _PLACEHOLDER.sub(sub, template)
    if missing:
        raise KeyError(missing[0])
    return out


class _Ids:
    def __init__(self) -> None:
        self.explicit: dict[str, int] = {}  # id → line
        self.derived: dict[str, int] = {}  # hash id → times seen

    def explicit_id(self, rid: str, line: int) -> str | None:
        first = self.explicit.get(rid)
        if first is not None:
            return f"duplicate id '{rid}' (first on line {first})"
        self.explicit[rid] = line
        return None

    def derived_id(self, content: str) -> str:
        base = "p-" + hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        n = self.derived.get(base, 0) + 1
        self.derived[base] = n
        return base if n == 1 else f"{base}-{n}"


def _finish(raw: _Raw | BadRow, defaults: dict[str, Any], base: Path, ids: _Ids) -> Row | BadRow:
    if isinstance(raw, BadRow):
        return raw
    data = raw.data
    literal = bool(data.pop("_literal", False))
    err = _check_fields(data)
    rid = data.get("id")
    rid = None if rid is None else str(rid).strip() or None
    if err:
        return BadRow(raw.line, err, rid)
    variables: dict[str, Any] = {}
    if not literal:  # later ones win: the defaults' vars, other CSV columns, other keys, the row's vars
        if defaults.get("vars"):
            variables.update(defaults["vars"])
        if raw.extra_vars:
            variables.update(raw.extra_vars)
        if not _ROW_KEYS.issuperset(data):
            variables.update({k: v for k, v in data.items() if k not in _ROW_KEYS})
        if data.get("vars"):
            variables.update(data["vars"])
    prompt = data.get("prompt")
    if prompt is None:
        prompt = defaults.get("prompt")
    if prompt is None or not str(prompt).strip():
        near = [k for k in data if k not in ROW_KEYS and difflib.get_close_matches(k, ["prompt"], n=1)]
        hint = (f" (is '{near[0]}' a misspelt 'prompt'?)" if near
                else " (give the row a prompt, or the command --template \"… {column} …\")" if raw.extra_vars or data else "")
        return BadRow(raw.line, "no prompt" + hint, rid)
    system = data.get("system", defaults.get("system"))
    if variables:
        try:
            prompt = fill(prompt, variables)
            system = fill(system, variables) if system else system
        except KeyError as exc:
            names = ", ".join(sorted(map(str, variables))) or "none"
            return BadRow(raw.line, f"the template uses {{{exc.args[0]}}} but this row has no such variable (it has: {names})", rid)
    prompt = prompt.strip()
    task = data.get("task", defaults.get("task")) or None
    model = data.get("model", defaults.get("model")) or None
    files = data.get("files", defaults.get("files")) or []
    if isinstance(files, str):
        files = [files]
    resolved = tuple(str(p if (p := Path(f).expanduser()).is_absolute() else base / p) for f in files) if files else ()
    if rid is not None:
        dup = ids.explicit_id(rid, raw.line)
        if dup:
            return BadRow(raw.line, dup, rid)
    else:
        content = json.dumps([prompt, system, data.get("task"), data.get("model"), list(files)], ensure_ascii=False)
        rid = ids.derived_id(content)
    return Row(rid, raw.line, prompt, task, model, system, resolved)

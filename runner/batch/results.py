"""The results file of `runner batch`: one complete record per finished row, safe to kill.

Writing: each record is encoded in full, then handed to the OS with `os.write` on an unbuffered
descriptor opened for append, so the file only ever grows by whole lines. Data handed to the OS
survives the death of the process (even `kill -9`); only a power cut can lose it, so the file is
also fsync'ed at most once a second and on close rather than after every line.

Reading back (resume): the last line is complete only if it ends with a newline; a torn tail
(the process died inside a write) is cut off before anything is appended. For CSV a record is
complete when it parses with every column and ends with its line terminator, so answers that
hold newlines (quoted by the csv module) are handled too.

The rule for readers: **the last record of an id wins.** A resume appends a new record for each
row it re-runs (only failed rows are re-run), and when the run ends the file is compacted —
rewritten to a temporary file and renamed over the original, atomically — so that each id
appears exactly once. A file read mid-run or after a kill may still hold an older failed record
of an id followed by its newer one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import UserError

FIELDS = ("id", "ok", "model", "task", "finish_reason", "text", "thinking", "input_tokens", "output_tokens",
          "tokens_estimated", "ttft_ms", "latency_ms", "tokens_per_s", "cost_usd", "error",
          "attempts", "run_id", "batch_id", "time", "fingerprint", "deferred", "job_id")
CSV_FIELDS = tuple(f for f in FIELDS if f != "attempts")
FSYNC_EVERY_S = 1.0
WRITE_BYTES = 256 * 1024  # lines gathered into one write (of whole lines) up to this size


@dataclass
class ResumeState:
    """What an existing results file says: which ids are answered, what was spent."""

    ok: set[str] = field(default_factory=set)  # ids whose last record is a success
    failed: set[str] = field(default_factory=set)  # ids whose last record is a failure
    # id → what its answer was asked with (Batch.fingerprint); None in files from before it was written
    fingerprints: dict[str, str | None] = field(default_factory=dict)
    header: list[str] | None = None  # a CSV file's own columns: appended records keep to them
    job_of: dict[str, str] = field(default_factory=dict)  # id → the provider batch job of its last line
    records: int = 0
    cost_usd: float = 0.0  # every record's known cost, superseded ones included: it was spent
    batch_id: str | None = None
    torn_bytes: int = 0  # a torn tail that was (or will be) cut off
    corrupt: int = 0  # complete lines that could not be read (kept, ignored)

    @property
    def ids(self) -> int:
        return len(self.ok) + len(self.failed)

    def add(self, rid: str, ok: bool, cost: Any, batch_id: Any, fingerprint: Any = None, job_id: Any = None) -> None:
        self.records += 1
        if job_id:  # the provider batch job its last line came from (runner batch --deferred)
            self.job_of[rid] = str(job_id)
        elif self.job_of:
            self.job_of.pop(rid, None)
        if ok:
            self.failed.discard(rid)
            self.ok.add(rid)
            self.fingerprints[rid] = str(fingerprint) if fingerprint else None
        else:
            self.ok.discard(rid)
            self.failed.add(rid)
            self.fingerprints.pop(rid, None)
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            self.cost_usd += float(cost)
        if batch_id:
            self.batch_id = str(batch_id)


def output_format(path: str | None, given: str | None) -> str:
    if given:
        fmt = given.lower()
        if fmt not in ("jsonl", "csv"):
            raise UserError(f"unknown --format '{given}'; use jsonl or csv")
        return fmt
    if path and path != "-" and Path(path).suffix.lower() == ".csv":
        return "csv"
    return "jsonl"


# --- encoding ---------------------------------------------------------------------------


def json_encoder(**options: Any) -> Callable[[Any], str]:
    """`json.dumps(obj, **options)` for many objects: the encoder is built once, not per call (a
    tenth of the cost of a results line). Without circular checks: what it encodes is built fresh."""
    enc = json.JSONEncoder(check_circular=False, **options)
    if c_make_encoder is None or enc.indent is not None:
        return enc.encode
    encode = c_make_encoder(None, enc.default, encode_basestring_ascii if enc.ensure_ascii else encode_basestring,
                            None, enc.key_separator, enc.item_separator, enc.sort_keys, enc.skipkeys, enc.allow_nan)
    return lambda obj: "".join(encode(obj, 0))


# ensure_ascii keeps the line free of raw U+2028 and friends that some readers split on.
_jsonl = json_encoder(ensure_ascii=True, separators=(",", ":"))


def encode_jsonl(record: dict[str, Any]) -> bytes:
    return (_jsonl(record) + "\n").encode()


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        # Full precision: a resume reads costs back into the budget, and rounding them lies.
        return repr(v)
    return v


def encode_csv(record: dict[str, Any], header: bool = False, fields: tuple[str, ...] | list[str] = CSV_FIELDS) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    if header:
        w.writerow(fields)
    w.writerow([_csv_value(record.get(k)) for k in fields])
    return buf.getvalue().encode("utf-8", "replace")


# --- reading ----------------------------------------------------------------------------


def check_out_path(path: Path) -> None:
    """A results path a user can fix: a folder, or a folder that does not exist."""
    if path.is_dir():
        raise UserError(f"--out {path} is a folder; give a file name such as {path / 'results.jsonl'}")
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: the folder {path.parent} does not exist")


def read_state(path: Path, fmt: str) -> tuple[ResumeState, int]:
    """Read an existing results file; returns the state and the byte length of its complete part."""
    state = ResumeState()
    try:
        if not path.exists() or path.stat().st_size == 0:
            return state, 0
        reader = _read_csv if fmt == "csv" else _read_jsonl
        good = 0
        for rec, end in reader(path, state):
            good = end
            state.add(rec["id"], rec["ok"], rec.get("cost_usd"), rec.get("batch_id"), rec.get("fingerprint"),
                      rec.get("job_id"))
        state.torn_bytes = path.stat().st_size - good
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    return state, good


def _not_ours(path: Path, fmt: str) -> UserError:
    return UserError(f"{path} exists and is not a runner batch {fmt.upper()} results file; "
                     "choose another --out (or pass --overwrite to replace it)")


def _read_jsonl(path: Path, state: ResumeState) -> Iterator[tuple[dict, int]]:
    pos = 0
    first = True
    with open(path, "rb") as f:
        for raw in f:
            end = pos + len(raw)
            if not raw.endswith(b"\n"):
                return  # torn tail
            pos = end
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or "ok" not in rec:
                    raise ValueError
            except ValueError:
                if first:
                    raise _not_ours(path, "jsonl") from None
                state.corrupt += 1
                continue
            first = False
            rec["ok"] = bool(rec["ok"])
            yield rec, end


def _read_csv(path: Path, state: ResumeState) -> Iterator[tuple[dict, int]]:
    size = path.stat().st_size
    consumed = 0
    complete_line = True

    def lines(f) -> Iterator[str]:
        nonlocal consumed, complete_line
        for line in f:
            consumed += len(line.encode("utf-8", "surrogatepass"))
            complete_line = line.endswith("\n")
            yield line

    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))
    with open(path, encoding="utf-8", newline="", errors="surrogateescape") as f:
        reader = csv.reader(lines(f), strict=True)
        header: list[str] | None = None
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error:
                if consumed >= size:
                    return  # EOF inside a quoted field: a torn tail
                raise UserError(f"{path}, line {reader.line_num}: not valid CSV; fix or move the file") from None
            if not complete_line:
                return  # the last record lost its line end: torn
            if header is None:
                if "id" not in rec or "ok" not in rec:
                    raise _not_ours(path, "csv")
                header = state.header = rec
                continue
            if len(rec) != len(header):
                if consumed >= size:
                    return
                state.corrupt += 1
                continue
            row = dict(zip(header, rec))
            cost = row.get("cost_usd") or None
            try:
                cost = float(cost) if cost is not None else None
            except ValueError:
                cost = None
            yield {"id": row["id"], "ok": row["ok"] == "true", "cost_usd": cost,
                   "batch_id": row.get("batch_id"), "fingerprint": row.get("fingerprint"),
                   "job_id": row.get("job_id")}, consumed


# --- writing ----------------------------------------------------------------------------


class ResultsWriter:
    """Appends complete records to a results file (or standard output for `--out -`)."""

    def __init__(self, path: Path | None, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.fd: int | None = None
        self._own_fd = False
        self._need_header = False
        self._last_sync = time.monotonic()
        self._lock_file = None
        self.written = 0
        self.fields: tuple[str, ...] | list[str] = CSV_FIELDS

    @property
    def shown(self) -> str:
        return "standard output" if self.path is None else str(self.path)

    def open(self, *, overwrite: bool = False) -> ResumeState:
        """Lock, read back what is there (unless overwriting), cut a torn tail, open for append."""
        if self.path is None:
            self._need_header = self.fmt == "csv"
            return ResumeState()
        path = self.path
        check_out_path(path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
        _lock(fd, path)
        try:
            _remove_stale_tmp(path)
            if overwrite:
                os.ftruncate(fd, 0)
                state, good = ResumeState(), 0
            else:
                state, good = read_state(path, self.fmt)
                if state.torn_bytes:
                    os.ftruncate(fd, good)  # drop the half-written last record
        except BaseException:
            os.close(fd)
            raise
        self.fd, self._own_fd = fd, True
        self._need_header = self.fmt == "csv" and good == 0
        if state.header and good:  # a file from an older runner keeps its columns
            self.fields = [f for f in state.header]
        return state

    def write(self, record: dict[str, Any]) -> None:
        """One complete record, in one write; returns once the OS has it."""
        self.write_many([record])

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """Complete records, in order, a few hundred kB per write (whole lines only); returns
        once the OS has them. An OSError tells in `records_written` how many got out whole."""
        done = 0
        try:
            if self.path is None:  # standard output: whole lines, flushed as they come
                for record in records:
                    sys.stdout.write(self._encode(record).decode("utf-8"))
                    sys.stdout.flush()
                    self.written += 1
                    done += 1
                return
            assert self.fd is not None
            pending: list[bytes] = []
            size = 0
            for record in records:
                pending.append(self._encode(record))
                size += len(pending[-1])
                if size >= WRITE_BYTES:
                    done += self._write_whole(pending)
                    pending, size = [], 0
            if pending:
                done += self._write_whole(pending)
        except OSError as exc:
            exc.records_written = done + getattr(exc, "records_written", 0)  # type: ignore[attr-defined]
            raise
        if self._own_fd:
            now = time.monotonic()
            if now - self._last_sync >= FSYNC_EVERY_S:
                _sync(self.fd)
                self._last_sync = now

    def _write_whole(self, lines: list[bytes]) -> int:
        try:
            _write_all(self.fd, lines[0] if len(lines) == 1 else b"".join(lines))
        except OSError as exc:
            whole, left = 0, getattr(exc, "bytes_written", 0)
            while whole < len(lines) and len(lines[whole]) <= left:
                left -= len(lines[whole])
                whole += 1
            self.written += whole
            exc.records_written = whole  # type: ignore[attr-defined]
            raise
        self.written += len(lines)
        return len(lines)

    def _encode(self, record: dict[str, Any]) -> bytes:
        if self.fmt == "csv":
            data = encode_csv(record, header=self._need_header, fields=self.fields)
            self._need_header = False
            return data
        return encode_jsonl(record)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None and self._own_fd:
            try:
                _sync(fd)
            finally:
                os.close(fd)  # also releases the lock

    def compact(self) -> int:
        """Rewrite the file keeping only the last record of each id; returns records dropped."""
        assert self.path is not None and self.fd is not None
        path = self.path
        last: dict[str, int] = {}
        spans: list[tuple[int, int]] = []  # byte span of every record, in order
        header_end = 0
        for rid, start, end, is_header in _record_spans(path, self.fmt):
            if is_header:
                header_end = end
                continue
            last[rid] = len(spans)
            spans.append((start, end))
        keep = set(last.values())
        if len(keep) == len(spans):
            return 0
        tmp = _tmp_path(path)
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            if header_end:
                dst.write(src.read(header_end))
            for i, (start, end) in enumerate(spans):
                if i in keep:
                    src.seek(start)
                    dst.write(src.read(end - start))
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, path)
        # Keep appending (and holding the lock) on the new file.
        old = self.fd
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND)
        _lock(self.fd, path)
        os.close(old)
        return len(spans) - len(keep)


def _record_spans(path: Path, fmt: str) -> Iterator[tuple[str, int, int, bool]]:
    """(id, start, end, is_header) for every complete record, in file order."""
    if fmt == "jsonl":
        pos = 0
        with open(path, "rb") as f:
            for raw in f:
                start, pos = pos, pos + len(raw)
                if not raw.endswith(b"\n") or not raw.strip():
                    continue
                try:
                    rid = json.loads(raw)["id"]
                except (ValueError, KeyError, TypeError):
                    rid = f"\0corrupt{start}"  # kept as is
                yield str(rid), start, pos, False
        return
    consumed = 0

    def lines(f) -> Iterator[str]:
        nonlocal consumed
        for line in f:
            consumed += len(line.encode("utf-8", "surrogatepass"))
            yield line

    with open(path, encoding="utf-8", newline="", errors="surrogateescape") as f:
        reader = csv.reader(lines(f), strict=True)
        start = 0
        header = None
        for rec in reader:
            if header is None:
                header = rec
                yield "", 0, consumed, True
            else:
                rid = rec[header.index("id")] if len(rec) == len(header) else f"\0corrupt{start}"
                yield rid, start, consumed, False
            start = consumed


def _sync(fd: int) -> None:
    """Against power loss only (a killed process loses nothing the OS has); a pipe or a device
    that cannot fsync is no reason to fail."""
    try:
        os.fsync(fd)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    """All of `data`; an OSError says in `bytes_written` how much of it was written first."""
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as exc:
        exc.bytes_written = len(data) - len(view)  # type: ignore[attr-defined]
        raise


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.compact.tmp")


def _remove_stale_tmp(path: Path) -> None:
    try:
        _tmp_path(path).unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"{path} is being written by another `runner batch`; wait for it or choose another --out") from None

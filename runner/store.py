"""The run log: SQLite under $RUNNER_HOME, WAL, versioned schema.

A *run* is one answer a user asked for (one `ask`, one batch row, one compare cell); each
*attempt* is one call to one model on the way to it (retries, fallbacks, long-doc chunks).
Prompts and answers are stored; API keys never reach this module.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .errors import UserError

SCHEMA_VERSION = 2

_MIGRATIONS = {
    1: """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        kind TEXT NOT NULL,             -- ask | batch | compare | judge
        group_id TEXT,                  -- batch id or comparison id
        item_id TEXT,                   -- batch row id, compare cell
        task TEXT,
        model TEXT,                     -- provider/model that answered
        outcome TEXT NOT NULL,          -- running | ok | failed
        error TEXT,
        prompt TEXT,
        system TEXT,
        files TEXT,                     -- JSON list of file names
        text TEXT,
        thinking TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        tokens_estimated INTEGER NOT NULL DEFAULT 0,
        est_input_tokens INTEGER,
        ttft_ms REAL,
        latency_ms REAL,
        tokens_per_s REAL,
        cost_usd REAL,
        chunks INTEGER                  -- long documents split into this many parts
    );
    CREATE INDEX runs_group ON runs(group_id);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        time TEXT NOT NULL,
        part TEXT,                      -- long-doc: "chunk 3/8" or "combine"
        model TEXT NOT NULL,
        outcome TEXT NOT NULL,          -- ok | failed
        error TEXT,
        error_kind TEXT,
        finish_reason TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        tokens_estimated INTEGER NOT NULL DEFAULT 0,
        est_input_tokens INTEGER,
        num_ctx INTEGER,
        ttft_ms REAL,
        latency_ms REAL,
        tokens_per_s REAL,
        cost_usd REAL
    );
    CREATE INDEX attempts_run ON attempts(run_id);
    """,
    # v2: the protocol's finish reason on the run; per attempt the time waiting for a slot, the
    # first answer token (after any thinking), cache tokens, the host that served it, the kind of
    # text (what the estimate learns per), and deferred (provider batch) calls; who asked (serve).
    2: """
    ALTER TABLE runs ADD COLUMN finish_reason TEXT;
    ALTER TABLE runs ADD COLUMN client TEXT;
    ALTER TABLE attempts ADD COLUMN queue_ms REAL;
    ALTER TABLE attempts ADD COLUMN answer_ms REAL;
    ALTER TABLE attempts ADD COLUMN cache_read_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN cache_write_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN host TEXT;
    ALTER TABLE attempts ADD COLUMN text_kind TEXT;
    ALTER TABLE attempts ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE attempts ADD COLUMN job_id TEXT;
    ALTER TABLE attempts ADD COLUMN submitted_at TEXT;
    ALTER TABLE attempts ADD COLUMN completed_at TEXT;
    CREATE INDEX runs_kind ON runs(kind);
    """,
}

ATTEMPT_COLUMNS = (
    "part", "model", "outcome", "error", "error_kind", "finish_reason", "input_tokens", "output_tokens",
    "tokens_estimated", "est_input_tokens", "num_ctx", "ttft_ms", "latency_ms", "tokens_per_s", "cost_usd",
    "queue_ms", "answer_ms", "cache_read_tokens", "cache_write_tokens", "host", "text_kind", "deferred", "job_id",
    "submitted_at", "completed_at",
)
_ZERO_DEFAULT = ("tokens_estimated", "deferred")


_last_iso: tuple[int, str] = (-1, "")  # (millisecond, its text)


def now_iso() -> str:
    # Formatting costs 30 times reading the clock, and collecting writes many lines a millisecond.
    global _last_iso
    t = time.time()
    ms = int(t * 1000)
    last = _last_iso
    if last[0] != ms:
        last = _last_iso = (ms, datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds"))
    return last[1]


BUSY_TIMEOUT_S = 30.0
TABLES = ("runs", "attempts")


def _usable(method):
    """A broken, locked or unwritable run log ends as one sentence naming the file."""

    @functools.wraps(method)
    def wrapper(self: "Store", *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            raise log_error(self.path, exc) from None

    return wrapper


def log_error(path: Path, exc: BaseException) -> UserError:
    """The one-line message for a run log that cannot be used."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, OSError) and not isinstance(exc, sqlite3.Error):
        return UserError(f"cannot use the run log {path}: {exc.strerror or text}")
    if "not a database" in low or "file is encrypted" in low:
        return UserError(f"the run log {path} is not a SQLite database (move it away to start a new one)")
    if "malformed" in low or "no such table" in low or "no such column" in low:
        return UserError(f"the run log {path} is damaged ({text}); move it away to start a new one")
    if "locked" in low or "busy" in low:
        return UserError(f"the run log {path} is locked by another process; try again when it is done")
    if "readonly" in low or "read-only" in low:
        return UserError(f"cannot write the run log {path}: it is read-only")
    if "unable to open" in low:
        return UserError(f"cannot open the run log {path} (check that its folder exists and is writable)")
    if "disk is full" in low or "disk i/o" in low:
        return UserError(f"cannot write the run log {path}: {text}")
    return UserError(f"cannot use the run log {path}: {text}")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None
        try:
            if path.parent.exists() and not path.parent.is_dir():
                raise UserError(f"cannot create the run log {path}: {path.parent} is a file, not a folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                raise UserError(f"the run log {path} is a folder, not a file (move it away to start a new one)")
            self.db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._migrate()
            self._use_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            self._check_tables()
        except UserError:
            self._close_quietly()
            raise
        except (sqlite3.Error, OSError) as exc:
            self._close_quietly()
            raise log_error(path, exc) from None

    def _close_quietly(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except sqlite3.Error:
                pass
            self.db = None

    def _migrate(self) -> None:
        if self._version() >= SCHEMA_VERSION:
            return
        # Several processes may open a brand-new log at once: BEGIN IMMEDIATE serialises them
        # (each waits up to the busy timeout), and the version is read again under that lock,
        # so a migration another process has just applied is skipped, not run twice.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self._version()
            for target in range(version + 1, SCHEMA_VERSION + 1):
                # executescript() would commit mid-migration; run the statements one by one.
                for stmt in _MIGRATIONS[target].split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version={target}")
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _version(self) -> int:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UserError(f"the run log {self.path} was written by a newer runner (schema {version}); upgrade runner")
        return version

    def _use_wal(self) -> None:
        """Switch to WAL (persistent: once per file). The switch needs the file to itself and
        SQLite may refuse it at once, busy timeout or not, while another process reads: retry."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.005
        while True:
            try:
                mode = self.db.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() == "wal" or self.path.name == ":memory:":
                    return
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def _check_tables(self) -> None:
        names = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in TABLES if t not in names]
        if missing:
            raise UserError(f"the run log {self.path} is damaged (no {' or '.join(missing)} table); "
                            "move it away to start a new one")

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    # --- writing --------------------------------------------------------------------------

    @_usable
    def start_run(self, *, kind: str, task: str | None, prompt: str, system: str | None,
                  files: Iterable[str] = (), group_id: str | None = None, item_id: str | None = None,
                  est_input_tokens: int | None = None, client: str | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (time, kind, group_id, item_id, task, outcome, prompt, system, files, est_input_tokens,"
            " client) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (now_iso(), kind, group_id, item_id, task, prompt, system, json.dumps(list(files)), est_input_tokens,
             client),
        )
        return int(cur.lastrowid)

    @_usable
    def add_attempt(self, run_id: int, rec: dict[str, Any]) -> None:
        cols = ATTEMPT_COLUMNS
        self.db.execute(
            f"INSERT INTO attempts (run_id, time, {', '.join(cols)}) VALUES (?, ?, {', '.join('?' * len(cols))})",
            (run_id, rec.get("time") or now_iso(), *[_plain(rec.get(c, 0 if c in _ZERO_DEFAULT else None)) for c in cols]),
        )

    @_usable
    def finish_run(self, run_id: int, result: dict[str, Any]) -> None:
        cols = ("model", "outcome", "error", "text", "thinking", "input_tokens", "output_tokens",
                "tokens_estimated", "ttft_ms", "latency_ms", "tokens_per_s", "cost_usd", "chunks", "finish_reason")
        self.db.execute(
            f"UPDATE runs SET {', '.join(c + ' = ?' for c in cols)} WHERE id = ?",
            (*[_plain(result.get(c, 0 if c == "tokens_estimated" else None)) for c in cols], run_id),
        )

    _RUN_COLUMNS = ("kind", "group_id", "item_id", "task", "model", "outcome", "error", "prompt", "system", "files",
                    "text", "thinking", "input_tokens", "output_tokens", "tokens_estimated", "est_input_tokens",
                    "ttft_ms", "latency_ms", "tokens_per_s", "cost_usd", "chunks", "finish_reason", "client")

    @_usable
    def add_runs(self, runs: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> list[int]:
        """Many finished runs at once, one attempt each (a provider batch's rows, collected):
        one transaction, ids in order. Each run dict has the columns of start_run + finish_run
        (`files` a list); far cheaper than three statements a row."""
        if not runs:
            return []
        cols = self._RUN_COLUMNS
        self.db.execute("BEGIN IMMEDIATE")
        try:
            first = int(self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM runs").fetchone()[0])
            ids = list(range(first, first + len(runs)))
            now = now_iso()
            # sqlite3 stores a bool as 0/1 and a StrEnum as its text: no _plain needed here.
            given = set().union(*runs)  # a column no run names is NULL in all of them
            run_cols = [c for c in cols if c not in ("files", "tokens_estimated") and c in given]
            _insert_many(self.db, "runs", ("id", "time", "files", "tokens_estimated", *run_cols),
                         [(i, r.get("time") or now, json.dumps(list(r["files"])) if r.get("files") else "[]",
                           r.get("tokens_estimated") or 0, *map(r.get, run_cols)) for i, r in zip(ids, runs)])
            given = set().union(*attempts)
            att_cols = [c for c in ATTEMPT_COLUMNS if c not in _ZERO_DEFAULT and c in given]
            _insert_many(self.db, "attempts", ("run_id", "time", *_ZERO_DEFAULT, *att_cols),
                         [(i, a.get("time") or now, *[a.get(c) or 0 for c in _ZERO_DEFAULT], *map(a.get, att_cols))
                          for i, a in zip(ids, attempts)])
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return ids

    @_usable
    def deferred_runs(self, job_id: str) -> dict[str, int]:
        """item id → run id of the runs already logged from one provider batch job, so that
        collecting the job again (after a kill) logs none of them twice."""
        rows = self.db.execute("SELECT r.item_id, r.id FROM attempts a JOIN runs r ON r.id = a.run_id"
                               " WHERE a.job_id = ? AND a.deferred = 1", (job_id,))
        return {r[0]: int(r[1]) for r in rows}

    @_usable
    def close_interrupted(self, group_id: str, error: str) -> int:
        """Close the runs of a batch that a killed process left `running`, with what the log knows
        of them (the last model tried, the cost of the attempts it recorded); returns how many."""
        cur = self.db.execute(
            "UPDATE runs SET outcome = 'failed', error = ?,"
            " model = COALESCE(model, (SELECT a.model FROM attempts a WHERE a.run_id = runs.id ORDER BY a.id DESC LIMIT 1)),"
            " cost_usd = (SELECT SUM(a.cost_usd) FROM attempts a WHERE a.run_id = runs.id)"
            " WHERE group_id = ? AND outcome = 'running'", (error, group_id))
        return cur.rowcount

    # --- reading --------------------------------------------------------------------------

    @_usable
    def runs(self, *, limit: int = 20, group_id: str | None = None, kind: str | None = None,
             since: str | None = None, newest_first: bool = True) -> list[dict[str, Any]]:
        where, args = [], []
        if group_id:
            where.append("group_id = ?")
            args.append(group_id)
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if since:
            where.append("time >= ?")
            args.append(since)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY id {'DESC' if newest_first else 'ASC'} LIMIT ?"
        rows = [dict(r) for r in self.db.execute(sql, (*args, limit))]
        if not rows:
            return rows
        ids = [r["id"] for r in rows]
        attempts: dict[int, list[dict]] = {i: [] for i in ids}
        marks = ",".join("?" * len(ids))
        for a in self.db.execute(f"SELECT * FROM attempts WHERE run_id IN ({marks}) ORDER BY id", ids):
            attempts[a["run_id"]].append(dict(a))
        for r in rows:
            r["attempts"] = attempts[r["id"]]
            r["files"] = json.loads(r["files"] or "[]")
        return rows

    @_usable
    def token_counts(self, limit: int = 5000, min_estimate: int = 0) -> list[tuple[str, int, int, str | None]]:
        """(model, real input tokens, estimate, kind of text) of the latest successful calls,
        newest first.

        attempts.est_input_tokens is the estimator's uncorrected figure for that model's
        tokenizer family, so real/estimate is what the estimate for the family should learn.
        """
        rows = self.db.execute(
            "SELECT model, input_tokens, est_input_tokens, text_kind FROM attempts WHERE outcome = 'ok'"
            " AND tokens_estimated = 0 AND input_tokens > 0 AND est_input_tokens >= ?"
            " ORDER BY id DESC LIMIT ?", (max(1, min_estimate), limit))
        return [(r[0], int(r[1]), int(r[2]), r[3]) for r in rows]

    @_usable
    def attempts_since(self, since: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT a.*, r.task AS task, r.kind AS kind FROM attempts a JOIN runs r ON r.id = a.run_id"
        args: tuple = ()
        if since:
            sql += " WHERE a.time >= ?"
            args = (since,)
        return [dict(r) for r in self.db.execute(sql + " ORDER BY a.id", args)]


def _insert_many(db: sqlite3.Connection, table: str, cols: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT the rows, leaving out the columns that are None in every row: they are NULL (no
    default) either way, and binding them was half the cost of a wide row."""
    by_col = list(zip(*rows))
    keep = [j for j, values in enumerate(by_col) if values.count(None) != len(rows)]
    db.executemany(f"INSERT INTO {table} ({', '.join(cols[j] for j in keep)}) VALUES ({', '.join('?' * len(keep))})",
                   zip(*[by_col[j] for j in keep]))


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    return value


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def open_store(home: Path) -> Store:
    """The run log under `home`; anything wrong with it is a UserError naming the file."""
    return Store(Path(home) / "runs.db")


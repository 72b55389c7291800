"""The run log: SQLite under $RUNNER_HOME, WAL, versioned schema.

A *run* is one answer a user asked for (one `ask`, one batch row, one compare cell); each
*attempt* is one call to one model on the way to it (retries, fallbacks, long-doc chunks).
Prompts and answers are stored; API keys never reach this module.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

SCHEMA_VERSION = 1

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
}

RUN_FIELDS = (
    "model", "task", "text", "thinking", "input_tokens", "output_tokens", "ttft_ms",
    "latency_ms", "tokens_per_s", "cost_usd",
)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        self.db.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            from .errors import UserError

            raise UserError(f"the run log {self.path} was written by a newer runner (schema {version}); upgrade runner")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                # executescript() would commit mid-migration; run the statements one by one.
                for stmt in _MIGRATIONS[target].split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version={target}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()

    # --- writing --------------------------------------------------------------------------

    def start_run(self, *, kind: str, task: str | None, prompt: str, system: str | None,
                  files: Iterable[str] = (), group_id: str | None = None, item_id: str | None = None,
                  est_input_tokens: int | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (time, kind, group_id, item_id, task, outcome, prompt, system, files, est_input_tokens)"
            " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
            (now_iso(), kind, group_id, item_id, task, prompt, system, json.dumps(list(files)), est_input_tokens),
        )
        return int(cur.lastrowid)

    def add_attempt(self, run_id: int, rec: dict[str, Any]) -> None:
        cols = ("part", "model", "outcome", "error", "error_kind", "finish_reason", "input_tokens",
                "output_tokens", "tokens_estimated", "est_input_tokens", "num_ctx", "ttft_ms",
                "latency_ms", "tokens_per_s", "cost_usd")
        self.db.execute(
            f"INSERT INTO attempts (run_id, time, {', '.join(cols)}) VALUES (?, ?, {', '.join('?' * len(cols))})",
            (run_id, rec.get("time") or now_iso(), *[_plain(rec.get(c, 0 if c == "tokens_estimated" else None)) for c in cols]),
        )

    def finish_run(self, run_id: int, result: dict[str, Any]) -> None:
        cols = ("model", "outcome", "error", "text", "thinking", "input_tokens", "output_tokens",
                "tokens_estimated", "ttft_ms", "latency_ms", "tokens_per_s", "cost_usd", "chunks")
        self.db.execute(
            f"UPDATE runs SET {', '.join(c + ' = ?' for c in cols)} WHERE id = ?",
            (*[_plain(result.get(c, 0 if c == "tokens_estimated" else None)) for c in cols], run_id),
        )

    # --- reading --------------------------------------------------------------------------

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

    def token_counts(self, limit: int = 5000, min_estimate: int = 0) -> list[tuple[str, int, int]]:
        """(model, real input tokens, estimate) of the latest successful calls, newest first.

        attempts.est_input_tokens is the estimator's uncorrected figure for that model's
        tokenizer family, so real/estimate is what the estimate for the family should learn.
        """
        rows = self.db.execute(
            "SELECT model, input_tokens, est_input_tokens FROM attempts WHERE outcome = 'ok'"
            " AND tokens_estimated = 0 AND input_tokens > 0 AND est_input_tokens >= ?"
            " ORDER BY id DESC LIMIT ?", (max(1, min_estimate), limit))
        return [(r[0], int(r[1]), int(r[2])) for r in rows]

    def attempts_since(self, since: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT a.*, r.task AS task, r.kind AS kind FROM attempts a JOIN runs r ON r.id = a.run_id"
        args: tuple = ()
        if since:
            sql += " WHERE a.time >= ?"
            args = (since,)
        return [dict(r) for r in self.db.execute(sql + " ORDER BY a.id", args)]


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    return value


def open_store(home: Path) -> Store:
    return Store(home / "runs.db")


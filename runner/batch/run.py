"""One `runner batch`: validate, resume, route each row, budget, count, summarise.

The pieces, each small:
- `runner.prompts`  — prompt files (JSONL, YAML, CSV, text) streamed as rows, templates, ids;
- `batch.results`   — the results file: whole-line appends, resume state, torn tails, compaction;
- `batch.budget`    — `--max-cost`;
- `runner.engine`   — the concurrent engine (per-provider lanes, limits, re-queue on 429);
- this module       — one batch;
- `render.batch`    — progress bar, dry-run listing and the summary table (terminal only).

A row's route: its own `task`/`model` if it names either (its model wins; its task, else the
command's `--task`, else the default task, gives options and system prompt), otherwise the
command's `--model`/`--task`, otherwise the default task.

Resume: ids whose last record in the results file is a success are skipped; failed rows run
again. `--max-cost` is a budget for the whole results file: the cost already recorded there
counts, so a stopped batch goes on when run again with a larger budget.
"""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

from ..config import Config, Settings
from ..engine import Engine, Job, Outcome
from ..errors import UserError
from ..limits import Limits
from ..options import GenerationOptions
from ..prompts import BadRow, Row, detect_format, read_rows
from ..records import RunRecord, round1
from ..request import Prepared, Request, check_max_cost
from ..session import Session
from ..stats import Aggregate
from ..store import now_iso
from .budget import Budget
from .results import ResultsWriter, ResumeState, check_out_path, json_encoder, output_format, read_state

DEFAULT_CONCURRENCY = 8
BAD_ROWS_KEPT = 1000

_fingerprint_json = json_encoder(sort_keys=True, ensure_ascii=False)

# Exit codes (documented in `runner batch --help`).
EXIT_OK, EXIT_FAILED, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 3, 130


@dataclass
class BatchOptions:
    file: Path
    out: str | None = None  # None: ./<file stem>.results.<fmt>; "-": standard output
    input_format: str | None = None
    out_format: str | None = None
    task: str | None = None
    model: str | None = None
    system: str | None = None
    template: str | None = None
    local_only: bool = False
    options: GenerationOptions = field(default_factory=GenerationOptions)
    concurrency: int | None = None
    limits: dict[str, int] = field(default_factory=dict)
    max_cost: float | None = None
    overwrite: bool = False


@dataclass
class Scan:
    rows: int = 0  # valid rows
    todo: int = 0  # valid rows not yet answered (or answered to a question since changed)
    changed: int = 0  # answered rows whose prompt, system, routing or options changed since
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0


class Batch:
    """One `runner batch` invocation. Counters are public for the progress display."""

    def __init__(self, config: Config, options: BatchOptions, *, session: Session | None = None) -> None:
        self.config = config
        self.o = options
        self.path = options.file
        self.in_format = detect_format(self.path, options.input_format)
        self.out_format = output_format(options.out, options.out_format)
        self.out_path = self._out_path()
        self.default_task = options.task or config.settings.default_task
        if options.concurrency is not None and options.concurrency < 1:
            raise UserError(f"--concurrency must be a whole number, 1 or more, not {options.concurrency}")
        self._check_command_routing()
        self.limits = Limits(config, overrides=self._overrides())
        self.concurrency = options.concurrency or max(
            [DEFAULT_CONCURRENCY, *(self.limits.ceiling(p) for p in config.providers)])
        if session is None:
            session = Session(config, limits=self.limits)
        self.session = session
        self.notes: list[str] = []  # said once, at the start of a row on a provider held below --concurrency
        self.on_note: Callable[[str], None] | None = None
        self._valid_tasks: set[str] = set()
        self._valid_models: set[str] = set()
        self.scan = Scan()
        self.state = ResumeState()
        self.writer: ResultsWriter | None = None
        self.engine: Engine | None = None
        self.budget: Budget | None = None
        self.batch_id = ""
        # live counters
        self.done = self.ok = self.failed = 0
        self._running: set[int] = set()  # id() of the jobs started and not yet reported
        self.tokens = 0
        self.cost = 0.0
        self.models: dict[str, Aggregate] = {}
        self.started_at = 0.0
        self.elapsed = 0.0
        self.stopped: str | None = None  # "budget" | "interrupted"
        self.compacted = 0
        self.on_change: Callable[[], None] | None = None
        self._noted: set[str] = set()
        # Which rows the live run takes (None: all): `--deferred` runs only the rows it routed
        # live, and a run without it leaves alone rows that wait in a provider batch job.
        self.row_filter: Callable[[Row], bool] | None = None
        self._options: dict[str, Any] | None = None

    # --- setup --------------------------------------------------------------------------

    def _out_path(self) -> Path | None:
        out = self.o.out
        if out == "-":
            return None
        path = Path(out).expanduser() if out else Path.cwd() / f"{self.path.stem}.results.{self.out_format}"
        try:
            same = path.exists() and self.path.exists() and path.resolve() == self.path.resolve()
        except OSError:
            same = False
        if same:
            raise UserError(f"--out {path} is the prompt file itself; choose another file for the results")
        return path

    def _check_command_routing(self) -> None:
        self.config.profile(self.default_task)  # unknown --task: one line, nothing run
        if self.o.model:
            self.config.split_ref(self.o.model)
        for name, n in self.o.limits.items():
            if name not in self.config.providers:
                raise UserError(f"--limit {name}={n}: unknown provider; known providers: {', '.join(sorted(self.config.providers))}")
            if n < 1:
                raise UserError(f"--limit {name} must be a whole number, 1 or more, not {n}")
        check_max_cost(self.o.max_cost)

    def _overrides(self) -> dict[str, int]:
        """Per-provider limits: --limit; and an explicit --concurrency N raises each hosted API
        still at the default limit to N, since that is what was asked for (a 429 still halves
        it). A limit the user set (hosted_concurrency, an endpoint's num_parallel) stands, and so
        does a local server's: llama.cpp and Ollama serve a few at a time and cut or queue the
        rest. `_note_limit` says which limit holds a provider back."""
        overrides = dict(self.o.limits)
        asked = self.o.concurrency
        default = self.config.settings.hosted_concurrency == Settings().hosted_concurrency
        if asked and default:
            for name, p in self.config.providers.items():
                if name not in overrides and not p.local and p.num_parallel is None and asked > Settings().hosted_concurrency:
                    overrides[name] = asked
        return overrides

    def route_of(self, row: Row) -> tuple[str, str | None]:
        """(task, model) for a row: its own, else the command's, else the default task."""
        if row.task or row.model:
            return row.task or self.default_task, row.model
        return self.default_task, self.o.model

    def check(self, row: Row | BadRow) -> Row | BadRow:
        """Row-level mistakes that the file format cannot see: unknown task or model, missing files."""
        if isinstance(row, BadRow):
            return row
        task, model = self.route_of(row)
        try:
            if task not in self._valid_tasks:
                self.config.profile(task)
                self._valid_tasks.add(task)
            if model and model not in self._valid_models:
                self.config.split_ref(model)
                self._valid_models.add(model)
        except UserError as exc:
            return BadRow(row.line, str(exc), row.id)
        for f in row.files:
            if not Path(f).exists():
                return BadRow(row.line, f"{f}: no such file", row.id)
        return row

    def rows(self) -> Iterator[Row | BadRow]:
        for row in read_rows(self.path, self.in_format, template=self.o.template):
            yield self.check(row)

    def read(self, *, dry_run: bool = False) -> Scan:
        """Validate the prompt file and read what the results file already holds.

        Nothing is created or changed before the prompt file is known to hold valid rows (a
        mistyped file name must not leave an empty results file behind). Then a real run locks
        the results file, cuts a torn last record and keeps it open for appending; a dry run
        only reads it."""
        if self.out_path is not None:
            check_out_path(self.out_path)
            if not self.o.overwrite:
                self.state, _ = read_state(self.out_path, self.out_format)
        scan = self._scan()
        if not dry_run:
            self.writer = ResultsWriter(self.out_path, self.out_format)
            seen = self.state
            self.state = self.writer.open(overwrite=self.o.overwrite)
            if self.state.records != seen.records or self.state.ok != seen.ok:
                try:  # another run finished rows in between: count again
                    scan = self._scan()
                except BaseException:
                    self.close()
                    raise
        self.scan = scan
        self.batch_id = self.state.batch_id or new_batch_id()
        if not dry_run and self.state.batch_id:
            # This run holds the results file's lock: a run of this batch still `running` in
            # the log belongs to a process that was killed (kill -9, a power cut).
            self.session.store.close_interrupted(self.batch_id, "interrupted (the process was killed)")
        return scan

    def _scan(self) -> Scan:
        scan = Scan()
        for row in self.rows():
            if isinstance(row, BadRow):
                scan.bad_count += 1
                if len(scan.bad) < BAD_ROWS_KEPT:
                    scan.bad.append(row)
                continue
            scan.rows += 1
            if not self.answered(row):
                scan.todo += 1
                scan.changed += row.id in self.state.ok
        if scan.rows == 0:
            if scan.bad_count:
                first = scan.bad[0]
                raise UserError(f"{self.path}: no valid rows ({scan.bad_count} bad; line {first.line}: {first.error})")
            raise UserError(f"{self.path}: no prompts in the file")
        return scan

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # --- requests -----------------------------------------------------------------------

    def fingerprint(self, row: Row) -> str:
        """What a row's answer depends on: its prompt, system prompt, routing (task, model) and
        generation options. An answer given to a different question is not reused on resume."""
        task, model = self.route_of(row)
        if self._options is None:  # the same for every row: built once (100,000 rows collected at once)
            self._options = self.o.options.as_dict()
        asked = {"prompt": row.prompt, "system": row.system if row.system is not None else self.o.system,
                 "task": task, "model": model, "options": self._options, "files": list(row.files),
                 "local_only": self.o.local_only}
        return hashlib.sha256(_fingerprint_json(asked).encode()).hexdigest()[:16]

    def answered(self, row: Row) -> bool:
        """Answered already, to the same question: a record from before fingerprints were written
        (None) counts as the same."""
        if row.id not in self.state.ok:
            return False
        kept = self.state.fingerprints.get(row.id)
        return kept is None or kept == self.fingerprint(row)

    def request_for(self, row: Row) -> Request:
        task, model = self.route_of(row)
        documents = []
        for f in row.files:
            documents.extend(_documents(f))
        return Request(
            prompt=row.prompt, task=task, documents=documents,
            system=row.system if row.system is not None else self.o.system,
            model=model, local_only=self.o.local_only,
            options=self.o.options,
        )

    def todo(self, on_unreadable: Callable[[Row, str], None]) -> Iterator[Job]:
        """Jobs for the rows still to answer, read lazily from the file."""
        for row in self.rows():
            if isinstance(row, BadRow) or self.answered(row):
                continue
            if self.row_filter is not None and not self.row_filter(row):
                continue
            try:
                request = self.request_for(row)
            except UserError as exc:  # a file that vanished or became unreadable since the scan
                on_unreadable(row, str(exc))
                continue
            yield Job(request, item_id=row.id, key=row)

    # --- running ------------------------------------------------------------------------

    async def run(self, *, finish: bool = True) -> int:
        """Answer every row still to do; returns the exit code. `read()` first. A budget set
        beforehand is used (`--deferred` counts its submitted rows in it); `finish=False` leaves
        the results file open for the caller to finish."""
        assert self.writer is not None
        if self.budget is None:
            self.budget = Budget(self.o.max_cost, self.state.cost_usd)
        self.engine = Engine(self.session, concurrency=self.concurrency, kind="batch", group_id=self.batch_id)
        self.started_at = time.perf_counter()

        def unreadable(row: Row, error: str) -> None:
            self._record(Outcome(Job(Request(prompt=row.prompt, task=self.route_of(row)[0]), row.id, row), None, None,
                                 error=error))

        try:
            await self.engine.run(self.todo(unreadable), self._on_result, admit=self.budget.admit,
                                  on_start=self._on_start)
        except BaseException:
            self.close()  # what was written stays; no compaction on the way out of a failure
            raise
        finally:
            self.elapsed = time.perf_counter() - self.started_at
            if self.engine.stopped == "admit":
                self.stopped = "budget"
            elif self.engine.stopped in ("interrupt", "abandon"):
                self.stopped = "interrupted"
        if finish:
            self.finish()
        return self.exit_code()

    def interrupt(self) -> bool:
        """First call: start no more rows, let running ones finish. Second: abandon them too.
        Returns True on the second call."""
        if self.engine is None:
            return False
        if self.engine.stopped in ("interrupt", "abandon"):
            self.engine.abandon()
            return True
        self.engine.stop("interrupt")
        return False

    @property
    def running(self) -> int:
        """Rows started and not yet finished. A row re-queued after a 429 starts again but is
        reported once, so rows are counted by identity, not by start events."""
        return len(self._running)

    def _on_start(self, job: Job, prepared: Prepared | None) -> None:
        self._running.add(id(job))
        if prepared is not None and prepared.plan.attempts:
            self._note_limit(prepared.plan.attempts[0].provider)
        self._changed()

    def _note_limit(self, provider: str) -> None:
        """Say once which limit holds a provider below the --concurrency asked for, and how to raise it."""
        asked, ceiling = self.o.concurrency, self.limits.ceiling(provider)
        if not asked or ceiling >= asked or provider in self.o.limits or provider in self._noted:
            return
        self._noted.add(provider)
        p = self.config.providers.get(provider)
        change = f"--limit {provider}=N changes it"
        if p is not None and len(p.host_list) > 1:  # a pool: --limit only caps the hosts' sum
            where, change = f"the num_parallel of its {len(p.host_list)} hosts", "a host's num_parallel changes it"
        elif p is not None and p.protocol == "ollama":
            where = "ollama.num_parallel"
        elif p is not None and (p.local or p.num_parallel is not None):
            where = f"num_parallel of {provider}"
        else:
            where = "hosted_concurrency"
        note = (f"{provider} takes {ceiling} row{'s' if ceiling != 1 else ''} at a time ({where} in config.yaml), "
                f"not {asked}; {change}")
        self.notes.append(note)
        if self.on_note is not None:
            self.on_note(note)

    def _on_result(self, outcome: Outcome) -> None:
        self._record(outcome)
        self._running.discard(id(outcome.job))
        self._changed()

    def _record(self, outcome: Outcome) -> None:
        """Write the row's record (one whole line), then count it done."""
        self.write(self.record(outcome.job.key, outcome))

    def write(self, line: dict[str, Any]) -> None:
        """Write one row's line (one whole record, in one write), then count it: done, ok or
        failed, cost, tokens, the budget, its model's figures."""
        self.write_lines([line])

    def write_lines(self, lines: list[dict[str, Any]]) -> None:
        """Rows' lines, as `write` does each (the OS gets them a few hundred kB at a time)."""
        assert self.writer is not None
        try:
            self.writer.write_many(lines)
        except OSError as exc:  # disk full, standard output closed…: every earlier row is safe
            for rec in lines[:getattr(exc, "records_written", 0)]:
                self._count(rec)
            if self.writer.path is None:
                raise UserError(f"standard output was closed after {self.done:,} rows ({exc.strerror or exc})") from None
            raise UserError(f"cannot write to {self.writer.shown} ({exc.strerror or exc}); the {self.done:,} rows "
                            "written are kept; fix it and run the same command again to resume") from None
        for rec in lines:
            self._count(rec)

    def _count(self, rec: dict[str, Any]) -> None:
        self.done += 1
        cost = rec["cost_usd"]
        if self.budget is not None:
            self.budget.finish(rec["id"], cost, rec["model"])
        if rec["ok"]:
            self.ok += 1
        else:
            self.failed += 1
        self.cost += cost or 0.0
        self.tokens += (rec["input_tokens"] or 0) + (rec["output_tokens"] or 0)
        self._stat(rec)

    def record(self, row: Row, outcome: Outcome) -> dict[str, Any]:
        """The row's line in the results file: its RunRecord, keyed by the row's id."""
        task = outcome.prepared.profile.name if outcome.prepared else outcome.job.request.task
        if outcome.result is None:
            rec = RunRecord.never_ran(task, outcome.error or "failed")
        else:
            rec = RunRecord.from_result(task, outcome.result, outcome.run_id)
        return self.line(row.id, rec.json(), outcome.run_id, row=row)

    def line(self, row_id: str, data: dict[str, Any], run_id: int | None, *, row: Row | None = None,
             **extra: Any) -> dict[str, Any]:
        """A results line from a RunRecord's json(): the row's id, the record's fields, the run, the
        batch, the time, what the answer was asked with, and `extra` (a deferred row's job)."""
        d = data  # the fields of RESULT_FIELDS, spelt out: one dict built whole, not grown key by key
        return {"id": row_id, "ok": d["ok"], "model": d["model"], "task": d["task"], "finish_reason": d["finish_reason"],
                "text": d["text"], "thinking": d["thinking"], "input_tokens": d["input_tokens"],
                "output_tokens": d["output_tokens"], "tokens_estimated": d["tokens_estimated"], "ttft_ms": d["ttft_ms"],
                "latency_ms": d["latency_ms"], "tokens_per_s": d["tokens_per_s"], "cost_usd": d["cost_usd"],
                "error": d["error"], "attempts": d["attempts"], "run_id": run_id, "batch_id": self.batch_id,
                "time": now_iso(), "fingerprint": self.fingerprint(row) if row is not None else None, **extra}

    def _stat(self, rec: dict[str, Any]) -> None:
        # A deferred row waited hours by design: its figures stay apart from live ones.
        name = (rec["model"] or "(no model)") + (" (deferred)" if rec.get("deferred") else "")
        agg = self.models.get(name)
        if agg is None:
            agg = self.models[name] = Aggregate(name)
        agg.add(rec)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def finish(self) -> None:
        """Leave the results file with one record per id (re-run rows superseded), and close it."""
        w = self.writer
        if w is not None and w.path is not None and self.done and (self.state.failed or self.state.records > self.state.ids):
            self.compacted = w.compact()
        self.close()

    # --- reporting ----------------------------------------------------------------------

    @property
    def not_started(self) -> int:
        return max(0, self.scan.todo - self.done)

    def exit_code(self) -> int:
        if self.stopped == "interrupted":
            return EXIT_INTERRUPTED
        if self.stopped == "budget":
            return EXIT_BUDGET
        return EXIT_FAILED if (self.failed or self.scan.bad_count) else EXIT_OK

    def summary(self) -> dict[str, Any]:
        models = sorted(self.models.values(), key=lambda m: (-m.calls, m.name))
        return {
            "batch_id": self.batch_id,
            "file": str(self.path),
            "out": str(self.out_path) if self.out_path else "-",
            "format": self.out_format,
            "rows": self.scan.rows,
            "bad_rows": self.scan.bad_count,
            "already_done": self.scan.rows - self.scan.todo,
            "changed": self.scan.changed,
            "notes": self.notes,
            "ran": self.done,
            "ok": self.ok,
            "failed": self.failed,
            "not_started": self.not_started,
            "stopped": self.stopped,
            "cost_usd": round(self.cost, 6),
            "total_cost_usd": round(self.state.cost_usd + self.cost, 6),
            "max_cost_usd": self.o.max_cost,
            "elapsed_s": round(self.elapsed, 3),
            "tokens": self.tokens,
            "models": [model_summary(m) for m in models],
            "bad": [{"line": b.line, "id": b.id, "error": b.error} for b in self.scan.bad[:100]],
            "exit_code": self.exit_code(),
        }

    # --- dry run ------------------------------------------------------------------------

    async def plan_rows(self) -> AsyncIterator[tuple[Row, Prepared | None, str | None]]:
        """Route every row still to do, sending nothing: (row, prepared, error)."""
        engine = Engine(self.session, concurrency=1, log=False)
        for row in self.rows():
            if isinstance(row, BadRow) or self.answered(row):
                continue
            try:
                request = self.request_for(row)
                prepared = await self.session.prepare(request, await engine.availability_for(request), count=False)
            except UserError as exc:
                yield row, None, str(exc)
                continue
            yield row, prepared, None


RESULT_FIELDS = ("ok", "model", "task", "finish_reason", "text", "thinking", "input_tokens", "output_tokens", "tokens_estimated",
                 "ttft_ms", "latency_ms", "tokens_per_s", "cost_usd", "error", "attempts")


def model_summary(m: Aggregate) -> dict[str, Any]:
    """A model's line in the batch summary (`--json`)."""
    cost = m.cost_usd
    return {
        "model": m.name, "rows": m.calls, "failed": m.failed,
        "latency_ms_p50": round1(m.p("latency", 50)), "latency_ms_p95": round1(m.p("latency", 95)),
        "ttft_ms_p50": round1(m.p("ttft", 50)), "ttft_ms_p95": round1(m.p("ttft", 95)),
        "tokens_per_s_p50": round1(m.p("tps", 50)),
        "input_tokens": m.input_tokens, "output_tokens": m.output_tokens,
        "cost_usd": None if cost is None else round(cost, 6), "cost_unknown_rows": m.unknown_cost,
        "estimated_rows": m.estimated, "estimated_share": m.estimated_share(),
    }


@functools.lru_cache(maxsize=64)
def _documents(path: str) -> tuple:
    from ..documents import read_documents

    return tuple(read_documents([path]))


def new_batch_id() -> str:
    return f"b-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


"""The jobs file of `runner batch --deferred`: which rows went into which provider batch job.

It sits beside the results file (`answers.jsonl` → `answers.jsonl.jobs.json`) and is the only
memory of what was submitted, so it is written **before** each step that could submit anything
and replaced atomically (a temporary file, fsync'ed, renamed over the old one, the folder
fsync'ed): a run killed at any moment leaves either the old or the new file, never half of one.

A job goes through these states, each saved before the next step starts:

    submitting   the rows are chosen and written down; nothing is known to exist at the provider
                 (`input_file` is set once an upload succeeded)
    submitted    the provider's job id is known; it is polled until it ends
    collected    every row's result is in the results file (or the row was handed on: live
                 fallback, or another job with --resubmit)

A run that finds a job still `submitting` cannot know whether the provider created it before
the process died: it asks the provider (each protocol has its own way to recognise its job) and
adopts the job it finds, or submits the rows then — never both.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from ...errors import UserError

VERSION = 1
SUFFIX = ".jobs.json"

SUBMITTING, SUBMITTED, COLLECTED = "submitting", "submitted", "collected"


def state_path(results: Path) -> Path:
    return results.with_name(results.name + SUFFIX)


@dataclass
class Job:
    key: str  # "j1", "j2"…: unique in the file, part of what the provider is told (display name)
    provider: str
    model: str  # the provider's model name
    rows: list[str]  # row ids in order; row i is sent as custom id "r{i}"
    status: str = SUBMITTING
    intent_at: str = ""  # when the rows were written down (adoption looks no earlier)
    est_cost_usd: float = 0.0  # the rows' estimated batch price (counts against --max-cost until collected)
    input_file: str | None = None  # the provider's id of the uploaded input file
    job_id: str | None = None
    submitted_at: str | None = None
    provider_status: str | None = None  # as last polled
    done: int = 0
    failed: int = 0
    completed_at: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def open(self) -> bool:
        return self.status != COLLECTED

    @staticmethod
    def custom_id(i: int) -> str:
        return f"r{i}"

    def index_of(self, custom_id: str) -> int | None:
        """The row's position from its custom id; None for an id this job never sent."""
        if not custom_id.startswith("r") or not custom_id[1:].isdigit():
            return None
        i = int(custom_id[1:])
        return i if i < len(self.rows) else None


_JOB_FIELD_NAMES = tuple(f.name for f in fields(Job))
_JOB_FIELDS = set(_JOB_FIELD_NAMES)


@dataclass
class JobsFile:
    path: Path
    batch_id: str | None = None
    jobs: list[Job] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "JobsFile":
        """The jobs file, or an empty one when there is none yet."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("jobs"), list):
                raise ValueError
            jobs = [Job(**{k: v for k, v in j.items() if k in _JOB_FIELDS}) for j in data["jobs"]]
            if any(not isinstance(j.rows, list) for j in jobs):
                raise ValueError
        except (ValueError, TypeError):
            raise UserError(f"{path} is not a runner jobs file (it records the provider batch jobs of "
                            f"--deferred); move it away only if no job it names is still running") from None
        return cls(path, data.get("batch_id"), jobs)

    def save(self) -> None:
        """Replace the file atomically and durably; returns once the new content is on disk."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        # Not asdict() nor json.dump(): they copy every row id, and dump() encodes in Python.
        data = {"version": VERSION, "batch_id": self.batch_id,
                "jobs": [{name: getattr(j, name) for name in _JOB_FIELD_NAMES} for j in self.jobs]}
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps(data, ensure_ascii=True, separators=(",", ":")))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            _sync_dir(self.path.parent)
        except OSError as exc:
            raise UserError(f"cannot write {self.path} ({exc.strerror or exc}); nothing more was submitted") from None

    # --- queries --------------------------------------------------------------------------

    @property
    def open_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.open]

    def rows_waiting(self) -> set[str]:
        """Row ids in a job that is not collected yet: they must not be sent again."""
        out: set[str] = set()
        for j in self.open_jobs:
            out.update(j.rows)
        return out

    def new_job(self, provider: str, model: str, rows: Iterable[str], intent_at: str, est_cost_usd: float) -> Job:
        n = 1 + max((int(j.key[1:]) for j in self.jobs if j.key[1:].isdigit()), default=0)
        job = Job(f"j{n}", provider, model, list(rows), intent_at=intent_at, est_cost_usd=est_cost_usd)
        self.jobs.append(job)
        return job

    def forget_collected(self) -> None:
        """Drop collected jobs (their rows are in the results file); keeps the file small."""
        self.jobs = [j for j in self.jobs if j.open]

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise UserError(f"cannot remove {self.path}: {exc.strerror or exc}") from None


def _sync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a platform without directory fsync skips it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def job_summary(job: Job) -> dict[str, Any]:
    """What --status and --json show of a job."""
    return {"job": job.key, "provider": job.provider, "model": job.ref, "job_id": job.job_id, "rows": len(job.rows),
            "status": job.provider_status or job.status, "done": job.done, "failed": job.failed,
            "submitted_at": job.submitted_at, "completed_at": job.completed_at, "est_cost_usd": job.est_cost_usd}


def waiting_rows(results: Path) -> set[str]:
    """Rows of the results file `results` that wait in a provider batch job (none without a jobs file)."""
    return JobsFile.load(state_path(results)).rows_waiting()

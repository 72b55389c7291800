"""Rows gathered for one job: their request lines in a temporary file (a 200 MB job is never held
in memory), their ids, their size and estimated price, within the provider's per-job limits."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

HEADROOM = 0.98  # stay a little under a byte limit: a provider may count its wrapper too


class Chunk:
    def __init__(self, provider: str, model: str, max_requests: int, max_bytes: int) -> None:
        self.provider, self.model = provider, model
        self.max_requests, self.max_bytes = max_requests, int(max_bytes * HEADROOM)
        fd, name = tempfile.mkstemp(prefix="runner-batch-", suffix=".jsonl")
        self.path = Path(name)
        self._f = os.fdopen(fd, "wb")
        self.rows: list[str] = []
        self.bytes = 0
        self.est_cost_usd = 0.0

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.model}"

    def fits(self, size: int) -> bool:
        return not self.rows or (len(self.rows) < self.max_requests and self.bytes + size <= self.max_bytes)

    def add(self, row_id: str, line: bytes, est_cost_usd: float | None) -> None:
        self._f.write(line)
        self.rows.append(row_id)
        self.bytes += len(line)
        self.est_cost_usd += est_cost_usd or 0.0

    def close(self) -> Path:
        if not self._f.closed:
            self._f.close()
        return self.path

    def discard(self) -> None:
        self.close()
        try:
            self.path.unlink()
        except OSError:
            pass

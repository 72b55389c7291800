"""What the three batch protocols share: the HTTP calls (JSON, streamed uploads, streamed
downloads) over the backends' client, the status of a job, and the result of one row.

Every failure is a `BatchApiError` whose message names the provider and never holds the key;
`definite` says the provider answered and refused (a 4xx: submitting the same thing again would
be refused again), as opposed to a failure that may or may not have reached it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import httpx

from ...backends import Usage
from ...backends.errors import ErrorKind
from ...backends.http import HttpClient
from ...backends.sse import status_error

CHUNK = 1 << 16

# A job's life, in the words the progress display uses (each protocol maps its own states).
WAITING = ("validating", "in_progress", "finalizing", "cancelling")
ENDED = "ended"


class BatchApiError(Exception):
    def __init__(self, message: str, *, definite: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.definite = definite
        self.status = status

    def __str__(self) -> str:
        return self.message


@dataclass
class JobStatus:
    """A job as the provider last described it."""

    state: str  # validating | in_progress | finalizing | cancelling | ended
    raw: str  # the provider's own word (in_progress, BATCH_STATE_RUNNING, …)
    total: int = 0
    done: int = 0  # rows answered so far
    failed: int = 0  # rows errored, expired or cancelled so far
    outcome: str | None = None  # once ended: completed | failed | expired | cancelled
    error: str | None = None  # a failure of the whole job (its input refused, …)
    completed_at: str | None = None  # ISO time the job ended, as the provider says
    extra: dict[str, Any] = field(default_factory=dict)  # what results() needs (file ids, a URL)

    @property
    def ended(self) -> bool:
        return self.state == ENDED


@dataclass
class RowResult:
    """One row's answer from a job, in the runner's terms."""

    ok: bool
    kind: str  # succeeded | errored | expired | canceled
    text: str = ""
    thinking: str = ""
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None


class Api:
    """One provider's batch endpoints over a shared keep-alive client."""

    def __init__(self, name: str, base_url: str, headers: dict[str, str], secrets: list[str | None],
                 timeout: httpx.Timeout, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.timeout = timeout
        self.http = HttpClient(base_url, secrets, transport=transport)

    def url(self, path: str) -> str:
        """A path under the provider's base URL (an absolute URL the provider gave is kept)."""
        return path if "://" in path else self.base_url + path

    def _fail(self, exc: httpx.HTTPError) -> BatchApiError:
        where = self.http.where
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            # Nothing reached the provider; worth trying again later.
            return BatchApiError(self.http.redact(f"cannot connect to {where}: {exc or type(exc).__name__}"))
        return BatchApiError(self.http.redact(f"{self.name} at {where}: {type(exc).__name__}: {exc}"))

    def _refused(self, resp: httpx.Response, what: str) -> BatchApiError:
        err = status_error(resp, self.http.secrets)
        definite = 400 <= resp.status_code < 500 and resp.status_code not in (408, 409, 429)
        return BatchApiError(f"{self.name} refused {what}: {err.message}", definite=definite, status=resp.status_code)

    async def call(self, method: str, url: str, what: str, *, body: Any = None, content: Any = None,
                   files: Any = None, data: Any = None, headers: dict[str, str] | None = None,
                   params: dict[str, Any] | None = None, raw: bool = False) -> Any:
        """One request; the parsed JSON reply (or the response itself with `raw`)."""
        hdrs = {**self.headers, **(headers or {})}
        try:
            resp = await self.http.client().request(method, self.url(url), json=body, content=content, files=files, data=data,
                                                    headers=hdrs, params=params, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        if resp.status_code >= 400:
            raise self._refused(resp, what)
        if raw:
            return resp
        try:
            return resp.json() if resp.content else {}
        except ValueError:
            raise BatchApiError(self.http.redact(f"{self.name} answered {what} with something that is not JSON: "
                                                 f"{resp.text[:200]!r}")) from None

    async def download(self, url: str, dest: Path, what: str, *, params: dict[str, Any] | None = None,
                       headers: dict[str, str] | None = None, append: bool = False) -> int:
        """Stream a results file to `dest` (never whole in memory); returns the bytes written."""
        hdrs = {**self.headers, **(headers or {})}
        written = 0
        try:
            async with self.http.client().stream("GET", self.url(url), headers=hdrs, params=params, timeout=self.timeout) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise self._refused(resp, what)
                with open(dest, "ab" if append else "wb") as f:
                    async for chunk in resp.aiter_bytes(CHUNK):
                        f.write(chunk)
                        written += len(chunk)
                    if written and not _ends_with_newline(f, dest):
                        f.write(b"\n")  # the next file appended starts on its own line
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        except OSError as exc:
            raise BatchApiError(f"cannot write {dest}: {exc.strerror or exc}") from None
        return written

    async def aclose(self) -> None:
        await self.http.aclose()


def _ends_with_newline(f, dest: Path) -> bool:
    f.flush()
    with open(dest, "rb") as r:
        r.seek(-1, 2)
        return r.read(1) == b"\n"


async def file_chunks(path: Path, head: bytes = b"", tail: bytes = b"") -> AsyncIterator[bytes]:
    """A file as an upload body, read in chunks as it is sent (a 200 MB job never sits in memory)."""
    if head:
        yield head
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            yield chunk
    if tail:
        yield tail


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()

"""Client keys: one `--api-key`, or a keys file naming each client.

A keys file is YAML, one client per line:

    alice: "k-3f9a…"        # name: key (at least 16 characters)
    ci-bot: "k-77d1…"

A client presents its key as `Authorization: Bearer KEY` (what the OpenAI SDK and most tools
send) or `x-api-key: KEY`. Every known key is compared, in constant time (hmac.compare_digest
over SHA-256 digests, so neither the content nor the length leaks through timing), and the name
of the matching one is what the run log records. Keys are never logged, echoed or repeated in an
error message.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

MIN_KEY_LENGTH = 16


@dataclass(frozen=True)
class Keys:
    """(client name or None, SHA-256 of the key) for each key; empty means no key is needed."""

    entries: tuple[tuple[str | None, bytes], ...] = ()

    @property
    def required(self) -> bool:
        return bool(self.entries)

    def check(self, presented: str | None) -> tuple[bool, str | None]:
        """(accepted, the client's name). Compares against every key, whatever matched first."""
        if not self.entries:
            return True, None
        digest = hashlib.sha256((presented or "").encode("utf-8", "surrogatepass")).digest()
        found, name = False, None
        for entry_name, entry_digest in self.entries:
            if hmac.compare_digest(digest, entry_digest) and presented:
                found, name = True, entry_name
        return found, name


def presented_key(headers) -> str | None:
    """The key a request carries: `Authorization: Bearer KEY`, else `x-api-key`."""
    auth = headers.get("authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    other = headers.get("x-api-key")
    return other.strip() if other else None


def _check_key(key: object, where: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise UserError(f"{where} must be a text of at least {MIN_KEY_LENGTH} characters")
    key = key.strip()
    if len(key) < MIN_KEY_LENGTH:
        raise UserError(f"{where} is too short: use at least {MIN_KEY_LENGTH} characters "
                        "(for example: python -c 'import secrets; print(secrets.token_urlsafe(24))')")
    if any(c.isspace() for c in key) or not key.isascii():
        raise UserError(f"{where} must be plain ASCII without spaces")
    return key


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def load_keys(api_key: str | None = None, keys_file: str | Path | None = None) -> Keys:
    """The keys `serve` accepts; a mistake is a UserError that never repeats a key."""
    entries: list[tuple[str | None, bytes]] = []
    if api_key is not None:
        entries.append((None, _digest(_check_key(api_key, "--api-key"))))
    if keys_file is not None:
        from ..yamlfile import load_yaml

        path = Path(keys_file).expanduser()
        if not path.is_file():
            raise UserError(f"keys file {path} not found")
        doc = load_yaml(path)
        data = doc.data
        if not isinstance(data, dict) or not data:
            raise doc.error((), "a keys file is a mapping of client names to keys, e.g. `alice: \"k-…\"`")
        seen: set[bytes] = set()
        for name, key in data.items():
            if not isinstance(name, str) or not name.strip():
                raise doc.error((name,), "a client name must be text")
            try:
                checked = _check_key(key, "the key")
            except UserError as exc:
                raise doc.error((name,), str(exc)) from None
            digest = _digest(checked)
            if digest in seen:
                raise doc.error((name,), "the same key is given to two clients; give each its own")
            seen.add(digest)
            entries.append((name, digest))
    return Keys(tuple(entries))

"""Keep secrets (API keys, credentials in URLs) out of error messages, logs and test output."""

from __future__ import annotations

import json
from typing import Iterable
from urllib.parse import quote

MASK = "***"


def _forms(secret: str) -> set[str]:
    """The secret as written, and as it shows up escaped: repr of str and bytes (h11 prints
    header values as b'Bearer KEY\\n'), JSON, and percent-encoded in a URL."""
    forms = {secret, secret.strip()}
    forms.add(repr(secret)[1:-1])
    forms.add(json.dumps(secret)[1:-1])
    forms.add(quote(secret, safe=""))
    try:
        forms.add(repr(secret.encode("utf-8", "surrogateescape"))[2:-1])
    except UnicodeError:
        pass
    return {f for f in forms if f}


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret (and its escaped forms) with `***`."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= _forms(secret)
    # Longest first, so a secret that contains another is masked whole.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def display_url(url: str) -> str:
    """`url` fit to show or log: no user name or password, no query (`?key=…`), no fragment."""
    scheme, sep, rest = str(url).partition("://")
    if not sep:
        scheme, rest = "", scheme
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    # Everything up to the last '@' is userinfo, even a password with an unescaped '/' in it.
    rest = rest.rpartition("@")[2]
    return scheme + sep + rest


def host_label(url: str) -> str:
    """A host as tables show it: `display_url` without `http://` (an https:// stays: it says TLS)."""
    return display_url(url).removeprefix("http://")

"""Assertions several test modules share."""

from __future__ import annotations


def one_line_error(r, *needles: str) -> None:
    assert r.code != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:"), r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr

"""Shared by the commands: running a coroutine, reading standard input, turning UserError into exit codes."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Coroutine

import typer

from ..errors import UserError


def fail(message: str, code: int = 2) -> typer.Exit:
    from ..render import err, esc

    err.print(f"[red]error:[/] {esc(message)}")
    return typer.Exit(code)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run the command's coroutine; a user's mistake ends as one line and a non-zero exit."""
    try:
        return asyncio.run(coro)
    except UserError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


def guard(fn):
    """For synchronous command bodies: the same error handling as run()."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise fail(str(exc), exc.exit_code) from None

    return wrapper


def read_stdin() -> str:
    """Piped input, if any; never blocks on an interactive terminal."""
    if sys.stdin is None or sys.stdin.closed:
        return ""
    try:
        if sys.stdin.isatty():
            return ""
    except (AttributeError, ValueError):
        return ""
    try:
        return sys.stdin.read()
    except (OSError, ValueError):
        return ""

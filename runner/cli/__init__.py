"""The `runner` command: parsing and rendering only; the work happens in the core modules.

Each command lives in its own module here; this file only assembles them and turns a user's
mistake into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
import sys

import typer

from .. import __version__
from ..errors import UserError
from . import ask, batch, compare, info, log, serve
from .common import Group

app = typer.Typer(
    name="runner",
    cls=Group,
    help="Send each prompt to the right model by task profile; time, price and log every call.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: rich's panels showed every flag as `--json <bool>` and cost ~100 ms of
    # imports before the first line; the plain layout shows flags as flags.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"runner {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit.")) -> None:
    """Local and hosted models, routed by task, timed and priced."""


for module in (ask, batch, compare, info, log, serve):
    module.register(app)


def main() -> None:
    try:
        try:
            app()
        except UserError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _leave(code) -> None:
    """End the process without tearing the interpreter down: freeing the ~500 modules a command
    loads takes ~75 ms after the answer is out. What matters is written and closed by then (the
    results file is closed, the run log commits each write); the standard streams are flushed here."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`): nothing left to say
            pass
    os._exit(code)


def _fail(message: str, code: int) -> None:
    from ..render import err, esc

    err.print(f"[red]error:[/] {esc(message)}")
    sys.exit(code)

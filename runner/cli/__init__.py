"""The `runner` command: parsing and rendering only; the work happens in the core modules.

Each command lives in its own module here; this file only assembles them and turns a user's
mistake into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

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
        app()
    except UserError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _fail(message: str, code: int) -> None:
    from ..render import err, esc

    err.print(f"[red]error:[/] {esc(message)}")
    sys.exit(code)

"""Shared by the commands: running a coroutine, reading standard input, turning UserError into exit codes."""

from __future__ import annotations

import sys
from typing import Any, Coroutine

import typer
from typer.core import TyperCommand, TyperGroup

from ..errors import UserError


class _PlainParams:
    """Every parameter of the command, its --help included, read by _Plain where it can be; and
    a usage mistake shown as one line, like every other error."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _Plain.install(param)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            _Plain.install(option)
        return option

    def make_context(self, *args, **kwargs):
        from typer._click.exceptions import UsageError as Mistake

        try:
            return super().make_context(*args, **kwargs)
        except Mistake as exc:
            one_line(exc)
            raise


class Group(_PlainParams, TyperGroup):
    """The `runner` group: its own options read without pydantic too."""

    def resolve_command(self, ctx, args):
        from typer._click.exceptions import UsageError as Mistake

        try:
            return super().resolve_command(ctx, args)
        except Mistake as exc:
            one_line(exc)
            raise


def one_line(exc) -> None:
    """A usage mistake (unknown option, bad value, extra argument) as one line on stderr,
    "error: …", saying where the help is, instead of click's usage block."""
    where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    message = exc.format_message().rstrip(".") + where

    def show(file=None) -> None:
        (file or sys.stderr).write(f"error: {message}\n")

    exc.show = show


class Command(_PlainParams, TyperCommand):
    """Usage and help in the usual form, `runner batch [OPTIONS] FILE`: typer 0.29 writes a
    required argument as `{file}` and adds its Python type (`PROMPT <str>`). And values read
    without pydantic (see _Plain)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_arg_name(param) if param.required else f"[{_arg_name(param)}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx, formatter) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((_arg_name(param), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class _Plain:
    """Reads a str, int, float, bool or Path value (or a list of them) from the command line.

    typer 0.29 builds a pydantic TypeAdapter for every parameter of the command that runs,
    even one left at its default: ~80 ms of imports and schema building before the first word
    of an answer. Our parameters are plain types, read here the way click reads them; a
    parameter of any other kind keeps typer's own reading."""

    KINDS = {str: "text", int: "whole number", float: "number", bool: "true or false"}

    def __init__(self, kind: type, many: bool) -> None:
        self.kind, self.many = kind, many

    @classmethod
    def install(cls, param) -> None:
        plain = cls.fit(param)
        if plain is not None and getattr(param, "_runtime_param", None) is None:
            param._runtime_param = plain

    @classmethod
    def fit(cls, param) -> "_Plain | None":
        from pathlib import Path
        from typing import get_args, get_origin

        desc = getattr(param, "type_descriptor", None)
        if desc is None or not hasattr(param, "_runtime_param") or desc.file_annotation is not None:
            return None
        info = desc.parameter_info
        if getattr(info, "parser", None) is not None or getattr(info, "min", None) is not None \
                or getattr(info, "max", None) is not None:
            return None
        kind, many = desc.annotation, False
        if get_origin(kind) is list and len(get_args(kind)) == 1:
            kind, many = get_args(kind)[0], True
        return cls(kind, many) if kind in (str, int, float, bool, Path) else None

    def coerce(self, value, param, ctx):
        if value is None:
            return () if self.many else None
        if self.many:
            return [self.one(v, param, ctx) for v in value]
        return self.one(value, param, ctx)

    def one(self, value, param, ctx):
        kind = self.kind
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        if kind is bool:
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on", "y", "t"):
                return True
            if text in ("0", "false", "no", "off", "n", "f"):
                return False
        else:
            try:
                return kind(value)
            except (TypeError, ValueError):
                pass
        raise typer.BadParameter(f"{value!r} is not a {self.KINDS.get(kind, kind.__name__)}", ctx=ctx, param=param)


def _arg_name(param) -> str:
    return param.metavar or param.name.upper()


def default(text: str, value: object) -> str:
    """Help text ending as typer ends a shown default, for defaults that are not a literal value."""
    return f"{text}  [default: {value}]"


def fail(message: str, code: int = 2) -> typer.Exit:
    from ..render import err, esc

    err.print(f"[red]error:[/] {esc(message)}")
    return typer.Exit(code)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run the command's coroutine; a user's mistake ends as one line and a non-zero exit."""
    import asyncio  # not at import time: `--help` does not need it

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


def piped_input() -> str:
    """read_stdin() for a command body: bytes that are not text end the command, nothing sent."""
    try:
        return read_stdin()
    except UserError as exc:
        raise fail(str(exc), exc.exit_code) from None


def read_stdin() -> str:
    """Piped input, if any; never blocks on an interactive terminal. Read as bytes and decoded
    strictly, as `-f` reads files: bytes that are not UTF-8 text are the user's to fix, not
    something to send to every model."""
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        return ""
    try:
        if stdin.isatty():
            return ""
    except (AttributeError, ValueError):
        return ""
    try:
        data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
    except (OSError, ValueError):
        return ""
    if isinstance(data, str):
        return data
    from ..documents import decode_text

    return decode_text(data, "standard input")


class StopSignals:
    """SIGINT and SIGTERM as calls to `on_signal(sig)` while a long command runs (a first
    Ctrl-C finishes the running work, a second abandons it), instead of KeyboardInterrupt
    landing wherever the event loop happens to be."""

    def __init__(self, on_signal) -> None:
        self.on_signal = on_signal
        self.installed: list[int] = []

    def __enter__(self) -> "StopSignals":
        import asyncio
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.on_signal, sig)
                self.installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
                pass
        return self

    def __exit__(self, *exc) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for sig in self.installed:
            loop.remove_signal_handler(sig)

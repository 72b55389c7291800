"""`runner serve`: the OpenAI- and Ollama-compatible gateway (runner/serve/).

Nothing here imports Starlette or uvicorn: `runner --help` pays nothing for them."""

from __future__ import annotations

from typing import Optional

import typer

from .common import Command, guard


def register(app: typer.Typer) -> None:
    app.command("serve", cls=Command, help=(
        "Serve the OpenAI (/v1) and Ollama (/api) APIs: every tool pointed here gets task routing, "
        "fallback and metering. `model` is a task (coding) or a provider/model."))(serve)


@guard
def serve(
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS",
                             help="Address to listen on; anything but loopback needs --api-key or --keys-file."),
    port: int = typer.Option(8080, "--port", metavar="PORT", help="Port to listen on (0: any free port)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", metavar="KEY", envvar="RUNNER_SERVE_API_KEY",
                                          show_envvar=True, show_default=False,
                                          help="The key clients must send (Authorization: Bearer KEY); at least 16 characters."),
    keys_file: Optional[str] = typer.Option(None, "--keys-file", metavar="PATH",
                                            help="YAML file of client names and their keys (name: key); the run log records the name."),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", metavar="MIB", help="Largest request body accepted; larger gets 413."),
    grace: float = typer.Option(30.0, "--grace", metavar="SECONDS",
                                help="On SIGTERM/Ctrl-C, how long answers in flight may take to finish."),
    quiet: bool = typer.Option(False, "--quiet", help="No line per request on stderr."),
) -> None:
    from ..config import load_config
    from ..errors import UserError
    from ..serve.auth import load_keys
    from ..serve.server import check_bind, serve as run_server

    if not 0 <= port <= 65535:
        raise UserError(f"--port must be a whole number from 0 to 65535, not {port}")
    if not max_body_mb > 0:
        raise UserError(f"--max-body-mb must be a number of MiB, more than 0, not {max_body_mb:g}")
    if not grace >= 0:
        raise UserError(f"--grace must be a number of seconds, 0 or more, not {grace:g}")
    keys = load_keys(api_key, keys_file)
    check_bind(host, keys)  # before reading any config: the refusal is the first thing said
    config = load_config()
    run_server(config, keys, host=host, port=port, max_body_bytes=int(max_body_mb * 1024 * 1024),
               grace_s=grace, quiet=quiet)

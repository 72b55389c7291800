"""Run the gateway with uvicorn: the bind check, the listening socket, graceful shutdown.

Safe by default: it binds 127.0.0.1; any other address needs a key (`--api-key` or
`--keys-file`), or anyone who can reach the port could spend the user's API credits.

On SIGTERM or SIGINT it stops accepting connections and lets the answers in flight finish, up
to the grace period; what is still running then is cancelled and logged as such ("server shut
down before the answer was complete") before the run log is closed. A second signal stops at once.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

from ..config import Config
from ..errors import UserError
from .auth import Keys

DEFAULT_GRACE_S = 30.0


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, keys: Keys) -> None:
    if not is_loopback(host) and not keys.required:
        raise UserError(f"refusing to listen on {host} without a key: give --api-key or --keys-file "
                        "(anyone who can reach this port could use your models and API credits)")


def listen(host: str, port: int) -> socket.socket:
    """The bound, listening socket (port 0: any free port), or a UserError naming the address."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.create_server(address, family=family, backlog=2048, reuse_port=False)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def serve(config: Config, keys: Keys, *, host: str = "127.0.0.1", port: int = 8080,
          max_body_bytes: int = 32 * 1024 * 1024, grace_s: float = DEFAULT_GRACE_S, quiet: bool = False) -> None:
    """Serve until SIGTERM/SIGINT (blocking)."""
    check_bind(host, keys)
    import uvicorn

    from .app import build_app, print_note

    sock = listen(host, port)
    bound = sock.getsockname()[1]
    app = build_app(config, keys, max_body_bytes=max_body_bytes, note=None if quiet else print_note)
    shown = f"[{host}]" if ":" in host else host
    print(f"runner serve: listening on http://{shown}:{bound} — OpenAI API at /v1, Ollama API at /api; "
          f"{'keys required' if keys.required else 'no key (this machine only)'}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    grace = max(0, int(round(grace_s)))
    server = _server_class(uvicorn)(uvicorn_config(app, grace))
    server.grace_s = grace
    server.run(sockets=[sock])
    print("runner serve: stopped", file=sys.stderr, flush=True)


def uvicorn_config(app, grace_s: int):
    """How uvicorn serves the gateway (the CLI and the tests' harness alike)."""
    import uvicorn

    from .coalesce import protocol_class

    return uvicorn.Config(app, http=protocol_class(), lifespan="on", log_level="warning", access_log=False,
                          server_header=False, timeout_graceful_shutdown=grace_s, timeout_keep_alive=30)


def _server_class(uvicorn):
    """uvicorn's Server, stopping on SIGINT/SIGTERM without re-raising the signal afterwards:
    a server stopped on purpose exits 0 once its answers are finished and logged."""
    import contextlib
    import signal
    import threading

    class Server(uvicorn.Server):
        grace_s = DEFAULT_GRACE_S

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            saved = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in saved.items():
                    signal.signal(sig, handler)

        async def shutdown(self, sockets=None) -> None:
            gateway = getattr(getattr(self.config.app, "state", None), "gateway", None)
            if gateway is not None:
                gateway.draining = True  # what is cut from now on was cut by the shutdown
            await super().shutdown(sockets)

        def handle_exit(self, sig, frame) -> None:
            if self.should_exit:
                self.force_exit = True
                return
            print(f"runner serve: stopping; answers in flight get up to {self.grace_s:g} s "
                  "(again to stop at once)", file=sys.stderr, flush=True)
            self.should_exit = True

    return Server

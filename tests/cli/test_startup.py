"""`runner --help` stays light: none of the heavy modules load on the help path."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys, runner.cli
try:
    runner.cli.app({args!r})
except SystemExit:
    pass
print(sorted(m for m in ("ollama", "pydantic", "genai_prices", "pypdf", "sqlite3") if m in sys.modules))
"""


def loaded_by(args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, check=True).stdout
    return out.strip().splitlines()[-1]


def test_top_level_help_loads_nothing_heavy():
    assert loaded_by(["--help"]) == "[]"


def test_command_help_loads_no_backend_client_or_prices():
    # typer itself uses pydantic to coerce a command's options; the backends' heavy modules stay out.
    for cmd in ("ask", "batch", "compare", "log"):
        loaded = loaded_by([cmd, "--help"])
        assert "ollama" not in loaded and "genai_prices" not in loaded and "pypdf" not in loaded, (cmd, loaded)

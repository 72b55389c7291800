"""`runner --help` stays light: none of the heavy modules load on the help path."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import sys, runner.cli
try:
    runner.cli.app({args!r})
except SystemExit:
    pass
print(sorted(m for m in ("ollama", "pydantic", "genai_prices", "pypdf", "sqlite3", "rich", "yaml") if m in sys.modules))
"""


def loaded_by(args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, check=True).stdout
    return out.strip().splitlines()[-1]


def test_top_level_help_loads_nothing_heavy():
    assert loaded_by(["--help"]) == "[]"


def test_command_help_loads_nothing_heavy():
    # Plain help (no rich), and options read without typer's pydantic adapters (cli.common._Plain).
    for cmd in ("ask", "batch", "compare", "log", "stats", "models", "profiles"):
        assert loaded_by([cmd, "--help"]) == "[]", cmd


def test_reading_options_needs_no_pydantic():
    loaded = loaded_by(["log", "-n", "1", "--json"])
    assert "pydantic" not in loaded and "genai_prices" not in loaded, loaded


def test_a_bad_option_value_is_still_refused(cli):
    for args, message in ((["ask", "--max-tokens", "abc", "hi"], "'abc' is not a whole number"),
                          (["ask", "--temperature", "warm", "hi"], "'warm' is not a number"),
                          (["log", "-n", "1.5"], "'1.5' is not a whole number")):
        r = cli(*args)
        assert r.code == 2 and message in r.stderr, r.stderr


def test_the_process_ends_with_its_output_and_exit_code_whole():
    # main() ends with os._exit (no interpreter teardown): what was printed must still arrive.
    def run(*args):
        return subprocess.run([sys.executable, "-m", "runner", *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)

    r = run("profiles", "--json")
    assert r.returncode == 0 and {p["name"] for p in json.loads(r.stdout)} >= {"general", "coding"}
    r = run("ask", "--temperature", "9", "hi")
    assert r.returncode == 2 and r.stderr.strip() == "error: --temperature must be a number from 0 to 2, not 9.0"
    r = run("ask", "--bogus")
    assert r.returncode == 2 and r.stderr.startswith("error: No such option: --bogus")

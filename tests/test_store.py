"""A broken, locked, foreign or concurrently created run log ends in one sentence, never a traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runner.errors import UserError
from runner.store import SCHEMA_VERSION, open_store

from .helpers import one_line_error

ROOT = Path(__file__).resolve().parent.parent

# --- the run log ------------------------------------------------------------------------------

LOG_COMMANDS = [("log",), ("log", "--json"), ("stats",), ("ask", "--explain", "--task", "private", "hi")]


@pytest.mark.parametrize("args", LOG_COMMANDS)
def test_garbage_run_log_is_one_line(cli, home, args):
    (home / "runs.db").write_bytes(b"this is not sqlite at all\x00\xff" * 200)
    r = cli(*args)
    one_line_error(r, f"the run log {home / 'runs.db'} is not a SQLite database (move it away to start a new one)")


@pytest.mark.parametrize("args", LOG_COMMANDS)
def test_run_log_without_tables_is_one_line(cli, home, args):
    db = sqlite3.connect(home / "runs.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    db.close()
    r = cli(*args)
    one_line_error(r, f"the run log {home / 'runs.db'} is damaged", "move it away")


@pytest.mark.parametrize("args", [("log",), ("stats",), ("ask", "--task", "private", "hi")])
def test_runner_home_that_is_a_file(cli, tmp_path, monkeypatch, args):
    home = tmp_path / "not-a-folder"
    home.write_text("oops")
    monkeypatch.setenv("RUNNER_HOME", str(home))
    r = cli(*args)
    one_line_error(r, f"{home} is a file, not a folder")


def test_runner_home_that_cannot_be_created(cli, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    monkeypatch.setenv("RUNNER_HOME", str(blocker / "home"))
    one_line_error(cli("log"), f"cannot use the run log {blocker / 'home' / 'runs.db'}")


def test_run_log_that_is_a_folder(cli, home):
    (home / "runs.db").mkdir()
    one_line_error(cli("stats"), f"the run log {home / 'runs.db'} is a folder")


def test_run_log_from_a_newer_runner(cli, home):
    db = sqlite3.connect(home / "runs.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    one_line_error(cli("log"), "written by a newer runner")


def test_store_errors_after_opening_are_user_errors(home):
    store = open_store(home)
    store.start_run(kind="ask", task="t", prompt="p", system=None)
    store.db.execute("DROP TABLE attempts")
    with pytest.raises(UserError, match="is damaged"):
        store.runs()
    store.close()


_OPENER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from runner.store import open_store
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    store = open_store(Path(sys.argv[1]))
    run = store.start_run(kind="ask", task="t", prompt="p", system=None)
    store.finish_run(run, {"outcome": "ok", "text": "x"})
    mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
    store.close()
    print(mode)
""")


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_first_use_of_a_new_run_log(tmp_path, round_):
    home = tmp_path / "fresh"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, str(home), str(go), str(ROOT)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    time.sleep(0.5)  # every process imported and waiting
    go.write_text("go")
    results = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.strip() == "wal"
    store = open_store(home)
    assert len(store.runs(limit=100)) == 6
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()


def test_concurrent_first_use_in_threads(tmp_path):
    import threading

    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            barrier.wait()
            store = open_store(tmp_path / "fresh")
            store.start_run(kind="ask", task="t", prompt="p", system=None)
            store.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors



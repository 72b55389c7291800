"""Fixtures for `runner serve`: the gateway on a free port with the protocol fakes behind it."""

from __future__ import annotations

import pytest

from runner.store import open_store

from .harness import Served


@pytest.fixture
def serve(home):
    """serve(**kwargs) starts the gateway (after `use(...)` pointed providers at fakes)."""
    started: list[Served] = []

    def start(**kwargs) -> Served:
        s = Served(**kwargs).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def runs(home):
    """The run log's runs, newest first (with their attempts)."""

    def read(**kwargs):
        store = open_store(home)
        try:
            return store.runs(limit=100, **kwargs)
        finally:
            store.close()

    return read


def profile(home, name: str, *models: str, extra: str = "") -> None:
    """Write a task profile into $RUNNER_HOME/profiles."""
    folder = home / "profiles"
    folder.mkdir(exist_ok=True)
    cands = "\n".join(f"  - model: {m}" for m in models)
    (folder / f"{name}.yaml").write_text(f"name: {name}\ndescription: test task {name}\ncandidates:\n{cands}\n{extra}")

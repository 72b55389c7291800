"""What `--deferred` shows fits 80 and 60 columns (the dry run, --status), and the progress
display draws a bar per job on a terminal and only event lines elsewhere."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from runner.batch import Batch, BatchOptions
from runner.batch.deferred import Deferred
from runner.batch.deferred.api import JobStatus
from runner.config import load_config
from runner.render.deferred import DeferredProgress
from tests.width import assert_fits, distinct, set_width

MODELS = ["openai/gpt-4.1", "anthropic/claude-haiku-4-5", "deepseek/deepseek-flash"]


@pytest.fixture
def three_providers(tmp_path, home, fake_openai_batch, fake_anthropic_batch, fake_deepseek, use):
    with open(home / "config.yaml", "a") as f:
        f.write("deferred: {poll_s: 0.01, max_poll_s: 0.05}\n")
    for fake, name in ((fake_openai_batch, "openai"), (fake_anthropic_batch, "anthropic"), (fake_deepseek, "deepseek")):
        use(fake, name)
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"question {i}", "model": MODELS[i % 3]}) + "\n"
                           for i in range(9)))
    return src


@pytest.mark.parametrize("width", [80, 60])
def test_dry_run_and_status_fit(cli, three_providers, tmp_path, width, monkeypatch):
    set_width(monkeypatch, width)
    out = tmp_path / "answers.jsonl"
    r = cli("batch", str(three_providers), "--out", str(out), "--deferred", "--dry-run")
    assert r.code == 0, r.stderr
    table = r.stdout[:r.stdout.index("estimated total")]
    assert_fits(table, width)
    distinct(table, MODELS)
    assert cli("batch", str(three_providers), "--out", str(out), "--deferred", "--no-wait").code == 4
    r = cli("batch", str(three_providers), "--out", str(out), "--deferred", "--status")
    assert r.code == 0, r.stderr
    assert_fits(r.stdout, width)
    distinct(r.stdout, MODELS[:2])


def test_progress_draws_a_bar_per_job_on_a_terminal(three_providers, tmp_path):
    b = Batch(load_config(), BatchOptions(file=three_providers, out=str(tmp_path / "a.jsonl")))
    d = Deferred(b)
    job = d.jobs.new_job("openai", "gpt-4.1", ["r0", "r3", "r6"], "2026-11-28T09:00:00+00:00", 0.01)
    job.job_id = "batch_abc"
    running = JobStatus("in_progress", "in_progress", total=3, done=1, failed=1)
    ended = JobStatus("ended", "completed", total=3, done=2, failed=1, outcome="completed")
    for terminal in (True, False):
        buf = io.StringIO()
        console = Console(file=buf, force_terminal=terminal, width=100, color_system=None)
        with DeferredProgress(d, enabled=terminal, console=console) as view:
            view.event("submitted", job)
            view.event("status", job, running)
            view.event("problem", job, "openai said no")
            view.event("collected", job, ended)
        text = buf.getvalue()
        assert "submitted job j1 (openai/gpt-4.1, batch_abc): 3 rows" in text
        assert "warning: openai said no" in text and "collected job j1" in text and "2 answered, 1 failed" in text
        assert ("j1 openai/gpt-4.1" in text) == terminal  # the bar exists on a terminal only
    assert d.on_event is None and b.on_change is None  # unhooked on the way out

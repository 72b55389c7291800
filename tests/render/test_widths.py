"""Every table reads at 80 and at 60 columns: no line wider than the terminal, every model told
apart from the others (never cut to a shared prefix, never left out)."""

from __future__ import annotations

import pytest
from rich.text import Text

from runner.render.fit import Alt, Col, fit_table, layout
from runner.store import open_store
from tests.width import assert_fits, distinct, set_width

WIDTHS = [80, 60]
MODELS = ["anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-6", "openai/gpt-4.1", "openai/gpt-4.1-mini",
          "ollama/qwen2.5:7b", "ollama/deepseek-r1:8b", "gemini/gemini-2.5-flash"]
TASKS = ["general", "reasoning", "realtime", "long-doc", "coding"]


@pytest.fixture
def logged(home):
    """A run log with every model, ok and failed calls, and a server that sent no counts."""
    store = open_store(home)
    for i in range(21):
        model = MODELS[i % len(MODELS)]
        run = store.start_run(kind="ask", task=TASKS[i % len(TASKS)], prompt=f"question {i}, rather long " * 4, system=None)
        ok = i % 5 != 3
        rec = {"model": model, "outcome": "ok" if ok else "failed", "error": None if ok else "HTTP 500",
               "input_tokens": 12_000 + i, "output_tokens": 3_000 + i, "tokens_estimated": model.startswith("ollama") and i % 2,
               "ttft_ms": 100.0 + i, "latency_ms": 1500.0 + i, "tokens_per_s": 40.0,
               "cost_usd": 0.0 if model.startswith("ollama") else 0.0123 * (i + 1)}
        store.add_attempt(run, rec)
        store.finish_run(run, rec)
    store.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_stats(cli, logged, width, monkeypatch):
    set_width(monkeypatch, width)
    r = cli("stats")
    assert r.code == 0, r.stderr
    table = r.stdout[:r.stdout.index("Total spent")]
    assert_fits(table, width)
    distinct(table, MODELS)
    assert "~" in table  # the local models' estimated tokens


@pytest.mark.parametrize("width", WIDTHS)
def test_log(cli, logged, width, monkeypatch):
    set_width(monkeypatch, width)
    r = cli("log", "-n", "21")
    assert r.code == 0, r.stderr
    assert_fits(r.stdout, width)
    distinct(r.stdout, MODELS)
    for task in TASKS:  # whole, never `ge…`: reasoning and realtime stay apart
        assert f" {task} " in r.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_explain(cli, fake_ollama, use, width, monkeypatch):
    use(fake_ollama, "ollama")
    set_width(monkeypatch, width)
    r = cli("ask", "--task", "coding", "--explain", "fix this")
    assert r.code == 0, r.stderr
    assert_fits(r.stdout, width)
    distinct(r.stdout, ["anthropic/claude-sonnet-4-6", "anthropic/claude-sonnet-4-5", "ollama/qwen2.5:14b",
                        "openai/gpt-4.1", "deepseek/deepseek-v4-pro"])
    assert "ANTHROPIC_API_KEY" in r.stdout  # a reason is wrapped, not cut


@pytest.mark.parametrize("width", WIDTHS)
def test_models_and_profiles(cli, fake_ollama, use, width, monkeypatch):
    use(fake_ollama, "ollama")
    set_width(monkeypatch, width)
    models = cli("models")
    assert models.code == 0, models.stderr
    assert_fits(models.stdout, width)
    distinct(models.stdout, ["anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-6", "anthropic/claude-haiku-4-5",
                             "mistral/mistral-large-latest", "ollama/deepseek-r1:8b"])
    assert "once" in models.stdout  # each provider's concurrency limit
    profiles = cli("profiles")
    assert_fits(profiles.stdout, width)
    distinct(profiles.stdout, ["anthropic/claude-sonnet-4-6", "deepseek/deepseek-v4-pro"])


def test_models_json_has_each_providers_limit(cli, home):
    (home / "config.yaml").write_text("endpoints:\n  box: {base_url: 'http://127.0.0.1:9/v1', local: true}\n"
                                      "models:\n  box/m: {context: 4096}\nhosted_concurrency: 12\n")
    rows = {r["model"]: r for r in cli("models", "--json").json()["models"]}
    assert rows["box/m"]["num_parallel"] == 1 and rows["openai/gpt-4.1"]["num_parallel"] == 12


THREE = ["ollama/qwen2.5:7b", "anthropic/claude-sonnet-4-6", "openai/gpt-4.1-mini"]


@pytest.fixture
def three(fake_ollama, fake_openai, fake_anthropic, use):
    for fake, name in ((fake_ollama, "ollama"), (fake_openai, "openai"), (fake_anthropic, "anthropic")):
        use(fake, name)


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_one_prompt(cli, three, width, monkeypatch):
    set_width(monkeypatch, width)
    r = cli("compare", "Explain CAP briefly", *[a for m in THREE for a in ("-m", m)])
    assert r.code == 0, r.stderr
    assert_fits(r.stdout, width)
    distinct(r.stdout, THREE)


@pytest.mark.parametrize("width", WIDTHS + [120])
def test_compare_prompt_set(cli, three, width, monkeypatch, tmp_path):
    set_width(monkeypatch, width)
    path = tmp_path / "set.txt"
    path.write_text("What is CAP?\n\nExplain Raft in one line, with an example of a leader election\n")
    r = cli("compare", "--prompts", str(path), *[a for m in THREE for a in ("-m", m)])
    assert r.code == 0, r.stderr
    assert_fits(r.stdout, width)
    matrix, summary = r.stdout.split("Per model")
    distinct(matrix, THREE)  # no model column dropped
    distinct(summary, THREE)


# --- the fitting itself -----------------------------------------------------------------------------


def test_columns_go_in_their_order_and_names_are_never_cut():
    cols = [Col("model", "left", name=True), Col("a", drop=2), Col("b", drop=30), Col("c"), Col("note", "left", text=True)]
    rows = [["anthropic/claude-sonnet-4-6", "1" * 10, "2" * 10, "3" * 10, "x" * 50]]
    assert layout(cols, rows, 200).active == [0, 1, 2, 3, 4]
    assert layout(cols, rows, 70).active == [0, 1, 3, 4]  # b (a late drop) goes before names wrap
    lay = layout(cols, rows, 52)
    assert lay.active == [0, 1, 3, 4] and lay.widths[0] < 27  # the name wraps after its provider
    assert layout(cols, rows, 45).active == [0, 3, 4]  # then the early drops go


def test_short_forms_come_before_leaving_anything_out():
    cols = [Col("model", "left", name=True), Col("tokens in/out", short="tokens"), Col("cost")]
    rows = [["openai/gpt-4.1", Alt("12,345/6,789", "12K/6.8K"), "$0.10"]]
    lay = layout(cols, rows, 34)
    assert lay.narrow and lay.active == [0, 1, 2]
    from rich.console import Console

    console = Console(width=34, record=True)
    console.print(fit_table(cols, rows, 34))
    text = console.export_text()
    assert "12K/6.8K" in text and "tokens" in text and "openai/gpt-4.1" in text


def test_a_wrapped_name_keeps_its_style():
    cols = [Col("model", "left", name=True), Col("cost")]
    rows = [[Text("anthropic/claude-sonnet-4-6", style="red"), "$1.00"]]
    from rich.console import Console

    console = Console(width=24, record=True)
    console.print(fit_table(cols, rows, 24))
    text = console.export_text(styles=True)
    assert "anthropic/" in text and "claude-sonnet-4-6" in text and "\x1b[31m" in text

"""Config loading: user profiles and overrides, price overrides, and errors that name file, line, key."""

from __future__ import annotations

import pytest

from runner.config import load_config, normalise_ollama_host
from runner.errors import UserError
from runner.pricing import Pricing


def test_user_profile_overrides_shipped_and_adds_new(home):
    (home / "profiles").mkdir()
    (home / "profiles" / "coding.yaml").write_text("name: coding\ndescription: mine\ncandidates:\n  - model: ollama/qwen2.5:7b\n")
    (home / "profiles" / "sql.yaml").write_text("name: sql\ndescription: SQL help\ncandidates: [openai/gpt-4.1]\n")
    config = load_config()
    assert [c.model for c in config.profile("coding").candidates] == ["ollama/qwen2.5:7b"]
    assert config.profile("sql").candidates[0].model == "openai/gpt-4.1"
    assert "long-doc" in config.profiles


@pytest.mark.parametrize("text,expected", [
    ("name: x\ndescription: d\ncandidates:\n  - modle: openai/gpt-4.1\n", "x.yaml, line 4: candidates.0.modle: unknown key (did you mean 'model'?)"),
    ("name: x\ncandidates: []\n", "x.yaml, line 2: candidates: needs at least one candidate"),
    ("name: x\nprivacy: secret\ncandidates: [openai/gpt-4.1]\n", "x.yaml, line 2: privacy: must be 'any' or 'local-only'"),
    ("name: x\nmax_cost_usd: cheap\ncandidates: [openai/gpt-4.1]\n", "x.yaml, line 2: max_cost_usd: must be a number of US dollars"),
    ("name: x\ncandidates:\n  - model: gpt-4.1\n", "x.yaml, line 3: candidates.0.model: must be provider/model"),
    ("name: x\ncandidates: [openai/gpt-4.1\n", "x.yaml, line 3: not valid YAML"),
    ("name: x\ncandidates: [openai/gpt-4.1]\noptions: {temprature: 0.2}\n", "x.yaml, line 3: options.temprature: unknown key (did you mean 'temperature'?)"),
])
def test_profile_errors_name_file_line_and_key(home, text, expected):
    (home / "profiles").mkdir()
    (home / "profiles" / "x.yaml").write_text(text)
    with pytest.raises(UserError) as err:
        load_config()
    assert str(err.value).endswith(expected) or expected in str(err.value)


def test_bad_user_config_is_one_line_through_the_cli(cli, home):
    (home / "config.yaml").write_text("ollama:\n  max_num_ctx: lots\n")
    r = cli("ask", "hi")
    assert r.code == 2
    assert f"{home / 'config.yaml'}, line 2: ollama.max_num_ctx: must be a whole number of tokens" in r.stderr
    assert "Traceback" not in r.stderr


def test_price_override_wins_and_unknown_is_none(home):
    (home / "config.yaml").write_text(
        "models:\n  deepseek/deepseek-chat:\n    price: {input_per_mtok: 0.1, output_per_mtok: 0.2}\n")
    pricing = Pricing(load_config())
    # genai-prices still carries the retired model at its old rate; the user's price wins.
    assert pricing.cost("deepseek/deepseek-chat", 1_000_000, 1_000_000) == pytest.approx(0.3)
    assert pricing.cost("openai/gpt-4.1", 1_000_000, 0) == pytest.approx(2.0)
    assert pricing.cost("openai/no-such-model", 1000, 1000) is None
    assert pricing.cost("ollama/qwen2.5:7b", 1000, 1000, seconds=10) == 0.0


def test_local_rate_per_hour(home):
    (home / "config.yaml").write_text("local_cost_per_hour_usd: 0.36\n")
    assert Pricing(load_config()).cost("ollama/qwen2.5:7b", 10, 10, seconds=10) == pytest.approx(0.001)


def test_base_url_env_and_ollama_host_forms(home, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_BASE_URL", "http://127.0.0.1:9/ds")
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0")
    config = load_config()
    assert config.providers["deepseek"].base_url == "http://127.0.0.1:9/ds"
    assert config.providers["ollama"].base_url == "http://127.0.0.1:11434"
    assert normalise_ollama_host("gpu-box:1234") == "http://gpu-box:1234"
    assert normalise_ollama_host("https://ollama.example/") == "https://ollama.example"
    assert normalise_ollama_host("http://[::1]:5000") == "http://[::1]:5000"

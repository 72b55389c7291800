"""Bad config and profile values name the file, the line and the key."""

from __future__ import annotations

import pytest

from runner.config import load_config
from runner.errors import UserError

from .helpers import one_line_error

# --- config values ------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("providers:\n  box:\n    protocol: openai\n    base_url: 42\n", "line 4: providers.box.base_url: must be text"),
    ("providers:\n  box:\n    protocol: openai\n    base_url: localhost:8080\n",
     "line 4: providers.box.base_url: must be an http(s) URL"),
    ("providers:\n  box:\n    protocol: openai\n    base_url: 'http://[::1'\n",
     "line 4: providers.box.base_url: must be an http(s) URL"),
    ("providers:\n  box:\n    protocol: openai\n    base_url: ftp://x.example\n", "line 4: providers.box.base_url: must be an http(s) URL"),
    ("endpoints:\n  box:\n    base_url: http://127.0.0.1:9/v1\n    key_env: [A]\n", "line 4: endpoints.box.key_env: must be text"),
    ("endpoints:\n  box:\n    base_url: http://127.0.0.1:9/v1\n    max_tokens_field: max_output\n",
     "line 4: endpoints.box.max_tokens_field: must be max_tokens or max_completion_tokens"),
    ("endpoints:\n  box:\n    base_url: http://127.0.0.1:9/v1\n    local: 'no'\n", "line 4: endpoints.box.local: must be true or false"),
    ("models:\n  nobody/model-x:\n    context: 8000\n", "line 2: models.nobody/model-x: unknown provider 'nobody'"),
    ("models:\n  openai/gpt-4.1:\n    price: {input_per_mtok: -1, output_per_mtok: 2}\n",
     "line 3: models.openai/gpt-4.1.price.input_per_mtok: must be a number of US dollars, 0 or more"),
    ("models:\n  openai/gpt-4.1:\n    context: 0\n", "line 3: models.openai/gpt-4.1.context: must be a whole number of tokens"),
    ("timeouts: {connect_s: 0}\n", "line 1: timeouts.connect_s: must be a number of seconds, more than 0"),
    ("timeouts:\n  total_s: -5\n", "line 2: timeouts.total_s: must be a number of seconds, more than 0"),
    ("retries: -1\n", "line 1: retries: must be a whole number, 0 or more"),
    ("hosted_concurrency: 0\n", "line 1: hosted_concurrency: must be a whole number, 1 or more"),
    ("local_cost_per_hour_usd: -0.5\n", "line 1: local_cost_per_hour_usd: must be a number of US dollars, 0 or more"),
    ("ollama:\n  num_parallel: 0\n", "line 2: ollama.num_parallel: must be a whole number, 1 or more"),
    ("ollama:\n  max_num_ctx: 100\n", "line 2: ollama.max_num_ctx: must be a whole number of tokens, 512 or more"),
])
def test_bad_config_values_name_file_line_and_key(home, text, expected):
    (home / "config.yaml").write_text(text)
    with pytest.raises(UserError) as err:
        load_config()
    assert f"{home / 'config.yaml'}, {expected}" in str(err.value)


@pytest.mark.parametrize("options,expected", [
    ("{max_output_tokens: 0}", "options.max_output_tokens: must be a whole number of tokens, 1 or more"),
    ("{max_output_tokens: 2.5}", "options.max_output_tokens: must be a whole number of tokens"),
    ("{temperature: -0.1}", "options.temperature: must be a number from 0 to 2"),
    ("{temperature: 7}", "options.temperature: must be a number from 0 to 2, not 7"),
    ("{think: maybe}", "options.think: must be true, false, low, medium or high"),
    ("{think: 3}", "options.think: must be true, false, low, medium or high"),
])
def test_bad_profile_options(home, options, expected):
    (home / "profiles").mkdir()
    (home / "profiles" / "x.yaml").write_text(f"name: x\ncandidates: [openai/gpt-4.1]\noptions: {options}\n")
    with pytest.raises(UserError) as err:
        load_config()
    assert f"x.yaml, line 3: {expected}" in str(err.value)


def test_good_profile_options_and_provider_values_load(home):
    (home / "profiles").mkdir()
    (home / "profiles" / "x.yaml").write_text(
        "name: x\ncandidates: [openai/gpt-4.1]\noptions: {think: high, temperature: 0, max_output_tokens: 10}\n")
    (home / "config.yaml").write_text(
        "endpoints:\n  box:\n    base_url: https://box.example/v1\n    local: true\n"
        "    max_tokens_field: max_completion_tokens\nmodels:\n  box/m:\n    context: 4096\n"
        "ollama: {max_num_ctx: 512, num_parallel: 1}\nretries: 0\n")
    config = load_config()
    assert config.providers["box"].local is True
    assert config.models["box/m"].context == 4096
    assert config.profile("x").options["think"] == "high"


def test_bad_base_url_from_the_environment_names_the_variable_not_the_value(home, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "api.example.com/v1?key=hunter2")
    with pytest.raises(UserError) as err:
        load_config()
    assert str(err.value).startswith("OPENAI_BASE_URL: must be an http(s) URL")
    assert "hunter2" not in str(err.value)


def test_bad_config_value_through_the_cli(cli, home):
    (home / "config.yaml").write_text("endpoints:\n  box:\n    base_url: http://127.0.0.1:9/v1\n    local: 'no'\n")
    one_line_error(cli("models"), "line 4: endpoints.box.local: must be true or false")



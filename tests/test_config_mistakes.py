"""Config and profile mistakes that used to pass silently: each is one line with file, line, key."""

from __future__ import annotations

import pytest

from runner.config import load_config
from runner.errors import UserError
from runner.limits import Limits


def error_of(home) -> str:
    with pytest.raises(UserError) as err:
        load_config()
    message = str(err.value)
    assert "\n" not in message
    return message


def test_unknown_default_task_names_file_line_and_key(home):
    (home / "config.yaml").write_text("retries: 1\ndefault_task: nope\n")
    message = error_of(home)
    assert message.startswith(f"{home / 'config.yaml'}, line 2: default_task: unknown task 'nope'")
    assert "known tasks: coding" in message


def test_a_candidate_of_an_unknown_provider_fails_at_load(home):
    (home / "profiles").mkdir()
    (home / "profiles" / "mine.yaml").write_text("name: mine\ncandidates:\n  - model: foo/bar\n")
    message = error_of(home)
    assert message.startswith(f"{home / 'profiles' / 'mine.yaml'}, line 3: candidates.0.model: unknown provider 'foo'")


def test_a_profile_named_unlike_its_file_is_refused(home):
    (home / "profiles").mkdir()
    (home / "profiles" / "mine.yaml").write_text("description: d\nname: other\ncandidates: [openai/gpt-4.1]\n")
    message = error_of(home)
    assert message.startswith(f"{home / 'profiles' / 'mine.yaml'}, line 2: name: 'other' differs from the file name")
    assert "other.yaml" in message and "name: mine" in message


def test_two_profiles_of_one_name_name_both_files(home):
    (home / "profiles").mkdir()
    for ext in ("yaml", "yml"):
        (home / "profiles" / f"mine.{ext}").write_text("name: mine\ncandidates: [openai/gpt-4.1]\n")
    message = error_of(home)
    assert str(home / "profiles" / "mine.yaml") in message and str(home / "profiles" / "mine.yml") in message


@pytest.mark.parametrize("text,expected", [
    ("retries: 1\nhosted_concurrency: 4\nretries: 2\n", "line 3: retries: duplicate key (first on line 1)"),
    ("ollama:\n  num_parallel: 1\n  num_parallel: 2\n", "line 3: ollama.num_parallel: duplicate key (first on line 2)"),
])
def test_duplicate_keys_are_refused(home, text, expected):
    (home / "config.yaml").write_text(text)
    assert error_of(home) == f"{home / 'config.yaml'}, {expected}"


def test_duplicate_keys_in_a_profile_too(home):
    (home / "profiles").mkdir()
    (home / "profiles" / "x.yaml").write_text("name: x\ncandidates: [openai/gpt-4.1]\ncandidates: [openai/o3]\n")
    assert error_of(home).endswith("x.yaml, line 3: candidates: duplicate key (first on line 2)")


def test_a_config_yaml_that_is_a_folder(cli, home):
    (home / "config.yaml").unlink()
    (home / "config.yaml").mkdir()
    r = cli("profiles")
    assert r.code == 2
    assert r.stderr.strip() == f"error: {home / 'config.yaml'} is not a file; move it away or make it a YAML file"


def test_through_the_cli_one_line_and_exit_2(cli, home):
    (home / "config.yaml").write_text("default_task: nope\n")
    r = cli("ask", "hi")
    assert r.code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# --- an endpoint's num_parallel (issue 9, item 5) -------------------------------------------------


def test_num_parallel_defaults_and_overrides(home):
    (home / "config.yaml").write_text(
        "hosted_concurrency: 30\n"
        "endpoints:\n"
        "  llama: {base_url: 'http://127.0.0.1:9/v1', local: true}\n"
        "  vllm: {base_url: 'http://127.0.0.1:9/v1', local: true, num_parallel: 4}\n"
        "  gateway: {base_url: 'http://127.0.0.1:9/v1'}\n"
        "ollama: {num_parallel: 3}\n")
    config = load_config()
    assert config.providers["vllm"].num_parallel == 4 and config.providers["llama"].num_parallel is None
    limits = Limits(config)
    assert limits.ceiling("llama") == 1  # llama.cpp's server cuts the requests it does not serve
    assert limits.ceiling("vllm") == 4
    assert limits.ceiling("gateway") == 30 and limits.ceiling("openai") == 30
    assert limits.ceiling("ollama") == 3
    assert Limits(config, overrides={"llama": 2}).ceiling("llama") == 2


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "many", "true"])
def test_num_parallel_must_be_a_whole_number(home, value):
    (home / "config.yaml").write_text(f"endpoints:\n  box:\n    base_url: http://127.0.0.1:9/v1\n    num_parallel: {value}\n")
    assert error_of(home).endswith("line 4: endpoints.box.num_parallel: must be a whole number, 1 or more, not "
                                   + repr(__import__("yaml").safe_load(value)))

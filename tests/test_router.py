"""The router's decisions and the reasons it gives, without any server."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runner.config import Candidate, Profile, load_config
from runner.pricing import Pricing
from runner.availability import Availability, LocalModel, OllamaStatus
from runner.router import Need, pick_num_ctx, plan


@pytest.fixture
def config(home):
    return load_config()


def ollama_up(models=None, version="0.12.6", host="http://127.0.0.1:11434"):
    models = models if models is not None else {"qwen2.5:7b": LocalModel(32768, ("completion",)),
                                                 "qwen2.5:14b": LocalModel(32768, ("completion",)),
                                                 "deepseek-r1:8b": LocalModel(131072, ("completion", "thinking"))}
    return {"ollama": OllamaStatus(host, True, None, version, models)}


def profile(*refs, **kw):
    return Profile(name=kw.pop("name", "t"), description="", candidates=tuple(Candidate(r) for r in refs), **kw)


def reasons(p):
    return {s.ref: s.reason for s in p.skipped}


def test_skips_explain_themselves(config):
    avail = Availability(ollama=ollama_up(), keys=frozenset({"openai"}))
    prof = profile("ollama/qwen3:8b", "ollama/qwen2.5:7b", "deepseek/deepseek-flash", "openai/gpt-4.1")
    p = plan(Need(100, 500), prof, config, avail, Pricing(config).estimate)
    assert [a.ref for a in p.attempts] == ["ollama/qwen2.5:7b", "openai/gpt-4.1"]
    assert reasons(p) == {"ollama/qwen3:8b": "not pulled (ollama pull qwen3:8b)",
                          "deepseek/deepseek-flash": "no DEEPSEEK_API_KEY"}


def test_ollama_down_is_named_with_its_host(config):
    avail = Availability(ollama={"ollama": OllamaStatus("http://127.0.0.1:11434", False, "connection refused")})
    p = plan(Need(10, 10), profile("ollama/qwen2.5:7b"), config, avail, Pricing(config).estimate)
    assert not p.attempts
    assert reasons(p)["ollama/qwen2.5:7b"] == f"Ollama not reachable at {config.providers['ollama'].base_url} (connection refused)"


def test_context_fit_uses_the_models_window_and_sizes_num_ctx(config):
    avail = Availability(ollama=ollama_up(), keys=frozenset({"gemini"}))
    prof = profile("ollama/qwen2.5:14b", "ollama/deepseek-r1:8b", "gemini/gemini-2.5-pro")
    p = plan(Need(60_000, 2048), prof, config, avail, Pricing(config).estimate)
    assert reasons(p)["ollama/qwen2.5:14b"] == "prompt ~60K tokens + 2K output exceeds 32K context"
    first = p.attempts[0]
    assert first.ref == "ollama/deepseek-r1:8b"
    # 60K * 1.15 margin + 2K output = 71K → the 128K step, within the model's 131072.
    assert first.backend_options == {"num_ctx": 131072, "truncate": False, "shift": False}
    assert p.attempts[1].ref == "gemini/gemini-2.5-pro"


def test_user_ceiling_caps_ollama_window(config):
    config.settings = replace(config.settings, ollama_max_num_ctx=65536)
    avail = Availability(ollama=ollama_up())
    p = plan(Need(60_000, 2048), profile("ollama/deepseek-r1:8b"), config, avail, Pricing(config).estimate)
    assert not p.attempts and p.too_long
    assert "exceeds 64K context (max_num_ctx 64K)" in reasons(p)["ollama/deepseek-r1:8b"]


def test_old_server_gets_no_truncate_flag(config):
    avail = Availability(ollama=ollama_up(version="0.11.2"))
    p = plan(Need(100, 100), profile("ollama/qwen2.5:7b"), config, avail, Pricing(config).estimate)
    assert p.attempts[0].backend_options == {"num_ctx": 4096}


def test_local_only_never_plans_hosted(config):
    avail = Availability(ollama=ollama_up(), keys=frozenset({"openai", "anthropic"}))
    prof = profile("openai/gpt-4.1", "anthropic/claude-sonnet-4-5", "ollama/qwen2.5:7b", privacy="local-only")
    p = plan(Need(10, 10), prof, config, avail, Pricing(config).estimate)
    assert [a.ref for a in p.attempts] == ["ollama/qwen2.5:7b"]
    assert reasons(p) == {"openai/gpt-4.1": "task is local-only", "anthropic/claude-sonnet-4-5": "task is local-only"}
    # The command-line flag does the same on a task that allows hosted models.
    p2 = plan(Need(10, 10), replace(prof, privacy="any"), config, avail, Pricing(config).estimate, local_only=True)
    assert [a.ref for a in p2.attempts] == ["ollama/qwen2.5:7b"]


def test_max_cost_skips_with_the_estimate(config):
    avail = Availability(keys=frozenset({"openai", "deepseek"}))
    prof = profile("openai/gpt-4.1", "deepseek/deepseek-flash", max_cost_usd=0.50)
    p = plan(Need(400_000, 2048), prof, config, avail, Pricing(config).estimate)
    assert reasons(p)["openai/gpt-4.1"].startswith("estimated $0.82 over max_cost_usd 0.50")
    assert [a.ref for a in p.attempts] == ["deepseek/deepseek-flash"]
    # --max-cost overrides the profile's.
    p2 = plan(Need(400_000, 2048), prof, config, avail, Pricing(config).estimate, max_cost_usd=1.0)
    assert [a.ref for a in p2.attempts] == ["openai/gpt-4.1", "deepseek/deepseek-flash"]


def test_unknown_price_is_not_zero_and_not_skipped(config):
    avail = Availability(keys=frozenset({"openai"}))
    p = plan(Need(100, 100), profile("openai/some-new-model", max_cost_usd=0.01), config, avail, Pricing(config).estimate)
    assert p.attempts[0].est_cost_usd is None


def test_num_ctx_steps():
    assert pick_num_ctx(100, 32768) == 4096
    assert pick_num_ctx(4097, 32768) == 8192
    assert pick_num_ctx(40000, 40960) == 40960  # capped by the window, not rounded past it

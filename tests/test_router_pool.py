"""The router over a pool of Ollama hosts: the union of their models, and num_ctx from the windows
of the hosts that can take the request. Pure: availability is built by hand."""

from __future__ import annotations

import pytest

from runner.availability import Availability, LocalModel, OllamaStatus, pool_status
from runner.config import Candidate, Profile, load_config
from runner.pricing import Pricing
from runner.router import Need, plan

A, B, C = "http://a:11434", "http://b:11434", "http://c:11434"


@pytest.fixture
def config(home):
    return load_config()


def host(url, models=None, version="0.12.6", reachable=True, error=None):
    return OllamaStatus(url, reachable, error, version if reachable else None, models or {})


def route(config, statuses, need, model="ollama/qwen2.5:7b"):
    avail = Availability(ollama={"ollama": pool_status(statuses)})
    prof = Profile(name="t", description="", candidates=(Candidate(model),))
    return plan(need, prof, config, avail, Pricing(config).estimate)


def test_num_ctx_fits_every_host_that_can_take_the_request(config):
    small = host(A, {"qwen2.5:7b": LocalModel(8192)})
    large = host(B, {"qwen2.5:7b": LocalModel(32768)}, version="0.11.0")
    down = host(C, reachable=False, error="connection refused")
    short = route(config, [small, large, down], Need(500, 1000)).attempts[0]
    assert short.hosts == (A, B) and short.backend_options["num_ctx"] == 4096
    assert "truncate" not in short.backend_options  # B is too old to take it: the cut is checked after
    long = route(config, [small, large, down], Need(10_000, 1000)).attempts[0]
    assert long.hosts == (B,) and long.backend_options["num_ctx"] == 16384 and long.context == 32768
    both_new = route(config, [small, host(B, {"qwen2.5:7b": LocalModel(32768)})], Need(500, 1000)).attempts[0]
    assert both_new.backend_options["truncate"] is False


def test_a_request_no_host_can_hold_names_the_largest_window(config):
    p = route(config, [host(A, {"qwen2.5:7b": LocalModel(8192)}), host(B, {"qwen2.5:7b": LocalModel(16384)})],
              Need(30_000, 1000))
    (skip,) = p.skipped
    assert skip.too_small and skip.context == 16384 and "16K context" in skip.reason


def test_union_of_models_and_hosts_down(config):
    statuses = [host(A, {"qwen2.5:7b": LocalModel(32768)}), host(B, {"qwen3:8b": LocalModel(40960)}),
                host(C, reachable=False, error="timed out")]
    assert route(config, statuses, Need(100, 100), "ollama/qwen3:8b").attempts[0].hosts == (B,)
    p = route(config, statuses, Need(100, 100), "ollama/deepseek-r1:8b")
    assert p.skipped[0].reason == "not pulled (ollama pull deepseek-r1:8b) on any reachable host"
    p = route(config, [host(A, reachable=False, error="connection refused"),
                       host("http://user:secret@b:11434", reachable=False, error="timed out")], Need(100, 100))
    reason = p.skipped[0].reason
    assert reason.startswith("no Ollama host of ollama reachable")
    assert "a:11434: connection refused" in reason and "b:11434: timed out" in reason and "secret" not in reason


def test_pool_status_merges_hosts():
    merged = pool_status([host(A, {"m": LocalModel(8192, ("completion",))}),
                          host(B, {"m": LocalModel(32768, ("completion",)), "n": LocalModel(4096)}),
                          host(C, reachable=False, error="connection refused")])
    assert merged.reachable and merged.host == A and len(merged.hosts) == 3
    assert merged.models["m"].context_length == 32768 and set(merged.models) == {"m", "n"}
    assert pool_status([host(A)]).hosts == ()  # one host: as before pools

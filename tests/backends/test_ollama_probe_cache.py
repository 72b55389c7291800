"""What an Ollama server said is reused for a few seconds: `runner ask` asked again goes straight
to /api/chat. A failure, a model asked for that the list lacks, and `runner models` ask again."""

from __future__ import annotations

import asyncio

from runner.backends.ollama_probe import probe_ollama
from tests.conftest import closed_port_url
from tests.fakes import Fault
from tests.fakes.ollama import FakeModel


def probes(fake) -> int:
    return len([r for r in fake.requests if r.path == "/api/tags"])


def test_a_second_ask_does_not_probe_again(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    assert cli("ask", "-m", "ollama/qwen2.5:7b", "one").code == 0
    assert cli("ask", "hello").code == 0  # routed by the general profile: the same server
    assert probes(fake_ollama) == 1
    assert cli("models").code == 0  # what is there right now
    assert probes(fake_ollama) == 2


def test_a_failed_call_asks_the_server_again(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    assert cli("ask", "-m", "ollama/qwen2.5:7b", "one").code == 0
    for _ in range(2):
        fake_ollama.push_fault(Fault(status=500, message="model runner crashed"))
    assert cli("ask", "-m", "ollama/qwen2.5:7b", "two").code == 1
    assert cli("ask", "-m", "ollama/qwen2.5:7b", "three").code == 0
    assert probes(fake_ollama) == 2


def test_a_model_just_pulled_is_found(cli, fake_ollama, use):
    use(fake_ollama, "ollama")
    assert cli("ask", "-m", "ollama/qwen2.5:7b", "one").code == 0
    fake_ollama.models["llama3.2:1b"] = FakeModel(131072, "llama")
    r = cli("ask", "-m", "ollama/llama3.2:1b", "two")
    assert r.code == 0, r.stderr
    assert probes(fake_ollama) == 2


def test_an_unreachable_server_is_not_remembered(tmp_path, fake_ollama):
    cache = tmp_path / "ollama-show.json"
    down = asyncio.run(probe_ollama(closed_port_url(), cache, fresh_s=30))
    assert not down.reachable and not (tmp_path / "ollama-probe.json").exists()
    up = asyncio.run(probe_ollama(fake_ollama.url, cache, fresh_s=30))
    again = asyncio.run(probe_ollama(fake_ollama.url, cache, fresh_s=30))
    assert up == again and probes(fake_ollama) == 1
    asyncio.run(probe_ollama(fake_ollama.url, cache, fresh_s=0))  # 0: always ask
    assert probes(fake_ollama) == 2

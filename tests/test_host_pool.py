"""Several local machines as one provider (issue 13), end to end through the real CLI: Ollama
fakes with different pulled models, speeds and num_parallel; one killed mid-batch; a model on
one host only; the loaded model preferred; local-only kept local; `stats --by host`; `models`."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.fakes.ollama import FakeModel, default_models
from tests.fakes.pool import OllamaHost, kill_after, write_pool_config
from tests.width import assert_fits, set_width


def models(*names: str, **contexts: int) -> dict[str, FakeModel]:
    """The fake's default models by name; `contexts` (name with '_' for '.' and ':') resizes one."""
    out = {n: default_models()[n] for n in names}
    for key, context in contexts.items():
        name = next(n for n in out if n.replace(".", "_").replace(":", "_") == key)
        out[name] = FakeModel(context, out[name].arch, out[name].capabilities)
    return out


@pytest.fixture
def pool():
    """Start OllamaHost fakes; all are stopped at the end (a killed one again, harmlessly)."""
    started: list[OllamaHost] = []

    def start(*hosts: OllamaHost):
        for h in hosts:
            h.start()
            started.append(h)
        return hosts

    yield start
    for h in started:
        h.stop()


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_out(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def ok_hosts(records) -> Counter:
    return Counter(next(a["host"] for a in rec["attempts"] if a["outcome"] == "ok") for rec in records)


def hosted_chats(*fakes) -> int:
    return sum(1 for f in fakes for r in f.requests if r.method == "POST")


# --- batch: every host at once, one killed mid-run ------------------------------------------


def test_a_host_killed_mid_batch_its_rows_finish_on_the_others_none_twice(cli, home, tmp_path, pool, fake_openai, use):
    use(fake_openai, "openai")  # the next candidate: reached only if no host of the pool can answer
    fast, slow, big = pool(
        OllamaHost(models("qwen2.5:7b", "qwen3:8b"), num_parallel=2, ttft_s=0.02, chunk_delay_s=0.005),
        OllamaHost(models("qwen2.5:7b"), num_parallel=1, ttft_s=0.05, chunk_delay_s=0.01),
        OllamaHost(models("qwen2.5:7b", "deepseek-r1:8b"), num_parallel=3, ttft_s=0.03, chunk_delay_s=0.01),
    )
    write_pool_config(home, [fast, slow, big])
    (home / "profiles").mkdir()
    (home / "profiles" / "pooled.yaml").write_text(
        "name: pooled\ndescription: the pool, then a hosted model\n"
        "candidates:\n  - model: ollama/qwen2.5:7b\n  - model: openai/gpt-4.1\n")
    rows = [{"id": f"r{i:02d}", "prompt": f"question number {i} of the pool"} for i in range(60)]
    src, out = write_rows(tmp_path / "p.jsonl", rows), tmp_path / "out.jsonl"
    killer = kill_after(big, 5)  # with calls in flight on it

    r = cli("batch", str(src), "--out", str(out), "--task", "pooled")
    killer.join(10)
    assert r.code == 0, r.stderr
    got = read_out(out)
    assert Counter(rec["id"] for rec in got) == Counter(row["id"] for row in rows)  # one line per id
    assert all(rec["ok"] and rec["model"] == "ollama/qwen2.5:7b" for rec in got)
    assert hosted_chats(fake_openai) == 0  # every row stayed on the pool: failover before fallback
    # None answered twice: each run has one answer; a prompt reached the two survivors once at
    # most, and none the killed host answered; what it received but never finished (and what it
    # refused once down) went on to a survivor.
    assert all(sum(a["outcome"] == "ok" for a in rec["attempts"]) == 1 for rec in got)
    survivors = Counter(fast.prompts() + slow.prompts())
    assert max(survivors.values()) == 1
    prompt_of = {row["id"]: row["prompt"] for row in rows}
    answered = ok_hosts(got)
    assert set(answered) == {fast.url, slow.url, big.url} and sum(answered.values()) == 60
    by_big = {prompt_of[rec["id"]] for rec in got if rec["attempts"][-1]["host"] == big.url}
    assert by_big.isdisjoint(survivors)
    moved = {prompt_of[rec["id"]] for rec in got
             if any(a["host"] == big.url and a["outcome"] != "ok" for a in rec["attempts"])}
    broken = set(big.prompts()) - by_big
    assert broken and broken <= moved <= set(survivors)  # calls were in flight when it died
    assert len(big.chats()) == len(by_big) + len(broken)
    # Each host kept to its own num_parallel.
    assert fast.max_chats_at_once <= 2 and slow.max_chats_at_once == 1 and big.max_chats_at_once <= 3
    assert fast.max_chats_at_once + big.max_chats_at_once >= 4  # and they ran side by side


def test_a_host_answering_5xx_cools_down_and_its_calls_go_to_the_others(cli, home, tmp_path, pool):
    from tests.fakes import Fault

    sick, well = pool(OllamaHost(models("qwen2.5:7b"), num_parallel=2, ttft_s=0.01),
                      OllamaHost(models("qwen2.5:7b"), num_parallel=2, ttft_s=0.01))
    for _ in range(50):
        sick.push_fault(Fault(status=500, message="CUDA error: out of memory"))
    write_pool_config(home, [sick, well])
    rows = [{"id": f"r{i}", "prompt": f"row {i}"} for i in range(12)]
    src, out = write_rows(tmp_path / "p.jsonl", rows), tmp_path / "out.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--model", "ollama/qwen2.5:7b")
    assert r.code == 0, r.stderr
    got = read_out(out)
    assert ok_hosts(got) == {well.url: 12}
    # The calls it had at once failed together, then it cooled down: nothing more was sent to it.
    assert 1 <= len(sick.chats()) <= 2
    failed = [a for rec in got for a in rec["attempts"] if a["outcome"] != "ok"]
    assert len(failed) == len(sick.chats()) and all("out of memory" in a["error"] for a in failed)


def test_a_model_pulled_on_one_host_only_goes_there(cli, home, tmp_path, pool):
    one, two, three = pool(
        OllamaHost(models("qwen2.5:7b", "qwen3:8b"), num_parallel=2, ttft_s=0.02),
        OllamaHost(models("qwen2.5:7b"), num_parallel=2, ttft_s=0.02),
        OllamaHost(models("qwen2.5:7b"), num_parallel=2, ttft_s=0.02),
    )
    write_pool_config(home, [one, two, three])
    rows = [{"id": f"r{i:02d}", "prompt": f"row {i}", "model": "ollama/qwen3:8b" if i % 2 else "ollama/qwen2.5:7b"}
            for i in range(24)]
    src, out = write_rows(tmp_path / "p.jsonl", rows), tmp_path / "out.jsonl"
    r = cli("batch", str(src), "--out", str(out), "--concurrency", "16")
    assert r.code == 0, r.stderr
    assert ("ollama takes 6 rows at a time (the num_parallel of its 3 hosts in config.yaml), not 16; "
            "a host's num_parallel changes it") in r.stderr  # the pool's limit is its hosts' sum
    assert Counter(q.json["model"] for q in one.chats())["qwen3:8b"] == 12
    assert all(q.json["model"] == "qwen2.5:7b" for q in two.chats() + three.chats())
    assert two.chats() and three.chats()  # the model every host has went everywhere
    assert one.max_chats_at_once <= 2
    # A model no reachable host has is skipped with the fix, as with one server.
    r = cli("ask", "--model", "ollama/deepseek-r1:8b", "hello")
    assert r.code != 0 and "ollama pull deepseek-r1:8b" in r.stderr


def test_compare_uses_every_host(cli, home, tmp_path, pool):
    a, b = pool(OllamaHost(models("qwen2.5:7b", "qwen3:8b"), num_parallel=2, ttft_s=0.03),
                OllamaHost(models("qwen2.5:7b", "qwen3:8b"), num_parallel=2, ttft_s=0.03))
    write_pool_config(home, [a, b])
    src = write_rows(tmp_path / "set.jsonl", [{"prompt": f"compare {i}"} for i in range(6)])
    r = cli("compare", "--prompts", str(src), "-m", "ollama/qwen2.5:7b", "-m", "ollama/qwen3:8b", "--json")
    assert r.code == 0, r.stderr
    assert len(a.chats()) + len(b.chats()) == 12 and a.chats() and b.chats()
    assert a.max_chats_at_once <= 2 and b.max_chats_at_once <= 2
    assert a.max_chats_at_once + b.max_chats_at_once >= 3  # side by side


def test_the_host_with_the_model_loaded_is_preferred(cli, home, pool):
    a, b, c = pool(*(OllamaHost(models("qwen2.5:7b"), num_parallel=2) for _ in range(3)))
    c.preload("qwen2.5:7b", 4096)  # loaded on the third host only, with the window a short prompt gets
    write_pool_config(home, [a, b, c])
    for _ in range(2):
        r = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "hello")
        assert r.code == 0, r.stderr
        assert r.json()["attempts"][0]["host"] == c.url
    assert len(c.chats()) == 2 and not a.chats() and not b.chats()
    assert any(q.path == "/api/ps" for q in a.requests + b.requests + c.requests)
    c.loaded.clear()
    b.preload("qwen2.5:7b", 4096)
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "hello again")
    assert r.json()["attempts"][0]["host"] == b.url


def test_num_ctx_fits_the_window_of_the_host_chosen(cli, home, pool):
    small, large = pool(OllamaHost(models("qwen2.5:7b", qwen2_5_7b=8192), num_parallel=4),
                        OllamaHost(models("qwen2.5:7b"), num_parallel=1))
    small.preload("qwen2.5:7b", 4096)  # loaded and idle: it would be chosen, if the prompt fitted
    write_pool_config(home, [small, large])
    long_prompt = "Summarise: " + "the cat sat on the mat and looked at the dog " * 1000  # ~12K tokens
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", long_prompt)
    assert r.code == 0, r.stderr
    assert not small.chats()  # its 8K window cannot hold the prompt and the answer
    (req,) = large.chats()
    assert 8192 < req.json["options"]["num_ctx"] <= 32768
    r = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "short")
    (req,) = small.chats()  # a short prompt may go to either: the loaded one
    assert req.json["options"]["num_ctx"] == 4096
    plan = cli("ask", "--model", "ollama/qwen2.5:7b", "--explain", "--json", long_prompt).json()
    assert plan["attempts"][0]["hosts"] == [large.url]  # --explain names the hosts that can take it


def test_local_only_stays_local_when_hosts_go_down(cli, home, tmp_path, pool, fake_openai, fake_deepseek,
                                                   fake_anthropic, fake_gemini, use):
    for fake, name in ((fake_openai, "openai"), (fake_deepseek, "deepseek"), (fake_anthropic, "anthropic"),
                       (fake_gemini, "gemini")):
        use(fake, name)
    qwen3, other = pool(OllamaHost(models("qwen3:8b"), num_parallel=2, ttft_s=0.03, chunk_delay_s=0.01),
                        OllamaHost(models("qwen2.5:7b"), num_parallel=2, ttft_s=0.03, chunk_delay_s=0.01))
    write_pool_config(home, [qwen3, other])
    rows = [{"id": f"p{i}", "prompt": f"private note {i}"} for i in range(16)]
    src, out = write_rows(tmp_path / "p.jsonl", rows), tmp_path / "out.jsonl"
    killer = kill_after(qwen3, 3)
    r = cli("batch", str(src), "--out", str(out), "--task", "private")
    killer.join(10)
    assert r.code == 0, r.stderr
    got = read_out(out)
    assert len(got) == 16 and all(rec["ok"] and rec["model"].startswith("ollama/") for rec in got)
    assert {rec["model"] for rec in got} == {"ollama/qwen3:8b", "ollama/qwen2.5:7b"}  # fell back, locally
    assert hosted_chats(fake_openai, fake_deepseek, fake_anthropic, fake_gemini) == 0
    other.kill()  # nothing local is left: a private request fails rather than leave the machine
    r = cli("ask", "--task", "private", "hello")
    assert r.code != 0
    assert hosted_chats(fake_openai, fake_deepseek, fake_anthropic, fake_gemini) == 0


# --- what the user sees: stats per host, models per host ------------------------------------


def test_stats_by_host(cli, home, tmp_path, pool, monkeypatch):
    a, b = pool(OllamaHost(models("qwen2.5:7b"), num_parallel=2, ttft_s=0.01),
                OllamaHost(models("qwen2.5:7b"), num_parallel=2, ttft_s=0.01))
    write_pool_config(home, [a, b])
    src, out = write_rows(tmp_path / "p.jsonl", [{"prompt": f"row {i}"} for i in range(12)]), tmp_path / "o.jsonl"
    assert cli("batch", str(src), "--out", str(out), "--model", "ollama/qwen2.5:7b").code == 0
    per_host = ok_hosts(read_out(out))
    data = cli("stats", "--by", "host", "--json").json()
    rows = {h["host"]: h for h in data["hosts"]}
    assert set(rows) == {a.url, b.url}
    for url, n in per_host.items():
        assert rows[url]["calls"] == n and rows[url]["failed"] == 0
        assert rows[url]["p50_latency_ms"] > 0 and rows[url]["tokens_per_s"] > 0
    set_width(monkeypatch, 80)
    r = cli("stats", "--by", "host")
    assert r.code == 0, r.stderr
    assert_fits(r.stdout, 80)
    for url in (a.url, b.url):
        assert url.removeprefix("http://") in r.stdout
    assert "tok/s" in r.stdout
    r = cli("stats", "--by", "machine")
    assert r.code != 0 and r.stderr.strip() == "error: --by must be model or host, not 'machine'"


def test_models_shows_each_host_and_why_one_is_down(cli, home, pool, monkeypatch):
    from tests.conftest import closed_port_url

    a, b = pool(OllamaHost(models("qwen2.5:7b", "qwen3:8b"), num_parallel=2),
                OllamaHost(models("qwen2.5:7b"), num_parallel=1))
    down = closed_port_url()
    write_pool_config(home, [a, b, {"url": down, "num_parallel": 2}])
    data = cli("models", "--json").json()
    hosts = {h["host"]: h for h in data["ollama"]}
    assert hosts[a.url]["reachable"] and hosts[b.url]["reachable"]
    assert not hosts[down]["reachable"] and hosts[down]["error"] == "connection refused"
    rows = {m["model"]: m for m in data["models"]}
    assert rows["ollama/qwen3:8b"]["hosts"] == [a.url]
    assert rows["ollama/qwen2.5:7b"]["hosts"] == [a.url, b.url]
    assert rows["ollama/qwen2.5:7b"]["num_parallel"] == 5  # the pool: 2 + 1 + 2
    set_width(monkeypatch, 80)
    r = cli("models")
    assert r.code == 0, r.stderr
    assert_fits(r.stdout, 80)
    assert_fits(r.stderr, 80)
    assert "connection refused" in r.stderr and down.removeprefix("http://") in r.stderr
    assert "2 of 3 hosts" in r.stderr


# --- configuration --------------------------------------------------------------------------


def test_hosts_win_over_ollama_host_which_still_names_one(home, monkeypatch):
    from runner.config import Host, load_config
    from runner.limits import Limits

    monkeypatch.setenv("OLLAMA_HOST", "box:7000")
    (home / "config.yaml").write_text("ollama: {num_parallel: 2}\n")
    config = load_config()
    assert config.providers["ollama"].host_list == (Host("http://box:7000"),)
    assert Limits(config).ceiling("ollama") == 2
    (home / "config.yaml").write_text(
        "ollama:\n  num_parallel: 2\n  hosts: [a, {url: 'http://b:11434/', num_parallel: 3, weight: 2}]\n"
        "endpoints:\n  vllm: {base_url: ['http://g1:8000/v1', 'http://g2:8000/v1'], num_parallel: 8}\n")
    config = load_config()
    ollama = config.providers["ollama"]
    assert ollama.hosts == (Host("http://a:11434"), Host("http://b:11434", 3, 2.0))
    assert ollama.base_url == "http://a:11434"
    limits = Limits(config)
    assert limits.host_specs("ollama") == [("http://a:11434", 2, 1.0), ("http://b:11434", 3, 2.0)]
    assert limits.ceiling("ollama") == 5 and limits.ceiling("vllm") == 16  # each host's, summed
    assert Limits(config, overrides={"ollama": 3}).ceiling("ollama") == 3  # --limit caps the sum


@pytest.mark.parametrize("hosts, words", [
    ("[]", "needs at least one host"),
    ("[{url: 'http://a:1', num_parallel: 0}]", "num_parallel"),
    ("[{url: 'http://a:1', weight: 0}]", "weight"),
    ("[{url: 'http://a:1', speed: 2}]", "unknown key"),
    ("['http://a:1', 'http://a:1/']", "listed twice"),
    ("['ftp://a:1']", "http(s) URL"),
])
def test_host_list_mistakes_are_one_sentence(cli, home, hosts, words):
    (home / "config.yaml").write_text(f"ollama:\n  hosts: {hosts}\n")
    r = cli("models")
    assert r.code == 2 or r.code == 1
    assert words in r.stderr and "config.yaml" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_endpoint_with_several_base_urls_fails_over(cli, home, tmp_path, monkeypatch):
    from tests.conftest import closed_port_url
    from tests.fakes import FakeOpenAI

    with FakeOpenAI({"qwen2.5-7b": 32768}, api_key=None) as up:
        down = closed_port_url()
        (home / "config.yaml").write_text(
            "retries: 0\ntimeouts: {connect_s: 2, first_token_s: 10, total_s: 30}\n"
            f"endpoints:\n  vllm:\n    base_url: ['{down}/v1', {{url: '{up.url}/v1', num_parallel: 3}}]\n"
            "    local: true\n    num_parallel: 2\n"
            "models:\n  vllm/qwen2.5-7b: {context: 32768}\n")
        rows = [{"prompt": f"row {i}"} for i in range(8)]
        src, out = write_rows(tmp_path / "p.jsonl", rows), tmp_path / "o.jsonl"
        r = cli("batch", str(src), "--out", str(out), "--model", "vllm/qwen2.5-7b")
        assert r.code == 0, r.stderr
        got = read_out(out)
        assert all(rec["ok"] for rec in got)
        assert ok_hosts(got) == {up.url + "/v1": 8}
        assert up.max_concurrent_seen <= 3
        failed = [a for rec in got for a in rec["attempts"] if a["outcome"] != "ok"]
        assert failed and {a["host"] for a in failed} == {down + "/v1"}

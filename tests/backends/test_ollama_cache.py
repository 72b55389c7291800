"""Ollama's prompt cache changes what prompt_eval_count means, by server version. A repeated long
prompt must not be mistaken for a cut one, and the server's count is what the log keeps, whatever
it covers: an estimate never replaces it."""

from __future__ import annotations

import pytest


def doc(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("".join(f"Paragraph {i}: the plan changed again this week.\n\n" for i in range(900)))
    return str(path)


@pytest.mark.parametrize("style", ["total", "new_only", "omit"])
def test_repeated_long_prompt_is_not_taken_for_a_cut(cli, fake_ollama, use, tmp_path, style):
    fake_ollama.prompt_cache = style
    use(fake_ollama, "ollama")
    path = doc(tmp_path)
    first = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "-f", path, "What changed?").json()
    again = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "-f", path, "What changed?").json()
    assert first["ok"] and again["ok"], again["error"]
    assert [a["outcome"] for a in again["attempts"]] == ["ok"]
    assert first["input_tokens"] > 8000 and first["tokens_estimated"] is False
    if style == "total":
        assert again["input_tokens"] == first["input_tokens"] and again["tokens_estimated"] is False
    elif style == "new_only":  # the server counted only what its cache did not hold: its count stands
        assert again["tokens_estimated"] is False and 0 < again["input_tokens"] < first["input_tokens"]
    else:  # no count at all: our estimate, marked as one
        assert again["tokens_estimated"] is True and again["input_tokens"] > 8000


def test_a_real_cut_is_still_caught_when_the_cache_is_in_play(cli, tmp_path, use):
    from tests.fakes.ollama import FakeOllama

    with FakeOllama(honour_num_ctx=False, ps_context=False, prompt_cache="new_only", version="0.11.0") as proxy:
        use(proxy, "ollama")
        r = cli("ask", "--model", "ollama/qwen2.5:7b", "--json", "-f", doc(tmp_path), "What changed?")
        data = r.json()
        assert r.code == 1 and "truncated by the server" in data["attempts"][0]["error"]


def test_a_cut_once_seen_is_caught_again_when_the_cache_hides_it():
    """Same backend, same over-long prompt, twice: the second count is tiny (cached prefix)."""
    import asyncio

    from runner.backends.base import BackendError, Call
    from runner.backends.ollama import OllamaBackend
    from tests.fakes.ollama import FakeOllama

    text = "".join(f"Paragraph {i}: the plan changed again this week.\n\n" for i in range(900))

    async def twice(url):
        backend = OllamaBackend(url)
        errors = []
        try:
            for _ in range(2):
                call = Call("qwen2.5:7b", [{"role": "user", "content": text}], est_input_tokens=11000,
                            backend_options={"num_ctx": 16384})
                try:
                    [e async for e in backend.stream(call)]
                except BackendError as exc:
                    errors.append(exc)
        finally:
            await backend.aclose()
        return errors

    with FakeOllama(honour_num_ctx=False, ps_context=False, prompt_cache="new_only", version="0.11.0") as proxy:
        errors = asyncio.run(twice(proxy.url))
    assert [e.kind for e in errors] == ["truncated", "truncated"]

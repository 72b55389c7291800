"""When a server says the prompt is longer than the estimate thought, the runner re-plans
(a bigger window, or a split) instead of giving up or answering from a cut."""

from __future__ import annotations


def dense_doc(tmp_path):
    # Long words: the fakes' tokenizer counts them at ~1 token per 4 letters, well above what
    # our Qwen-calibrated estimate expects, so the estimate is low by more than its margin.
    path = tmp_path / "dense.md"
    para = "The committee reviewed quarterly procurement considerations regarding international suppliers. " * 12
    path.write_text("".join(f"## Section {i}\n\n{para}\n\n" for i in range(400)))
    return path


def test_refused_prompt_is_replanned_and_split(cli, fake_ollama, use, tmp_path):
    use(fake_ollama, "ollama")
    r = cli("ask", "--task", "private", "--json", "-f", str(dense_doc(tmp_path)), "What are the risks?")
    data = r.json()
    assert r.code == 0, data["error"]
    first = data["attempts"][0]
    assert first["model"] == "ollama/deepseek-r1:8b" and first["outcome"] == "failed"
    assert "exceeds the context length" in first["error"]
    assert data["chunks"] >= 2
    parts = [a.get("part") for a in data["attempts"] if a["outcome"] == "ok"]
    assert parts[-1] == "combine" and sum(1 for p in parts if p and p.startswith("chunk")) == data["chunks"]
    # No chunk answer came from a prompt the server cut.
    chats = [q for q in fake_ollama.requests if q.path == "/api/chat"]
    assert all(q.json.get("truncate") is False for q in chats)


def test_no_split_profile_fails_with_the_reason(cli, fake_ollama, use, tmp_path, home):
    (home / "profiles").mkdir()
    (home / "profiles" / "whole.yaml").write_text(
        "name: whole\ndescription: no splitting\ntoo_long: fail\nprivacy: local-only\n"
        "candidates: [ollama/deepseek-r1:8b]\n")
    use(fake_ollama, "ollama")
    r = cli("ask", "--task", "whole", "-f", str(dense_doc(tmp_path)), "What are the risks?")
    assert r.code == 1
    assert "exceeds the context length" in r.stderr and "Traceback" not in r.stderr

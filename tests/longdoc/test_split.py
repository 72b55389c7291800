"""Splitting and estimating without any server: lossless, on structure, within budget."""

from __future__ import annotations

import re

import pytest

from runner.config import load_config
from runner.estimate import Estimator, learned_factors
from runner.longdoc import find_cut, pack, split_document
from runner.tokens import estimate_tokens, text_stats, tokens_for
from tests.longdoc_helpers import make_doc

EST = Estimator()


def pieces_of(text, budget, pages=()):
    return split_document("doc.md", text, text_stats(text), pages, budget, EST)


def test_split_is_lossless_within_budget_and_on_headings():
    text = make_doc(50_000, heading_every=4)
    pieces = pieces_of(text, 6000)
    assert "".join(p.text for p in pieces) == text  # nothing dropped, nothing repeated
    assert len(pieces) >= 9
    assert all(p.tokens <= 6000 for p in pieces)
    assert [p.part for p in pieces] == [(k, len(pieces)) for k in range(1, len(pieces) + 1)]
    assert all(p.text.startswith("## Part") for p in pieces[1:])  # each part starts at a heading


def test_without_headings_cuts_fall_between_paragraphs():
    text = make_doc(20_000, heading_every=10_000).replace("## Part 1\n\n", "")
    pieces = pieces_of(text, 3000)
    assert "".join(p.text for p in pieces) == text
    assert all(p.text.endswith("\n\n") for p in pieces[:-1])


def test_one_huge_paragraph_is_cut_after_sentences_never_inside_a_word():
    text = " ".join(make_doc(20_000).replace("## ", "").split())  # one line, no breaks at all
    pieces = pieces_of(text, 2000)
    assert "".join(p.text for p in pieces) == text and len(pieces) > 5
    for p in pieces[:-1]:
        assert re.search(r"\.\s+$", p.text)


def test_text_without_spaces_is_cut_after_cjk_sentences():
    text = "東京の朝は早い。始発電車が動き出すころ、駅前のパン屋にはもう明かりがついている。" * 800
    pieces = pieces_of(text, 3000)
    assert "".join(p.text for p in pieces) == text and len(pieces) > 3
    assert all(p.text.endswith("。") for p in pieces[:-1])
    assert all(p.tokens <= 3000 for p in pieces)


def test_an_unbroken_run_is_cut_hard_but_losslessly():
    text = "x" * 200_000
    pieces = pieces_of(text, 5000)
    assert "".join(p.text for p in pieces) == text and all(p.tokens <= 5000 for p in pieces)


def test_pdf_pages_are_the_cut_points_and_the_labels():
    pages_text = [make_doc(700, seed=i, heading_every=1000).strip() for i in range(30)]
    text = "\n\n".join(pages_text)
    offsets, pos = [], 0
    for t in pages_text:
        offsets.append(pos)
        pos += len(t) + 2
    pieces = split_document("book.pdf", text, text_stats(text), tuple(offsets), 4000, EST)
    assert "".join(p.text for p in pieces) == text
    starts = set(offsets)
    pos = 0
    for p in pieces:
        assert pos in starts  # every piece begins on a page
        pos += len(p.text)
    assert pieces[0].pages[0] == 1 and pieces[-1].pages[1] == 30
    assert all(a.pages[1] + 1 == b.pages[0] for a, b in zip(pieces, pieces[1:]))


def test_find_cut_prefers_stronger_boundaries():
    text = "Intro words here. More.\n\n## Head\nBody text. Another sentence here and more"
    assert text[find_cut(text, 5, len(text) - 3):].startswith("## Head")
    flat = "alpha beta. gamma delta epsilon"
    assert flat[:find_cut(flat, 3, len(flat) - 2)] == "alpha beta. "


def test_small_documents_share_a_chunk():
    a = split_document("a.md", "short one", text_stats("short one"), (), 1000, EST)
    b = split_document("b.md", "short two", text_stats("short two"), (), 1000, EST)
    big = split_document("c.md", make_doc(3000), text_stats(make_doc(3000)), (), 1000, EST)
    chunks = pack(a + b + big, 1000)
    assert [p.name for p in chunks[0].pieces][:2] == ["a.md", "b.md"]
    assert all(c.tokens <= 1000 for c in chunks)


def test_estimator_families_and_additivity():
    ja = "日本語の文章を読みます。" * 100
    assert tokens_for(text_stats(ja), "qwen") < tokens_for(text_stats(ja), "default")  # Qwen's vocabulary is denser
    assert estimate_tokens("") == 0 and estimate_tokens("hi") >= 1
    a, b = make_doc(2000, seed=1), make_doc(2000, seed=2)
    whole = tokens_for(text_stats(a + b))
    assert abs(tokens_for(text_stats(a) + text_stats(b)) - whole) <= 2


@pytest.fixture
def config(home):
    return load_config()


def test_learned_factor_is_a_robust_median_per_family(config):
    rows = [("ollama/qwen2.5:7b", 1200, 1000, "prose")] * 2 + [("ollama/qwen2.5:14b", 1300, 1000, "prose")] \
        + [("ollama/qwen2.5:14b", 30, 1000, "prose")]  # a prompt-cache hit: discarded
    rows += [("openai/gpt-4.1", 900, 1000, "prose")] * 2  # two calls: too few to learn from
    rows += [("gemini/gemini-2.5-pro", 1100, 100, "prose")] * 5  # too small to learn from
    rows += [("openai/gpt-4.1", 900, 1000, None)] * 5  # logged before kinds were recorded: unknown kind
    assert learned_factors(config, rows) == {"ollama/qwen2.5|prose": 1.2}


def test_corrections_are_learned_per_kind_of_text(config):
    """Seen: three Japanese calls to one hosted provider moved its factor so that an English
    prompt then came out 37% low. Each kind of text learns its own correction."""
    from runner.estimate import build_need, request_stats
    from runner.tokens import text_kind

    japanese = "日本語の文章はトークンの数え方が違います。" * 200
    english = "The plan changed again this week and nobody knew why. " * 200
    assert text_kind(text_stats(japanese)) == "cjk" and text_kind(text_stats(english)) == "prose"
    assert text_kind(text_stats('{"a": [1, 2], "b": {"c": "d"}}' * 50)) == "structured"
    assert text_kind(text_stats("for (i = 0; i < n; i++) { x(i); }\n" * 50)) == "code"
    factors = learned_factors(config, [("anthropic/claude-sonnet-4-5", 1500, 1000, "cjk")] * 3)
    assert factors == {"anthropic|cjk": 1.5}
    refs = ["anthropic/claude-sonnet-4-5"]
    en = build_need(request_stats(english, [], None), refs, config, factors, 100)
    ja = build_need(request_stats(japanese, [], None), refs, config, factors, 100)
    assert en.input_for(refs[0]) == en.raw_for(refs[0])  # English untouched by what Japanese taught
    assert ja.input_for(refs[0]) > ja.raw_for(refs[0]) * 1.45

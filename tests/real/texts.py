"""Documents for the real-server tier, sized in the tiny model's real tokens.

The tiny model's vocabulary (make_tiny_gguf.py) has the words of `WORDS` as single tokens (after
a space) and nothing else but characters. So `known_words` text costs about what the runner's
estimate says (one token per word), and `unknown_words` text costs one token per character,
about five times the estimate: a prompt the runner believes fits, that the server refuses.
"""

from __future__ import annotations

import random

from .make_tiny_gguf import WORDS

RARE_INITIALS = "jkqrvxz"  # no word of WORDS starts with these: such a word is never merged


def known_words(n_words: int, seed: int = 0) -> str:
    """Sentences of vocabulary words, in paragraphs (something for a splitter to cut at)."""
    rng = random.Random(seed)
    paragraphs, sentences, words = [], [], []
    for _ in range(n_words):
        words.append(rng.choice(WORDS))
        if len(words) >= rng.randint(8, 14):
            sentences.append(" ".join(words) + ".")
            words = []
            if len(sentences) == 5:
                paragraphs.append(" ".join(sentences))
                sentences = []
    if words:
        sentences.append(" ".join(words) + ".")
    if sentences:
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def unknown_words(n_words: int, seed: int = 0) -> str:
    """Made-up words no vocabulary piece matches: one real token per character."""
    rng = random.Random(seed)
    letters = "abcdefghilmnoprstuvwy"
    paragraphs, sentences, words = [], [], []
    for _ in range(n_words):
        words.append(rng.choice(RARE_INITIALS) + "".join(rng.choice(letters) for _ in range(rng.randint(3, 6))))
        if len(words) >= rng.randint(8, 14):
            sentences.append(" ".join(words) + ".")
            words = []
            if len(sentences) == 5:
                paragraphs.append(" ".join(sentences))
                sentences = []
    if words:
        sentences.append(" ".join(words) + ".")
    if sentences:
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def mixed(n_words: int, unknown_share: float, seed: int = 0) -> str:
    """Known and made-up words mixed: real tokens between 1x and ~5x the runner's estimate."""
    rng = random.Random(seed)
    known = known_words(n_words, seed).split(" ")
    unknown = unknown_words(n_words, seed + 1).replace("\n\n", " ").replace(".", "").split(" ")
    out = [u if rng.random() < unknown_share and not k.endswith((".", "\n")) else k for k, u in zip(known, unknown)]
    return " ".join(out)

"""Fast token estimates, without a tokenizer.

One pass per character class, each a compiled regex run by `subn` (C speed, no per-character
Python loop, no list of matches): the text is cut into the pre-tokens a BPE tokenizer starts
from (words with their leading space, 1-3 digit groups, punctuation runs, whitespace runs),
then long words, CJK, kana, hangul and other scripts are priced per character with weights
calibrated per tokenizer family against real tokenizers (tests/bench/bench_longdoc.py reports
the error per kind of text). Counts are additive (`TextStats`), so a document is scanned once
and priced for every candidate model's family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from statistics import median
from typing import Iterable

# The stated margin: routing treats an estimate E as possibly as large as E * (1 + margin), and
# the Ollama backend treats an evaluated count under E * (1 - margin) as a possible cut.
# Measured (bench_longdoc.py): whole documents of prose, code, Japanese and Chinese within ±5%
# of the Qwen2.5 and cl100k tokenizers, 3,000-character samples within ±15%.
ESTIMATE_MARGIN = 0.15

_L = r"A-Za-z\u00c0-\u024f"  # Latin letters, accented ones included
# cl100k / Qwen pre-tokenisation, restricted to Latin script (other scripts are priced apart).
_PRETOKEN = re.compile(
    r"'(?:[sdmtSDMT]|ll|ve|re|LL|VE|RE)|[^\r\n" + _L + r"0-9]?[" + _L + r"]+|[0-9]{1,3}"
    r"| ?[^\s" + _L + r"0-9\u0080-\U0010ffff]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LONG_WORD = re.compile(r"[" + _L + r"]{7,}")
_ACCENTED = re.compile(r"[\u00c0-\u024f]")
_DIGITS = re.compile(r"[0-9]+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_CJK_PUNCT = re.compile(r"[\u3001-\u303f\uff01-\uff65]")


@dataclass(frozen=True)
class TextStats:
    """What the estimate is made of; adding two texts' stats gives their concatenation's."""

    chars: int = 0
    pretokens: int = 0
    long_excess: int = 0  # letters beyond the sixth in words of 7+ letters
    accented: int = 0
    digits: int = 0
    digit_runs: int = 0
    han: int = 0
    kana: int = 0
    hangul: int = 0
    other: int = 0  # other non-ASCII: Cyrillic, Greek, Arabic, emoji, ...

    def __add__(self, other: "TextStats") -> "TextStats":
        return TextStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def _count(pattern: re.Pattern, text: str) -> tuple[int, int]:
    """(matches, characters matched) without building a list of matches."""
    rest, n = pattern.subn("", text)
    return n, len(text) - len(rest)


BLOCK_CHARS = 1 << 17  # long texts are scanned in blocks: bounded scratch memory, same counts


def text_stats(text: str) -> TextStats:
    if len(text) <= BLOCK_CHARS:
        return _block_stats(text)
    total, pos, n = TextStats(), 0, len(text)
    while pos < n:
        end = min(n, pos + BLOCK_CHARS)
        if end < n:  # end a block after a line break or a space, not inside a word
            cut = text.rfind("\n", pos + BLOCK_CHARS // 2, end)
            if cut < 0:
                cut = text.rfind(" ", pos + BLOCK_CHARS // 2, end)
            end = cut + 1 if cut >= 0 else end
        total = total + _block_stats(text[pos:end])
        pos = end
    return total


def _block_stats(text: str) -> TextStats:
    if not text:
        return TextStats()
    pretokens = _PRETOKEN.subn("", text)[1]
    n_long, long_chars = _count(_LONG_WORD, text)
    digit_runs, digits = _count(_DIGITS, text)
    non_ascii = 0 if text.isascii() else len(text) - len(text.encode("ascii", "ignore"))
    han = kana = hangul = accented = other = 0
    if non_ascii:
        han = _HAN.subn("", text)[1]
        kana = _KANA.subn("", text)[1]
        hangul = _HANGUL.subn("", text)[1]
        accented = _ACCENTED.subn("", text)[1]
        cjk_punct = _CJK_PUNCT.subn("", text)[1] + text.count("\u3000")
        other = max(0, non_ascii - han - kana - hangul - accented - cjk_punct)
    return TextStats(len(text), pretokens, long_chars - 6 * n_long, accented, digits, digit_runs,
                     han, kana, hangul, other)


@dataclass(frozen=True)
class Weights:
    """Tokens per unit of each class, for one tokenizer family."""

    pretoken: float = 1.0
    long_excess: float = 0.1
    accented: float = 4.0  # a proxy: accented words (German, French, ...) split into more pieces
    digit_extra: float = 0.0  # per digit beyond the 3-digit groups (Qwen: one token per digit)
    han: float = 1.25
    kana: float = 1.08
    hangul: float = 1.6
    other: float = 0.36


# Calibrated against real tokenizers (see tests/bench/bench_longdoc.py):
# "default" against OpenAI's cl100k (and used for every family not known better: it errs high
# for CJK with newer, larger vocabularies, which is the safe side for fitting a window);
# "qwen" against Qwen2.5's tokenizer (Ollama's qwen2.5/qwen3/qwq and DeepSeek-R1's Qwen distills).
FAMILY_WEIGHTS: dict[str, Weights] = {
    "default": Weights(),
    "qwen": Weights(digit_extra=0.667, han=0.65, kana=0.8, hangul=1.0, other=0.21),
}


def tokens_for(stats: TextStats, family: str = "default") -> int:
    if not stats.chars:
        return 0
    w = FAMILY_WEIGHTS.get(family) or FAMILY_WEIGHTS["default"]
    n = (stats.pretokens * w.pretoken + stats.long_excess * w.long_excess + stats.accented * w.accented
         + (stats.digits - stats.digit_runs) * w.digit_extra + stats.han * w.han + stats.kana * w.kana
         + stats.hangul * w.hangul + stats.other * w.other)
    return max(1, int(round(n)))


def tokenizer_family(ref: str) -> str:
    """The weights to use for a provider/model ref."""
    provider, _, model = ref.partition("/")
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(("qwen", "qwq", "deepseek-r1")):
        return "qwen"
    return "default"


def learning_key(ref: str, local: bool) -> str:
    """Which past calls teach the estimate for this model: a local model's name without its
    size tag (all sizes share a tokenizer), or a hosted provider (one tokenizer per vendor)."""
    provider, _, model = ref.partition("/")
    if not local:
        return provider
    return f"{provider}/{model.split(':', 1)[0]}"


# Learning from real counts: the median of real/estimated over recent calls of one family.
LEARN_MIN_ESTIMATE = 500  # small prompts are dominated by chat-template tokens: too noisy
LEARN_MIN_SAMPLES = 3
LEARN_WINDOW = 50  # the latest calls per family
LEARN_RATIO_BOUNDS = (0.5, 2.0)  # outside: a cache hit (Ollama counts only new tokens) or a cut


def correction_factor(ratios: Iterable[float]) -> float | None:
    """The learned correction from real/estimated ratios (newest first), or None if too few."""
    lo, hi = LEARN_RATIO_BOUNDS
    kept = [r for r in ratios if lo <= r <= hi][:LEARN_WINDOW]
    if len(kept) < LEARN_MIN_SAMPLES:
        return None
    return median(kept)


MESSAGE_OVERHEAD = 4  # chat-template tokens around each message


def estimate_tokens(text: str, family: str = "default") -> int:
    return tokens_for(text_stats(text), family) if text else 0


def fmt_tokens(n: int) -> str:
    """32768 → '32K' (windows are powers of two), 60000 → '60K', 1000000 → '1M'."""
    if n <= 0:
        return str(n)
    if n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n % 1024 == 0 and n >= 1024:
        return f"{n >> 10}K"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.3g}M"
    if n >= 10_000:
        return f"{round(n / 1000):,}K"
    if n >= 1000:
        return f"{n / 1000:.1f}K"
    return str(n)

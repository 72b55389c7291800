"""Fast token estimates, without a tokenizer.

Two regex passes (`subn`: C speed, no per-character Python loop, no list of matches) cut the text
into the pre-tokens a BPE tokenizer starts from (words with their leading space, 1-3 digit groups,
punctuation runs, whitespace runs) and find long words; every other class (digits, CJK, kana,
hangul, other scripts, structural and code marks, capitals, camelCase joints) is counted on the
UTF-8 bytes, mapped one letter per class by `bytes.translate`. A tokenizer family prices each
class with its own weights, fitted against real tokenizers on one corpus and checked on another
that the fitting never saw (tests/bench/fit_weights.py, tests/bench/bench_longdoc.py). Counts are
additive (`TextStats`), so a document is scanned once and priced for every candidate's family.
"""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass, fields
from statistics import median
from typing import Iterable

# The stated margin: routing treats an estimate E as possibly as large as E * (1 + margin), and
# the Ollama backend treats an evaluated count under E * (1 - margin) as a possible cut.
# Measured on held-out text (bench_longdoc.py; never used for fitting): whole documents of every
# kind tried (prose in six languages, Markdown with links, JSON, CSV, code, mixed) within ±13% of
# cl100k, o200k, Qwen2.5, Qwen3.6, DeepSeek-V4 and (reconstructed) Claude counts; 3,000-character
# samples mostly within ±15%, the worst 5% to -16%.
ESTIMATE_MARGIN = 0.15

_L = r"A-Za-z\u00c0-\u024f"  # Latin letters, accented ones included
# cl100k / Qwen pre-tokenisation, restricted to Latin script (other scripts are priced apart).
_PRETOKEN = re.compile(
    r"'(?:[sdmtSDMT]|ll|ve|re|LL|VE|RE)|[^\r\n" + _L + r"0-9]?[" + _L + r"]+|[0-9]{1,3}"
    r"| ?[^\s" + _L + r"0-9\u0080-\U0010ffff]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LONG_WORD = re.compile(r"[" + _L + r"]{7,}")


def _byte_classes() -> tuple[bytes, bytes]:
    """Translation tables over UTF-8 bytes: each byte → the letter of its class (see _block_stats),
    and digits → "0", everything else → " " (to count runs of digits)."""
    cls = bytearray(b" " * 256)
    for b in range(0x80, 0xC0):
        cls[b] = ord(".")  # a continuation byte: part of the character its lead byte counts
    for b in range(0xC0, 0x100):
        cls[b] = ord("X")  # the first byte of any other non-ASCII character
    for lo, hi, c in ((0x30, 0x39, "0"), (0x61, 0x7A, "a"), (0x41, 0x5A, "A"), (0xC3, 0xC8, "L"),
                      (0xE3, 0xE3, "J"), (0xE4, 0xE9, "H"), (0xEA, 0xED, "K")):
        for b in range(lo, hi + 1):
            cls[b] = ord(c)
    for ch in _STRUCT_MARKS:
        cls[ord(ch)] = ord("S")
    for ch in _CODE_MARKS:
        cls[ord(ch)] = ord("C")
    digits = bytes(ord("0") if 0x30 <= b <= 0x39 else ord(" ") for b in range(256))
    return bytes(cls), digits


_STRUCT_MARKS = '"[]:|'  # JSON, tables, links: each mark is often a token of its own
_CODE_MARKS = ";(){}="  # marks of program code
_CLASSES, _DIGIT_RUNS = _byte_classes()


@dataclass(frozen=True)
class TextStats:
    """What the estimate is made of; adding two texts' stats gives their concatenation's."""

    chars: int = 0
    pretokens: int = 0
    long_excess: int = 0  # letters beyond the sixth in words of 7+ letters
    accented: int = 0  # Latin letters U+00C0-U+023F (German, French, Polish, ...)
    digits: int = 0
    digit_runs: int = 0
    han: int = 0  # CJK ideographs U+4000-U+9FFF
    kana: int = 0  # hiragana and katakana U+3040-U+30FF
    hangul: int = 0  # U+A000-U+DFFF: in practice Hangul syllables
    other: int = 0  # other non-ASCII: Cyrillic, Greek, Arabic, emoji, typographic punctuation, ...
    struct: int = 0  # structural marks of JSON, tables and links: " [ ] : |
    code: int = 0  # marks of program code: ; ( ) { } =
    cjk_punct: int = 0  # CJK punctuation and full-width forms: 、。「」（）！
    caps: int = 0  # ASCII capital letters
    camel: int = 0  # a lower-case letter followed by a capital: identifiers, hashes, base64
    urls: int = 0  # "://"

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
    """Two regex passes (pre-tokens, long words); every other class is counted on the UTF-8 bytes
    mapped to one letter per class (`bytes.translate`, then `bytes.count`: C speed, no regex).
    A character's class comes from its first byte (and for U+3000-U+30FF and full-width forms its
    second), so the script ranges are those of whole UTF-8 lead bytes, close to the Unicode blocks."""
    if not text:
        return TextStats()
    pretokens = _PRETOKEN.subn("", text)[1]
    n_long, long_chars = _count(_LONG_WORD, text)
    raw = text.encode("utf-8", "surrogatepass")
    m = raw.translate(_CLASSES)
    digits = m.count(b"0")
    digit_runs = 0
    if digits:
        d = raw.translate(_DIGIT_RUNS)
        digit_runs = d.count(b" 0") + (d[0] == 0x30)
    han = kana = hangul = accented = other = cjk_punct = 0
    if len(raw) != len(text):
        han, hangul, accented = m.count(b"H"), m.count(b"K"), m.count(b"L")
        kana = raw.count(b"\xe3\x81") + raw.count(b"\xe3\x82") + raw.count(b"\xe3\x83")
        wide = raw.count(b"\xef\xbc") + raw.count(b"\xef\xbd")  # full-width forms U+FF00-FF7F
        cjk_punct = raw.count(b"\xe3\x80") + wide
        other = m.count(b"X") + m.count(b"J") - kana - cjk_punct
    return TextStats(len(text), pretokens, long_chars - 6 * n_long, accented, digits, digit_runs,
                     han, kana, hangul, other, m.count(b"S"), m.count(b"C"), cjk_punct,
                     m.count(b"A"), m.count(b"aA"), text.count("://"))


@dataclass(frozen=True)
class Weights:
    """Tokens per unit of each class (`features`), for one tokenizer family."""

    pretoken: float = 1.0
    long_excess: float = 0.1
    accented: float = 4.0  # a proxy: accented words (German, French, ...) split into more pieces
    digit_extra: float = 0.0  # per digit beyond the 3-digit groups (Qwen: one token per digit)
    han: float = 1.25
    kana: float = 1.08
    hangul: float = 1.6
    other: float = 0.36
    struct: float = 0.0
    code: float = 0.0
    cjk_punct: float = 1.0
    caps: float = 0.0
    camel: float = 0.0
    url: float = 0.0


def features(s: TextStats) -> tuple[int, ...]:
    """The counts the weights multiply, in the order of Weights' fields."""
    return (s.pretokens, s.long_excess, s.accented, s.digits - s.digit_runs, s.han, s.kana, s.hangul,
            s.other, s.struct, s.code, s.cjk_punct, s.caps, s.camel, s.urls)


# Fitted by tests/bench/fit_weights.py on tests/bench/corpus/ (and checked on tests/bench/heldout/):
# "default"    OpenAI's cl100k (gpt-4, gpt-3.5), and every family not measured here (Gemini, Mistral,
#              xAI, Llama, Gemma, unknown endpoints): cl100k errs high for the larger vocabularies
#              most of them use (Llama 3's is cl100k's plus 28K tokens), the safe side for a window;
#              where it matters, an exact count decides (Session.prepare, backends' count_tokens);
# "o200k"      OpenAI's o200k (gpt-4o, gpt-4.1, gpt-5, o-series, gpt-oss);
# "qwen"       Qwen2.5's tokenizer (Qwen2.5, Qwen3, QwQ, DeepSeek-R1's Qwen distills);
# "qwen3.5"    Qwen3.5/3.6's 248K vocabulary;
# "deepseek"   DeepSeek-V4's tokenizer (the hosted API, DeepSeek V3/V4 and R1 671B);
# "claude"     Claude 3 - Opus 4.6, "claude-4.7" Opus 4.7 and later: against ctok, a third
#              party's reconstruction of Anthropic's counts (no official tokenizer is published).
FAMILY_WEIGHTS: dict[str, Weights] = {
    "default": Weights(pretoken=0.946, long_excess=0.162, accented=4.011, digit_extra=0.192, han=1.062,
        kana=1.046, hangul=0.881, other=0.324, struct=0, code=0.078, cjk_punct=1.03, caps=0.341,
        camel=1.033, url=3.033),
    "o200k": Weights(pretoken=0.973, long_excess=0.008, accented=3.7, digit_extra=0.131, han=0.721,
        kana=0.756, hangul=0.438, other=0.134, struct=0, code=0.158, cjk_punct=0.984, caps=0.278,
        camel=1.679, url=5.107),
    "qwen": Weights(pretoken=0.968, long_excess=0.118, accented=3.979, digit_extra=0.932, han=0.581,
        kana=0.684, hangul=0.557, other=0.199, struct=0, code=0.023, cjk_punct=1.002, caps=0.401,
        camel=0.867, url=3.18),
    "qwen3.5": Weights(pretoken=1.033, long_excess=0, accented=3.676, digit_extra=0.893, han=0.526,
        kana=0.449, hangul=0.317, other=0.109, struct=0.077, code=0.259, cjk_punct=0.992, caps=0.21,
        camel=2.229, url=3.275),
    "deepseek": Weights(pretoken=0.926, long_excess=0.174, accented=3.899, digit_extra=0.336, han=0.537,
        kana=0.71, hangul=0.561, other=0.182, struct=0, code=0.382, cjk_punct=1.007, caps=0.456,
        camel=1.15, url=3.154),
    "claude": Weights(pretoken=1.046, long_excess=0.199, accented=4.047, digit_extra=0.078, han=1.099,
        kana=0.796, hangul=1.107, other=0.256, struct=0.009, code=0.378, cjk_punct=0.984, caps=0.629,
        camel=1.901, url=5.229),
    "claude-4.7": Weights(pretoken=1.167, long_excess=0.618, accented=4.04, digit_extra=0, han=1.09,
        kana=0.807, hangul=1.072, other=0.246, struct=0, code=0.58, cjk_punct=0.983, caps=1.209,
        camel=0.339, url=4.931),
}
_VECTORS = {name: astuple(w) for name, w in FAMILY_WEIGHTS.items()}


def tokens_for(stats: TextStats, family: str = "default") -> int:
    if not stats.chars:
        return 0
    w = _VECTORS.get(family) or _VECTORS["default"]
    return max(1, int(round(sum(x * k for x, k in zip(features(stats), w)))))


_O200K = re.compile(r"(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt|gpt-oss|codex|o\d)([-.:_]|$)")


def tokenizer_family(ref: str) -> str:
    """The weights to use for a provider/model ref."""
    provider, _, model = ref.partition("/")
    name = model.rsplit("/", 1)[-1].lower()
    base, _, tag = name.partition(":")
    if base.startswith(("qwen3.5", "qwen3.6")):
        return "qwen3.5"
    if base.startswith(("qwen", "qwq")):
        return "qwen"
    if base.startswith("deepseek-r1"):  # Ollama's distills are Qwen models, except the full 671B
        return "deepseek" if tag.startswith("671b") else "qwen"
    if base.startswith("deepseek") or provider == "deepseek":
        return "deepseek"
    if _O200K.match(base):
        return "o200k"
    if "claude" in base:
        version = tuple(int(n) for n in re.findall(r"(?<![0-9])[0-9]{1,2}(?![0-9])", base)[:2])
        return "claude-4.7" if version >= (4, 7) else "claude"
    return "default"


TEXT_KINDS = ("prose", "code", "structured", "cjk")


def text_kind(stats: TextStats) -> str:
    """What kind of text this mostly is. A tokenizer's error against our estimate differs by kind
    (Japanese runs high on newer vocabularies, JSON low), so corrections are learned per kind."""
    n = stats.chars or 1
    if (stats.han + stats.kana + stats.hangul) / n >= 0.15:
        return "cjk"
    if stats.struct / n >= 0.06:
        return "structured"
    if stats.code / n >= 0.03:
        return "code"
    return "prose"


def learning_key(ref: str, local: bool, kind: str = "prose") -> str:
    """Which past calls teach the estimate for this model and kind of text: a local model's name
    without its size tag (all sizes share a tokenizer), or a hosted provider (one tokenizer per
    vendor); then the kind of text ("ollama/qwen2.5|cjk", "anthropic|prose")."""
    provider, _, model = ref.partition("/")
    base = provider if not local else f"{provider}/{model.split(':', 1)[0]}"
    return f"{base}|{kind}"


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

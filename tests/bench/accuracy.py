"""The estimator's accuracy against real tokenizers: the FIT corpus (tests/bench/corpus/, what
fit_weights.py tunes the weights on) and the HELD-OUT corpus (tests/bench/heldout/, never used for
fitting). Shared by bench_longdoc.py and fit_weights.py; the tokenizers are in real_tokenizers.py.
"""

from __future__ import annotations

import csv
import io
import json
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from runner.tokens import text_stats, tokenizer_family, tokens_for  # noqa: E402

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
HELDOUT = HERE / "heldout"
SAMPLE_CHARS = 3000

# A model each tokenizer stands for: its runner family is tokenizer_family(ref), as routing uses it.
REFS = {
    "cl100k": "openai/gpt-4",
    "o200k": "openai/gpt-4.1",
    "qwen2.5": "ollama/qwen2.5:7b",
    "qwen3.6": "ollama/qwen3.6:27b",
    "deepseek-v4": "deepseek/deepseek-flash",
    "claude": "anthropic/claude-sonnet-4-6",
    "claude-4.7": "anthropic/claude-opus-4-7",
}

# Kind of text by file name (the first matching prefix).
_KINDS = (
    ("md_", "Markdown + links"),
    ("json_", "JSON"),
    ("csv_", "CSV / TSV"),
    ("code_python", "code (Python)"),
    ("code_go", "code (Go, Rust)"),
    ("code_rust", "code (Go, Rust)"),
    ("code_", "code (JS, C, shell)"),
    ("prose_en", "prose (English)"),
    ("prose_eu", "prose (German etc.)"),
    ("prose_de", "prose (German etc.)"),
    ("man_de", "prose (German etc.)"),
    ("prose_ru", "prose (Russian)"),
    ("man_ru", "prose (Russian)"),
    ("prose_ja", "Japanese"),
    ("man_ja", "Japanese"),
    ("prose_zh", "Chinese"),
    ("man_zh", "Chinese"),
    ("prose_ko", "Korean"),
    ("man_ko", "Korean"),
    ("mixed_", "mixed"),
)


def _kind(name: str) -> str:
    for prefix, kind in _KINDS:
        if name.startswith(prefix):
            return kind
    raise ValueError(f"no kind for {name}")


def _folder(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in sorted(path.iterdir()):
        if f.is_file() and f.name != "README.md":
            out.setdefault(_kind(f.name), []).append(f.read_text(encoding="utf-8"))
    return out


def _table() -> str:
    """A generated sales table (CSV) and records (JSON): numbers the fit corpus needs more of."""
    rng = random.Random(7)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["date", "region", "product", "units", "unit_price", "revenue"])
    for _ in range(300):
        u, p = rng.randint(1, 500), round(rng.uniform(1, 300), 2)
        w.writerow([f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", rng.choice(["north", "south", "east", "west"]),
                    f"SKU-{rng.randint(1000, 9999)}", u, p, round(u * p, 2)])
    rows = [{"id": i, "name": f"{rng.choice(['alpha', 'beta', 'gamma'])}{i}", "score": round(rng.random(), 4),
             "tags": rng.sample(["a", "b", "c", "d", "e"], 2)} for i in range(200)]
    return buf.getvalue() + json.dumps(rows, indent=2)


def fit_corpus() -> dict[str, list[str]]:
    kinds = _folder(CORPUS)
    kinds.setdefault("CSV / TSV", []).append(_table())
    return kinds


def heldout_corpus() -> dict[str, list[str]]:
    return _folder(HELDOUT)


def samples(texts: list[str], size: int = SAMPLE_CHARS) -> list[str]:
    """~size-character pieces of each text, cut after a line (a paragraph where there is one)."""
    out = []
    for t in texts:
        pos = 0
        while pos < len(t):
            end = min(len(t), pos + size)
            if end < len(t):
                cut = t.rfind("\n\n", pos + size // 2, end + size // 3)
                if cut < 0:
                    cut = t.rfind("\n", pos + size // 2, end + size // 3)
                end = cut + 1 if cut >= 0 else end
            piece = t[pos:end]
            if piece.strip() and (len(piece) > size / 3 or pos == 0):
                out.append(piece)
            pos = end
    return out


def percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return 0.0
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def measure(kinds: dict[str, list[str]], toks: dict, families: dict[str, str] | None = None) -> dict:
    """(kind, tokenizer) → {"real", "whole" error, "p5", "p95", "worst" of the 3K samples}.
    `families` overrides the runner family per tokenizer (default: tokenizer_family of REFS)."""
    out = {}
    for kind, texts in kinds.items():
        whole = "\n\n".join(texts)
        parts = samples(texts)
        for name, (_, count) in toks.items():
            family = (families or {}).get(name) or tokenizer_family(REFS[name])
            real = count(whole)
            err = tokens_for(text_stats(whole), family) / real - 1
            errs = [tokens_for(text_stats(s), family) / max(1, count(s)) - 1 for s in parts]
            out[kind, name] = {"real": real, "whole": err, "p5": percentile(errs, 0.05),
                               "p95": percentile(errs, 0.95), "worst": max(errs, key=abs),
                               "median": statistics.median(errs)}
    return out


def print_table(title: str, kinds: dict[str, list[str]], res: dict, names: list[str]) -> None:
    print(f"  {title}")
    print("  error = estimate / real − 1; whole: the kind's texts as one document; "
          f"p5…p95: {SAMPLE_CHARS:,}-character samples")
    head = f"  {'kind':20s} {'chars':>7s}"
    for n in names:
        head += f" │ {n:>11s} {'p5…p95':>13s}"
    print(head)
    for kind, texts in kinds.items():
        row = f"  {kind:20s} {sum(map(len, texts)):7,d}"
        for n in names:
            r = res[kind, n]
            row += f" │ {r['whole']:+11.1%} {r['p5']:+6.0%}…{r['p95']:+5.0%}"
        print(row)
    worst = {n: max(abs(res[k, n]["whole"]) for k in kinds) for n in names}
    print(f"  {'worst whole':28s}" + "".join(f" │ {worst[n]:11.1%} {'':13s}" for n in names))

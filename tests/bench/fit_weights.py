"""Fit the estimator's weights (runner/tokens.py FAMILY_WEIGHTS) on the FIT corpus only.

    python tests/bench/fit_weights.py            # fit, print the weights and the in-sample error
    python tests/bench/fit_weights.py --fixture  # also rewrite tests/data/heldout_tokens.json

The FIT corpus is tests/bench/corpus/ plus a generated table (accuracy.fit_corpus); the HELD-OUT
corpus (tests/bench/heldout/) is never read here except to record the fixture's real counts, after
the weights are fixed. Deterministic: the same corpus and tokenizers give the same weights.

The model: tokens = Σ weight × count over runner.tokens.features (pre-tokens, letters beyond the
sixth of long words, accented letters, extra digits, Han, kana, Hangul, other non-ASCII,
structural marks, code marks, CJK punctuation, capitals, camelCase joints, URLs), per tokenizer
family. Fitted by non-negative least squares on the relative error of every ~3,000-character
sample and every whole text, each kind of text weighing the same, with a light pull towards the
previous weights so that a class the corpus barely has keeps a sane price.

Tokenizers: see real_tokenizers.py (and its install line).
"""

from __future__ import annotations

import json
import sys
from dataclasses import astuple, fields, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402
import real_tokenizers  # noqa: E402
from accuracy import ROOT  # noqa: E402
from runner.tokens import Weights, features, text_stats  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "heldout_tokens.json"
RIDGE = 0.02  # pull towards the prior weights, relative to one kind's weight in the fit
# (classes whose prior is 0 — structural and code marks, capitals, camelCase joints, URLs — are free)
# The weights the fit is pulled towards: the hand calibration that came before the fit (cl100k,
# Qwen2.5), and for the newer families the closest of those. Fixed here, so the fit does not
# depend on what runner/tokens.py holds now.
_CL100K = Weights(pretoken=1.0, long_excess=0.1, accented=4.0, digit_extra=0.0, han=1.25, kana=1.08,
                  hangul=1.6, other=0.36, struct=0.0, code=0.0, cjk_punct=1.0, caps=0.0, camel=0.0, url=0.0)
_QWEN = replace(_CL100K, digit_extra=0.667, han=0.65, kana=0.8, hangul=1.0, other=0.21)
PRIORS = {"default": _CL100K, "o200k": _CL100K, "claude": _CL100K, "claude-4.7": _CL100K,
          "qwen": _QWEN, "qwen3.5": _QWEN, "deepseek": _QWEN}


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (a is small and square)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        if abs(m[c][c]) < 1e-12:
            continue
        for r in range(n):
            if r != c and m[r][c]:
                f = m[r][c] / m[c][c]
                m[r] = [x - f * y for x, y in zip(m[r], m[c])]
    return [m[i][n] / m[i][i] if abs(m[i][i]) > 1e-12 else 0.0 for i in range(n)]


def nnls(rows: list[tuple[list[float], float, float]], n: int) -> list[float]:
    """min Σ weight·(x·w − y)² over w ≥ 0, by an active set: solve on the free variables, drop
    the most negative one, repeat (deterministic; n is small)."""
    free = list(range(n))
    while True:
        ata = [[0.0] * len(free) for _ in free]
        atb = [0.0] * len(free)
        for x, y, wt in rows:
            xs = [x[j] for j in free]
            for i, xi in enumerate(xs):
                if xi:
                    atb[i] += wt * xi * y
                    for k, xk in enumerate(xs):
                        ata[i][k] += wt * xi * xk
        sol = _solve(ata, atb)
        worst = min(range(len(free)), key=lambda i: sol[i]) if free else None
        if worst is None or sol[worst] >= 0:
            out = [0.0] * n
            for j, v in zip(free, sol):
                out[j] = v
            return out
        free.pop(worst)


def fit_family(kinds: dict[str, list[str]], count, prior: Weights) -> Weights:
    n = len(fields(Weights))
    rows: list[tuple[list[float], float, float]] = []
    for kind, texts in sorted(kinds.items()):
        pieces = accuracy.samples(texts) + texts
        for piece in pieces:
            real = count(piece)
            if real < 20:
                continue
            x = [float(v) for v in features(text_stats(piece))]
            # relative error: divide the row by the real count; each kind weighs 1 in all
            rows.append(([v / real for v in x], 1.0, 1.0 / len(pieces)))
    p = astuple(prior)
    for j in range(n):  # ridge rows: w_j ≈ prior_j, scaled by how much the class matters where it occurs
        unit = [0.0] * n
        unit[j] = 1.0
        rows.append((unit, p[j], RIDGE if p[j] else 1e-6))
    w = nnls(rows, n)
    return Weights(*(round(v, 3) for v in w))


def main() -> None:
    toks = real_tokenizers.load()
    if not toks:
        sys.exit("no offline tokenizer found; see tests/bench/real_tokenizers.py for the install line")
    kinds = accuracy.fit_corpus()
    fitted: dict[str, Weights] = {}
    for name, (family, count) in toks.items():
        prior = PRIORS.get(family, _CL100K)
        fitted[family] = fit_family(kinds, count, prior)
        print(f"# {name} ({sum(map(len, kinds.values()))} texts)", file=sys.stderr)
    print("FAMILY_WEIGHTS: dict[str, Weights] = {")
    for family, w in fitted.items():
        line, lines = f'    "{family}": Weights(', []
        for f in fields(Weights):
            arg = f"{f.name}={getattr(w, f.name):g}, "
            if len(line) + len(arg) > 105:
                lines.append(line.rstrip())
                line = " " * 8
            line += arg
        print("\n".join(lines + [line.rstrip(", ") + "),"]))
    print("}")
    families = {name: fam for name, (fam, _) in toks.items()}
    # What these weights give in-sample, before they are pasted into runner/tokens.py.
    import runner.tokens as T

    saved = dict(T._VECTORS)
    T._VECTORS.update({f: astuple(w) for f, w in fitted.items()})
    try:
        res = accuracy.measure(kinds, toks, families)
        accuracy.print_table("in-sample with the fitted weights", kinds, res, list(toks))
    finally:
        T._VECTORS.clear()
        T._VECTORS.update(saved)
    if "--fixture" in sys.argv:
        write_fixture(toks)


# --- the held-out fixture: snippets and their real counts, for tests/test_heldout_accuracy.py ---

FIXTURE_SNIPPETS = (  # (held-out file, first line, lines): each kind of the held-out table
    ("md_links_pydantic_2.10.md", 1, 120),
    ("md_readme_rich.md", 20, 60),
    ("json_sam_policy_templates.json", 1, 120),
    ("json_iso639_compact.json", 1, 1),
    ("json_i18n_ja.json", 1, 40),
    ("csv_zone1970.tsv", 40, 80),
    ("code_go.go", 1, 200),
    ("code_rust.rs", 1, 200),
    ("code_python_requests_sessions.py.txt", 60, 100),
    ("code_sh_apt_key.sh", 1, 100),
    ("prose_en_pydoc.txt", 1, 60),
    ("prose_de.txt", 1, 100),
    ("prose_ru.txt", 1, 100),
    ("prose_ja.txt", 1, 100),
    ("prose_zh.txt", 1, 100),
    ("prose_ko.txt", 1, 100),
    ("man_ja.txt", 1, 100),
    ("man_ko.txt", 1, 100),
    ("mixed_ja_tutorial.md", 1, 200),
    ("mixed_chat.txt", 1, 100),
)
FIXTURE_MAX_CHARS = 3500


def write_fixture(toks: dict) -> None:
    snippets = []
    for name, start, n in FIXTURE_SNIPPETS:
        lines = (accuracy.HELDOUT / name).read_text(encoding="utf-8").splitlines(True)
        text = "".join(lines[start - 1:start - 1 + n])
        if len(text) > FIXTURE_MAX_CHARS:
            text = text[:text.rfind("\n", 0, FIXTURE_MAX_CHARS) + 1] or text[:FIXTURE_MAX_CHARS]
        snippets.append({"source": f"tests/bench/heldout/{name}", "text": text,
                         "real": {family: count(text) for _, (family, count) in sorted(toks.items())}})
    doc = {"about": "Held-out snippets (never used for fitting) and their token counts from real tokenizers, "
                    "per runner tokenizer family; written by tests/bench/fit_weights.py --fixture. "
                    "claude/claude-4.7: ctok's offline reconstruction, not Anthropic's tokenizer.",
           "tokenizers": {family: name for name, (family, _) in sorted(toks.items())},
           "snippets": snippets}
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE.relative_to(ROOT)} ({len(snippets)} snippets)", file=sys.stderr)


if __name__ == "__main__":
    main()

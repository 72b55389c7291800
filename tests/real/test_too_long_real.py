"""Prompts longer than the tiny model's 2048-token window, end to end.

llama-cpp-python refuses an over-window prompt that is streamed (and the runner always streams)
with HTTP 200 and an EMPTY body: no event, no error, no [DONE]. Only the server's log says why
("Requested tokens (N) exceed context window of 2048"). The runner must recognise that reply as
"too long" — not as a dropped connection to retry — and then re-plan (split, with a profile that
says `too_long: split`) or fail saying so (`too_long: fail`). It never reports success from an
empty or cut answer, and never sends the same refused request again.

Documents come from tests/real/texts.py: `unknown_words` costs ~5.8 real tokens per estimated
one, `mixed` ~1.6 (both overflows the runner's estimate does not foresee); `known_words` ~1.08
(an estimate that is right: the runner sees the document is too long before sending anything).
"""

from __future__ import annotations

import re

from .harness import Expect, N_CTX, attempt_summary, complete, unfinished_ok_attempts
from .texts import known_words, mixed, unknown_words

TOO_LONG = re.compile(r"too long|context|window|exceed", re.IGNORECASE)


def _no_retry_loop(expect: Expect, server) -> None:
    sizes = server.overflows()
    expect(len(sizes) == len(set(sizes)),
           f"a refused (over-window) request was sent again: real prompt sizes refused {sizes}")


def test_overflow_with_fail_profile_fails_as_too_long(runner):
    doc = runner.work / "notes.txt"
    doc.write_text(unknown_words(600))
    real = runner.server.count_tokens(doc.read_text())
    assert real > N_CTX, real  # ~3,900 real tokens; the runner estimates ~700, so it sends it

    r = runner("ask", "--task", "tiny", "-f", str(doc), "Summarise", "--json")
    attempts = runner.attempts()
    expect = Expect()
    data = r.json() if r.stdout.strip().startswith("{") else {}
    expect(r.code == 1, f"exit code {r.code}, expected 1 (failed)")
    expect(data.get("ok") is False, f"ok={data.get('ok')!r}, expected false")
    expect(not data.get("text"), f"an answer was reported: {data.get('text')!r}")
    expect(TOO_LONG.search(data.get("error") or r.stderr),
           f"the error does not say the prompt is too long for the window: {data.get('error')!r}")
    expect(runner.server.chat_posts() <= 1,
           f"{runner.server.chat_posts()} chat requests for one prompt that can never fit (a retry loop)")
    _no_retry_loop(expect, runner.server)
    expect(not [a for a in attempts if a["outcome"] == "ok"], "an attempt was logged as ok")
    expect.check(r, "attempts in the run log:\n" + attempt_summary(attempts))


def test_overflow_with_split_profile_is_split_and_answered(runner):
    # Through stdin (a document named "stdin"), ~2,600 real tokens that the runner estimates ~1,650.
    text = mixed(1500, 0.1)
    real = runner.server.count_tokens(text)
    assert real > N_CTX, real

    r = runner("ask", "--task", "tiny-split", "Summarise", "--json", input=text)
    attempts = runner.attempts()
    expect = Expect()
    data = r.json() if r.stdout.strip().startswith("{") else {}
    expect(r.code == 0, f"exit code {r.code}, expected 0")
    expect(data.get("ok") is True, f"ok={data.get('ok')!r}, error={data.get('error')!r}")
    expect((data.get("chunks") or 0) >= 2, f"chunks={data.get('chunks')!r}: the document was not split")
    expect(complete(data.get("text")), f"the final answer is not whole: {data.get('text')!r}")
    _no_retry_loop(expect, runner.server)
    expect(not unfinished_ok_attempts(attempts), "an attempt without a finish_reason was logged as ok")
    expect(not [a for a in attempts if a["outcome"] == "ok" and not a["output_tokens"]],
           "an attempt with an empty answer was logged as ok")
    expect.check(r, "attempts in the run log:\n" + attempt_summary(attempts))


def test_document_known_too_long_is_split_before_sending(runner):
    doc = runner.work / "book.txt"
    doc.write_text(known_words(4000))  # ~4,400 real tokens; the estimate is ~8% low on the whole
    r = runner("ask", "--task", "tiny-split", "-f", str(doc), "What happens?", "--json")
    attempts = runner.attempts()
    expect = Expect()
    data = r.json() if r.stdout.strip().startswith("{") else {}
    expect(r.code == 0, f"exit code {r.code}, expected 0")
    expect(data.get("ok") is True, f"ok={data.get('ok')!r}, error={data.get('error')!r}")
    expect((data.get("chunks") or 0) >= 3, f"chunks={data.get('chunks')!r}, expected 3 or more")
    expect(complete(data.get("text")), f"the final answer is not whole: {data.get('text')!r}")
    _no_retry_loop(expect, runner.server)
    expect(not unfinished_ok_attempts(attempts), "an attempt without a finish_reason was logged as ok")
    expect(not [a for a in attempts if a["outcome"] == "ok" and not a["output_tokens"]],
           "an attempt with an empty answer was logged as ok")
    n = data.get("chunks") or 0
    answered = {a["part"] for a in attempts if a["outcome"] == "ok"}  # re-plans may renumber: "chunk 2/4", "chunk 2/5"
    missing = [f"chunk {i}/{n}" for i in range(1, n + 1) if f"chunk {i}/{n}" not in answered]
    expect(not missing, f"no ok attempt for {missing} of the final {n}-chunk plan")
    expect.check(r, "attempts in the run log:\n" + attempt_summary(attempts))

"""The HTML report opened in a real headless Chromium: the page renders, every model's answer is in
the DOM, the charts are drawn (their colours are on the screenshot), and on a phone-width screen
the answers stack.

Skipped when Chromium is not installed, except under CI (the `CI` variable set), where a missing
browser is a failure: `.ci/run` installs Debian's `chromium`, so the test can never be skipped
silently there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.fakes import Fault
from tests.pngdecode import decode

LATENCY_TTFT = (0xF5, 0x9E, 0x0B)  # report_html.TTFT
LATENCY_TOTAL = (0x25, 0x63, 0xEB)  # report_html.TOTAL
COST = (0x05, 0x96, 0x69)  # report_html.COST
CHEAPEST_EDGE = (0x04, 0x78, 0x57)  # --cheap: the cheapest card's bottom edge
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("CI is set but no Chromium is installed (.ci/run installs Debian's chromium); "
                    "the HTML report test must not be skipped in CI")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def chromium(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "chromium-profile"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def report(cli, home, use, tmp_path, fake_ollama, fake_openai, fake_deepseek, fake_anthropic):
    """Four columns: local and cheapest, slow and dear with hostile markup, fast with thinking, failing."""
    for fake, name in ((fake_ollama, "ollama"), (fake_openai, "openai"), (fake_deepseek, "deepseek"),
                       (fake_anthropic, "anthropic")):
        use(fake, name)
    fake_ollama.ttft_s, fake_openai.ttft_s, fake_deepseek.ttft_s = 0.15, 0.30, 0.02
    fake_openai.replies["gpt-4.1"] = ("Here is <b>not bold</b> & <script>alert(1)</script>.\n\n```python\n"
                                      "def f(x):\n    return x < 3\n```\n\nThe end of the gpt answer.")
    for _ in range(2):
        fake_anthropic.push_fault(Fault(status=500, error_type="api_error", message="Internal server error"))
    out = tmp_path / "report.html"
    r = cli("compare", "--json", "Explain the CAP theorem", "-m", "ollama/qwen2.5:7b", "-m", "openai/gpt-4.1",
            "-m", "deepseek/deepseek-v4-pro", "-m", "anthropic/claude-sonnet-4-6", "--html", str(out))
    assert r.code == 1, r.stderr  # the anthropic column failed
    return out, r.json()


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: dict[str, int] = {}
        self.classes: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name == "class":
                for c in (value or "").split():
                    self.classes[c] = self.classes.get(c, 0) + 1

    def handle_data(self, data):
        self.text.append(data)


def test_report_renders_in_chromium(report, tmp_path):
    browser = find_chromium()
    path, rows = report
    url = path.resolve().as_uri()

    # The DOM Chromium built: every answer, the failure's reason, thinking folded, two SVG charts.
    dumped = chromium(browser, tmp_path, "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)
    text = " ".join("".join(dom.text).split())
    for d in rows:
        if d["ok"]:
            for line in d["text"].splitlines():  # fenced code loses its ``` lines to a <pre>
                if line.strip() and not line.startswith("```"):
                    assert " ".join(line.split()) in text, (d["model"], line)
        else:
            assert "HTTP 500: Internal server error" in text
        assert d["column"] in text
    assert "<script>alert(1)</script>" in text  # shown as text…
    assert dom.tags.get("script") is None  # …never run
    assert dom.tags.get("svg") == 2 and dom.classes.get("latency") == 1 and dom.classes.get("cost") == 1
    assert dom.classes.get("bar", 0) >= 6 + 2  # first token + total for three answers, two priced costs
    assert dom.tags.get("details") == 1 and dom.classes.get("thinking") == 1
    assert dom.classes.get("card") == 4 and dom.classes.get("failed", 0) >= 1

    # Desktop: the page is drawn, charts in their colours, the cards side by side.
    wide = tmp_path / "wide.png"
    shot = chromium(browser, tmp_path, f"--screenshot={wide}", "--window-size=1280,1400", url)
    assert wide.exists(), shot.stderr[-2000:]
    image = decode(wide.read_bytes())
    assert (image.width, image.height) == (1280, 1400)
    colours = image.colours(step=2)
    background = max(colours.values())
    assert len(colours) > 200 and sum(colours.values()) - background > 0.1 * sum(colours.values())  # not blank
    for colour in (LATENCY_TTFT, LATENCY_TOTAL, COST):
        assert colours.get(colour, 0) > 200, colour  # the bars are drawn
    assert 0 < _longest_run(image, CHEAPEST_EDGE) < 0.35 * image.width  # one card of four in a row

    # Phone width: still drawn, charts included, the answers stacked (a card spans the screen).
    phone = tmp_path / "phone.png"
    shot = chromium(browser, tmp_path, f"--screenshot={phone}", "--window-size=390,2400", url)
    assert phone.exists(), shot.stderr[-2000:]
    image = decode(phone.read_bytes())
    assert image.width == 390
    colours = image.colours(step=2)
    assert len(colours) > 100
    for colour in (LATENCY_TTFT, LATENCY_TOTAL, COST):
        assert colours.get(colour, 0) > 50, colour
    assert _longest_run(image, CHEAPEST_EDGE) > 0.8 * image.width


def _longest_run(image, colour) -> int:
    """The longest horizontal run of pixels of exactly `colour` anywhere in the image."""
    best = 0
    for y in range(image.height):
        run = 0
        for x in range(image.width):
            if image.pixel(x, y) == colour:
                run += 1
                best = max(best, run)
            else:
                run = 0
    return best


def test_missing_chromium_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set but no Chromium"):
        find_chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        find_chromium()

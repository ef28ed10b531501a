"""The pictures in a real browser: Debian's Chromium, headless, driven by selenium through chromedriver.

The page loads without a console message and without fetching anything, and the widths Chromium lays out
(getBoundingClientRect) match the byte counts of the JSON output of the same command at the documented scale.
Skipped where chromium, chromedriver or selenium is missing (`.ci/run` installs the browser when it can).
"""
from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.test_picture import (INSPECT_CASES, PANEL_WIDTH, WIDTH, cli, expected_inspect, inspect_json,
                                quants)  # noqa: F401 - quants is a fixture

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# /work/.library/env/machines/python.md: without the background-networking flags Chromium tries Google's hosts
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1800,1400")
TOLERANCE = 0.02  # px: the SVG rounds to 0.01 px, the layout works in floats

MEASURE = """
return Array.from(document.querySelectorAll('g.bar')).map(g => {
  const track = g.querySelector('rect.track').getBoundingClientRect();
  return {device: g.dataset.device, scale: g.dataset.scale, left: track.left, width: track.width,
          rects: Array.from(g.querySelectorAll('rect[data-bytes]')).map(r => {
            const b = r.getBoundingClientRect();
            return {part: r.dataset.part, cls: r.getAttribute('class'), bytes: Number(r.dataset.bytes),
                    offset: Number(r.dataset.offset), left: b.left, width: b.width};
          })};
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("no chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="ckpt-size-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def load(driver: Any, path: Path) -> list[dict[str, Any]]:
    """Open a page; return what the console said and assert that nothing was fetched."""
    driver.get(path.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    return driver.get_log("browser")


def check_layout(bars: list[dict[str, Any]], want: list[tuple[str, dict[str, Any]]], width: int,
                 full: int) -> None:
    """Chromium's boxes against the JSON's bytes: the shared-scale bars in order, then the own-scale ones."""
    shared = [b for b in bars if b["scale"] == "shared"]
    assert [b["device"] for b in shared] == [d for d, _ in want]
    own = {b["device"]: b for b in bars if b["scale"] == "own"}
    for (device, expected), drawn in zip(want, shared):
        checks = [(drawn, width / full)] + ([(own[device], width / expected["extent"])] if device in own else [])
        for bar, px_per_byte in checks:
            assert abs(bar["width"] - width) <= TOLERANCE  # the page does not scale the drawing
            segs = [r for r in bar["rects"] if r["cls"] == "seg"]
            assert [(r["part"], r["bytes"], r["offset"]) for r in segs] == expected["segments"]
            for r in bar["rects"]:  # the over-budget mark too: it starts at the budget
                assert abs(r["width"] - r["bytes"] * px_per_byte) <= TOLERANCE, r
                assert abs(r["left"] - bar["left"] - r["offset"] * px_per_byte) <= TOLERANCE, r
            over = [r for r in bar["rects"] if r["cls"] == "over"]
            assert [(r["bytes"], r["offset"]) for r in over] == (
                [(expected["over"], expected["budget"])] if expected["over"] else [])


def test_the_harness_sees_console_errors(browser: Any, tmp_path: Path) -> None:
    """The check below could fail: a page that logs an error is seen to."""
    page = tmp_path / "error.html"
    page.write_text("<!DOCTYPE html><title>t</title><script>console.error('boom')</script>", encoding="utf-8")
    assert any("boom" in entry["message"] for entry in load(browser, page))


@pytest.mark.parametrize("name", ["deepseek-24g", "llama-over"])
@pytest.mark.parametrize("fmt", ["html", "svg"])
def test_inspect_picture_in_chromium(name: str, fmt: str, browser: Any, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = ["inspect", *INSPECT_CASES[name]]
    _, picture, _ = cli([*args, "--format", fmt], capsys)
    path = tmp_path / f"{name}.{fmt}"
    path.write_text(picture, encoding="utf-8")
    assert load(browser, path) == []  # no console message of any level
    bars = expected_inspect(inspect_json(INSPECT_CASES[name], capsys))
    full = max(b["extent"] for b in bars.values())
    check_layout(browser.execute_script(MEASURE), list(bars.items()), WIDTH, full)


def test_fit_quants_side_by_side_in_chromium(quants: Path, browser: Any, tmp_path: Path,  # noqa: F811
                                             capsys: pytest.CaptureFixture[str]) -> None:
    budget = ["--budget", "cuda:0=4GiB", "--ctx", "8192"]
    _, out, _ = cli(["fit", str(quants), *budget, "--format", "json"], capsys)
    per_quant = [expected_inspect(inspect_json([str(quants / q["quant"]), *shlex.split(q["flags"]), *budget[:2]],
                                               capsys)) for q in json.loads(out)["quants"]]
    _, page, _ = cli(["fit", str(quants), *budget, "--format", "html"], capsys)
    path = tmp_path / "fit.html"
    path.write_text(page, encoding="utf-8")
    assert load(browser, path) == []
    full = max(b["extent"] for bars in per_quant for b in bars.values())
    extents = [b["extent"] for bars in per_quant for b in bars.values()]
    own_scale = any(0 < e < full / 4 for e in extents)  # then each panel draws its smaller devices again
    assert own_scale
    measured = browser.execute_script(MEASURE)
    for bars in per_quant:  # panel by panel, in document order
        count = len(bars) + sum(1 for b in bars.values() if 0 < b["extent"] < full)
        check_layout(measured[:count], list(bars.items()), PANEL_WIDTH, full)
        measured = measured[count:]
    assert measured == []

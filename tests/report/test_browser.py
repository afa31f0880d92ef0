"""The report in real headless Chromium (over CDP): loads offline, no console errors, every
section present, every figure drawn, and the first screen (1280 x 900, before any scroll) is
the verdict; the screenshots land in tests/report/artifacts/.

Chromium comes from ``make browser`` (Debian's package, run by ``make test``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from quantfleet.report import SECTIONS, RunView, build
from tests.report.browser import CHROMIUM, load_page
from tests.report.synthetic import realistic_view

ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason=f"{CHROMIUM} is missing: run 'make browser' (as root it installs "
                              "Debian's chromium) to run the report's browser test"),
]

# a name that would run script or fetch an image if any text reached the page unescaped
XSS_NAME = '<img src=x onerror="window.__xss=1">'


def _local_only(urls: list[str]) -> list[str]:
    return [u for u in urls if not u.startswith(("file://", "data:", "about:"))]


def test_full_report_in_chromium(tmp_path):
    view = realistic_view(odd_name=XSS_NAME)
    html = build(view, tmp_path / "report.html")
    page = load_page(html, screenshot=ARTIFACTS / "report.png")
    shutil.copyfile(html, ARTIFACTS / "report.html")

    p = page.probe
    assert page.console_errors == [], page.console_errors
    assert page.exceptions == [], page.exceptions
    assert _local_only(page.requests) == [], "the report fetched from the network"
    assert p["sections"] == list(SECTIONS)
    assert p["absent"] == [] and p["errors"] == []
    assert p["scripts"] == 0
    assert p["figures"] == 8 and p["drawn"] == p["figures"], p
    assert p["marks"] >= 30
    assert p["xss"] is None, "an unescaped name ran script"
    assert page.screenshot is not None and page.screenshot.stat().st_size > 50_000
    assert page.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_report_in_chromium(tmp_path):
    page = load_page(build(RunView(run_id="only-an-id"), tmp_path / "empty.html"),
                     screenshot=ARTIFACTS / "report-empty.png")
    assert page.console_errors == [] and page.exceptions == []
    assert _local_only(page.requests) == []
    assert page.probe["sections"] == list(SECTIONS)
    assert page.probe["absent"] == list(SECTIONS)
    assert page.probe["figures"] == 0


def test_the_probe_is_not_blind(tmp_path):
    # control: the driver does see console errors, uncaught exceptions and undrawn figures
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><section id='summary'></section>"
                   "<div class='figure'></div>"
                   "<script>console.error('boom from the page'); undefinedFunction();</script>"
                   "</body></html>", encoding="utf-8")
    page = load_page(bad)
    assert any("boom from the page" in e for e in page.console_errors), page.console_errors
    assert any("undefinedFunction" in e for e in page.exceptions), page.exceptions
    assert page.probe["figures"] == 1 and page.probe["drawn"] == 0


# what the first screen must show, by element: the verdict section, the winner line (with its
# OOS Sharpe and the buy-and-hold figure), DSR/PBO in words, the profiles against equal weight
# and buy-and-hold, the speed-up and the simulated cost with its label
FIRST = ("#verdict", "#verdict h2", "#winner", "#bh", "#overfit-words", "#profiles",
         "#profiles tr.bh", "#card-speedup", "#card-cost", "#card-cost .label", "#leaderboard",
         "#summary")


def _first_screen(view, tmp_path, name):
    html = build(view, tmp_path / f"{name}.html")
    return load_page(html, width=1280, height=900, first_screen=ARTIFACTS / f"{name}.png",
                     boxes=FIRST)


def _assert_first_screen_is_the_verdict(page, view):
    b, px = page.boxes, page.pixels
    top = view.leaderboard.iloc[0]
    # the screenshot is the viewport, and it is not blank: grey levels vary
    assert (px["width"], px["height"]) == (1280, 900), px
    assert px["all"]["std"] > 20 and 0.01 < px["all"]["ink"] < 0.5, px["all"]
    for sel in FIRST[:10]:
        box = b[sel]
        assert box is not None and box["shown"], sel
        # wholly inside the first screen, and not covered (e.g. by the sticky header)
        assert 0 <= box["top"] and box["bottom"] <= 900, (sel, box)
        assert box["on_top"], (sel, "covered by another element")
    for sel in ("#winner", "#bh", "#overfit-words", "#profiles", "#card-cost .label"):
        # something was painted there: the element's box in the screenshot holds ink
        assert px["boxes"][sel]["ink"] > 0.01, (sel, px["boxes"][sel])
    assert b["#verdict"]["top"] < 150  # the page opens on it
    assert f"{top['strategy']}/{top['asset']}" in b["#winner"]["text"]
    assert b["#bh"]["text"] == f"{float(top['bh_sharpe']):.2f}"
    assert "DSR" in b["#overfit-words"]["text"] and "PBO" in b["#overfit-words"]["text"]
    assert "equal_weight" in b["#profiles"]["text"]
    assert "buy-and-hold" in b["#profiles tr.bh"]["text"]
    assert "faster" in b["#card-speedup"]["text"]
    assert "approximate list prices" in b["#card-cost .label"]["text"]
    # configuration and lineage come at the end, far below the first screen
    assert b["#summary"]["top"] > 3 * 900 and b["#leaderboard"]["top"] < b["#summary"]["top"]


def test_first_screen_is_the_verdict(tmp_path):
    view = realistic_view()
    page = _first_screen(view, tmp_path, "first-screen")
    assert page.console_errors == [] and page.exceptions == []
    _assert_first_screen_is_the_verdict(page, view)


def test_first_screen_check_is_not_blind(tmp_path):
    # control: the same report with a tall block above the verdict fails the check
    import re

    view = realistic_view()
    html = build(view, tmp_path / "pushed.html")
    text = html.read_text(encoding="utf-8")
    html.write_text(re.sub(r"<main>", "<main><div style='height:1200px'>config</div>", text,
                           count=1), encoding="utf-8")
    page = load_page(html, width=1280, height=900, first_screen=tmp_path / "p.png",
                     boxes=FIRST)
    with pytest.raises(AssertionError):
        _assert_first_screen_is_the_verdict(page, view)
    # and a blank page has no ink
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    page = load_page(blank, width=1280, height=900, first_screen=tmp_path / "b.png")
    assert page.pixels["all"]["std"] < 1 and page.pixels["all"]["ink"] == 0

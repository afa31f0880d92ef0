"""The report in real headless Chromium (over CDP): loads offline, no console errors, every
section present, every plotly figure drawn; the screenshot lands in tests/report/artifacts/.

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
    assert p["plotly"], "plotly.js did not load"
    assert p["figures"] == 8 and p["drawn"] == p["figures"], p
    assert p["main_svg"] >= p["figures"] and p["traces"] >= 30
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
                   "<div class='plotly-graph-div'></div>"
                   "<script>console.error('boom from the page'); undefinedFunction();</script>"
                   "</body></html>", encoding="utf-8")
    # no plotly.js on the page: load_page does not wait for its figure to be drawn; the
    # default timeout fails only a hung browser
    page = load_page(bad)
    assert any("boom from the page" in e for e in page.console_errors), page.console_errors
    assert any("undefinedFunction" in e for e in page.exceptions), page.exceptions
    assert page.probe["figures"] == 1 and page.probe["drawn"] == 0

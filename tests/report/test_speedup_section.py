"""The report's speed-up section (report.build._speedup) from explain_speedup's own output:
the headline names the baseline kind and the efficiency; a ratio above the workers is shown
as invalid, never as a speedup (issue [3/6] item 2)."""

from __future__ import annotations

import re

import numpy as np

from quantfleet.observe.spans import SpanRecorder
from quantfleet.observe.speedup import explain_speedup
from quantfleet.report import build
from quantfleet.report.view import RunView
from tests.observe.spanset import span


def section(view: RunView, tmp_path) -> str:
    page = build(view, tmp_path / "r.html").read_text(encoding="utf-8")
    m = re.search(r'<section id="speedup">(.*?)</section>', page, re.S)
    assert m
    return m.group(1)


def as_view(sp: dict) -> RunView:
    # what pipeline.report.run_view keeps: the finite values, with the scope
    return RunView("r", speedup={"scope": "tournament stage",
                                 **{k: v for k, v in sp.items()
                                    if not isinstance(v, float) or np.isfinite(v)}})


SPANS = SpanRecorder([span("tournament", "a", "w1", 0, 1), span("tournament", "b", "w2", 0, 1)])


def test_the_bogus_speedup_of_the_issue_is_shown_invalid(tmp_path):
    sp = explain_speedup(SPANS, 1.0, 2, {"baseline_kind": "sampled 7/180 items, extrapolated",
                                         "serial_s": 38.33})
    sec = section(as_view(sp), tmp_path)
    assert "38.33× faster" not in sec and "no valid speedup" in sec
    assert "invalid (not shown)" in sec and "38.33×" in sec  # only as the labelled raw ratio
    assert "serial / wall ratio (not a speedup)" in sec
    assert "Where the speed-up was lost" not in sec


def test_a_valid_speedup_names_its_baseline_kind_and_efficiency(tmp_path):
    sp = explain_speedup(SPANS, 1.0, 2, {"baseline_kind": "measured", "serial_s": 1.6})
    sec = section(as_view(sp), tmp_path)
    assert ("tournament stage: 1.60× faster than its sequential baseline (measured) on 2 "
            "workers — efficiency 80%") in sec
    assert "busy worker-seconds" in sec and f"{sp['busy_s']:,.2f} s" in sec  # not a percent
    assert "Where the speed-up was lost" in sec


def test_no_baseline_says_how_to_get_one(tmp_path):
    sp = explain_speedup(SPANS, 1.0, 2, None)
    sec = section(as_view(sp), tmp_path)
    assert "no sequential baseline was measured" in sec and "--baseline" in sec

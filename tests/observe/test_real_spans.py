"""Spans from real executor maps through heatmap, bottlenecks and explain_speedup."""

from __future__ import annotations

import math
import time

import pytest

from quantfleet.compute import ProcessExecutor, SerialExecutor
from quantfleet.observe.heatmap import bottlenecks, heatmap, utilisation
from quantfleet.observe.profile import format_profile
from quantfleet.observe.speedup import LOSS_PARTS, explain_speedup
from quantfleet.research.baseline import measure_serial


def spin(shared, item):
    """A little CPU work per item (no sleeps: spans measure real compute)."""
    s = 0
    for i in range(2000 * (1 + item % 3)):
        s += i * i
    return s


ITEMS = list(range(40))
LABELS = ["sma_cross" if i % 2 else "rsi" for i in ITEMS]


@pytest.mark.parametrize("kind", ["serial", "processes"])
def test_real_spans_feed_every_analysis(kind):
    ex = SerialExecutor() if kind == "serial" else ProcessExecutor(workers=2)
    try:
        t0 = time.time()
        out = list(ex.map(spin, ITEMS, stage="sweep", component=LABELS, chunk_size=4))
        wall = time.time() - t0
        workers = ex.workers
    finally:
        ex.close()
    assert out == [spin(None, i) for i in ITEMS]
    spans = ex.spans
    assert len(spans) == 10
    hm = heatmap(spans)
    assert list(hm.index) == ["sweep"] and set(hm.columns) == {"rsi", "sma_cross"}
    assert math.isclose(float(hm.to_numpy().sum()), spans.total("duration"), rel_tol=1e-9)
    util = utilisation(spans, bins=5, wall_s=wall)
    assert ((util >= 0) & (util <= 1)).all().all() and len(util) <= workers
    found = bottlenecks(spans, wall, workers=workers)
    assert found and all(f.text for f in found)
    # no budget to run out, however slow the machine: every item is measured
    baseline = measure_serial(spin, None, ITEMS, budget_s=math.inf)
    assert (baseline["baseline_kind"], baseline["sampled"]) == ("measured", len(ITEMS))
    r = explain_speedup(spans, wall, workers, baseline)
    assert r["baseline_label"] == "measured" and set(r["loss_parts"]) == set(LOSS_PARTS)
    text = format_profile(spans, wall, workers, baseline)
    if r["valid"]:
        assert r["speedup"] > 0
        # the identity holds exactly when the driver's wall covers the spans (same clock)
        assert r["residual"] == pytest.approx(0.0, abs=1e-9)
        assert "Speedup (measured baseline" in text
    else:  # a few ms of work on a loaded machine: a ratio above the workers is not shown
        assert math.isnan(r["speedup"]) and "exceeds" in r["invalid_reason"]
        assert "Speedup: invalid (measured baseline" in text

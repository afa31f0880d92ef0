"""Heatmap totals, label parsing, utilisation of hand-made spans, bottleneck ranking."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quantfleet.errors import QuantfleetError
from quantfleet.observe.heatmap import (
    Label,
    bottlenecks,
    heatmap,
    parse_label,
    span_frame,
    timeline,
    utilisation,
)
from quantfleet.observe.profile import format_profile
from quantfleet.observe.spans import SpanRecorder
from tests.observe.spanset import span


def random_spans(seed: int = 0, n: int = 200) -> SpanRecorder:
    rng = np.random.default_rng(seed)
    comps = ["sma_cross", "rsi", "sma_cross+rsi", "portfolio.hrp/w:3", "portfolio.ew/w:117",
             "profile:mv/w:250", "macd"]
    stages = ["sweep", "tournament", "evolve/gen:2", "portfolio", "put"]
    out = []
    for _ in range(n):
        a = float(rng.uniform(0, 100))
        d = float(rng.exponential(1.0))
        cpu = float("nan") if rng.random() < 0.05 else d * 0.8
        out.append(span(str(rng.choice(stages)), str(rng.choice(comps)),
                        str(rng.integers(0, 4)), a, a + d, items=int(rng.integers(1, 9)),
                        ok=bool(rng.random() > 0.1), attempt=int(rng.integers(1, 3)), cpu=cpu))
    return SpanRecorder(out)


@pytest.mark.parametrize("rows,cols,bucket", [
    ("stage", "component", None), ("component", "worker", None), ("stage", "profile", "w"),
    ("gen", "component", None), ("node", "stage", "attempt"),
])
def test_heatmap_sums_equal_total_span_time(rows, cols, bucket):
    rec = random_spans()
    t = heatmap(rec, rows=rows, cols=cols, bucket=bucket)
    assert math.isclose(float(t.to_numpy().sum()), rec.total("duration"), rel_tol=1e-12)
    c = heatmap(rec, rows=rows, cols=cols, bucket=bucket, value="cpu")
    assert math.isclose(float(c.to_numpy().sum()), rec.total("cpu_s"), rel_tol=1e-12)
    i = heatmap(rec, rows=rows, cols=cols, bucket=bucket, value="items")
    assert math.isclose(float(i.to_numpy().sum()), rec.total("items"), rel_tol=1e-12)
    n = heatmap(rec, rows=rows, cols=cols, bucket=bucket, value="tasks")
    assert math.isclose(float(n.to_numpy().sum()), len(rec), rel_tol=1e-12)


def test_heatmap_inputs_are_interchangeable():
    rec = random_spans(1, 50)
    a = heatmap(rec)
    pd.testing.assert_frame_equal(a, heatmap(rec.to_pandas()))
    pd.testing.assert_frame_equal(a, heatmap(rec.to_arrow()))
    pd.testing.assert_frame_equal(a, heatmap(rec.spans))


def test_mixed_chunks_split_evenly_or_kept():
    rec = SpanRecorder([span("tournament", "sma_cross+rsi", "1", 0, 4),
                        span("tournament", "rsi", "1", 4, 5)])
    t = heatmap(rec)
    assert t.loc["tournament", "sma_cross"] == 2.0 and t.loc["tournament", "rsi"] == 3.0
    k = heatmap(rec, split_mixed=False)
    assert k.loc["tournament", "sma_cross+rsi"] == 4.0 and k.loc["tournament", "rsi"] == 1.0


def test_labels_tags_and_window_buckets():
    assert parse_label("evolve/gen:3") == (Label("evolve", (("gen", "3"),)),)
    assert parse_label("portfolio.hrp/w:0-99") == (
        Label("portfolio.hrp", (("w", "0-99"), ("profile", "hrp"))),)
    assert parse_label("profile:hrp/w:7")[0].base == "hrp"
    assert [p.base for p in parse_label("a+b+a")] == ["a", "b"]
    rec = SpanRecorder([
        span("portfolio", "portfolio.hrp/w:5", "1", 0, 1),
        span("portfolio", "portfolio.hrp/w:105", "1", 1, 3),
        span("portfolio", "profile:mv/w:150", "2", 0, 4),
        span("portfolio", "portfolio.ew", "2", 4, 4.5),
        span("evolve/gen:1", "sma_cross", "1", 5, 6),
        span("evolve/gen:10", "sma_cross", "1", 6, 8),
        span("evolve/gen:2", "rsi", "2", 6, 7),
    ])
    t = heatmap(rec, rows="stage", cols="profile", bucket="w", bucket_width=100)
    assert t.loc[("portfolio", "0-99"), "hrp"] == 1.0
    assert t.loc[("portfolio", "100-199"), "hrp"] == 2.0
    assert t.loc[("portfolio", "100-199"), "mv"] == 4.0
    assert t.loc[("portfolio", "-"), "ew"] == 0.5
    g = heatmap(rec, rows="gen", cols="component")
    assert list(g.index) == ["1", "2", "10", "-"]  # natural order, untagged last
    assert g.loc["10", "sma_cross"] == 2.0 and g.loc["2", "rsi"] == 1.0


def test_heatmap_bad_arguments():
    rec = random_spans(2, 5)
    with pytest.raises(QuantfleetError, match="value 'latency' is not one of wall, cpu"):
        heatmap(rec, value="latency")
    with pytest.raises(QuantfleetError, match="bucket_width must be >= 1"):
        heatmap(rec, bucket="w", bucket_width=0)
    with pytest.raises(QuantfleetError, match="lack column"):
        heatmap(pd.DataFrame({"stage": ["x"]}))
    with pytest.raises(TypeError, match="expected a SpanRecorder"):
        heatmap(3)
    assert heatmap(SpanRecorder()).empty


def test_utilisation_of_hand_made_spans():
    rec = SpanRecorder([
        span("sweep", "a", "w1", 0, 10),
        span("sweep", "a", "w1", 2, 6),      # overlaps w1's first span: counts once
        span("sweep", "a", "w2", 0, 2.5),
        span("sweep", "a", "w2", 5, 6),
        span("sweep", "a", "", 1, 3, ok=False),   # lost task: no worker row
    ])
    u = utilisation(rec, bins=4)
    assert list(u.index) == ["w1", "w2"]
    assert list(u.columns) == [0.0, 2.5, 5.0, 7.5]
    np.testing.assert_allclose(u.loc["w1"], [1, 1, 1, 1])
    np.testing.assert_allclose(u.loc["w2"], [1, 0, 0.4, 0])
    # with the run's wall time: the window starts wall_s before the last end
    u2 = utilisation(rec, bins=2, wall_s=20)
    np.testing.assert_allclose(u2.loc["w1"], [0, 1])
    np.testing.assert_allclose(u2.loc["w2"], [0, 0.35])
    with pytest.raises(QuantfleetError, match="bins must be a whole number >= 1"):
        utilisation(rec, bins=0)


def imbalance_case() -> SpanRecorder:
    # 4 workers; three finish at t=2, the fourth runs one long task until t=10
    return SpanRecorder([
        span("tournament", "sma_cross", "w1", 0, 2, items=4),
        span("tournament", "sma_cross", "w2", 0, 2, items=4),
        span("tournament", "sma_cross", "w3", 0, 2, items=4),
        span("tournament", "ga_slow", "w4", 0, 10, items=1),
    ])


def test_bottlenecks_rank_the_imbalance_first():
    found = bottlenecks(imbalance_case(), wall_s=10, workers=4)
    kinds = [f.kind for f in found]
    assert set(kinds[:2]) == {"imbalance", "idle_workers"}
    imb = next(f for f in found if f.kind == "imbalance")
    assert imb.value == pytest.approx(24.0) and imb.share == pytest.approx(0.6)
    idle = next(f for f in found if f.kind == "idle_workers")
    assert idle.value == pytest.approx(24.0) and "w1 (20% busy)" in idle.subject
    per = next(f for f in found if f.kind == "per_item")
    assert per.subject == "ga_slow" and per.value == pytest.approx(10.0)
    comp = [f for f in found if f.kind == "component"]
    assert [f.subject for f in comp] == ["ga_slow", "sma_cross"]
    assert all(f.text and isinstance(f.value, float) for f in found)
    assert [f.share for f in found] == sorted((f.share for f in found), reverse=True)
    assert not [f for f in found if f.kind in ("overhead", "serial", "transfer", "retries")]


def test_bottlenecks_overhead_serial_retries_and_undeclared_workers():
    rec = SpanRecorder([
        span("sweep", "a", "w1", 0, 1), span("sweep", "a", "w1", 2, 3),
        span("sweep", "a", "w1", 4, 5, ok=False), span("sweep", "a", "w1", 5, 6, attempt=2),
    ])
    found = {f.kind: f for f in bottlenecks(rec, wall_s=10, workers=2)}
    # 2 declared workers, one ran nothing: its whole time is idle capacity
    assert found["idle_workers"].value == pytest.approx(10.0)
    assert "1 of 2 declared workers ran no task" in found["idle_workers"].text
    assert found["serial"].value == pytest.approx(8.0)       # 4 s before the first task x 2
    assert found["retries"].value == pytest.approx(2.0)
    assert "2 of 4 task attempts" in found["retries"].text
    # stage never fills 2 workers: the idle second slot is imbalance; gaps count as overhead
    assert found["imbalance"].value == pytest.approx(4.0)
    assert found["overhead"].value == pytest.approx(4.0)


def test_timeline_notes_clock_skew_and_oversubscription():
    rec = SpanRecorder([span("s", "a", "w1", 0, 4), span("s", "a", "w2", 0, 4),
                        span("s", "a", "w3", 0, 4)])
    tl = timeline(rec, wall_s=3, workers=2)
    assert tl.wall_s == 4 and any("clocks" in n for n in tl.notes)
    assert tl.oversubscribed_s == pytest.approx(4.0) and tl.busy_s == pytest.approx(8.0)


def test_span_frame_duplicate_worker_ids_on_two_nodes_are_two_units():
    rec = SpanRecorder([span("s", "a", "123", 0, 1, node="a"),
                        span("s", "a", "123", 0, 1, node="b")])
    assert list(utilisation(rec, bins=1).index) == ["a/123", "b/123"]
    assert len(span_frame(rec)) == 2


def test_format_profile_text():
    text = format_profile(imbalance_case(), wall_s=10, workers=4,
                          baseline={"baseline_kind": "measured", "serial_s": 16.0})
    assert "4 spans" in text and "Time by stage × component" in text
    assert "imbalance" in text and "Speedup (measured baseline" in text
    assert "1.60× on 4 workers" in text

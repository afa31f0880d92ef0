"""Time accounted (issue [3/6] item 7): mixed chunks split by their measured per-strategy
seconds, driver spans counted as driver time (never a busy worker), the unaccounted share of
the wall computed from the spans; and an invalid speedup never shown as one (item 2)."""

from __future__ import annotations

import math

import pytest

from quantfleet.compute import SerialExecutor
from quantfleet.compute.tasks import ChunkTask, breakdown_label, run_chunk
from quantfleet.observe.heatmap import bottlenecks, heatmap, parse_label, timeline, utilisation
from quantfleet.observe.profile import format_profile
from quantfleet.observe.spans import DRIVER_NODE, SpanRecorder
from quantfleet.observe.speedup import explain_speedup
from tests.observe.spanset import span


def test_breakdown_label_sums_seconds_and_counts_per_label():
    lab = breakdown_label(["a", "b", "a", "c"], [1.0, 2.0, 0.5, 0.25])
    assert lab == "a/sec:1.500000/n:2+b/sec:2.000000/n:1+c/sec:0.250000/n:1"
    parts = parse_label(lab)
    assert [p.base for p in parts] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2 labels for 1 timings"):
        breakdown_label(["a", "b"], [1.0])


def test_a_mixed_chunk_is_split_by_its_measured_seconds_not_equally():
    rec = SpanRecorder([span("tournament", "a/sec:3/n:1+b/sec:1/n:3", "w1", 0, 8, items=4)])
    wall = heatmap(rec)
    assert wall.loc["tournament", "a"] == pytest.approx(6.0)
    assert wall.loc["tournament", "b"] == pytest.approx(2.0)
    items = heatmap(rec, value="items")
    assert items.loc["tournament", "a"] == 1 and items.loc["tournament", "b"] == 3
    cpu = heatmap(rec, value="cpu")  # spanset: cpu = 0.9 × duration, split like the wall
    assert cpu.loc["tournament", "a"] == pytest.approx(0.9 * 6.0)
    # without a breakdown: an equal split, as before
    plain = heatmap(SpanRecorder([span("t", "a+b", "w1", 0, 8)]))
    assert plain.loc["t", "a"] == pytest.approx(4.0) == plain.loc["t", "b"]


def strategy_of(shared, item):
    return item[0]


def test_run_chunk_times_each_item_and_labels_the_span_per_strategy():
    items = [("sma_cross", 0), ("rsi", 0), ("sma_cross", 1), ("rsi", 1), ("bollinger", 1)]
    task = ChunkTask(uid=1, chunk=0, start=0, items=items, attempt=1, retries=0,
                     stage="tournament", component="sma_cross+rsi+bollinger",
                     labels=tuple(s for s, _ in items))
    res = run_chunk(strategy_of, None, task, worker="w", node="n")
    assert res.values == ["sma_cross", "rsi", "sma_cross", "rsi", "bollinger"]
    parts = parse_label(res.span.component)
    assert [(p.base, p.tag("n")) for p in parts] == [("sma_cross", "2"), ("rsi", "2"),
                                                     ("bollinger", "1")]
    assert all(float(p.tag("sec")) >= 0 for p in parts)
    # one label only: the plain component
    one = ChunkTask(uid=2, chunk=0, start=0, items=items[:1], attempt=1, retries=0,
                    stage="tournament", component="sma_cross", labels=("sma_cross",))
    assert run_chunk(strategy_of, None, one, worker="w", node="n").span.component == "sma_cross"


def test_an_executor_map_gives_every_strategy_its_own_time():
    items = [(s, a) for a in range(6) for s in ("sma_cross", "rsi", "bollinger")]
    ex = SerialExecutor()
    try:
        list(ex.map(strategy_of, items, stage="tournament", component=[s for s, _ in items],
                    chunk_size=9))
    finally:
        ex.close()
    assert len(ex.spans) == 2  # one span per task, as before (tasks are still counted once)
    hm = heatmap(ex.spans)
    assert set(hm.columns) == {"sma_cross", "rsi", "bollinger"}
    assert float(hm.to_numpy().sum()) == pytest.approx(ex.spans.total("duration"))
    assert dict(heatmap(ex.spans, value="items").loc["tournament"]) == {
        "bollinger": 6, "rsi": 6, "sma_cross": 6}


def drv(stage, component, start, end):
    return span(stage, component, "driver:1", start, end, node=DRIVER_NODE)


def accounted_case() -> SpanRecorder:
    """Wall 8 s ending at 7: window [-1, 7]. Driver [0, 2] and [6, 7]; tasks [3, 6] on w1,
    [3, 5] on w2. Covered: 2 + 3 + 1 = 6 s; unaccounted [-1, 0] and [2, 3] = 2 s."""
    return SpanRecorder([drv("data", "driver.load", 0, 2),
                         span("tournament", "sma_cross", "w1", 3, 6),
                         span("tournament", "rsi", "w2", 3, 5),
                         drv("tournament", "driver.tables", 6, 7)])


def test_driver_spans_are_driver_time_and_the_rest_is_unaccounted():
    tl = timeline(accounted_case(), wall_s=8.0, workers=2)
    assert tl.driver_s == pytest.approx(3.0)
    assert tl.unaccounted_s == pytest.approx(2.0) and tl.unaccounted_share == pytest.approx(0.25)
    assert tl.busy_s == pytest.approx(5.0)  # the driver is never a busy worker
    assert tl.units == ["w1", "w2"] and tl.parallel_s == pytest.approx(3.0)
    # the driver steps show in the heatmap, beside the strategies
    hm = heatmap(accounted_case())
    assert hm.loc["data", "driver.load"] == pytest.approx(2.0)
    assert hm.loc["tournament", "driver.tables"] == pytest.approx(1.0)
    assert list(utilisation(accounted_case(), bins=1).index) == ["w1", "w2"]
    serial = [f for f in bottlenecks(accounted_case(), 8.0, workers=2) if f.kind == "serial"]
    assert "3.0 s ran recorded driver steps" in serial[0].text
    assert "2.0 s (25%) is unaccounted" in serial[0].text
    text = format_profile(accounted_case(), 8.0, 2)
    assert "unaccounted (no span) 2.0 s (25%)" in text


def test_no_driver_spans_every_idle_second_is_unaccounted():
    rec = SpanRecorder([span("s", "a", "w1", 1, 3)])
    tl = timeline(rec, wall_s=4.0, workers=1)
    assert tl.driver_s == 0 and tl.unaccounted_s == pytest.approx(2.0)
    only_driver = timeline(SpanRecorder([drv("data", "driver.load", 0, 1)]), wall_s=4.0,
                           workers=2)
    assert only_driver.busy_s == 0 and only_driver.driver_s == pytest.approx(1.0)
    assert only_driver.unaccounted_s == pytest.approx(3.0)


def test_explain_speedup_marks_a_ratio_above_the_workers_invalid():
    # the figures: 38.33× on 2 workers
    rec = SpanRecorder([span("tournament", "a", "w1", 0, 1), span("tournament", "b", "w2", 0, 1)])
    r = explain_speedup(rec, 1.0, 2, {"baseline_kind": "sampled 7/180 items, extrapolated",
                                      "serial_s": 38.33})
    assert r["valid"] is False and math.isnan(r["speedup"]) and math.isnan(r["efficiency"])
    assert r["ratio"] == pytest.approx(38.33) and "exceeds 2 workers" in r["invalid_reason"]
    assert r["text"].startswith("Speedup: invalid") and "38.33×" not in r["text"].split(";")[0][:20]
    ok = explain_speedup(rec, 1.0, 2, {"baseline_kind": "measured", "serial_s": 1.6})
    assert ok["valid"] is True and ok["speedup"] == pytest.approx(1.6)
    # the driver's own spans (its baseline, its tables) are not the tasks' time
    with_driver = SpanRecorder([*rec, drv("tournament", "driver.baseline", 1, 30)])
    same = explain_speedup(with_driver, 1.0, 2, {"baseline_kind": "measured", "serial_s": 1.6})
    assert same["busy_s"] == pytest.approx(ok["busy_s"]) and same["residual"] == pytest.approx(
        ok["residual"])


def test_auto_says_why_it_picks_serial_or_processes():
    from quantfleet.compute.factory import AUTO_RAY_MIN_S, auto_kind

    kind, why = auto_kind(2, None, 100, 0.001)
    assert kind == "serial" and "~0.1 s of estimated work" in why and "under 2 s" in why
    kind, why = auto_kind(2, None, 1000, 0.05)
    assert kind == "processes" and "too little for Ray's start-up" in why
    assert auto_kind(2, None, 10, 0.01, timeout_s=5)[0] == "processes"
    assert auto_kind(1, None, 500, None) == ("serial", "auto: one CPU")
    kind, why = auto_kind(2, None, 500, None)
    assert kind == "processes" and "no estimate of the work" in why
    assert auto_kind(2, "ray://h:10001", 3, None)[0] == "ray"
    assert auto_kind(2, None, 100_000, AUTO_RAY_MIN_S / 10_000)[0] == "ray"
    from quantfleet.compute import make_executor

    picked = make_executor("auto", workers=2, n_items_hint=1)
    assert picked.name == "serial" and picked.reason == "auto: one item"
    assert make_executor("serial").reason == "asked for serial"


def test_orchestration_spans_cover_a_stage_outside_its_function():
    from types import SimpleNamespace

    from quantfleet.pipeline.record import orchestration_spans

    ctx = SimpleNamespace(spans=SpanRecorder())
    orchestration_spans(ctx, "tournament", 10.0, {"started": 11.0, "ended": 13.0}, 14.5)
    got = [(s.stage, s.component, s.node, s.start, s.end) for s in ctx.spans]
    assert got == [("tournament", "driver.orchestration", DRIVER_NODE, 10.0, 11.0),
                   ("tournament", "driver.orchestration", DRIVER_NODE, 13.0, 14.5)]
    cached = SimpleNamespace(spans=SpanRecorder())  # served from cache: all of it
    orchestration_spans(cached, "evolution", 1.0, {}, 2.0)
    assert [(s.start, s.end) for s in cached.spans] == [(1.0, 2.0)]

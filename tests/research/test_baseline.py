"""The sequential baseline: every stratum warmed before timing, sampling stratified and
labelled, and a ratio above the worker count reported as invalid (issue [3/6] item 2).

Times come from a fake clock that each call advances by a known cost, so the logic is checked
exactly and nothing depends on the machine's speed."""

from __future__ import annotations

import pytest

from quantfleet.observe.spans import SPEEDUP_TOLERANCE, speedup_validity
from quantfleet.research import baseline as bl
from quantfleet.research.baseline import measure_serial, speedup


class FakeWork:
    """``fn(shared, item)``: each call advances a fake perf_counter by the item's cost; a
    stratum's first call is cold (``cold`` seconds: a numba cache load), later calls warm."""

    def __init__(self, cost: dict[str, float], cold: float = 100.0) -> None:
        self.now = 0.0
        self.cost = cost
        self.cold = cold
        self.seen: set[str] = set()
        self.calls: list[tuple[str, int]] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, shared, item):
        label, i = item
        self.calls.append(item)
        self.now += self.cost[label] + (self.cold if label not in self.seen else 0.0)
        self.seen.add(label)
        return i


@pytest.fixture
def work(monkeypatch):
    w = FakeWork({"sma_cross": 1.0, "rsi": 3.0, "bollinger": 0.5})
    monkeypatch.setattr(bl.time, "perf_counter", w.clock)
    return w


def items_of(n_assets: int) -> tuple[list[tuple[str, int]], list[str]]:
    # asset-major, as the tournament orders them
    items = [(s, a) for a in range(n_assets) for s in ("sma_cross", "rsi", "bollinger")]
    return items, [s for s, _ in items]


def test_every_strategy_is_warmed_up_before_anything_is_timed(work):
    items, labels = items_of(10)
    b = measure_serial(work, None, items, labels=labels)
    # the first calls are one item of each strategy, untimed; every item is then timed warm
    assert work.calls[:3] == [("sma_cross", 0), ("rsi", 0), ("bollinger", 0)]
    assert b["baseline_kind"] == "measured" and b["sampled"] == 30 and b["warmed"] == 3
    assert b["serial_s"] == pytest.approx(10 * (1.0 + 3.0 + 0.5))  # no cold load in it
    assert b["warmup_s"] == pytest.approx(3 * 100.0 + 4.5)


def test_the_reported_bug_only_the_first_item_warmed_would_time_cold_loads(work):
    """The issue's reproduction: warming only items[0] times the other strategies' cache
    loads; with every stratum warmed the serial time is the warm work alone."""
    items, labels = items_of(4)
    b = measure_serial(work, None, items, labels=labels)
    assert b["serial_s"] == pytest.approx(4 * 4.5)


def test_a_budget_samples_every_stratum_and_labels_it(work):
    items, labels = items_of(20)
    b = measure_serial(work, None, items, labels=labels, budget_s=10.0)
    assert b["baseline_kind"] == f"sampled {b['sampled']}/60 items, stratified by strategy, extrapolated"
    assert 3 <= b["sampled"] < 60
    timed = work.calls[3:]
    assert {s for s, _ in timed} == {"sma_cross", "rsi", "bollinger"}
    # constant per-stratum cost: the stratified extrapolation is exact
    assert b["serial_s"] == pytest.approx(20 * 4.5)


def test_without_labels_one_stratum_and_everything_measured(work):
    items = [("rsi", i) for i in range(5)]
    b = measure_serial(work, None, items)
    assert b["baseline_kind"] == "measured" and b["serial_s"] == pytest.approx(15.0)
    assert measure_serial(work, None, [])["serial_s"] == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="2 labels for 3 items"):
        measure_serial(lambda s, i: i, None, [1, 2, 3], labels=["a", "b"])
    with pytest.raises(ValueError, match="budget_s must be > 0"):
        measure_serial(lambda s, i: i, None, [1], budget_s=0)


def test_a_speedup_above_the_worker_count_is_invalid_not_shown():
    """The issue's headline: '38.33× faster ... on 2 workers (ideal 2×)'."""
    r = speedup({"baseline_kind": "sampled 7/180 items, extrapolated", "serial_s": 38.33},
                1.0, 2)
    assert r["valid"] is False and r["speedup"] is None and r["efficiency"] is None
    assert r["ratio"] == pytest.approx(38.33)
    assert "exceeds 2 workers" in r["invalid_reason"]


def test_the_tolerance_edge():
    w = 2
    ok = speedup({"baseline_kind": "measured", "serial_s": w * SPEEDUP_TOLERANCE}, 1.0, w)
    assert ok["valid"] and ok["speedup"] == pytest.approx(2.1)
    assert ok["efficiency"] == pytest.approx(1.05)
    bad = speedup({"baseline_kind": "measured", "serial_s": w * SPEEDUP_TOLERANCE + 1e-6}, 1.0, w)
    assert not bad["valid"]
    slow = speedup({"baseline_kind": "measured", "serial_s": 0.77}, 1.0, 2)
    assert slow["valid"] and slow["speedup"] == pytest.approx(0.77)  # slower is reported
    assert speedup_validity(float("nan"), 2) is not None

"""Speedup loss decomposition on constructed spans; run directories."""

from __future__ import annotations

import math

import pytest

from quantfleet.errors import QuantfleetError
from quantfleet.observe.spans import SpanRecorder
from quantfleet.observe.speedup import LOSS_PARTS, explain_speedup
from tests.observe.spanset import decomposition_case, span

MEASURED = {"baseline_kind": "measured", "serial_s": 7.0, "items": 10, "sampled": 10}


def test_loss_decomposition_hand_computed():
    r = explain_speedup(decomposition_case(), wall_s=10.0, workers=2, baseline=MEASURED)
    assert r["speedup"] == pytest.approx(0.7) and r["efficiency"] == pytest.approx(0.35)
    assert r["loss"] == pytest.approx(0.65)
    assert r["baseline_label"] == "measured" and r["measured"] is True
    # worker-seconds of a 2 x 10 s capacity (see spanset.decomposition_case):
    #   serial    [-1, 0.5] and [7, 8] with no span, outside every stage: 2.5 s x 2
    #   overhead  gaps inside sweep: [3, 3.5] on w2, [4, 4.5] on w1
    #   imbalance sweep tail [6, 7] (w2 done) + evolve on one of two workers [8, 9]
    #   transfer  put on both workers [0.5, 1]
    #   retries   w2's second attempt [3.5, 6]
    #   inflation compute tasks 8.5 s - baseline 7 s
    expect = {"serial": 5.0, "overhead": 1.0, "imbalance": 2.0, "transfer": 1.0,
              "retries": 2.5, "work_inflation": 1.5}
    assert set(r["loss_seconds"]) == set(LOSS_PARTS)
    for k, v in expect.items():
        assert r["loss_seconds"][k] == pytest.approx(v), k
        assert r["loss_parts"][k] == pytest.approx(v / 20.0), k
    assert sum(r["loss_parts"].values()) == pytest.approx(r["loss"])
    assert r["residual"] == pytest.approx(0.0, abs=1e-12)
    assert "0.70× on 2 workers" in r["text"] and "serial 25%" in r["text"]


def test_sampled_baseline_is_labelled_and_noted():
    b = {"baseline_kind": "sampled 3/10 items, extrapolated", "serial_s": 14.0}
    r = explain_speedup(decomposition_case(), 10.0, 2, b)
    assert r["measured"] is False and r["baseline_label"].startswith("sampled 3/10")
    assert r["speedup"] == pytest.approx(1.4)
    assert r["loss_seconds"]["work_inflation"] == pytest.approx(-5.5)  # faster than baseline
    assert sum(r["loss_parts"].values()) == pytest.approx(r["loss"])
    assert any("extrapolation" in n for n in r["notes"])


def test_no_baseline_gives_idle_parts_only():
    r = explain_speedup(decomposition_case(), 10.0, 2, None)
    assert math.isnan(r["speedup"]) and r["baseline_label"] == "none"
    assert r["loss_seconds"]["serial"] == pytest.approx(5.0)
    assert math.isnan(r["loss_parts"]["work_inflation"])
    assert "no baseline" in r["text"]


def test_spans_longer_than_wall_leave_a_residual():
    rec = SpanRecorder([span("s", "a", "w1", 0, 4)])
    r = explain_speedup(rec, 3.0, 1, {"baseline_kind": "measured", "serial_s": 3.0})
    assert r["residual"] != 0 and any("clocks" in n for n in r["notes"])


def test_explain_speedup_bad_input():
    with pytest.raises(QuantfleetError, match="workers must be a whole number >= 1"):
        explain_speedup(decomposition_case(), 10.0, 0, MEASURED)
    with pytest.raises(QuantfleetError, match="wall_s must be > 0"):
        explain_speedup(decomposition_case(), 0.0, 2, MEASURED)
    with pytest.raises(QuantfleetError, match="baseline lacks a finite serial_s"):
        explain_speedup(decomposition_case(), 10.0, 2, {"baseline_kind": "measured"})

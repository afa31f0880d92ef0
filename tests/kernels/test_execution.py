"""The execution kernel against the slow per-bar reference written from docs/conventions.md
("Execution options"), on random OHLC data; default execution against ``evaluate_positions``;
gaps and same-bar stop/target by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.backtest.terms import Execution
from quantfleet.kernels.execution import N_EX, execute, execute_path, execute_segments
from quantfleet.kernels.metrics import METRIC_NAMES, N_METRICS, evaluate_positions
from tests.reference import assert_metrics_close, execute_reference, random_ohlcv

_NONE = np.empty(0)  # no funding column


def run(ohlc, targets, execs, fee=0.0, ppy=252.0, start=0):
    targets = np.ascontiguousarray(np.atleast_2d(targets), dtype=float)
    ex = np.array([e.row() for e in execs], dtype=float)
    out = np.empty((targets.shape[0], N_METRICS))
    rets = np.zeros((targets.shape[0], 2, len(ohlc["close"])))
    execute(ohlc["open"], ohlc["high"], ohlc["low"], ohlc["close"], _NONE, targets, ex, fee, ppy,
            start, out, rets)
    return out, rets


def check(ohlc, target, e: Execution, fee, ppy=252.0, start=0):
    out, rets = run(ohlc, target, [e], fee, ppy, start)
    want, rb, pos = execute_reference(ohlc["open"], ohlc["high"], ohlc["low"], ohlc["close"],
                                      target, fee, ppy, start, **e.settings())
    np.testing.assert_allclose(rets[0, 1, start:], pos, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rets[0, 0, start:], rb, rtol=1e-9, atol=1e-12)
    assert_metrics_close(out[0], want)


def targets_from(rng, n, long_short, fractional):
    # runs of a held signal, as a rule would give
    t = np.zeros(n)
    i = 0
    while i < n:
        k = int(rng.integers(1, 12))
        v = float(rng.choice([-1.0, 0.0, 1.0] if long_short else [0.0, 1.0]))
        if fractional and v:
            v *= float(rng.uniform(0.3, 1.5))
        t[i:i + k] = v
        i += k
    return t


def test_default_execution_is_evaluate_positions():
    rng = np.random.default_rng(3)
    ohlc = random_ohlcv(rng, 300)
    tg = np.stack([targets_from(rng, 300, ls, fr) for ls in (False, True) for fr in (False, True)])
    for fee in (0.0, 0.001):
        for start in (0, 17):
            got, grets = run(ohlc, tg, [Execution()] * 4, fee, 252.0, start)
            want = np.empty_like(got)
            wrets = np.zeros_like(grets)
            evaluate_positions(ohlc["close"], tg, fee, 252.0, start, want, wrets)
            assert np.array_equal(got, want, equal_nan=True)
            assert np.array_equal(grets, wrets)


options = st.fixed_dictionaries({}, optional={
    "fill": st.sampled_from(["close", "next_open"]),
    "stop_loss": st.floats(0.005, 0.08),
    "take_profit": st.floats(0.005, 0.12),
    "trailing_stop": st.floats(0.005, 0.08),
    "fraction": st.floats(0.2, 2.0),
    "vol_target": st.floats(0.05, 0.5),
    "vol_window": st.integers(2, 30),
    "vol_cap": st.floats(0.2, 3.0),
    "borrow_rate": st.floats(0.0, 0.5),
})


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 160), opts=options,
       fee=st.sampled_from([0.0, 0.0005, 0.01]), long_short=st.booleans(),
       fractional=st.booleans(), start=st.integers(0, 10))
def test_kernel_matches_reference(seed, n, opts, fee, long_short, fractional, start):
    rng = np.random.default_rng(seed)
    ohlc = random_ohlcv(rng, n)
    target = targets_from(rng, n, long_short, fractional)
    check(ohlc, target, Execution(**opts), fee, start=min(start, n - 1))


def bars(rows):
    """OHLC arrays from (open, high, low, close) rows."""
    a = np.array(rows, dtype=float)
    return {"open": a[:, 0], "high": a[:, 1], "low": a[:, 2], "close": a[:, 3]}


def test_stop_fills_at_level_and_blocks_reentry():
    # long at 100 (close of bar 0); bar 1's low 94 crosses the 5 % stop at 95
    ohlc = bars([(100, 100, 100, 100), (99, 101, 94, 96), (96, 98, 95, 97), (97, 99, 96, 98),
                 (98, 99, 97, 98), (98, 99, 97, 99)])
    target = np.array([1, 1, 1, 0, 1, 1.0])
    out, rets = run(ohlc, target, [Execution(stop_loss=0.05)])
    assert rets[0, 1].tolist() == [1, 0, 0, 0, 1, 1]   # re-entry only after the signal turned off
    assert rets[0, 0, 1] == pytest.approx(95 / 100 - 1)
    assert rets[0, 0, 5] == pytest.approx(99 / 98 - 1)
    check(ohlc, target, Execution(stop_loss=0.05), 0.001)


def test_gap_fills_at_open_and_stop_before_target():
    ohlc = bars([(100, 100, 100, 100), (90, 92, 89, 91)])  # opens below the stop at 95
    out, rets = run(ohlc, np.array([1.0, 1.0]), [Execution(stop_loss=0.05)])
    assert rets[0, 0, 1] == pytest.approx(90 / 100 - 1)
    ohlc = bars([(100, 100, 100, 100), (100, 111, 94, 105)])  # both 95 and 110 within the bar
    out, rets = run(ohlc, np.array([1.0, 1.0]), [Execution(stop_loss=0.05, take_profit=0.10)])
    assert rets[0, 0, 1] == pytest.approx(95 / 100 - 1)
    ohlc = bars([(100, 100, 100, 100), (112, 113, 111, 112)])  # opens above the target
    out, rets = run(ohlc, np.array([1.0, 1.0]), [Execution(take_profit=0.10)])
    assert rets[0, 0, 1] == pytest.approx(112 / 100 - 1)
    # a short's stop is above: 100 * 1.05 = 105
    ohlc = bars([(100, 100, 100, 100), (101, 106, 99, 104)])
    out, rets = run(ohlc, np.array([-1.0, -1.0]), [Execution(stop_loss=0.05)])
    assert rets[0, 0, 1] == pytest.approx(-(105 / 100 - 1))


def test_trailing_stop_follows_the_highest_high():
    ohlc = bars([(100, 100, 100, 100), (100, 120, 100, 118), (118, 119, 107, 110)])
    out, rets = run(ohlc, np.array([1.0, 1, 1]), [Execution(trailing_stop=0.10)])
    # highest high since entry 120 -> stop 108, hit in bar 2 (low 107)
    assert rets[0, 0, 2] == pytest.approx(108 / 118 - 1)
    assert rets[0, 1].tolist() == [1, 1, 0]


def test_next_open_fill():
    ohlc = bars([(100, 100, 100, 100), (102, 104, 101, 103), (104, 106, 103, 105),
                 (107, 107, 104, 106)])
    out, rets = run(ohlc, np.array([1.0, 1, 0, 0]), [Execution(fill="next_open")], fee=0.001)
    r = rets[0, 0]
    assert r[1] == pytest.approx((1 - 0.001) * (103 / 102) - 1)  # filled at bar 1's open
    assert r[2] == pytest.approx(105 / 103 - 1)
    assert r[3] == pytest.approx((107 / 105) * (1 - 0.001) - 1)   # exits at bar 3's open
    assert rets[0, 1].tolist() == [0, 1, 1, 0]


# closes 100, 100, 101, 101.5, 102, 102.5 (sma_trend window=2 goes long at bar 2's close)
ENTRY_BAR = [(100, 100, 100, 100), (100, 100, 100, 100), (100.5, 101, 100.5, 101),
             (100, 102, 90, 101.5), (101.5, 102.5, 101.5, 102), (102, 103, 102, 102.5)]


def test_next_open_entry_bar_is_checked_from_the_fill():
    m = {k: i for i, k in enumerate(METRIC_NAMES)}
    ohlc = bars(ENTRY_BAR)
    target = np.array([0, 0, 1, 1, 1, 1.0])
    # filled at bar 3's open 100; its low 90 goes through the 95 stop in the same bar
    e = Execution(fill="next_open", stop_loss=0.05)
    out, rets = run(ohlc, target, [e], fee=0.001)
    assert rets[0, 0, 3] == pytest.approx((1 - 0.001) * 0.95 * (1 - 0.001) - 1)  # both fees
    assert rets[0, 1].tolist() == [0] * 6      # flat at every close; no re-entry while on
    assert rets[0, 0, 4:].tolist() == [0.0, 0.0]
    assert (out[0, m["n_trades"]], out[0, m["win_rate"]], out[0, m["turnover"]]) == (1, 0, 2)
    assert out[0, m["exposure"]] == 0.0
    check(ohlc, target, e, 0.001)
    # a target in the entry bar: 1 % above the fill (101) is inside bar 3's high 102
    out, rets = run(ohlc, target, [Execution(fill="next_open", take_profit=0.01)])
    assert rets[0, 0, 3] == pytest.approx(0.01)
    assert out[0, m["win_rate"]] == 1.0
    # stop and target both inside the entry bar: the stop first
    out, rets = run(ohlc, target, [Execution(fill="next_open", stop_loss=0.05, take_profit=0.01)])
    assert rets[0, 0, 3] == pytest.approx(-0.05)
    # trailing 5 %: in the entry bar from the fill (95, not reached by a low of 96); the bar's
    # high 110 raises it to 104.5 for the next bar
    ohlc2 = bars(ENTRY_BAR[:3] + [(100, 110, 96, 108), (107, 108, 104, 105), (105, 106, 104, 105)])
    out, rets = run(ohlc2, target, [Execution(fill="next_open", trailing_stop=0.05)])
    assert rets[0, 1].tolist() == [0, 0, 0, 1, 0, 0]
    assert rets[0, 0, 4] == pytest.approx(104.5 / 108 - 1)
    # a short filled at the open: its stop 5 % above (105) reached by the entry bar's high
    ohlc3 = bars(ENTRY_BAR[:3] + [(100, 106, 99, 101), (101, 102, 100, 101), (101, 102, 100, 101)])
    out, rets = run(ohlc3, -target, [Execution(fill="next_open", stop_loss=0.05)])
    assert rets[0, 0, 3] == pytest.approx(-0.05)


def test_vol_target_sizes_at_entry_and_borrow():
    rng = np.random.default_rng(1)
    ohlc = random_ohlcv(rng, 60)
    c = ohlc["close"]
    target = np.zeros(60)
    target[30:] = 1.0
    e = Execution(vol_target=0.10, vol_window=10, vol_cap=5.0)
    out, rets = run(ohlc, target, [e])
    r = c[21:31] / c[20:30] - 1
    size = min(5.0, 0.10 / (np.std(r, ddof=1) * math.sqrt(252)))
    assert np.allclose(rets[0, 1, 30:], size)
    # a short held over a bar pays borrow_rate / ppy of its notional
    out, rets = run(ohlc, -target, [Execution(borrow_rate=0.252)])
    assert rets[0, 0, 31] == pytest.approx(-(c[31] / c[30] - 1) - 0.001)


def test_segments_and_path_are_runs_from_flat():
    rng = np.random.default_rng(5)
    ohlc = random_ohlcv(rng, 120)
    tg = np.stack([targets_from(rng, 120, True, False) for _ in range(3)])
    execs = [Execution(stop_loss=0.02), Execution(take_profit=0.03, fill="next_open"),
             Execution(trailing_stop=0.03, borrow_rate=0.1)]
    ex = np.array([e.row() for e in execs])
    bounds = np.array([[0, 40], [40, 90], [90, 120]], dtype=np.int64)
    seg = np.empty((3, 3, N_METRICS))
    o, h, lo, c = ohlc["open"], ohlc["high"], ohlc["low"], ohlc["close"]
    execute_segments(o, h, lo, c, _NONE, tg, ex, bounds, 0.001, 252.0, seg)
    for k in range(3):
        for s, (a, b) in enumerate(bounds):
            want, _, _ = execute_reference(o[:b], h[:b], lo[:b], c[:b], tg[k][:b], 0.001,
                                           252.0, a, **execs[k].settings())
            assert_metrics_close(seg[k, s], want)
    # a path: combo 0's targets and rows on [0, 60), combo 2's on [60, 120)
    path = np.concatenate([tg[0, :60], tg[2, 60:]])
    row = np.repeat(np.array([0, 1], dtype=np.int64), 60)
    out = np.empty(N_METRICS)
    pr = np.zeros((1, 2, 120))
    execute_path(o, h, lo, c, _NONE, path, ex[[0, 2]], row, 0.001, 252.0, 0, out, pr)
    # the first piece alone is the same as a single-combo run over its bars
    single, srets = run({k_: v[:60] for k_, v in ohlc.items()}, tg[0, :60], [execs[0]], 0.001)
    assert np.array_equal(pr[0, :, :60], srets[0])
    assert ex.shape[1] == N_EX

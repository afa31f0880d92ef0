"""donchian, atr_stop and ichimoku against slow python references of their positions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.data.market import MarketData
from quantfleet.errors import StrategyError
from quantfleet.kernels.indicators import midpoint
from quantfleet.strategies import get
from tests import reference as ref


def _market(d: dict) -> MarketData:
    n = d["close"].size
    ts = (np.datetime64("2020-01-01") + np.arange(n)).astype("datetime64[ns]")
    return MarketData(ts, ("X",), d["close"][None, :], open=d["open"][None, :],
                      high=d["high"][None, :], low=d["low"][None, :], volume=d["volume"][None, :])


def _check(name, d, row, pos, fee_rate, long_short, start):
    close = d["close"]
    out, rets = get(name).run_asset(
        _market(d), 0, np.array([row], float), fee_rate=fee_rate, ppy=252.0,
        long_short=long_short, start=start, returns=True,
    )
    ref.assert_metrics_close(out[0], ref.metrics(close, pos, fee_rate, 252.0, start))
    np.testing.assert_allclose(rets[0], ref.equity_returns(close, pos, fee_rate, start), atol=1e-12)


# ---------------------------------------------------------------- references


def donchian_positions(high, low, close, entry, exit, long_short=False):
    n = len(close)
    pos = np.zeros(n)
    state = 0
    for t in range(max(entry, exit), n):
        # channels of the previous bars, the current bar excluded
        entry_high, entry_low = high[t - entry:t].max(), low[t - entry:t].min()
        exit_high, exit_low = high[t - exit:t].max(), low[t - exit:t].min()
        if state == 1 and close[t] < exit_low:
            state = 0
        elif state == -1 and close[t] > exit_high:
            state = 0
        if state == 0:
            if close[t] > entry_high:
                state = 1
            elif long_short and close[t] < entry_low:
                state = -1
        pos[t] = state
    return pos


def wilder_atr(high, low, close, w):
    n = len(close)
    tr = np.array([high[0] - low[0]] + [
        max(high[t] - low[t], abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
        for t in range(1, n)
    ])
    out = np.full(n, np.nan)
    if w <= n:
        out[w - 1] = tr[:w].mean()
        for t in range(w, n):
            out[t] = (out[t - 1] * (w - 1) + tr[t]) / w
    return out


def atr_stop_positions(high, low, close, trend, atr_window, mult, long_short=False):
    n = len(close)
    s = ref.sma(close, trend)
    a = wilder_atr(high, low, close, atr_window)
    pos = np.zeros(n)
    state, entered = 0, -1
    stopped = {1: -1, -1: -1}  # bar of each side's last stop (-1: never stopped)

    def armed(side, t):
        b = stopped[side]
        if b < 0:
            return True
        seg_c, seg_s = close[b:t + 1], s[b:t + 1]
        return bool(np.any(seg_c <= seg_s) if side == 1 else np.any(seg_c >= seg_s))

    for t in range(max(trend, atr_window) - 1, n):
        if state == 1 and close[t] < close[entered:t + 1].max() - mult * a[t]:
            state, stopped[1] = 0, t
        elif state == -1 and close[t] > close[entered:t + 1].min() + mult * a[t]:
            state, stopped[-1] = 0, t
        if state == 0:
            if close[t] > s[t] and armed(1, t):
                state, entered = 1, t
            elif long_short and close[t] < s[t] and armed(-1, t):
                state, entered = -1, t
        pos[t] = state
    return pos


def _mid(high, low, w, t):
    return (high[t - w + 1:t + 1].max() + low[t - w + 1:t + 1].min()) / 2.0


def ichimoku_positions(high, low, close, tenkan, kijun, senkou, long_short=False):
    n = len(close)
    pos = np.zeros(n)
    for t in range(senkou + kijun - 1, n):
        tk, kj = _mid(high, low, tenkan, t), _mid(high, low, kijun, t)
        c = t - kijun  # the cloud plotted at t was computed kijun bars earlier
        span_a = (_mid(high, low, tenkan, c) + _mid(high, low, kijun, c)) / 2.0
        span_b = _mid(high, low, senkou, c)
        if close[t] > max(span_a, span_b) and tk > kj:
            pos[t] = 1.0
        elif long_short and close[t] < min(span_a, span_b) and tk < kj:
            pos[t] = -1.0
    return pos


# ---------------------------------------------------------------- properties

_common = dict(
    seed=st.integers(0, 2**32 - 1),
    fee_bps=st.sampled_from([0.0, 5.0, 25.0]),
    long_short=st.booleans(),
    start=st.integers(1, 25),
)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(30, 300), entry=st.integers(1, 30), exit_frac=st.floats(0.0, 1.0), **_common)
def test_donchian_matches_reference(seed, n, entry, exit_frac, fee_bps, long_short, start):
    d = ref.random_ohlcv(np.random.default_rng(seed), n)
    exit = max(1, round(entry * exit_frac))
    pos = donchian_positions(d["high"], d["low"], d["close"], entry, exit, long_short)
    _check("donchian", d, (entry, exit), pos, fee_bps / 1e4, long_short, start)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(30, 300), trend=st.integers(2, 40), atr_window=st.integers(1, 20),
       mult=st.floats(0.0, 4.0), **_common)
def test_atr_stop_matches_reference(seed, n, trend, atr_window, mult, fee_bps, long_short, start):
    d = ref.random_ohlcv(np.random.default_rng(seed), n)
    pos = atr_stop_positions(d["high"], d["low"], d["close"], trend, atr_window, mult, long_short)
    _check("atr_stop", d, (trend, atr_window, mult), pos, fee_bps / 1e4, long_short, start)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(60, 300), tenkan=st.integers(1, 8), kijun_gap=st.integers(1, 10),
       senkou_gap=st.integers(1, 20), **_common)
def test_ichimoku_matches_reference(seed, n, tenkan, kijun_gap, senkou_gap, fee_bps,
                                    long_short, start):
    d = ref.random_ohlcv(np.random.default_rng(seed), n)
    kijun = tenkan + kijun_gap
    senkou = kijun + senkou_gap
    pos = ichimoku_positions(d["high"], d["low"], d["close"], tenkan, kijun, senkou, long_short)
    _check("ichimoku", d, (tenkan, kijun, senkou), pos, fee_bps / 1e4, long_short, start)


def test_atr_stop_waits_for_a_new_cross_after_a_stop():
    # rising into a long, a sharp drop that stops it out while still above the SMA, then a
    # new rise: no re-entry until a close at or below the SMA re-arms the long side
    close = np.array([*range(10, 31), 28.5, 29.0, 29.5, 31.0, 24.0, 31.0])
    d = {"close": close, "open": close, "high": close + 0.1, "low": close - 0.1,
         "volume": np.ones_like(close)}
    pos = atr_stop_positions(d["high"], d["low"], close, 10, 3, 1.0)
    # long from bar 9; stopped at bar 21 (28.5 < 30 - ATR 1.1) while still above the SMA;
    # flat through the rebound to a new high at bar 24; re-armed at bar 25 (24 <= SMA 28.2);
    # long again at bar 26
    assert pos[9:21].all() and not pos[21:26].any() and pos[26] == 1
    _check("atr_stop", d, (10, 3, 1.0), pos, 0.001, False, 0)


def test_long_only_never_shorts_and_donchian_is_clipped_long_short():
    d = ref.random_ohlcv(np.random.default_rng(3), 400)
    lo = donchian_positions(d["high"], d["low"], d["close"], 20, 10, False)
    ls = donchian_positions(d["high"], d["low"], d["close"], 20, 10, True)
    # with exit <= entry a short is always closed on the bar a long entry fires
    np.testing.assert_array_equal(lo, np.maximum(ls, 0.0))
    for name in ("donchian", "atr_stop", "ichimoku"):
        s = get(name)
        out, rets = s.run_asset(_market(d), 0, s.space.to_array([s.space.defaults()]),
                                returns=True)
        assert out[0, 6] > 0  # the defaults trade on 400 bars


@pytest.mark.parametrize(("name", "params"), [
    ("donchian", [(e, x) for e in (5, 10, 20) for x in (3, 5, 10) if x <= e]),
    ("atr_stop", [(t, a, m) for t in (10, 30) for a in (5, 14) for m in (1.0, 2.5)] + [(10, 5, 1.0)]),
    ("ichimoku", [(9, 26, 52), (5, 26, 52), (9, 20, 52), (9, 26, 40), (7, 22, 44)]),
])
def test_batch_equals_one_by_one(name, params):
    d = ref.random_ohlcv(np.random.default_rng(4), 600)
    m = _market(d)
    params = np.array(params, float)
    for ls in (False, True):
        batch, brets = get(name).run_asset(m, 0, params, fee_rate=0.001, long_short=ls,
                                           start=9, returns=True)
        for i, row in enumerate(params):
            one, orets = get(name).run_asset(m, 0, row[None, :], fee_rate=0.001,
                                             long_short=ls, start=9, returns=True)
            np.testing.assert_array_equal(batch[i], one[0])
            np.testing.assert_array_equal(brets[i], orets[0])


def test_short_data_takes_no_position():
    d = ref.random_ohlcv(np.random.default_rng(5), 15)
    for name in ("donchian", "atr_stop", "ichimoku"):
        s = get(name)
        out, rets = s.run_asset(_market(d), 0, s.space.to_array([s.space.defaults()]),
                                long_short=True, returns=True)
        assert out[0, 6] == 0 and not rets.any()


# ---------------------------------------------------------------- parameters


def test_constraint_messages():
    with pytest.raises(StrategyError, match=r"donchian: constraint exit <= entry violated \(exit=30, entry=20\)"):
        get("donchian").space.validate({"entry": 20, "exit": 30})
    with pytest.raises(StrategyError, match=r"ichimoku: constraint tenkan < kijun violated \(tenkan=26, kijun=26\)"):
        get("ichimoku").space.validate({"tenkan": 26, "kijun": 26, "senkou": 52})
    with pytest.raises(StrategyError, match=r"ichimoku: constraint kijun < senkou violated \(kijun=26, senkou=20\)"):
        get("ichimoku").space.validate({"senkou": 20})
    with pytest.raises(StrategyError, match=r"atr_stop: mult must be >= 0.0 \(got -1.0\); search range is 1.0..5.0"):
        get("atr_stop").space.validate({"mult": -1.0})
    with pytest.raises(TypeError, match=r"atr_stop: trend must be an integer, got str"):
        get("atr_stop").space.validate({"trend": "50"})


def test_defaults_warmup_and_needs():
    assert get("donchian").space.defaults() == {"entry": 20, "exit": 10}
    assert get("atr_stop").space.defaults() == {"trend": 50, "atr_window": 22, "mult": 3.0}
    assert get("ichimoku").space.defaults() == {"tenkan": 9, "kijun": 26, "senkou": 52}
    assert get("donchian").warmup({"entry": 20, "exit": 10}) == 20
    assert get("atr_stop").warmup({"trend": 50, "atr_window": 22, "mult": 3.0}) == 49
    assert get("ichimoku").warmup({"tenkan": 9, "kijun": 26, "senkou": 52}) == 77
    for name in ("donchian", "atr_stop", "ichimoku"):
        assert get(name).needs == ("high", "low") and get(name).family == "breakout"


def test_missing_high_low_is_named():
    d = ref.random_ohlcv(np.random.default_rng(6), 50)
    ts = (np.datetime64("2020-01-01") + np.arange(50)).astype("datetime64[ns]")
    m = MarketData(ts, ("X",), d["close"][None, :])
    with pytest.raises(Exception, match=r"strategy donchian needs a 'high' column"):
        get("donchian").run_asset(m, 0, np.array([[20.0, 10.0]]))


# ---------------------------------------------------------------- indicator


@pytest.mark.parametrize("w", [1, 2, 9, 26, 52])
def test_midpoint_matches_pandas(w):
    d = ref.random_ohlcv(np.random.default_rng(w), 200)
    want = ((pd.Series(d["high"]).rolling(w).max() + pd.Series(d["low"]).rolling(w).min()) / 2).to_numpy()
    got = midpoint(d["high"], d["low"], w)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[: w - 1]).all() and not np.isnan(got[w - 1:]).any()
    np.testing.assert_allclose(got, want, rtol=0, atol=0, equal_nan=True)

"""rsi and stochastic against slow python references of their positions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.data.market import MarketData
from quantfleet.errors import StrategyError
from quantfleet.kernels.indicators import stochastic_k
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


def wilder_rsi(close, w):
    """RSI with Wilder's averages seeded by the mean of the first ``w`` changes."""
    n = len(close)
    out = np.full(n, np.nan)
    if w >= n:
        return out
    delta = np.diff(close)
    gains, losses = np.maximum(delta, 0.0), np.maximum(-delta, 0.0)
    g, lo = gains[:w].mean(), losses[:w].mean()
    for t in range(w, n):
        if t > w:
            g = (g * (w - 1) + gains[t - 1]) / w
            lo = (lo * (w - 1) + losses[t - 1]) / w
        out[t] = (50.0 if g == 0 else 100.0) if lo == 0 else 100.0 - 100.0 / (1.0 + g / lo)
    return out


def threshold_positions(value, long_in, long_out, short_in, short_out, first, long_short):
    """Stateful positions from boolean entry/exit signals, exits checked before entries."""
    pos = np.zeros(len(value))
    state = 0
    for t in range(first, len(value)):
        if state == 1 and long_out[t]:
            state = 0
        elif state == -1 and short_out[t]:
            state = 0
        if state == 0:
            if long_in[t]:
                state = 1
            elif long_short and short_in[t]:
                state = -1
        pos[t] = state
    return pos


def rsi_positions(close, window, lower, upper, long_short=False):
    v = wilder_rsi(close, window)
    with np.errstate(invalid="ignore"):
        below, above = v < lower, v > upper
    return threshold_positions(v, below, above, above, below, window, long_short)


def stochastic_positions(high, low, close, k_window, d_window, lower, upper, long_short=False):
    n = len(close)
    k = np.full(n, np.nan)
    for t in range(k_window - 1, n):
        hh, ll = high[t - k_window + 1:t + 1].max(), low[t - k_window + 1:t + 1].min()
        k[t] = 50.0 if hh == ll else 100.0 * (close[t] - ll) / (hh - ll)
    d = np.full(n, np.nan)
    for t in range(k_window + d_window - 2, n):
        d[t] = k[t - d_window + 1:t + 1].mean()
    up = np.zeros(n, bool)
    down = np.zeros(n, bool)
    first = k_window + d_window - 1
    for t in range(first, n):
        up[t] = k[t] > d[t] and k[t - 1] <= d[t - 1]
        down[t] = k[t] < d[t] and k[t - 1] >= d[t - 1]
    with np.errstate(invalid="ignore"):
        oversold, overbought = d < lower, d > upper
    return threshold_positions(k, up & oversold, down & overbought, down & overbought,
                               up & oversold, first, long_short)


# ---------------------------------------------------------------- properties

_common = dict(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(30, 300),
    fee_bps=st.sampled_from([0.0, 5.0, 25.0]),
    long_short=st.booleans(),
    start=st.integers(1, 25),
)


@settings(max_examples=30, deadline=None)
@given(window=st.integers(2, 25), lower=st.floats(20.0, 50.0), width=st.floats(0.5, 30.0),
       **_common)
def test_rsi_matches_reference(seed, n, window, lower, width, fee_bps, long_short, start):
    d = ref.random_ohlcv(np.random.default_rng(seed), n)
    upper = lower + width
    pos = rsi_positions(d["close"], window, lower, upper, long_short)
    _check("rsi", d, (window, lower, upper), pos, fee_bps / 1e4, long_short, start)


@settings(max_examples=30, deadline=None)
@given(k_window=st.integers(1, 20), d_window=st.integers(2, 6), lower=st.floats(20.0, 50.0),
       width=st.floats(0.5, 40.0), **_common)
def test_stochastic_matches_reference(seed, n, k_window, d_window, lower, width, fee_bps,
                                      long_short, start):
    d = ref.random_ohlcv(np.random.default_rng(seed), n)
    upper = lower + width
    pos = stochastic_positions(d["high"], d["low"], d["close"], k_window, d_window, lower, upper,
                               long_short)
    _check("stochastic", d, (k_window, d_window, lower, upper), pos, fee_bps / 1e4, long_short,
           start)


def test_long_only_is_long_short_clipped_and_defaults_trade():
    d = ref.random_ohlcv(np.random.default_rng(3), 500)
    c, h, lo = d["close"], d["high"], d["low"]
    np.testing.assert_array_equal(rsi_positions(c, 14, 30, 70),
                                  np.maximum(rsi_positions(c, 14, 30, 70, True), 0))
    np.testing.assert_array_equal(stochastic_positions(h, lo, c, 14, 3, 20, 80),
                                  np.maximum(stochastic_positions(h, lo, c, 14, 3, 20, 80, True), 0))
    for name in ("rsi", "stochastic"):
        s = get(name)
        out, _ = s.run_asset(_market(d), 0, s.space.to_array([s.space.defaults()]))
        assert out[0, 6] > 0  # the defaults trade on 500 bars


@pytest.mark.parametrize(("name", "params"), [
    ("rsi", [(w, lo, up) for w in (7, 14) for lo in (20.0, 30.0) for up in (70.0, 80.0)] + [(7, 25.0, 75.0)]),
    ("stochastic", [(k, dw, 20.0, 80.0) for k in (5, 14) for dw in (2, 3, 5)] + [(14, 3, 30.0, 70.0), (5, 5, 25.0, 75.0)]),
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
    d = ref.random_ohlcv(np.random.default_rng(5), 12)
    for name in ("rsi", "stochastic"):
        s = get(name)
        out, rets = s.run_asset(_market(d), 0, s.space.to_array([s.space.defaults()]),
                                long_short=True, returns=True)
        assert out[0, 6] == 0 and not rets.any()


# ---------------------------------------------------------------- parameters


def test_constraint_and_bound_messages():
    with pytest.raises(StrategyError, match=r"rsi: constraint lower < upper violated \(lower=70.0, upper=30.0\)"):
        get("rsi").space.validate({"lower": 70, "upper": 30})
    with pytest.raises(StrategyError, match=r"stochastic: constraint lower < upper violated \(lower=80.0, upper=80.0\)"):
        get("stochastic").space.validate({"lower": 80})
    with pytest.raises(StrategyError, match=r"rsi: upper must be <= 100.0 \(got 120.0\); search range is 60.0..90.0"):
        get("rsi").space.validate({"upper": 120})
    with pytest.raises(StrategyError, match=r"stochastic: lower must be >= 0.0 \(got -5.0\)"):
        get("stochastic").space.validate({"lower": -5})
    with pytest.raises(StrategyError, match=r"stochastic: d_window must be >= 2 \(got 1\)"):
        get("stochastic").space.validate({"d_window": 1})


def test_defaults_warmup_and_needs():
    assert get("rsi").space.defaults() == {"window": 14, "lower": 30.0, "upper": 70.0}
    assert get("stochastic").space.defaults() == {"k_window": 14, "d_window": 3, "lower": 20.0,
                                                  "upper": 80.0}
    assert get("rsi").warmup({"window": 14}) == 14
    assert get("stochastic").warmup({"k_window": 14, "d_window": 3}) == 16
    assert get("rsi").needs == () and get("stochastic").needs == ("high", "low")
    assert get("rsi").family == get("stochastic").family == "oscillator"


# ---------------------------------------------------------------- indicator


@pytest.mark.parametrize("w", [1, 3, 14, 50])
def test_stochastic_k_matches_pandas(w):
    d = ref.random_ohlcv(np.random.default_rng(w), 200)
    hh = pd.Series(d["high"]).rolling(w).max()
    ll = pd.Series(d["low"]).rolling(w).min()
    want = (100.0 * (pd.Series(d["close"]) - ll) / (hh - ll)).to_numpy()
    got = stochastic_k(d["high"], d["low"], d["close"], w)
    assert np.isnan(got[: w - 1]).all() and not np.isnan(got[w - 1:]).any()
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_stochastic_k_flat_range_is_50():
    flat = np.full(10, 5.0)
    got = stochastic_k(flat, flat, flat, 3)
    assert np.isnan(got[:2]).all() and (got[2:] == 50.0).all()

"""ema_cross and sma_trend against slow numpy references of their positions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.data.market import MarketData
from quantfleet.errors import StrategyError
from quantfleet.strategies import get
from tests import reference as ref


def _market(close: np.ndarray) -> MarketData:
    ts = (np.datetime64("2020-01-01") + np.arange(close.size)).astype("datetime64[ns]")
    return MarketData(ts, ("X",), close[None, :])


def ema_cross_positions(close, fast, slow, long_short=False):
    f, s = ref.ema(close, fast), ref.ema(close, slow)
    pos = np.zeros(len(close))
    for t in range(len(close)):
        if np.isnan(f[t]) or np.isnan(s[t]):
            continue
        if f[t] > s[t]:
            pos[t] = 1.0
        elif long_short:
            pos[t] = -1.0
    return pos


def sma_trend_positions(close, window, long_short=False):
    pos = np.zeros(len(close))
    for t in range(window - 1, len(close)):
        mean = np.mean(close[t - window + 1: t + 1])
        if close[t] > mean:
            pos[t] = 1.0
        elif long_short:
            pos[t] = -1.0
    return pos


def _check(name, close, row, pos, fee_rate, long_short, start):
    out, rets = get(name).run_asset(
        _market(close), 0, np.array([row], float), fee_rate=fee_rate, ppy=252.0,
        long_short=long_short, start=start, returns=True,
    )
    ref.assert_metrics_close(out[0], ref.metrics(close, pos, fee_rate, 252.0, start))
    np.testing.assert_allclose(rets[0], ref.equity_returns(close, pos, fee_rate, start), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(30, 300),
    fast=st.integers(1, 12),
    gap=st.integers(1, 15),
    fee_bps=st.sampled_from([0.0, 5.0, 25.0]),
    long_short=st.booleans(),
    start=st.integers(1, 25),
)
def test_ema_cross_matches_reference(seed, n, fast, gap, fee_bps, long_short, start):
    close = ref.random_close(np.random.default_rng(seed), n)
    slow = fast + gap
    pos = ema_cross_positions(close, fast, slow, long_short)
    _check("ema_cross", close, (fast, slow), pos, fee_bps / 1e4, long_short, start)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(30, 300),
    window=st.integers(2, 40),
    fee_bps=st.sampled_from([0.0, 5.0, 25.0]),
    long_short=st.booleans(),
    start=st.integers(1, 25),
)
def test_sma_trend_matches_reference(seed, n, window, fee_bps, long_short, start):
    close = ref.random_close(np.random.default_rng(seed), n)
    pos = sma_trend_positions(close, window, long_short)
    _check("sma_trend", close, (window,), pos, fee_bps / 1e4, long_short, start)


@pytest.mark.parametrize(("name", "params"), [
    ("ema_cross", [(f, s) for f in (3, 5, 8) for s in (10, 20, 40)]),
    ("sma_trend", [(w,) for w in (5, 10, 10, 20, 50, 5)]),
])
def test_batch_equals_one_by_one(name, params):
    close = ref.random_close(np.random.default_rng(2), 600)
    m = _market(close)
    params = np.array(params, float)
    for ls in (False, True):
        batch, brets = get(name).run_asset(m, 0, params, fee_rate=0.001, long_short=ls,
                                           start=7, returns=True)
        for i, row in enumerate(params):
            one, orets = get(name).run_asset(m, 0, row[None, :], fee_rate=0.001, long_short=ls,
                                             start=7, returns=True)
            np.testing.assert_array_equal(batch[i], one[0])
            np.testing.assert_array_equal(brets[i], orets[0])


def test_ema_cross_constraint_message():
    with pytest.raises(StrategyError, match=r"ema_cross: constraint fast < slow violated \(fast=26, slow=12\)"):
        get("ema_cross").space.validate({"fast": 26, "slow": 12})


def test_sma_trend_hard_minimum_message():
    with pytest.raises(StrategyError, match=r"sma_trend: window must be >= 2 \(got 1\); search range is 20..250"):
        get("sma_trend").space.validate({"window": 1})


def test_defaults_and_warmup():
    assert get("ema_cross").space.defaults() == {"fast": 12, "slow": 26}
    assert get("sma_trend").space.defaults() == {"window": 200}
    assert get("ema_cross").min_bars({"fast": 12, "slow": 26}) == 26
    assert get("sma_trend").min_bars({"window": 200}) == 200
    assert get("ema_cross").family == get("sma_trend").family == "trend"

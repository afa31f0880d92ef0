"""vol_scaling against its slow numpy reference."""

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


def vol_scaling_positions(close, window, target_vol, trend, max_leverage, ppy, long_short):
    n = len(close)
    r = np.full(n, np.nan)
    r[1:] = close[1:] / close[:-1] - 1.0
    pos = np.zeros(n)
    for t in range(max(window, trend - 1), n):
        vol = np.std(r[t - window + 1: t + 1], ddof=1) * np.sqrt(ppy)
        size = min(target_vol / vol, max_leverage) if vol > 0 else max_leverage
        sma = np.mean(close[t - trend + 1: t + 1])
        if close[t] > sma:
            pos[t] = size
        elif long_short and close[t] < sma:
            pos[t] = -size
    return pos


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(60, 300),
    window=st.integers(2, 30),
    target_vol=st.floats(0.05, 0.6),
    trend=st.integers(2, 40),
    max_leverage=st.sampled_from([0.5, 1.0, 2.0]),
    ppy=st.sampled_from([252.0, 365.0]),
    fee_bps=st.sampled_from([0.0, 5.0, 25.0]),
    long_short=st.booleans(),
    start=st.integers(0, 25),
)
def test_vol_scaling_matches_reference(seed, n, window, target_vol, trend, max_leverage, ppy,
                                       fee_bps, long_short, start):
    close = ref.random_close(np.random.default_rng(seed), n)
    out, rets = get("vol_scaling").run_asset(
        _market(close), 0, np.array([[window, target_vol, trend, max_leverage]]),
        fee_rate=fee_bps / 1e4, ppy=ppy, long_short=long_short, start=start, returns=True,
    )
    pos = vol_scaling_positions(close, window, target_vol, trend, max_leverage, ppy, long_short)
    ref.assert_metrics_close(out[0], ref.metrics(close, pos, fee_bps / 1e4, ppy, start))
    np.testing.assert_allclose(rets[0], ref.equity_returns(close, pos, fee_bps / 1e4, start),
                               atol=1e-12)


def test_positions_are_fractional_and_capped():
    close = ref.random_close(np.random.default_rng(2), 400, vol=0.03)
    pos = vol_scaling_positions(close, 20, 0.2, 50, 1.0, 252.0, True)
    held = np.abs(pos[pos != 0])
    assert held.max() <= 1.0 and (held < 1.0).any() and len(np.unique(held)) > 10


def test_batch_equals_one_by_one():
    close = ref.random_close(np.random.default_rng(1), 500)
    m = _market(close)
    p = np.array([(w, tv, tr, lev) for w in (10, 20) for tv in (0.1, 0.3) for tr in (20, 50)
                  for lev in (1.0, 2.0)], float)
    for ls in (False, True):
        batch = get("vol_scaling").run(m, p, fee_rate=0.001, long_short=ls, start=5)
        for i, row in enumerate(p):
            one = get("vol_scaling").run(m, row[None, :], fee_rate=0.001, long_short=ls, start=5)
            np.testing.assert_array_equal(batch[0, i], one[0, 0])


def test_param_messages_and_warmup():
    space = get("vol_scaling").space
    assert space.validate({}) == {"window": 20, "target_vol": 0.15, "trend": 100,
                                  "max_leverage": 1.0}
    with pytest.raises(StrategyError, match=r"vol_scaling: target_vol must be >= 0.001 \(got 0.0\)"):
        space.validate({"target_vol": 0.0})
    with pytest.raises(StrategyError, match=r"vol_scaling: window must be >= 2 \(got 1\)"):
        space.validate({"window": 1})
    assert get("vol_scaling").min_bars({"window": 20, "trend": 100}) == 100
    assert get("vol_scaling").min_bars({"window": 30, "trend": 10}) == 31

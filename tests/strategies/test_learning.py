"""linear_classifier and quantile_regime against slow numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.data.market import MarketData
from quantfleet.errors import StrategyError
from quantfleet.kernels.indicators import rolling_quantiles, unique_pairs
from quantfleet.strategies import get
from tests import reference as ref


def _market(close: np.ndarray) -> MarketData:
    ts = (np.datetime64("2020-01-01") + np.arange(close.size)).astype("datetime64[ns]")
    return MarketData(ts, ("X",), close[None, :])


def linear_classifier_positions(close, window, lags, long_short):
    """At bar t: least squares of r[s] on (1, r[s-1], ..., r[s-lags]) over s = t-window+1..t,
    forecast from (1, r[t], ..., r[t-lags+1]); r[s] = close[s] / close[s-1] - 1 for s >= 1."""
    n = len(close)
    r = np.full(n, np.nan)
    r[1:] = close[1:] / close[:-1] - 1.0
    pos = np.zeros(n)
    for t in range(window + lags, n):
        s = np.arange(t - window + 1, t + 1)
        x = np.column_stack([np.ones(window)] + [r[s - j] for j in range(1, lags + 1)])
        beta = np.linalg.lstsq(x, r[s], rcond=None)[0]
        pred = beta @ np.concatenate([[1.0], r[t - np.arange(lags)]])
        pos[t] = 1.0 if pred > 0 else (-1.0 if long_short and pred < 0 else 0.0)
    return pos


def quantile_regime_positions(close, window, q, long_short):
    pos = np.zeros(len(close))
    for t in range(window, len(close)):
        before = close[t - window: t]
        if close[t] > np.quantile(before, q):
            pos[t] = 1.0
        elif long_short and close[t] < np.quantile(before, 1.0 - q):
            pos[t] = -1.0
    return pos


def _check(name, close, params, pos, fee_bps, long_short, start):
    out, rets = get(name).run_asset(
        _market(close), 0, np.array([params], float), fee_rate=fee_bps / 1e4, ppy=252.0,
        long_short=long_short, start=start, returns=True,
    )
    ref.assert_metrics_close(out[0], ref.metrics(close, pos, fee_bps / 1e4, 252.0, start))
    np.testing.assert_allclose(rets[0], ref.equity_returns(close, pos, fee_bps / 1e4, start),
                               atol=1e-12)


COMMON = dict(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(60, 300),
    fee_bps=st.sampled_from([0.0, 5.0, 25.0]),
    long_short=st.booleans(),
    start=st.integers(0, 25),
)


@settings(max_examples=30, deadline=None)
@given(window=st.integers(6, 40), lags=st.integers(1, 5), **COMMON)
def test_linear_classifier_matches_reference(seed, n, window, lags, fee_bps, long_short, start):
    close = ref.random_close(np.random.default_rng(seed), n)
    pos = linear_classifier_positions(close, window, lags, long_short)
    _check("linear_classifier", close, [window, lags], pos, fee_bps, long_short, start)


@settings(max_examples=30, deadline=None)
@given(window=st.integers(1, 40), q=st.one_of(st.floats(0.5, 1.0), st.sampled_from([0.5, 0.75])),
       **COMMON)
def test_quantile_regime_matches_reference(seed, n, window, q, fee_bps, long_short, start):
    close = ref.random_close(np.random.default_rng(seed), n)
    pos = quantile_regime_positions(close, window, q, long_short)
    _check("quantile_regime", close, [window, q], pos, fee_bps, long_short, start)


def test_linear_classifier_is_causal():
    # changing the future leaves every earlier position and per-bar return unchanged
    rng = np.random.default_rng(4)
    close = ref.random_close(rng, 300)
    bumped = close.copy()
    bumped[200:] *= np.exp(rng.normal(0, 0.05, 100))
    p = np.array([[30, 3]], float)
    a = get("linear_classifier").run_asset(_market(close), 0, p, long_short=True, returns=True)[1]
    b = get("linear_classifier").run_asset(_market(bumped), 0, p, long_short=True, returns=True)[1]
    np.testing.assert_array_equal(a[0, :200], b[0, :200])


def test_rolling_quantiles_match_numpy():
    x = np.random.default_rng(0).normal(size=200)
    x[50:60] = x[49]  # ties in the window
    qs = np.array([0.0, 0.1, 0.5, 0.8, 1.0])
    got = rolling_quantiles(x, 17, qs)
    for t in range(16, 200):
        np.testing.assert_allclose(got[:, t], np.quantile(x[t - 16: t + 1], qs), rtol=1e-14)
    assert np.isnan(got[:, :16]).all()


def test_unique_pairs():
    a = np.array([5.0, 3.0, 5.0, 3.0, 5.0])
    b = np.array([1.0, 2.0, 1.0, 1.0, 0.5])
    ua, ub, idx = unique_pairs(a, b)
    assert list(zip(ua, ub, strict=True)) == [(3.0, 1.0), (3.0, 2.0), (5.0, 0.5), (5.0, 1.0)]
    np.testing.assert_array_equal(ua[idx], a)
    np.testing.assert_array_equal(ub[idx], b)


@pytest.mark.parametrize("name, params", [
    ("linear_classifier", [(w, lg) for w in (10, 30, 60) for lg in (1, 2, 4)] + [(30, 2)]),
    ("quantile_regime", [(w, q) for w in (5, 20, 50) for q in (0.5, 0.8, 0.95)] + [(20, 0.8)]),
])
def test_batch_equals_one_by_one(name, params):
    close = ref.random_close(np.random.default_rng(1), 500)
    m = _market(close)
    p = np.array(params, float)
    for ls in (False, True):
        batch = get(name).run(m, p, fee_rate=0.001, long_short=ls, start=9)
        for i, row in enumerate(p):
            one = get(name).run(m, row[None, :], fee_rate=0.001, long_short=ls, start=9)
            np.testing.assert_array_equal(batch[0, i], one[0, 0])


def test_param_messages_and_warmup():
    lc = get("linear_classifier")
    assert lc.space.validate({}) == {"window": 100, "lags": 2}
    with pytest.raises(StrategyError, match=r"constraint lags < window violated \(lags=5, window=5\)"):
        lc.space.validate({"window": 5, "lags": 5})
    with pytest.raises(StrategyError, match=r"linear_classifier: lags must be >= 1 \(got 0\)"):
        lc.space.validate({"lags": 0})
    assert lc.min_bars({"window": 100, "lags": 2}) == 103
    qr = get("quantile_regime")
    assert qr.space.validate({}) == {"window": 50, "q": 0.8}
    with pytest.raises(StrategyError, match=r"quantile_regime: q must be <= 1.0 \(got 1.5\)"):
        qr.space.validate({"q": 1.5})
    with pytest.raises(StrategyError, match=r"quantile_regime: q must be >= 0.5 \(got 0.2\)"):
        qr.space.validate({"q": 0.2})
    assert qr.min_bars({"window": 50, "q": 0.8}) == 51

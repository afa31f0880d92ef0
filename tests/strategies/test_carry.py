"""funding_carry against a slow numpy reference that charges funding explicitly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.data.market import MarketData
from quantfleet.errors import DataError, StrategyError
from quantfleet.strategies import get
from tests import reference as ref


def _market(close: np.ndarray, funding: np.ndarray | None) -> MarketData:
    ts = (np.datetime64("2020-01-01") + np.arange(close.size)).astype("datetime64[ns]")
    extra = {} if funding is None else {"funding_rate": funding[None, :]}
    return MarketData(ts, ("X",), close[None, :], extra=extra)


def funding_carry_positions(funding, window, threshold, long_short, tie=1e-12):
    """Short (long/short) when the window's mean funding exceeds threshold by more than ``tie``,
    long when it is below -threshold by more than ``tie``; NaN funding counts as 0."""
    f = np.nan_to_num(funding, nan=0.0)
    pos = np.zeros(len(f))
    for t in range(window - 1, len(f)):
        mean = np.mean(f[t - window + 1: t + 1])
        if mean > threshold + tie:
            pos[t] = -1.0 if long_short else 0.0
        elif mean < -threshold - tie:
            pos[t] = 1.0
    return pos


def funded_returns(close, funding, pos, fee_rate, start):
    """Per-bar returns over [start, n): pos[t-1] earns (close[t]/close[t-1] - 1) - funding[t]
    (longs pay the bar's funding, shorts receive it), then the fill to pos[t] pays the fee."""
    f = np.nan_to_num(funding, nan=0.0)
    out = np.empty(len(close) - start)
    prev = 0.0
    for i, t in enumerate(range(start, len(close))):
        earned = 0.0 if i == 0 else prev * (close[t] / close[t - 1] - 1.0 - f[t])
        out[i] = (1.0 + earned) * (1.0 - fee_rate * abs(pos[t] - prev)) - 1.0
        prev = pos[t]
    return out


def funded_close(close, funding):
    """A price series whose bar returns are the funding-adjusted ones, so the slow metric
    reference (which reads returns off close) applies unchanged."""
    f = np.nan_to_num(funding, nan=0.0)
    adj = np.concatenate([[0.0], close[1:] / close[:-1] - 1.0 - f[1:]])
    return close[0] * np.cumprod(1.0 + adj)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(60, 300),
    window=st.integers(1, 30),
    threshold=st.floats(0.0, 4e-4),
    fee_bps=st.sampled_from([0.0, 5.0, 25.0]),
    long_short=st.booleans(),
    start=st.integers(0, 25),
    with_gaps=st.booleans(),
)
def test_funding_carry_matches_reference(seed, n, window, threshold, fee_bps, long_short, start,
                                         with_gaps):
    rng = np.random.default_rng(seed)
    close = ref.random_close(rng, n)
    # persistent funding regimes, large enough to matter next to the price moves
    funding = 3e-4 * np.sin(np.arange(n) / 15.0 + rng.uniform(0, 6)) + rng.normal(0, 2e-4, n)
    if with_gaps:
        funding[rng.integers(0, n, 5)] = np.nan
    out, rets = get("funding_carry").run_asset(
        _market(close, funding), 0, np.array([[window, threshold]]), fee_rate=fee_bps / 1e4,
        ppy=365.0, long_short=long_short, start=start, returns=True,
    )
    pos = funding_carry_positions(funding, window, threshold, long_short)
    want_rets = funded_returns(close, funding, pos, fee_bps / 1e4, start)
    np.testing.assert_allclose(rets[0], want_rets, atol=1e-12)
    adj = funded_close(close, funding)
    np.testing.assert_allclose(ref.equity_returns(adj, pos, fee_bps / 1e4, start), want_rets,
                               atol=1e-12)
    ref.assert_metrics_close(out[0], ref.metrics(adj, pos, fee_bps / 1e4, 365.0, start),
                             rtol=1e-8)


def test_funding_is_collected_by_shorts():
    # flat price, longs pay 1 bp per bar: a short collects it, long-only stays flat
    n = 50
    close = np.full(n, 100.0)
    funding = np.full(n, 1e-4)
    m = _market(close, funding)
    out, rets = get("funding_carry").run_asset(m, 0, np.array([[5, 0.0]]), long_short=True,
                                               returns=True)
    assert rets[0, 4] == 0.0 and np.allclose(rets[0, 5:], 1e-4)
    assert out[0, 0] == pytest.approx(1.0001 ** (n - 5) - 1.0)
    out, rets = get("funding_carry").run_asset(m, 0, np.array([[5, 0.0]]), returns=True)
    assert out[0, 0] == 0.0 and not rets.any()


def test_batch_equals_one_by_one():
    rng = np.random.default_rng(1)
    close = ref.random_close(rng, 400)
    funding = rng.normal(0, 3e-4, 400)
    m = _market(close, funding)
    p = np.array([(w, th) for w in (1, 5, 20) for th in (0.0, 1e-4, 3e-4)], float)
    for ls in (False, True):
        batch = get("funding_carry").run(m, p, fee_rate=0.001, long_short=ls, start=3)
        for i, row in enumerate(p):
            one = get("funding_carry").run(m, row[None, :], fee_rate=0.001, long_short=ls, start=3)
            np.testing.assert_array_equal(batch[0, i], one[0, 0])


def test_missing_funding_column_is_a_data_error():
    m = _market(ref.random_close(np.random.default_rng(0), 100), None)
    with pytest.raises(DataError, match="funding_carry needs a 'funding_rate' column"):
        get("funding_carry").run(m, np.array([[5, 1e-4]]))


def test_param_messages():
    space = get("funding_carry").space
    assert space.validate({}) == {"window": 14, "threshold": 0.0001}
    with pytest.raises(StrategyError, match=r"funding_carry: threshold must be >= 0.0 \(got -0.001\)"):
        space.validate({"threshold": -0.001})
    with pytest.raises(StrategyError, match=r"funding_carry: window must be >= 1 \(got 0\)"):
        space.validate({"window": 0})


def test_funding_at_exactly_the_threshold_does_not_flicker():
    # a rate quoted at exactly 0.01% for every bar: the rolling mean's rounding must not decide
    n = 300
    close = ref.random_close(np.random.default_rng(0), n)
    funding = np.full(n, 1e-4)
    funding[::7] = 3e-4  # a sum that does not stay exact
    funding[100:] = 1e-4
    out = get("funding_carry").run(_market(close, funding), np.array([[8, 1e-4]]),
                                   long_short=True, start=120)
    assert out[0, 0, 6] == 0.0  # no trades once every rate in the window equals the threshold


@pytest.mark.parametrize("long_short", [False, True])
def test_funding_is_paid_under_execution_options(long_short):
    # half-sized positions (execution option fraction=0.5) still pay the bar's funding:
    # the reference books 0.5 × the strategy's targets with funding-adjusted returns
    from quantfleet.backtest.job import BacktestJob, evaluate
    from quantfleet.backtest.terms import Execution, Terms

    rng = np.random.default_rng(7)
    n = 250
    close = ref.random_close(rng, n)
    funding = 3e-4 * np.sin(np.arange(n) / 15.0) + rng.normal(0, 2e-4, n)
    m = _market(close, funding)
    terms = Terms(fee_rate=5e-4, ppy=365.0, long_short=long_short,
                  execution=Execution(fraction=0.5))
    got = evaluate(m, BacktestJob("funding_carry", (0,), np.array([[10.0, 1e-4]]), start=3,
                                  terms=terms)).metrics[0, 0]
    pos = 0.5 * funding_carry_positions(funding, 10, 1e-4, long_short)
    ref.assert_metrics_close(got, ref.metrics(funded_close(close, funding), pos, 5e-4, 365.0, 3),
                             rtol=1e-9)

"""sma_cross against its slow numpy reference."""

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


def sma_cross_positions(close, fast, slow, long_short=False):
    f, s = ref.sma(close, fast), ref.sma(close, slow)
    pos = np.where(f > s, 1.0, -1.0 if long_short else 0.0)
    pos[np.isnan(s) | np.isnan(f)] = 0.0
    return pos


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(30, 400),
    fast=st.integers(1, 15),
    gap=st.integers(1, 20),
    fee_bps=st.sampled_from([0.0, 5.0, 25.0]),
    long_short=st.booleans(),
    start=st.integers(0, 25),
)
def test_sma_cross_matches_reference(seed, n, fast, gap, fee_bps, long_short, start):
    rng = np.random.default_rng(seed)
    close = ref.random_close(rng, n)
    slow = fast + gap
    m = _market(close)
    out, rets = get("sma_cross").run_asset(
        m, 0, np.array([[fast, slow]], float), fee_rate=fee_bps / 1e4, ppy=252.0,
        long_short=long_short, start=start, returns=True,
    )
    pos = sma_cross_positions(close, fast, slow, long_short)
    ref.assert_metrics_close(out[0], ref.metrics(close, pos, fee_bps / 1e4, 252.0, start))
    np.testing.assert_allclose(rets[0], ref.equity_returns(close, pos, fee_bps / 1e4, start), atol=1e-12)


def test_sma_cross_batch_equals_one_by_one():
    rng = np.random.default_rng(1)
    close = ref.random_close(rng, 600)
    m = _market(close)
    params = np.array([(f, s) for f in (3, 5, 8) for s in (10, 20, 40)], float)
    batch = get("sma_cross").run(m, params, fee_rate=0.001)
    for i, row in enumerate(params):
        one = get("sma_cross").run(m, row[None, :], fee_rate=0.001)
        np.testing.assert_array_equal(batch[0, i], one[0, 0])


def test_sma_cross_constraint_message():
    with pytest.raises(StrategyError, match=r"constraint fast < slow violated \(fast=30, slow=20\)"):
        get("sma_cross").space.validate({"fast": 30, "slow": 20})


def test_unknown_parameter_hint():
    with pytest.raises(StrategyError, match=r"unknown parameter 'fats' \(did you mean 'fast'\?\)"):
        get("sma_cross").space.validate({"fats": 3})


def test_unknown_strategy_hint():
    with pytest.raises(StrategyError, match=r"unknown strategy 'sma_crss' \(did you mean 'sma_cross'"):
        get("sma_crss")


def test_explicit_window_beyond_search_bounds_is_accepted():
    p = get("sma_cross").space.validate({"fast": 2, "slow": 300}, n_bars=1000)
    assert p == {"fast": 2, "slow": 300}
    with pytest.raises(StrategyError, match="slow=1000 needs more than 1000 bars but the data has 1000"):
        get("sma_cross").space.validate({"fast": 2, "slow": 1000}, n_bars=1000)

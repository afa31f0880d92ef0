"""Buy-and-hold benchmarks beside the leaderboards: a numpy reference from the definition, and
the columns the tournament and the sweep add."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.backtest.terms import Costs
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.research.benchmark import BENCHMARK_COLUMNS, buy_and_hold
from tests import reference as ref


def _bh_by_hand(close: np.ndarray, lo: int, hi: int, ppy: float, fee_rate: float):
    """From the definition: flat until the first priced bar of [lo, hi), long 1 from its close
    (paying the fee once); each later bar earns close[t] / close[t-1] - 1; every bar of the
    span counts (those before the entry with return 0)."""
    c = close[lo:hi]
    rets = []
    held = False
    for t in range(len(c)):
        if held:
            rets.append(c[t] / c[t - 1] - 1.0)
        elif np.isfinite(c[t]):
            rets.append(-fee_rate)
            held = True
        else:
            rets.append(0.0)
    rets = np.array(rets)
    equity = 1.0
    for x in rets:
        equity *= 1.0 + x
    sd = rets.std(ddof=1)
    return equity - 1.0, rets.mean() / sd * np.sqrt(ppy)


@pytest.fixture(scope="module")
def market() -> MarketData:
    m = ref.random_market(5, 600, ("X", "Y", "Z"), 0.015, "2015-01-01")
    close = m.close.copy()
    close[2, :120] = np.nan  # Z lists at bar 120
    return MarketData(m.timestamps, m.assets, close, source="test")


@pytest.mark.parametrize(("asset", "lo", "hi", "fee"), [
    ("X", 0, 600, 0.0), ("Y", 37, 411, 7e-4), ("Z", 0, 600, 5e-4), ("Z", 100, 300, 0.0),
    ("X", 598, 600, 0.0)])
def test_buy_and_hold_matches_the_definition(market, asset, lo, hi, fee):
    got = buy_and_hold(market, asset, lo, hi, 252.0, fee)
    tot, sr = _bh_by_hand(market.close[market.asset_index(asset)], lo, hi, 252.0, fee)
    assert got["total_return"] == pytest.approx(tot, rel=1e-12, abs=1e-15)
    assert got["sharpe"] == pytest.approx(sr, rel=1e-10)


def test_buy_and_hold_is_the_backtest_of_a_position_of_one(market):
    # the conventions' reference (tests/reference.py) on a constant position 1 from bar lo
    close = market.close[0]
    pos = np.ones_like(close)
    want = ref.metrics(close, pos, 3e-4, 252.0, start=50)
    got = buy_and_hold(market, 0, 50, None, 252.0, 3e-4)
    assert got["total_return"] == pytest.approx(want["total_return"], rel=1e-12)
    assert got["sharpe"] == pytest.approx(want["sharpe"], rel=1e-12)


def test_buy_and_hold_without_a_price_or_with_a_gap_is_nan_and_bad_ranges_are_refused(market):
    assert all(np.isnan(v) for v in buy_and_hold(market, "Z", 0, 100, 252.0).values())
    close = market.close.copy()
    close[0, 300] = np.nan  # a gap after the first price: no honest figure
    gapped = MarketData(market.timestamps, market.assets, close, source="test")
    assert all(np.isnan(v) for v in buy_and_hold(gapped, "X", 0, 600, 252.0).values())
    with pytest.raises(QuantfleetError, match=r"bar range \[10, 5\) is outside"):
        buy_and_hold(market, "X", 10, 5)
    with pytest.raises(QuantfleetError, match="unknown asset 'W'"):
        buy_and_hold(market, "W")


def test_tournament_rows_carry_the_assets_buy_and_hold_over_their_test_bars(market):
    from quantfleet.research.tournament import tournament

    res = tournament(market, ["sma_cross", "rsi"], train=150, test=100, max_combos=6,
                     costs=Costs(fee_bps=4, slippage_bps=1), ppy=252.0)
    lb = res.leaderboard
    lo, hi = res.windows[0].test_start, res.windows[-1].test_end
    assert list(lb.columns[-4:]) == list(BENCHMARK_COLUMNS)
    for row in lb.itertuples():
        tot, sr = _bh_by_hand(market.close[market.asset_index(row.asset)], lo, hi, 252.0, 5e-4)
        assert row.bh_total_return == pytest.approx(tot, rel=1e-12)
        assert row.bh_sharpe == pytest.approx(sr, rel=1e-10)
        assert row.excess_total_return == pytest.approx(row.oos_total_return - tot, rel=1e-9)
        assert row.excess_sharpe == pytest.approx(row.oos_sharpe - sr, rel=1e-9, abs=1e-12)
        # the same bars: the row's out-of-sample record spans exactly [lo, hi)
        assert len(res.oos_returns[f"{row.strategy}/{row.asset}"]) == hi - lo


def test_sweep_rows_carry_the_assets_buy_and_hold_over_the_sweeps_bars(market):
    from quantfleet.research.sweep import sweep

    res = sweep(market, "sma_cross", {"fast": [5, 10], "slow": [30, 60]}, Costs(fee_bps=2),
                ppy=252.0, top=6)
    top = res.top
    assert list(top.columns[-4:]) == list(BENCHMARK_COLUMNS)
    assert "Z" in set(top["asset"])  # the late-listed asset: flat bars before its first price
    for row in top.itertuples():
        tot, sr = _bh_by_hand(market.close[market.asset_index(row.asset)], 0, 600, 252.0, 2e-4)
        assert row.bh_total_return == pytest.approx(tot, rel=1e-12)
        assert row.bh_sharpe == pytest.approx(sr, rel=1e-10)
        assert row.excess_sharpe == pytest.approx(row.sharpe - sr, rel=1e-9, abs=1e-12)
        assert row.excess_total_return == pytest.approx(row.total_return - tot, rel=1e-9)
    # the rows' table (what parity digests) is unchanged: no benchmark columns there
    assert not set(BENCHMARK_COLUMNS) & set(res.table.column_names)

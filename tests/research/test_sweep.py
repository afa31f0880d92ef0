"""Sweeps: rows, constraint skipping, streaming to Parquet, leaderboard."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from quantfleet.backtest.terms import Costs
from quantfleet.data.market import MarketData
from quantfleet.errors import DataError, QuantfleetError, StrategyError
from quantfleet.research.sweep import sweep
from tests import reference as ref


@pytest.fixture(scope="module")
def market() -> MarketData:
    rng = np.random.default_rng(3)
    close = np.stack([ref.random_close(rng, 500), ref.random_close(rng, 500)])
    ts = (np.datetime64("2015-01-01") + np.arange(500)).astype("datetime64[ns]")
    return MarketData(ts, ("AAA", "BBB"), close, source="test")


def test_sweep_rows_match_single_backtests(market):
    grid = {"fast": [3, 5, 30], "slow": [10, 20]}
    res = sweep(market, "sma_cross", grid, Costs(fee_bps=10), ppy=252.0)
    # (30, 10) and (30, 20) violate fast < slow
    assert res.n_skipped == 2 and res.n_combos == 4 and res.n_rows == 8
    df = res.table.to_pandas()
    assert list(df.columns[:4]) == ["strategy", "asset", "fast", "slow"]
    for _, row in df.iterrows():
        a = market.asset_index(row["asset"])
        close = market.close[a]
        f, s = ref.sma(close, int(row["fast"])), ref.sma(close, int(row["slow"]))
        pos = np.where(f > s, 1.0, 0.0)
        pos[np.isnan(s)] = 0.0
        want = ref.metrics(close, pos, 0.001, 252.0)
        for k, v in want.items():
            assert np.isclose(row[k], v, rtol=1e-9, atol=1e-10, equal_nan=True), k


def test_sweep_streams_to_parquet_in_chunks(market, tmp_path):
    out = tmp_path / "s.parquet"
    grid = {"fast": list(range(2, 20)), "slow": list(range(10, 60, 5))}
    res = sweep(market, "sma_cross", grid, out=out, keep_table=False, chunk=16, top=5)
    assert res.table is None and res.path == out
    t = pq.read_table(out)
    assert t.num_rows == res.n_rows == 2 * res.n_combos
    assert pq.ParquetFile(out).metadata.num_row_groups > 1
    assert not (tmp_path / "s.parquet.partial").exists()
    # the leaderboard is the top of the full table
    df = t.to_pandas()
    best = df.sort_values("sharpe", ascending=False).head(5)
    np.testing.assert_allclose(res.top["sharpe"].to_numpy(), best["sharpe"].to_numpy())


def test_sweep_chunking_does_not_change_results(market):
    grid = {"fast": list(range(2, 12)), "slow": [15, 25, 40]}
    keys = [("asset", "ascending"), ("fast", "ascending"), ("slow", "ascending")]
    a = sweep(market, "sma_cross", grid, chunk=7).table.sort_by(keys)
    b = sweep(market, "sma_cross", grid, chunk=1000).table.sort_by(keys)
    assert a.equals(b)


def test_sweep_errors(market):
    with pytest.raises(QuantfleetError, match=r"unknown metric 'sharp' \(did you mean 'sharpe'"):
        sweep(market, "sma_cross", {"fast": [5], "slow": [20]}, metric="sharp")
    with pytest.raises(StrategyError, match="slow=600 needs more than 600 bars but the data has 500"):
        sweep(market, "sma_cross", {"fast": [5], "slow": [600]})
    short = MarketData(market.timestamps, market.assets,
                       np.where(np.arange(500) < 480, np.nan, market.close), source="short.csv")
    with pytest.raises(DataError, match="short.csv: asset 'AAA' has 20 bars but strategy sma_cross with fast=5, slow=30 needs 30; use shorter windows or more data"):
        sweep(short, "sma_cross", {"fast": [5], "slow": [30]})


def test_costs_validation():
    with pytest.raises(QuantfleetError, match=r"fee_bps must be in \[0, 10000\) basis points \(got -1\)"):
        Costs(fee_bps=-1)
    with pytest.raises(TypeError, match="slippage_bps must be a number"):
        Costs(slippage_bps="3")  # type: ignore[arg-type]
    assert Costs(7, 3).fee_rate == pytest.approx(0.001)


def test_sweep_reports_deflated_sharpe_and_pbo_of_the_winner(market):
    from quantfleet.research.overfit import deflated_sharpe_from_returns, pbo
    from quantfleet.strategies import get

    grid = {"fast": [3, 5, 8, 12], "slow": [20, 30, 50]}
    res = sweep(market, "sma_cross", grid, ppy=252.0)
    of = res.overfit
    assert of["n_trials"] == res.n_combos == 12
    win = res.top.iloc[0]
    df = res.table.to_pandas()
    trial_sr = df[df["asset"] == win["asset"]]["sharpe"].to_numpy()
    a = market.asset_index(win["asset"])
    strat = get("sma_cross")
    _, r = strat.run_asset(market, a, np.array([[win["fast"], win["slow"]]], float), ppy=252.0,
                           returns=True)
    assert of["dsr"] == pytest.approx(
        deflated_sharpe_from_returns(r[0], trial_sr, periods_per_year=252.0), rel=1e-9)
    params, _ = strat.space.grid(grid)
    _, all_r = strat.run_asset(market, a, params, ppy=252.0, returns=True)
    assert of["pbo"] == pytest.approx(pbo(all_r.T, n_splits=16).pbo)
    assert "DSR" in of["verdict"] and "PBO" in of["verdict"]


def test_one_combo_is_a_sweep_whose_verdict_says_pbo_needs_two_trials(market):
    res = sweep(market, "sma_cross", {"fast": [5], "slow": [20]}, ppy=252.0)
    assert res.n_combos == 1 and res.n_rows == 2
    of = res.overfit
    assert of["pbo"] is None and of["n_trials"] == 1
    assert "at least 2" in of["pbo_note"]
    assert "PBO n/a: it needs at least 2 trials" in of["verdict"] and "DSR" in of["verdict"]


def test_leaderboard_by_turnover_puts_the_least_trading_first(market):
    grid = {"fast": [2, 3, 5, 10], "slow": [20, 40]}
    res = sweep(market, "sma_cross", grid, metric="turnover", top=3)
    df = res.table.to_pandas()
    want = df.sort_values("turnover", kind="stable")["turnover"].head(3).tolist()
    assert res.top["turnover"].tolist() == want
    assert want[0] <= want[-1]

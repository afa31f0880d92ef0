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


def _dsr_by_hand(winner_returns: np.ndarray, trial_sharpes: np.ndarray, ppy: float) -> float:
    """Slow reference: DSR of the winner among ``trial_sharpes`` (annualized), straight from
    Bailey & López de Prado (2014) with scipy's normal distribution."""
    from scipy import stats

    r = winner_returns[np.isfinite(winner_returns)]
    n = r.size
    sr = r.mean() / r.std(ddof=1)
    skew, kurt = stats.skew(r), stats.kurtosis(r, fisher=False)
    n_trials = trial_sharpes.size
    v = np.var(trial_sharpes[np.isfinite(trial_sharpes)], ddof=1) / ppy
    g = 0.5772156649015329
    sr0 = np.sqrt(v) * ((1 - g) * stats.norm.ppf(1 - 1 / n_trials)
                        + g * stats.norm.ppf(1 - 1 / (n_trials * np.e)))
    z = (sr - sr0) * np.sqrt(n - 1) / np.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


def _winner_returns(market, win, ppy=252.0):
    from quantfleet.strategies import get

    a = market.asset_index(win["asset"])
    _, r = get("sma_cross").run_asset(market, a, np.array([[win["fast"], win["slow"]]], float),
                                      ppy=ppy, returns=True)
    return r[0]


def test_sweep_deflates_the_winner_by_every_asset_times_combo_row(market):
    from quantfleet.research.overfit import pbo
    from quantfleet.strategies import get

    grid = {"fast": [3, 5, 8, 12], "slow": [20, 30, 50]}
    res = sweep(market, "sma_cross", grid, ppy=252.0, chunk=5)
    of = res.overfit
    # the winner is the best of all 2 assets × 12 combos: N = 24, not the 12 combos of its asset
    assert of["n_trials"] == res.n_rows == 24 and of["n_assets"] == 2 and of["n_combos"] == 12
    assert of["selected_among"] == "2 assets × 12 combos" and of["n_unscored"] == 0
    df = res.table.to_pandas()
    win = res.top.iloc[0]
    assert win["sharpe"] == df["sharpe"].max()
    # slow reference: N and V from the whole table, DSR by hand
    want = _dsr_by_hand(_winner_returns(market, win), df["sharpe"].to_numpy(), 252.0)
    assert of["dsr"] == pytest.approx(want, rel=1e-9)
    assert of["var_trials"] == pytest.approx(np.var(df["sharpe"], ddof=1) / 252.0, rel=1e-12)
    # PBO ranks the same 24 rows (both assets are priced over the same bars), and says so
    params, _ = get("sma_cross").space.grid(grid)
    all_r = np.vstack([get("sma_cross").run_asset(market, a, params, ppy=252.0,
                                                  returns=True)[1] for a in range(2)])
    assert of["pbo"] == pbo(all_r.T, n_splits=16).pbo and of["pbo_trials"] == 24
    assert of["pbo_assets"] == 2 and of["pbo_note"] is None
    assert "as the best of 24 trials (2 assets × 12 combos)" in of["verdict"]
    assert f"PBO {of['pbo']:.2f} (on 24 asset × combo rows)" in of["verdict"]


def test_sweep_pbo_comes_from_its_own_jobs_blocks_whatever_the_chunking(market, monkeypatch):
    """The sweep's PBO is pbo() on the full returns matrix of every asset × combo row, from
    the per-block statistics the sweep's jobs return: no second pass keeping every combo's
    per-bar returns, whatever the chunk (combos per job) or the sub-batch (combos per kernel
    call), and no cap on the number of combos."""
    from quantfleet.backtest import job as job_mod
    from quantfleet.research.overfit import pbo
    from quantfleet.strategies import get
    grid = {"fast": list(range(2, 14)), "slow": [15, 25, 40, 60]}
    strat = get("sma_cross")
    params, _ = strat.space.grid(grid)
    rets = np.vstack([strat.run_asset(market, a, params, ppy=252.0, returns=True)[1]
                      for a in range(2)])
    want = pbo(rets.T, n_splits=16).pbo
    asked = ref.returns_requests(monkeypatch)
    monkeypatch.setattr(job_mod, "BLOCK_BATCH_BYTES", 16 * market.n_bars * 5)
    results = [sweep(market, "sma_cross", grid, ppy=252.0, chunk=c) for c in (7, 1000)]
    # sma_cross books its blocks on its fast path (kernels/fastpath.py): per-bar returns only
    # for the winner's single-combo series (its deflated Sharpe)
    assert max(asked) == 1
    # without a fast path, per-bar returns are asked for at most 5 combos at a time
    import dataclasses

    from quantfleet.strategies import base
    monkeypatch.setitem(base._REGISTRY, "sma_cross", dataclasses.replace(strat, fast=None))
    results.append(sweep(market, "sma_cross", grid, ppy=252.0, chunk=7))
    assert max(asked) == 5
    for res in results:
        of = res.overfit
        assert of["pbo_trials"] == 2 * res.n_combos == 96 and of["pbo_note"] is None
    # the per-bar path (no fast path) reduces the very returns pbo() is given: the same PBO
    assert results[2].overfit["pbo"] == want
    # the fast path books the same blocks to rounding (docs/conventions.md, "Fast path"), and
    # the same PBO whatever the chunking; a split whose in-sample winner or out-of-sample rank
    # is decided by an exact tie (two combos equal on every block of a union) can break the
    # tie the other way, so the two PBOs agree to a few of the 12,870 splits
    from quantfleet.backtest.blocks import BlockStats
    from quantfleet.research.overfit import pbo_from_blocks
    fast = [strat.run_asset_blocks(market, a, params, 16, ppy=252.0) for a in range(2)]
    own = pbo_from_blocks(BlockStats.concat([BlockStats(*f[1:]) for f in fast])).pbo
    assert results[0].overfit["pbo"] == results[1].overfit["pbo"] == own
    assert abs(own - want) <= 10 / 12870
    with pytest.raises(TypeError, match="pbo_max_trials"):
        sweep(market, "sma_cross", grid, pbo_max_trials=10)


def test_sweep_too_short_for_pbo_blocks_says_so(market):
    short = MarketData(market.timestamps[:12], ("AAA",), market.close[:1, :12], source="test")
    res = sweep(short, "sma_cross", {"fast": [2, 3], "slow": [4]}, ppy=252.0)
    of = res.overfit
    assert of["pbo"] is None and "too few for n_splits=16" in of["pbo_note"]
    assert "PBO n/a: returns has" in of["verdict"]


@pytest.fixture(scope="module")
def market_with_ties_and_a_flat_asset(market) -> MarketData:
    # CCC is a copy of AAA (every row ties with AAA's), FLAT never moves (Sharpe NaN, turnover 0)
    close = np.vstack([market.close, market.close[:1], np.full((1, 500), 100.0)])
    return MarketData(market.timestamps, ("AAA", "BBB", "CCC", "FLAT"), close, source="test")


def test_sweep_counts_only_rows_with_a_finite_metric(market_with_ties_and_a_flat_asset):
    m = market_with_ties_and_a_flat_asset
    grid = {"fast": [3, 5, 8], "slow": [20, 30]}
    res = sweep(m, "sma_cross", grid, ppy=252.0)
    of = res.overfit
    df = res.table.to_pandas()
    assert df[df["asset"] == "FLAT"]["sharpe"].isna().all()
    ranked = df[np.isfinite(df["sharpe"])]
    assert of["n_trials"] == len(ranked) == 18 and of["n_unscored"] == 6
    assert of["selected_among"] == "4 assets × 6 combos; 6 rows without a finite sharpe left out"
    assert "FLAT" not in set(res.top["asset"])
    want = _dsr_by_hand(_winner_returns(m, res.top.iloc[0]), ranked["sharpe"].to_numpy(), 252.0)
    assert of["dsr"] == pytest.approx(want, rel=1e-9)


def test_sweep_ties_go_to_the_first_asset_then_the_lowest_combo(market_with_ties_and_a_flat_asset):
    m = market_with_ties_and_a_flat_asset
    grid = {"fast": [3, 5, 8, 12], "slow": [20, 30, 50]}
    boards = [sweep(m, "sma_cross", grid, ppy=252.0, chunk=c, top=24).top for c in (1, 5, 100)]
    for b in boards[1:]:
        assert b[["asset", "fast", "slow"]].equals(boards[0][["asset", "fast", "slow"]])
    top = boards[0]
    aaa = top[top["asset"].isin(["AAA", "CCC"])]
    # AAA's and CCC's rows tie pairwise: each AAA row comes right before its CCC twin
    for i in range(0, len(aaa) - 1, 2):
        x, y = aaa.iloc[i], aaa.iloc[i + 1]
        assert (x["asset"], y["asset"]) == ("AAA", "CCC")
        assert (x["fast"], x["slow"], x["sharpe"]) == (y["fast"], y["slow"], y["sharpe"])
    # lower-is-better: FLAT never trades, turnover 0 for every combo: the first combo wins
    res = sweep(m, "sma_cross", grid, ppy=252.0, metric="turnover", chunk=5)
    assert (res.top.iloc[0]["asset"], res.top.iloc[0]["fast"], res.top.iloc[0]["slow"]) == (
        "FLAT", 3, 20)
    assert res.overfit["n_trials"] == 4 * 12  # every turnover is finite: every row competed
    assert "DSR n/a" in res.overfit["verdict"]  # a winner that never trades has no Sharpe


def test_one_combo_is_a_sweep_whose_verdict_says_pbo_needs_two_trials(market):
    res = sweep(market, "sma_cross", {"fast": [5], "slow": [20]}, ppy=252.0)
    assert res.n_combos == 1 and res.n_rows == 2
    of = res.overfit
    assert of["pbo"] is None and of["n_trials"] == 2  # 2 assets × 1 combo
    assert "at least 2" in of["pbo_note"]
    assert "PBO n/a: it needs at least 2 trials" in of["verdict"] and "DSR" in of["verdict"]


def test_leaderboard_by_turnover_puts_the_least_trading_first(market):
    grid = {"fast": [2, 3, 5, 10], "slow": [20, 40]}
    res = sweep(market, "sma_cross", grid, metric="turnover", top=3)
    df = res.table.to_pandas()
    want = df.sort_values("turnover", kind="stable")["turnover"].head(3).tolist()
    assert res.top["turnover"].tolist() == want
    assert want[0] <= want[-1]


def test_issue_16_reference_figure_on_sp500():
    # issue 16: sp500 (20 assets), sma_cross fast=5,10,20 × slow=50,100,200, no fees. Deflated by
    # the 9 combos of the winner's asset (the old count) DSR was 0.99984; by all 180 rows 0.9836
    from quantfleet.data import load

    m = load("sp500")
    res = sweep(m, "sma_cross", {"fast": [5, 10, 20], "slow": [50, 100, 200]})
    of = res.overfit
    assert (of["asset"], of["n_trials"], of["selected_among"]) == ("BBY", 180,
                                                                   "20 assets × 9 combos")
    assert of["dsr"] == pytest.approx(0.98362, abs=5e-6)
    df = res.table.to_pandas()
    want = _dsr_by_hand(_winner_returns(m, res.top.iloc[0], m.periods_per_year),
                        df["sharpe"].to_numpy(), m.periods_per_year)
    assert of["dsr"] == pytest.approx(want, rel=1e-9)
    assert of["verdict"].startswith("DSR 0.98: the winner's Sharpe is unlikely to be luck as "
                                    "the best of 180 trials (20 assets × 9 combos)")


def _ar1_universe(seed: int, phi: float) -> MarketData:
    return ref.ar1_universe(seed, phi, n_assets=8, n=2000, start="2010-01-01")


def test_sweep_dsr_rejects_noise_and_accepts_a_planted_edge_across_seeds():
    # 8 assets × 12 combos, 40 seeds each. Measured: noise DSR 0 of 40 seeds reach 0.95, PBO
    # (CSCV over the 96 rows) mean 0.49 (0.13–0.92 per seed); AR(1) phi = 0.3: DSR 26 of 40
    # reach 0.95, PBO mean 0.12 (0.005–0.34)
    grid = {"fast": [2, 3, 5, 8], "slow": [10, 20, 40]}
    seeds = range(40)
    noise = [sweep(_ar1_universe(s, 0.0), "sma_cross", grid, ppy=252.0, long_short=True).overfit
             for s in seeds]
    edge = [sweep(_ar1_universe(s, 0.3), "sma_cross", grid, ppy=252.0, long_short=True).overfit
            for s in seeds]
    assert all(of["n_trials"] == 96 for of in noise + edge)
    d_noise = np.array([of["dsr"] for of in noise])
    d_edge = np.array([of["dsr"] for of in edge])
    assert (d_noise >= 0.95).mean() == 0.0 and d_noise.mean() < 0.5
    assert (d_edge >= 0.95).mean() >= 0.55
    p_noise = np.array([of["pbo"] for of in noise])
    p_edge = np.array([of["pbo"] for of in edge])
    assert p_noise.mean() >= 0.45 and p_edge.mean() <= 0.2
    assert not any("unlikely to be luck" in of["verdict"] for of in noise)

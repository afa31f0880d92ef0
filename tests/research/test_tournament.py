"""Tournaments: in-sample selection, out-of-sample evaluation, stitched returns."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from quantfleet.backtest import BacktestJob, Terms, evaluate
from quantfleet.backtest.terms import Costs
from quantfleet.data import load
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.research.tournament import (
    ITEM_OVERHEAD_S,
    coarse_grid,
    plan_tournament,
    tournament,
)
from quantfleet.strategies import get
from tests import reference as ref


@pytest.fixture(scope="module")
def market() -> MarketData:
    return ref.random_market(11, 700, ("X", "Y"), 0.015, "2012-01-02")


def test_tournament_selects_in_sample_best_and_reports_out_of_sample(market, tmp_path):
    grids = {"sma_cross": {"fast": [3, 8, 15], "slow": [20, 40]}}
    res = tournament(market, ["sma_cross"], train=200, test=100, grids=grids,
                     costs=Costs(fee_bps=5), ppy=252.0, out=tmp_path)
    assert len(res.windows) == 5
    df = res.table.to_pandas()
    assert len(df) == 2 * 5 * 6 == res.n_rows
    assert (tmp_path / "results.parquet").exists()
    assert pq.read_table(tmp_path / "results.parquet").num_rows == len(df)
    for (asset, win), g in df.groupby(["asset", "window"]):
        sel = g[g["selected"]]
        assert len(sel) == 1
        assert sel["is_sharpe"].iloc[0] == g["is_sharpe"].max()
        # out of sample equals a direct reference run on the asset's history up to the test
        # part's end (indicators from its first bar), booked from the test part's first bar
        w = res.windows[win]
        p = json.loads(sel["params"].iloc[0])
        close = market.close[market.asset_index(asset), :w.test_end]
        want = ref.metrics(close, sma_positions(close, p), 5e-4, 252.0, start=w.test_start)
        assert np.isclose(sel["oos_sharpe"].iloc[0], want["sharpe"], rtol=1e-9, equal_nan=True)
    # the out-of-sample returns: the selected combos' positions window after window, one path
    # booked from the first test bar, the position carried across window boundaries
    t0, t1 = res.windows[0].test_start, res.windows[-1].test_end
    for asset in market.assets:
        close = market.close[market.asset_index(asset), :t1]
        chosen = df[(df["asset"] == asset) & df["selected"]].sort_values("window")
        path = np.zeros(t1)
        for w, params in zip(res.windows, chosen["params"], strict=True):
            path[w.test_start:w.test_end] = sma_positions(close, json.loads(params))[
                w.test_start:w.test_end]
        np.testing.assert_allclose(res.oos_returns[f"sma_cross/{asset}"].to_numpy(),
                                   ref.equity_returns(close, path, 5e-4, t0), rtol=0, atol=1e-12)
    assert set(res.leaderboard["strategy"]) == {"sma_cross"}
    assert len(res.leaderboard) == 2


def sma_positions(close: np.ndarray, p: dict) -> np.ndarray:
    f, s = ref.sma(close, p["fast"]), ref.sma(close, p["slow"])
    pos = np.where(f > s, 1.0, 0.0)
    pos[np.isnan(s)] = 0.0
    return pos


FUNDED = load("synthetic:gbm?bars=900&assets=2&seed=5&freq=1D&funding=1&vol=0.4")


@pytest.mark.parametrize("strategy, params", [
    ("sma_cross", {"fast": [5], "slow": [20]}),
    ("rsi", {"window": [14], "lower": [30.0], "upper": [70.0]}),  # a stateful exit
    ("atr_stop", {"trend": [20], "atr_window": [14], "mult": [2.0]}),  # a trailing stop
    ("funding_carry", {"window": [3], "threshold": [0.0]}),  # P&L net of funding
])
def test_a_single_combo_tournament_is_the_plain_backtest_of_the_test_span(strategy, params):
    res = tournament(FUNDED, [strategy], train=200, test=100, grids={strategy: params},
                     costs=Costs(fee_bps=10), long_short=True, ppy=365.0)
    t0, t1 = res.windows[0].test_start, res.windows[-1].test_end
    assert len(res.windows) == 7 and res.table.column("selected").to_pylist().count(True) == 14
    p = get(strategy).space.grid(params)[0]
    for a, asset in enumerate(FUNDED.assets):
        # indicators from the asset's first bar (warm_from=None), booked over the test span
        plain = evaluate(FUNDED, BacktestJob(strategy, (a,), p, start=t0, stop=t1,
                                             terms=Terms(fee_rate=1e-3, ppy=365.0,
                                                         long_short=True), keep="returns"))
        got = res.oos_returns[f"{strategy}/{asset}"].to_numpy()
        assert got.shape == (t1 - t0,)
        np.testing.assert_allclose(got, plain.series[0][0], rtol=0, atol=1e-12)
        row = res.leaderboard[res.leaderboard["asset"] == asset].iloc[0]
        assert row["oos_total_return"] == pytest.approx(plain.metrics[0, 0, 0], rel=1e-12)


def test_a_combos_result_does_not_depend_on_its_grid():
    # the example: rsi(14, 30, 70) on sp500_ohlcv, train 500 / test 250; before, its
    # window-0 out-of-sample Sharpe was 0.6442 alone and 0.6009 once window=30 joined the grid
    m = load("sp500_ohlcv")
    got = []
    for windows in ([14], [14, 30]):
        res = tournament(m, ["rsi"], train=500, test=250,
                         grids={"rsi": {"window": windows, "lower": [30.0], "upper": [70.0]}})
        df = res.table.to_pandas()
        got.append(df[df["params"].str.endswith('"window": 14}')].sort_values("window")
                   [["is_sharpe", "oos_sharpe"]].to_numpy())
    assert got[0].shape == (len(res.windows), 2)
    assert got[0].tobytes() == got[1].tobytes()


def test_tournament_several_strategies(market):
    res = tournament(market, ["sma_cross", "sma_trend"], n_windows=3, max_combos=10)
    assert set(res.table.column("strategy").to_pylist()) == {"sma_cross", "sma_trend"}
    assert res.oos_returns.shape[1] == 4


def test_rows_cycle_strategies_per_asset_and_derived_columns_match_the_windows(market):
    # grids of different sizes per strategy: the driver derives window, dates, combo, params
    # and selected from each pair's grid size and its per-window best combo
    names = ["sma_trend", "sma_cross", "rsi"]
    res = tournament(market, names, n_windows=3, max_combos=10)
    df = res.table.to_pandas()
    pairs = list(dict.fromkeys(zip(df["asset"], df["strategy"], strict=True)))
    assert pairs == [(a, s) for a in market.assets for s in names]
    assert list(res.oos_returns.columns) == [f"{s}/{a}" for s in names for a in market.assets]
    ts = market.timestamps
    for (a, s), g in df.groupby(["asset", "strategy"], sort=False):
        params = coarse_grid(get(s).space, 10)
        n_c = params.shape[0]
        assert len(g) == n_c * len(res.windows)
        assert list(g["window"]) == [w.index for w in res.windows for _ in range(n_c)]
        assert list(g["combo"]) == list(range(n_c)) * len(res.windows)
        want = [json.dumps(d, sort_keys=True) for d in get(s).space.to_dicts(params)]
        assert list(g["params"]) == want * len(res.windows)
        for w in res.windows:
            gw = g[g["window"] == w.index]
            assert (gw["train_start"] == ts[w.train_start]).all()
            assert (gw["test_start"] == ts[w.test_start]).all()
            assert (gw["test_end"] == ts[w.test_end - 1]).all()
            v = gw["is_sharpe"].to_numpy()
            v = np.where(np.isfinite(v), v, np.nan)
            best = int(np.nanargmax(v)) if np.isfinite(v).any() else 0
            assert list(gw["selected"]) == [c == best for c in range(n_c)], (a, s, w.index)


def test_overfit_computed_in_the_tasks_equals_the_table_level_statistics(market):
    from quantfleet.research.overfit import tournament_overfit

    for metric in ("sharpe", "max_drawdown"):
        res = tournament(market, ["sma_cross", "rsi"], n_windows=4, max_combos=12, ppy=252.0,
                         metric=metric)
        want = tournament_overfit(res.table, res.oos_returns, metric=metric, periods_per_year=252.0)
        assert res.overfit.equals(want), metric
        assert len(want) == 4 and want["pbo"].notna().all() and want["dsr"].notna().all()
        board = res.leaderboard.set_index(["strategy", "asset"])
        for row in want.itertuples():
            b = board.loc[(row.strategy, row.asset)]
            assert b["pair_pbo"] == row.pbo and b["pair_verdict"] == row.verdict
            assert b["pair_dsr"] == row.dsr
        # the leaderboard's stitched record, recomputed from oos_returns
        for row in res.leaderboard.itertuples():
            r = res.oos_returns[f"{row.strategy}/{row.asset}"].dropna().to_numpy()
            assert np.isclose(row.oos_total_return, np.prod(1 + r) - 1, rtol=1e-12)
            assert np.isclose(row.oos_sharpe, r.mean() / r.std(ddof=1) * np.sqrt(252.0), rtol=1e-12)


def test_coarse_grid_respects_budget_and_constraints():
    space = get("sma_cross").space
    g = coarse_grid(space, 40)
    assert 1 <= len(g) <= 40 and np.all(g[:, 0] < g[:, 1])


def test_tournament_errors(market):
    with pytest.raises(QuantfleetError, match="unknown metric 'sharp'"):
        tournament(market, ["sma_cross"], n_windows=2, metric="sharp")
    with pytest.raises(QuantfleetError, match="no strategies given"):
        tournament(market, [], n_windows=2)


def test_leaderboard_order_is_the_pandas_sort():
    import pandas as pd

    from quantfleet.research.tournament import leaderboard_order

    rng = np.random.default_rng(11)
    for n in (0, 1, 5, 200):
        sh = rng.choice([np.nan, 0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, 0.25], n)
        sh = np.where(rng.random(n) < 0.3, rng.normal(0, 1, n), sh)
        board = [{"strategy": str(rng.choice(["rsi", "sma_cross", "b", "Z"])),
                  "asset": str(rng.choice(["AAPL", "MSFT", "aa", "X1"])), "oos_sharpe": float(v),
                  "i": i} for i, v in enumerate(sh)]
        df = pd.DataFrame(board, columns=["strategy", "asset", "oos_sharpe", "i"])
        want = df.sort_values(["oos_sharpe", "strategy", "asset"], ascending=[False, True, True],
                              na_position="last", kind="stable")["i"].tolist()
        assert leaderboard_order(board) == want


def test_a_shared_grid_applies_to_the_strategies_that_have_each_key(market):
    from quantfleet.research.tournament import resolve_grids

    # fast: sma_cross and ema_cross; window: sma_trend; a per-strategy grid wins over the shared
    got = resolve_grids(["sma_cross", "ema_cross", "sma_trend", "rsi"],
                        {"fast": [5, 10], "slow": [50], "window": [20, 30]},
                        {"ema_cross": {"fast": [7]}})
    assert got == {"sma_cross": {"fast": [5, 10], "slow": [50]},
                   "ema_cross": {"fast": [7], "slow": [50]},
                   "sma_trend": {"window": [20, 30]}, "rsi": {"window": [20, 30]}}
    assert resolve_grids(["sma_cross"]) == {}
    res = tournament(market, ["sma_cross", "bollinger"], n_windows=2, max_combos=4,
                     grid={"fast": [3, 8, 30], "slow": [20, 40]})
    df = res.table.to_pandas()
    sma = {json.dumps(d, sort_keys=True) for d in
           [{"fast": f, "slow": s} for f in (3, 8, 30) for s in (20, 40) if f < s]}
    # the grid's combos, constraint violators (fast 30 >= slow 20) skipped
    assert set(df[df["strategy"] == "sma_cross"]["params"]) == sma and len(sma) == 5
    # bollinger has neither key: the coarse grid
    n_coarse = coarse_grid(get("bollinger").space, 4).shape[0]
    assert df[df["strategy"] == "bollinger"]["combo"].nunique() == n_coarse


@pytest.mark.parametrize("grid, grids, message", [
    ({"slwo": [5]}, None, r"grid key 'slwo' is not a parameter of any selected strategy \(did "
                          r"you mean 'slow'\?\); sma_cross has fast, slow; rsi has window, "
                          r"lower, upper"),
    (None, {"ema_cross": {"fast": [5]}}, r"grid for strategy 'ema_cross': not among the "
                                         r"selected strategies \(sma_cross, rsi\)"),
    (None, {"rsi": {"windw": [5]}}, r"grid of rsi: unknown parameter 'windw' \(did you mean "
                                    r"'window'\?\); rsi has window, lower, upper"),
])
def test_grid_keys_no_strategy_has_are_errors(market, grid, grids, message):
    with pytest.raises(QuantfleetError, match=message):
        tournament(market, ["sma_cross", "rsi"], n_windows=2, grid=grid, grids=grids)


def test_the_winner_is_deflated_by_every_pair_times_combo_trial(market):
    # by hand from the results table and the stitched returns: the trials are all (pair, combo)s;
    # each trial's Sharpe is its mean per-window OOS Sharpe (a flat window: 0), per bar
    from quantfleet.research.overfit import deflated_sharpe, expected_max_sharpe, return_moments

    grids = {"sma_cross": {"fast": [3, 8, 15], "slow": [20, 40]},
             "rsi": {"window": [7, 14, 21], "lower": [30], "upper": [70]}}
    res = tournament(market, ["sma_cross", "rsi"], train=200, test=100, grids=grids, ppy=252.0)
    df = res.table.to_pandas()
    sr_trial = (df.assign(s=df["oos_sharpe"].where(np.isfinite(df["oos_sharpe"]), 0.0))
                .groupby(["strategy", "asset", "combo"])["s"].mean() / np.sqrt(252.0))
    traded = df.groupby(["strategy", "asset", "combo"])["oos_sharpe"].apply(
        lambda s: np.isfinite(s).any())
    sr_trial = sr_trial[traded].to_numpy()
    v = np.var(sr_trial, ddof=1)
    of = res.winner_overfit
    win = res.leaderboard.iloc[0]
    assert (of["strategy"], of["asset"]) == (win["strategy"], win["asset"])
    assert of["n_pairs"] == 4 and of["n_combos"] == [3, 6]
    assert of["n_trials"] == len(sr_trial) == 2 * 6 + 2 * 3 - of["n_unscored"]
    assert of["var_trials"] == pytest.approx(v, rel=1e-12)
    r = res.oos_returns[f"{win['strategy']}/{win['asset']}"].to_numpy()
    sr, n, skew, kurt = return_moments(r)
    assert of["sr0"] == pytest.approx(expected_max_sharpe(of["n_trials"], v), rel=1e-12)
    assert of["dsr"] == pytest.approx(deflated_sharpe(sr, n, skew, kurt, of["n_trials"], v),
                                      rel=1e-12)
    # PBO pooled over every (pair, window) selection: the selected combo at or below the OOS
    # median of its window
    low = []
    for _, g in df.groupby(["strategy", "asset", "window"]):
        sel = g[g["selected"]]
        if len(sel) == 1:
            o = np.where(np.isnan(g["oos_sharpe"]), -np.inf, g["oos_sharpe"])
            x = sel["oos_sharpe"].iloc[0]
            x = -np.inf if np.isnan(x) else x
            rank = (o < x).sum() + ((o == x).sum() + 1) / 2
            low.append(rank / (len(o) + 1) <= 0.5)
    assert of["pbo_windows"] == len(low) and of["pbo"] == pytest.approx(np.mean(low))
    assert of["selected_among"].startswith("4 strategy × asset pairs × 3–6 combos each")
    assert f"as the best of {of['n_trials']:,} trials (4 strategy × asset pairs" in of["verdict"]
    assert f"(on {len(low)} walk-forward windows of 4 pairs, pooled)" in of["verdict"]
    # each pair's own figures keep their meaning, under names that say so
    assert {"pair_pbo", "pair_dsr", "pair_verdict"} <= set(res.leaderboard.columns)
    assert not {"pbo", "dsr", "verdict"} & set(res.leaderboard.columns)
    assert "this pair's 6 combos in each window" in win["pair_verdict"] or \
        "this pair's 3 combos in each window" in win["pair_verdict"]


def _ar1_universe(seed: int, phi: float) -> MarketData:
    return ref.ar1_universe(seed, phi, n_assets=4, n=5000, start="2000-01-03")


def test_tournament_winner_dsr_rejects_noise_and_accepts_a_planted_edge_across_seeds():
    # 4 assets × 12 combos (N = 48), 18 test windows of 250 bars, 24 seeds per universe.
    # Measured: noise DSR 0.001–0.60 (mean 0.20; 0 of 24 reach 0.95), pooled PBO 0.44–0.61
    # (mean 0.52); AR(1) phi = 0.3: DSR 0.49–1.00 (18 of 24 reach 0.95), PBO mean 0.27
    grids = {"sma_cross": {"fast": [2, 3, 5, 8], "slow": [10, 20, 40]}}

    def winners(phi):
        return [tournament(_ar1_universe(s, phi), ["sma_cross"], train=500, test=250,
                           grids=grids, ppy=252.0, long_short=True,
                           keep_table=False).winner_overfit for s in range(24)]

    noise, edge = winners(0.0), winners(0.3)
    assert all(of["n_trials"] == 48 and of["pbo_windows"] == 72 for of in noise + edge)
    d_noise = np.array([of["dsr"] for of in noise])
    d_edge = np.array([of["dsr"] for of in edge])
    p_noise = np.array([of["pbo"] for of in noise])
    p_edge = np.array([of["pbo"] for of in edge])
    assert (d_noise >= 0.95).sum() == 0 and d_noise.mean() < 0.4
    assert p_noise.mean() >= 0.48 and p_noise.min() >= 0.38
    assert not any("unlikely to be luck" in of["verdict"] for of in noise)
    assert all(("likely luck" in of["verdict"] or "could be luck" in of["verdict"])
               for of in noise)
    assert (d_edge >= 0.95).mean() >= 2 / 3 and d_edge.mean() > 0.9
    assert p_edge.mean() < 0.35


def test_the_plan_is_what_runs_and_its_estimate_counts_every_bar_it_books(market):
    grids = {"sma_cross": {"fast": [3, 8], "slow": [20, 40, 60]}}
    tp = plan_tournament(market, ["sma_cross", "rsi"], train=200, test=100, grids=grids,
                         max_combos=9)
    assert tp.rows == [0, 1] and tp.n_items == 4
    assert [s.name for s, _ in tp.plan] == ["sma_cross", "rsi"]
    assert tp.plan[0][1].shape[0] == 6 and np.array_equal(tp.plan[1][1],
                                                          coarse_grid(get("rsi").space, 9))
    res = tournament(market, ["sma_cross", "rsi"], train=200, test=100, grids=grids,
                     max_combos=9)
    assert [(w.train_start, w.test_end) for w in res.windows] == [
        (w.train_start, w.test_end) for w in tp.windows]
    # by hand: per asset and strategy, combos × (one pass to the last test bar + every
    # window's train and test bars) × the strategy's cost_ns, plus a fixed cost per item
    total = 0.0
    for s, params in tp.plan:
        bars = tp.windows[-1].test_end
        for w in tp.windows:
            bars += (w.train_end - w.train_start) + (w.test_end - w.test_start)
        total += 2 * (len(params) * bars * s.cost_ns * 1e-9 + ITEM_OVERHEAD_S)
    assert tp.estimate_s() == pytest.approx(total)
    with pytest.raises(QuantfleetError, match="no strategies given"):
        plan_tournament(market, [])

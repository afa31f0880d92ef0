"""Jobs with execution options: the strategy's target positions executed by
``kernels.execution``, checked against the slow reference on the same targets; default
execution through the same route is the plain job; searched options are trailing columns."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.backtest import BacktestJob, Terms, evaluate
from quantfleet.backtest.terms import Execution
from quantfleet.data.market import MarketData
from quantfleet.errors import DataError, QuantfleetError
from quantfleet.research.backtest import backtest
from quantfleet.strategies import get
from tests import reference as ref

PARAMS = np.array([[3.0, 20.0], [5.0, 30.0], [8.0, 40.0]])


@pytest.fixture(scope="module")
def market() -> MarketData:
    rng = np.random.default_rng(11)
    n = 300
    d = [ref.random_ohlcv(rng, n) for _ in range(2)]
    f = {k: np.stack([x[k] for x in d]) for k in ("open", "high", "low", "close", "volume")}
    f["close"][1, :25] = np.nan  # a late starter
    for k in ("open", "high", "low"):
        f[k][1, :25] = np.nan
    ts = (np.datetime64("2015-01-01") + np.arange(n)).astype("datetime64[ns]")
    return MarketData(ts, ("A", "B"), f["close"], open=f["open"], high=f["high"], low=f["low"],
                      volume=f["volume"], source="test")


def targets(market, a, params, ls):
    return get("sma_cross").run_asset(market, a, params, long_short=ls, positions=True)[2]


@pytest.mark.parametrize("ex", [
    Execution(stop_loss=0.03, take_profit=0.06),
    Execution(fill="next_open", trailing_stop=0.04, borrow_rate=0.1),
    Execution(vol_target=0.2, vol_window=10, vol_cap=2.0, fraction=0.5),
])
def test_job_is_the_reference_on_the_strategy_targets(market, ex):
    t = Terms.of(None, 252.0, True, ex)
    res = evaluate(market, BacktestJob("sma_cross", (0, 1), PARAMS, start=40, terms=t,
                                       keep="returns"))
    for i, a in enumerate((0, 1)):
        first = int(market.first_valid()[a])
        pos = targets(market, a, PARAMS, True)  # from the first valid bar
        o, h, lo, c = (market.field(f)[a, first:] for f in ("open", "high", "low", "close"))
        for k in range(len(PARAMS)):
            want, rb, _ = ref.execute_reference(o, h, lo, c, pos[k], 0.0, 252.0, 40 - first,
                                                **ex.settings())
            ref.assert_metrics_close(res.metrics[i, k], want)
            np.testing.assert_allclose(res.series[i][k], rb, rtol=1e-9, atol=1e-12)


def test_default_execution_via_the_execution_route_is_the_plain_job(market):
    plain = evaluate(market, BacktestJob("sma_cross", (0, 1), PARAMS, start=30,
                                         terms=Terms(1e-3, 252.0, True), keep="positions"))
    # one searched column holding the default fraction forces the execution route
    p = np.column_stack([PARAMS, np.ones(len(PARAMS))])
    t = Terms(1e-3, 252.0, True, searched=("fraction",))
    assert not t.plain
    routed = evaluate(market, BacktestJob("sma_cross", (0, 1), p, start=30, terms=t,
                                          keep="positions"))
    assert np.array_equal(plain.metrics, routed.metrics, equal_nan=True)
    for x, y in zip(plain.series, routed.series, strict=True):
        assert np.array_equal(x, y)


def test_searched_columns_override_the_execution_per_combo(market):
    base = Execution(stop_loss=0.05)
    t = Terms(0.0, 252.0, False, base, searched=("stop_loss",))
    p = np.array([[5.0, 30.0, 0.02], [5.0, 30.0, 0.05], [8.0, 40.0, 0.02]])
    res = evaluate(market, BacktestJob("sma_cross", (0,), p, terms=t, keep="returns",
                                       combos=(2,)))
    for k, (row, sl) in enumerate(zip(p[:, :2], p[:, 2], strict=True)):
        one = evaluate(market, BacktestJob("sma_cross", (0,), row[None],
                                           terms=Terms(0.0, 252.0, False,
                                                       Execution(stop_loss=sl))))
        assert np.array_equal(one.metrics[0, 0], res.metrics[0, k], equal_nan=True)
    assert res.series[0].shape == (1, market.n_bars)
    blocks = evaluate(market, BacktestJob("sma_cross", (0,), p, terms=t, blocks=4))
    assert np.array_equal(blocks.metrics, res.metrics, equal_nan=True)
    with pytest.raises(QuantfleetError, match="stop_loss must be"):
        evaluate(market, BacktestJob("sma_cross", (0,), np.array([[5.0, 30.0, 1.5]]), terms=t))
    with pytest.raises(QuantfleetError, match="cannot be searched"):
        Terms(searched=("fill",))


def test_research_backtest_and_missing_columns(market):
    rows = backtest(market, "sma_cross", {"fast": 5, "slow": 30}, assets=["A"], ppy=252.0,
                    execution=Execution(take_profit=0.05))
    assert rows[0]["execution"]["take_profit"] == 0.05
    close_only = MarketData(market.timestamps, market.assets, market.close, source="closes")
    with pytest.raises(DataError, match="need the 'open', 'high', 'low' column"):
        backtest(close_only, "sma_cross", {"fast": 5, "slow": 30},
                 execution=Execution(stop_loss=0.05))
    # volatility sizing and the borrow cost read closes only
    backtest(close_only, "sma_cross", {"fast": 5, "slow": 30},
             execution=Execution(vol_target=0.1, borrow_rate=0.05))


def test_next_open_stop_acts_in_the_entry_bar():
    # sma_trend window=2 goes long at bar 2's close, filled at bar 3's open (100); bar 3's low
    # 90 goes through the 5 % stop (95) in that bar, and the signal stays on: no re-entry
    o = np.array([[100, 100, 100.5, 100, 101.5, 102.0]])
    h = np.array([[100, 100, 101, 102, 102.5, 103.0]])
    lo = np.array([[100, 100, 100.5, 90, 101.5, 102.0]])
    c = np.array([[100, 100, 101, 101.5, 102, 102.5]])
    ts = (np.datetime64("2015-01-01") + np.arange(6)).astype("datetime64[ns]")
    md = MarketData(ts, ("A",), c, open=o, high=h, low=lo, source="entry-bar stop")
    row = backtest(md, "sma_trend", {"window": 2}, ppy=252.0,
                   execution=Execution(fill="next_open", stop_loss=0.05))[0]
    assert row["total_return"] == pytest.approx(-0.05)
    assert (row["n_trades"], row["win_rate"]) == (1, 0)


def test_walk_job_windows_and_path_are_the_reference(market):
    from quantfleet.backtest.walk import Walk

    ex = Execution(fill="next_open", stop_loss=0.02, take_profit=0.04, borrow_rate=0.05)
    wins = ((40, 120, 120, 170), (90, 170, 170, 230), (140, 230, 230, 300))
    walk = Walk(wins, metric="sharpe")
    t = Terms.of(None, 252.0, True, ex)
    res = evaluate(market, BacktestJob("sma_cross", (0,), PARAMS, start=120, stop=300, terms=t,
                                       walk=walk, keep="returns"))
    o, h, lo, c = (market.field(f)[0] for f in ("open", "high", "low", "close"))
    pos = targets(market, 0, PARAMS, True)
    for w, (a, b, ts, te) in enumerate(wins):
        for k in range(len(PARAMS)):
            for part, (s0, s1) in ((res.is_metrics, (a, b)), (res.oos_metrics, (ts, te))):
                want, _, _ = ref.execute_reference(o[:s1], h[:s1], lo[:s1], c[:s1],
                                                   pos[k, :s1], 0.0, 252.0, s0, **ex.settings())
                ref.assert_metrics_close(part[0, w, k], want)
        sh = res.is_metrics[0, w, :, 2]
        assert res.chosen[0, w] == (int(np.nanargmax(sh)) if np.isfinite(sh).any() else -1)
    path = np.zeros(300)
    for w, (_, _, ts, te) in enumerate(wins):
        if res.chosen[0, w] >= 0:
            path[ts:te] = pos[res.chosen[0, w], ts:te]
    want, rb, _ = ref.execute_reference(o, h, lo, c, path, 0.0, 252.0, 120, **ex.settings())
    ref.assert_metrics_close(res.metrics[0, 0], want)
    np.testing.assert_allclose(res.series[0][0], rb, rtol=1e-9, atol=1e-12)


def test_tournament_and_evolve_trade_under_the_execution(market):
    from quantfleet.research.evolve import evolve
    from quantfleet.research.tournament import tournament

    ex = Execution(trailing_stop=0.03)
    res = tournament(market, ["sma_cross"], assets=["A"], n_windows=2, max_combos=4,
                     ppy=252.0, execution=ex)
    plain = tournament(market, ["sma_cross"], assets=["A"], n_windows=2, max_combos=4,
                       ppy=252.0)
    assert not np.allclose(res.oos_returns.to_numpy(), plain.oos_returns.to_numpy())
    # a searched execution option: every strategy combo under each value, chosen in sample
    srch = tournament(market, ["sma_cross"], assets=["A"], n_windows=2, max_combos=4,
                      ppy=252.0, execution=ex, grid={"stop_loss": [0.02, 0.05]})
    import json

    tbl = srch.table.to_pandas()
    stops = sorted({json.loads(p)["stop_loss"] for p in tbl["params"]})
    assert stops == [0.02, 0.05] and len(tbl) == 2 * len(res.table)
    # the selected rows: each window's best in-sample Sharpe among its strategy × stop combos
    for _, g in tbl.groupby("window"):
        assert g.loc[g["selected"], "is_sharpe"].iloc[0] == g["is_sharpe"].max()
    with pytest.raises(QuantfleetError, match="'fill' cannot be searched"):
        tournament(market, ["sma_cross"], n_windows=2, grid={"fill": [1.0]})
    ev = evolve(market, ["sma_cross"], population=6, generations=2, seed=1, ppy=252.0,
                assets=["A"], grid={"stop_loss": [0.02, 0.05]}, execution=ex)
    w = ev.winners[0]
    assert w["params"]["stop_loss"] in (0.02, 0.05)
    p = {k: v for k, v in w["params"].items() if k != "stop_loss"}
    # its out-of-sample figure is the backtest of those params under that execution
    job = BacktestJob("sma_cross", (0,), get("sma_cross").space.to_array([p]), start=ev.split,
                      terms=Terms.of(None, 252.0, False,
                                     Execution(trailing_stop=0.03,
                                               stop_loss=w["params"]["stop_loss"])))
    assert evaluate(market, job).metrics[0, 0, 2] == pytest.approx(w["oos_sharpe"], nan_ok=True)

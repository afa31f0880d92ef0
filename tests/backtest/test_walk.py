"""Walk-forward jobs (``backtest.walk``): a combo's window metrics are a function of that combo
and the data up to the window's end only — not of its grid, not of later bars — any sub-batch
size gives the same bits, and the selected combos' out-of-sample positions are one path whose
position carries across window boundaries."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from quantfleet.backtest import BacktestJob, Terms, evaluate
from quantfleet.backtest.job import NO_COMBO, best_combo
from quantfleet.backtest.walk import Walk, WalkResult
from quantfleet.data import load
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.kernels.metrics import METRIC_NAMES
from quantfleet.research.tournament import coarse_grid
from quantfleet.research.windows import walk_forward
from quantfleet.strategies import all_strategies, get

MARKET = load("synthetic:gbm?bars=900&assets=2&seed=5&freq=1D&funding=1&vol=0.4")
WALK = Walk(tuple((w.train_start, w.train_end, w.test_start, w.test_end)
                  for w in walk_forward(MARKET.timestamps, 200, 100)), "sharpe")
TERMS = Terms(fee_rate=1e-3, ppy=365.0, long_short=True)
TRADES = METRIC_NAMES.index("n_trades")


def walk_job(strategy: str, params: np.ndarray, walk: Walk = WALK,
             keep: str = "returns") -> BacktestJob:
    return BacktestJob(strategy, (0, 1), params, start=walk.start, stop=walk.stop, terms=TERMS,
                       keep=keep, walk=walk)


def grid(strategy) -> np.ndarray:
    params = coarse_grid(strategy.space, 24)
    if strategy.name == "funding_carry":
        # synthetic funding averages +1 bp: thresholds that some window means cross
        params[:, 1] = params[:, 1] / 20.0
    return params


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("strategy", all_strategies(), ids=lambda s: s.name)
def test_a_combo_alone_equals_the_combo_in_a_large_grid(strategy):
    params = grid(strategy)
    full = evaluate(MARKET, walk_job(strategy.name, params))
    assert isinstance(full, WalkResult)
    n_w, n_c = len(WALK.windows), params.shape[0]
    assert full.is_metrics.shape == full.oos_metrics.shape == (2, n_w, n_c, len(METRIC_NAMES))
    assert n_c > 1 and (full.oos_metrics[..., TRADES] > 0).any(), "no trade: the check is vacuous"
    for c in range(n_c):
        one = evaluate(MARKET, walk_job(strategy.name, params[c:c + 1]))
        assert same(one.is_metrics[:, :, 0], full.is_metrics[:, :, c]), c
        assert same(one.oos_metrics[:, :, 0], full.oos_metrics[:, :, c]), c
    # a window part's metrics are the plain backtest of its bars (indicators from the first
    # bar): positions do not depend on where the accounting starts
    for a in range(2):
        for w in (0, n_w - 1):
            for part, (lo, hi) in ((full.is_metrics, WALK.windows[w][:2]),
                                   (full.oos_metrics, WALK.windows[w][2:])):
                want = strategy.run_asset(MARKET, a, params, fee_rate=1e-3, ppy=365.0,
                                          long_short=True, start=lo, stop=hi)[0]
                np.testing.assert_allclose(part[a, w], want, rtol=1e-12, atol=1e-12)
    # the selection is best_combo's per window
    k = METRIC_NAMES.index("sharpe")
    for a in range(2):
        assert [best_combo(full.is_metrics[a, w, :, k], "sharpe") for w in range(n_w)] == \
            full.chosen[a].tolist()
    # sub-batches of one combo (the streaming selection) give what one batch gives
    tiny = evaluate(MARKET, walk_job(strategy.name, params, dataclasses.replace(WALK, buffer_bytes=1)))
    for f in ("is_metrics", "oos_metrics", "chosen", "metrics"):
        assert same(getattr(tiny, f), getattr(full, f)), f
    assert all(same(x, y) for x, y in zip(tiny.series, full.series, strict=True))


def _perturbed(market: MarketData, cut: int, seed: int) -> MarketData:
    """``market`` with every price, volume and funding rate from bar ``cut`` on changed."""
    rng = np.random.default_rng(seed)
    f = np.ones(market.close.shape)
    f[:, cut:] = np.exp(rng.normal(0.0, 0.05, (market.n_assets, market.n_bars - cut)))
    fund = market.extra["funding_rate"].copy()
    fund[:, cut:] += rng.normal(0.0, 1e-4, fund[:, cut:].shape)
    return MarketData(market.timestamps, market.assets, market.close * f, open=market.open * f,
                      high=market.high * f, low=market.low * f, volume=market.volume * f[::-1],
                      extra={"funding_rate": fund}, source="perturbed")


@pytest.mark.parametrize("strategy", all_strategies(), ids=lambda s: s.name)
def test_no_window_sees_bars_after_its_end(strategy):
    params = grid(strategy)[::3]
    base = evaluate(MARKET, walk_job(strategy.name, params))
    j = 2
    cut = WALK.windows[j][3]
    got = evaluate(_perturbed(MARKET, cut, 1), walk_job(strategy.name, params))
    assert same(got.is_metrics[:, :j + 1], base.is_metrics[:, :j + 1])
    assert same(got.oos_metrics[:, :j + 1], base.oos_metrics[:, :j + 1])
    assert same(got.chosen[:, :j + 1], base.chosen[:, :j + 1])
    for a in range(2):
        assert same(got.series[a][0, :cut - WALK.start], base.series[a][0, :cut - WALK.start])
    # the later windows did change: the perturbation reached the kernel
    assert not same(got.oos_metrics[:, j + 1:], base.oos_metrics[:, j + 1:])


def test_the_position_carries_across_window_boundaries_without_a_fee():
    # a steady rise: sma_trend(10) is long from bar 9 on, in both test windows
    close = 100.0 * 1.01 ** np.arange(300.0)
    ts = (np.datetime64("2016-01-01") + np.arange(300)).astype("datetime64[ns]")
    m = MarketData(ts, ("UP",), close[None, :], source="test")
    walk = Walk(((0, 100, 100, 200), (100, 200, 200, 300)), "sharpe")
    fee = 1e-3
    job = BacktestJob("sma_trend", (0,), np.array([[10.0]]), start=100, stop=300,
                      terms=Terms(fee_rate=fee, ppy=252.0), keep="returns", walk=walk)
    res = evaluate(m, job)
    assert res.chosen.tolist() == [[0, 0]]
    r = close[1:] / close[:-1] - 1.0  # r[t - 1] is bar t's return
    want = np.concatenate([[-fee], r[100:299]])  # enter once at bar 100's close, then hold
    np.testing.assert_allclose(res.series[0][0], want, rtol=0, atol=1e-15)
    assert res.series[0][0][100] == pytest.approx(r[199], abs=1e-15)  # bar 200: no fee
    path = dict(zip(METRIC_NAMES, res.metrics[0, 0], strict=True))
    assert path["turnover"] == 1.0 and path["n_trades"] == 1.0
    assert path["total_return"] == pytest.approx((1 - fee) * close[299] / close[100] - 1, rel=1e-12)
    # each window's own out-of-sample record still enters flat (and pays) at its first bar
    assert res.oos_metrics[0, 1, 0, METRIC_NAMES.index("turnover")] == 1.0
    positions = evaluate(m, dataclasses.replace(job, keep="positions"))
    assert (positions.series[0][0] == 1.0).all()
    assert evaluate(m, dataclasses.replace(job, keep="metrics")).series is None


def test_a_window_with_no_selection_is_flat_on_the_path():
    # flat prices in window 0's train part: every Sharpe NaN, nothing selected, a flat test part
    close = 100.0 * 1.01 ** np.arange(300.0)
    close[:100] = close[0]
    ts = (np.datetime64("2016-01-01") + np.arange(300)).astype("datetime64[ns]")
    m = MarketData(ts, ("UP",), close[None, :], source="test")
    walk = Walk(((0, 100, 100, 200), (100, 200, 200, 300)), "sharpe")
    res = evaluate(m, BacktestJob("sma_trend", (0,), np.array([[10.0], [20.0]]), start=100,
                                  stop=300, terms=Terms(fee_rate=1e-3, ppy=252.0),
                                  keep="positions", walk=walk))
    assert res.chosen[0, 0] == NO_COMBO and res.chosen[0, 1] == 0
    pos = res.series[0][0]
    assert (pos[:100] == 0.0).all() and (pos[100:] == 1.0).all()


def test_walk_job_is_run_asset_for_a_single_combo():
    # the path of a one-combo grid selected in every window is that combo's plain backtest
    params = np.array([[5.0, 20.0]])
    res = evaluate(MARKET, walk_job("sma_cross", params))
    assert (res.chosen != NO_COMBO).all()
    for a in range(2):
        out, rets = get("sma_cross").run_asset(MARKET, a, params, fee_rate=1e-3, ppy=365.0,
                                               long_short=True, start=WALK.start, stop=WALK.stop,
                                               returns=True)
        np.testing.assert_allclose(res.series[a][0], rets[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.metrics[a, 0], out[0], rtol=1e-12, atol=1e-12)
        # and a window's out-of-sample metrics are the plain backtest of its test bars
        ts, te = WALK.windows[1][2:]
        one = get("sma_cross").run_asset(MARKET, a, params, fee_rate=1e-3, ppy=365.0,
                                         long_short=True, start=ts, stop=te)[0]
        np.testing.assert_allclose(res.oos_metrics[a, 1, 0], one[0], rtol=1e-12, atol=1e-12)
    assert walk_job("sma_cross", params).n_backtests == 2 * (2 * len(WALK.windows) + 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"windows": ()}, "Walk: windows is empty"),
    ({"windows": ((0, 10, 10, 10),)}, r"window 0 \(0, 10, 10, 10\) is not"),
    ({"windows": ((0, 10, 10, 20), (5, 15, 25, 30))},
     "window 1 tests from bar 25, the previous test part ends at 20"),
    ({"windows": ((0, 10, 10, 20),), "metric": "sharp"}, "unknown metric 'sharp'"),
])
def test_walk_errors(kwargs, message):
    with pytest.raises(QuantfleetError, match=message):
        Walk(**kwargs)


def test_walk_job_errors():
    walk = Walk(((0, 100, 100, 200),))
    p = np.array([[5.0, 20.0]])
    with pytest.raises(QuantfleetError, match=r"with walk, \[start, stop\) is the test span "
                                              r"\[100, 200\) \(got \[0, None\)\)"):
        BacktestJob("sma_cross", (0,), p, walk=walk)
    with pytest.raises(QuantfleetError, match="give walk without combos"):
        BacktestJob("sma_cross", (0,), p, start=100, stop=200, walk=walk, combos=(0,))
    late = BacktestJob("sma_cross", (0,), p, start=100, stop=200, warm_from=50, walk=walk)
    with pytest.raises(QuantfleetError, match="a window starts at bar 0, before asset"):
        evaluate(MARKET, late)


@pytest.mark.parametrize("strategy", ["sma_cross", "bollinger", "funding_carry"])
def test_the_path_earns_what_it_holds_at_window_boundaries(strategy):
    # the path's returns, booked from its own positions the slow way: at the first bar of each
    # test window the path still holds the previous window's position, and earns that one's
    # bar return (funding included), not what the newly chosen combo held
    strat = get(strategy)
    res = evaluate(MARKET, walk_job(strategy, grid(strat)))
    pos = evaluate(MARKET, walk_job(strategy, grid(strat), keep="positions"))
    t0, t1 = WALK.start, WALK.stop
    fee = TERMS.fee_rate
    boundaries = 0
    for i, a in enumerate((0, 1)):
        close = MARKET.close[a, t0 - 1:t1]
        f = (np.nan_to_num(MARKET.field("funding_rate")[a, t0 - 1:t1])
             if strategy == "funding_carry" else np.zeros(t1 - t0 + 1))
        p = np.concatenate([[0.0], pos.series[i][0]])
        want = np.empty(t1 - t0)
        for k in range(1, t1 - t0 + 1):
            earned = p[k - 1] * (close[k] / close[k - 1] - 1.0 - f[k]) if k > 1 else 0.0
            want[k - 1] = (1.0 + earned) * (1.0 - fee * abs(p[k] - p[k - 1])) - 1.0
        np.testing.assert_allclose(res.series[i][0], want, rtol=0, atol=1e-14)
        for w in WALK.windows[1:]:
            c_prev, c_new = res.chosen[i, WALK.windows.index(w) - 1], \
                res.chosen[i, WALK.windows.index(w)]
            boundaries += int(c_prev != c_new)
    assert boundaries > 0  # the selection does change between windows


@pytest.mark.parametrize("execution", [None, "next_open_stop"])
def test_keep_path_is_the_returns_and_the_positions_of_the_path(execution):
    from quantfleet.backtest.terms import Execution

    terms = TERMS if execution is None else dataclasses.replace(
        TERMS, execution=Execution(fill="next_open", stop_loss=0.05))
    job = dataclasses.replace(walk_job("sma_cross", grid(get("sma_cross"))), terms=terms)
    both = evaluate(MARKET, dataclasses.replace(job, keep="path"))
    rets = evaluate(MARKET, job)
    pos = evaluate(MARKET, dataclasses.replace(job, keep="positions"))
    for a in range(2):
        assert both.series[a].shape == (2, WALK.stop - WALK.start)
        assert np.array_equal(both.series[a][0], rets.series[a][0])
        assert np.array_equal(both.series[a][1], pos.series[a][0])
    with pytest.raises(QuantfleetError, match="keep='path' is a walk job's"):
        BacktestJob("sma_cross", (0,), np.array([[5.0, 20.0]]), keep="path")

"""The one job type and the one worker: a job evaluated by ``evaluate`` is ``run_asset``."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.backtest import (
    BacktestJob,
    Costs,
    JobBatch,
    JobResult,
    Terms,
    evaluate,
    evaluate_jobs,
)
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.kernels.metrics import METRIC_NAMES
from quantfleet.strategies import get
from tests import reference as ref

PARAMS = np.array([[3.0, 20.0], [5.0, 30.0], [8.0, 40.0], [12.0, 25.0]])
RSI = np.array([[14.0, 30.0, 70.0]])
TERMS = Terms(fee_rate=5e-4, ppy=252.0, long_short=True)
KW = {"fee_rate": 5e-4, "ppy": 252.0, "long_short": True}


@pytest.fixture(scope="module")
def market() -> MarketData:
    rng = np.random.default_rng(17)
    close = np.stack([ref.random_close(rng, 400, 0.015) for _ in range(3)])
    close[1, :30] = np.nan  # a late starter: its warm-up begins at its first valid bar
    ts = (np.datetime64("2014-01-01") + np.arange(400)).astype("datetime64[ns]")
    return MarketData(ts, ("A", "B", "C"), close, source="test")


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def test_metrics_job_is_run_asset(market):
    strat = get("sma_cross")
    job = BacktestJob("sma_cross", (0, 1, 2), PARAMS, start=100, stop=350, warm_from=60,
                      terms=TERMS)
    res = evaluate(market, job)
    assert isinstance(res, JobResult) and res.series is None
    assert res.metrics.shape == (3, 4, len(METRIC_NAMES))
    for i, a in enumerate((0, 1, 2)):
        want = strat.run_asset(market, a, PARAMS, start=100, stop=350, warm_from=60, **KW)[0]
        assert same(res.metrics[i], want)
    assert job.n_backtests == 12


def test_default_job_covers_every_bar_at_the_markets_periods_per_year(market):
    res = evaluate(market, BacktestJob("rsi", (2,), RSI))
    want = get("rsi").run_asset(market, 2, RSI)[0]
    assert same(res.metrics[0], want)


@pytest.mark.parametrize("keep", ["returns", "positions"])
def test_series_of_every_or_some_combos(market, keep):
    strat = get("sma_cross")
    flag = {keep: True}
    full = evaluate(market, BacktestJob("sma_cross", (0, 1), PARAMS, terms=TERMS, keep=keep))
    some = evaluate(market, BacktestJob("sma_cross", (0, 1), PARAMS, terms=TERMS, keep=keep,
                                        combos=(2, 0)))
    for i, a in enumerate((0, 1)):
        out = strat.run_asset(market, a, PARAMS, **KW, **flag)
        want = out[2] if keep == "positions" else out[1]
        assert same(full.series[i], np.ascontiguousarray(want))
        assert same(full.metrics[i], out[0])
        # a job's metrics are run_asset's without series (the fast path, where there is one)
        assert same(some.metrics[i], strat.run_asset(market, a, PARAMS, **KW)[0])
        sub = strat.run_asset(market, a, PARAMS[[2, 0]], **KW, **flag)
        assert same(some.series[i], np.ascontiguousarray(sub[2] if keep == "positions" else sub[1]))


def _count(market, jobs, results):
    return [len(jobs), [r.metrics.shape for r in results]]


def test_evaluate_jobs_runs_each_job_then_combines_in_the_worker(market):
    jobs = (BacktestJob("sma_cross", (0,), PARAMS), BacktestJob("rsi", (1, 2), RSI))
    plain = evaluate_jobs(market, JobBatch(jobs))
    assert [r.metrics.shape for r in plain] == [(1, 4, 10), (2, 1, 10)]
    assert same(plain[0].metrics, evaluate(market, jobs[0]).metrics)
    assert evaluate_jobs(market, JobBatch(jobs, combine=_count)) == [2, [(1, 4, 10), (2, 1, 10)]]
    assert JobBatch(jobs).n_backtests == 4 + 2


def test_terms_and_validation():
    assert Terms.of(Costs(fee_bps=7, slippage_bps=3), 52, True) == Terms(0.001, 52.0, True)
    assert Terms.of() == Terms()
    with pytest.raises(QuantfleetError, match="keep must be one of metrics, returns, positions"):
        BacktestJob("sma_cross", (0,), PARAMS, keep="equity")
    with pytest.raises(QuantfleetError, match="params must be a 2-D block"):
        BacktestJob("sma_cross", (0,), PARAMS[0])


# ---------------------------------------------------------------------------------------------
# Selection rule (issue 16, item 8): finite values only, ties to the lowest index, none: -1


def _slow_best(values, lower_is_better: bool) -> int:
    """Reference: scan in index order, keep the first strictly better finite value."""
    best, best_v = -1, None
    for i, v in enumerate(values):
        if not np.isfinite(v):
            continue
        if best_v is None or (v < best_v if lower_is_better else v > best_v):
            best, best_v = i, v
    return best


NAN, INF = np.nan, np.inf


@pytest.mark.parametrize("values, want_hi, want_lo", [
    ([NAN, NAN, NAN], -1, -1),                      # all NaN: no selection
    ([INF, -INF, NAN], -1, -1),                     # nothing finite: no selection
    ([NAN, 0.2, NAN, -0.1], 1, 3),                  # NaN never wins while a finite one exists
    ([NAN, -5.0, NAN], 1, 1),                       # a bad finite value beats NaN
    ([INF, 0.3, -INF, 0.1], 1, 3),                  # ±inf never win
    ([0.5, 0.7, 0.7, 0.1, 0.1], 1, 3),              # ties: the lowest index
    ([0.0, 0.0, 0.0], 0, 0),
])
def test_best_combo_rule(values, want_hi, want_lo):
    from quantfleet.backtest.job import NO_COMBO, best_combo

    v = np.array(values)
    assert best_combo(v, "sharpe") == want_hi == _slow_best(v, False)
    for lower in ("max_drawdown", "turnover"):
        assert best_combo(v, lower) == want_lo == _slow_best(v, True)
    assert NO_COMBO == -1


def test_best_combo_matches_a_slow_scan_on_random_values():
    from quantfleet.backtest.job import best_combo

    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(1, 8))
        v = rng.integers(-2, 3, n).astype(float)  # small integers: many ties
        v[rng.random(n) < 0.3] = np.nan
        v[rng.random(n) < 0.1] = np.inf
        v[rng.random(n) < 0.1] = -np.inf
        assert best_combo(v, "sharpe") == _slow_best(v, False)
        assert best_combo(v, "max_drawdown") == _slow_best(v, True)


# ---------------------------------------------------------------------------------------------
# Jobs with blocks: per-block return statistics (for PBO) instead of per-bar series


def test_blocks_job_is_block_stats_of_the_returns_series(market):
    import pickle

    from quantfleet.backtest.blocks import block_stats

    bars = {"start": 100, "stop": 371, "warm_from": 60}
    job = BacktestJob("sma_cross", (0, 1, 2), PARAMS, terms=TERMS, blocks=8, **bars)
    assert pickle.loads(pickle.dumps(job)).blocks == 8
    assert job.n_backtests == BacktestJob("sma_cross", (0, 1, 2), PARAMS).n_backtests == 12
    got = evaluate(market, job)
    plain = evaluate(market, BacktestJob("sma_cross", (0, 1, 2), PARAMS, terms=TERMS, **bars))
    rets = evaluate(market, BacktestJob("sma_cross", (0, 1, 2), PARAMS, terms=TERMS,
                                        keep="returns", **bars))
    assert got.series is None and same(got.metrics, plain.metrics)
    # the blocks are those pbo() cuts from the series keep="returns" gives (271 bars: the
    # first 271 mod 8 = 7 in no block), the late starter's (B) included; sma_cross books them
    # on its fast path, equal to rounding (tests/kernels/test_fastpath.py)
    for i in range(3):
        want = block_stats(rets.series[i], 8)
        b = got.blocks[i]
        assert (b.bars, b.rows_dropped, b.n_trials) == (want.bars, 7, 4)
        assert same(b.count, want.count)
        for f in ("mean", "m2"):
            np.testing.assert_allclose(getattr(b, f), getattr(want, f), rtol=1e-11, atol=1e-16)
    whole = evaluate(market, BacktestJob("sma_cross", (1,), PARAMS, terms=TERMS, blocks=4))
    assert whole.blocks[0].bars == _series_len(market, 1)


def _series_len(market, a):
    """Bars of asset ``a``'s returns series (from its first valid bar)."""
    return evaluate(market, BacktestJob("sma_cross", (a,), PARAMS[:1], terms=TERMS,
                                        keep="returns")).series[0].shape[1]


def test_blocks_are_the_same_bits_whatever_the_sub_batch(market):
    from quantfleet.backtest.job import run_blocks

    strat = get("sma_cross")
    res = [run_blocks(strat, market, 1, PARAMS, 16, k, **KW) for k in (1, 3, len(PARAMS))]
    for m, b in res[1:]:
        assert same(m, res[0][0])
        for f in ("count", "mean", "m2"):
            assert same(getattr(b, f), getattr(res[0][1], f))
    m, b = run_blocks(strat, market, 0, PARAMS[:0], 16, 4, **KW)
    assert m.shape[0] == 0 and b.n_trials == 0 and b.bars == _series_len(market, 0)


def test_blocks_job_runs_the_kernel_on_sub_batches(market, monkeypatch):
    """Only one sub-batch's per-bar buffer exists at a time: run_asset is asked for the
    returns of at most BLOCK_BATCH_BYTES // (16 · bars) combos per call (a strategy without a
    fast path; with one, no per-bar returns are asked for at all)."""
    import dataclasses

    from quantfleet.backtest import job as job_mod
    from quantfleet.strategies import base

    asked = ref.returns_requests(monkeypatch)
    evaluate(market, BacktestJob("sma_cross", (0, 2), PARAMS, terms=TERMS, blocks=16))
    assert asked == []
    monkeypatch.undo()
    monkeypatch.setitem(base._REGISTRY, "sma_cross",
                        dataclasses.replace(get("sma_cross"), fast=None))
    want = evaluate(market, BacktestJob("sma_cross", (0, 2), PARAMS, terms=TERMS, blocks=16))
    asked = ref.returns_requests(monkeypatch)
    monkeypatch.setattr(job_mod, "BLOCK_BATCH_BYTES", 16 * market.n_bars * 3)
    got = evaluate(market, BacktestJob("sma_cross", (0, 2), PARAMS, terms=TERMS, blocks=16))
    assert asked == [3, 1, 3, 1]  # 4 combos in sub-batches of 3, on each of 2 assets
    assert same(got.metrics, want.metrics)
    for b, w in zip(got.blocks, want.blocks, strict=True):
        assert same(b.m2, w.m2) and same(b.mean, w.mean) and same(b.count, w.count)


def test_blocks_validation():
    with pytest.raises(QuantfleetError, match="blocks must be an int >= 0"):
        BacktestJob("sma_cross", (0,), PARAMS, blocks=-1)
    with pytest.raises(QuantfleetError, match="blocks must be an int >= 0"):
        BacktestJob("sma_cross", (0,), PARAMS, blocks=True)
    for kw in ({"keep": "returns"}, {"combos": (0,)}):
        with pytest.raises(QuantfleetError, match="blocks= replaces the per-bar series"):
            BacktestJob("sma_cross", (0,), PARAMS, blocks=16, **kw)

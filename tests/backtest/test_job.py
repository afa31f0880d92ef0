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
        assert same(full.metrics[i], out[0]) and same(some.metrics[i], out[0])
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

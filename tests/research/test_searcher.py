"""Ask/tell searchers and the shared driver."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.data.market import MarketData
from quantfleet.research.searcher import (
    FALLBACK_FITNESS,
    GridSearcher,
    RandomSearcher,
    Searcher,
    run_search,
)
from quantfleet.research.sweep import sweep
from quantfleet.strategies import get
from tests import reference as ref


@pytest.fixture(scope="module")
def market() -> MarketData:
    rng = np.random.default_rng(21)
    close = np.stack([ref.random_close(rng, 600) for _ in range(2)])
    ts = (np.datetime64("2014-01-01") + np.arange(600)).astype("datetime64[ns]")
    return MarketData(ts, ("P", "Q"), close, source="test")


def test_grid_searcher_finds_the_sweep_best(market):
    grid = {"fast": list(range(3, 30, 3)), "slow": list(range(20, 120, 10))}
    params, _ = get("sma_cross").space.grid(grid)
    g = GridSearcher({"sma_cross": params}, batch=17)
    assert isinstance(g, Searcher)
    res = run_search(g, market, ppy=252.0)
    assert res.n_evaluations == len(params) and res.n_failed == 0
    table = sweep(market, "sma_cross", grid, ppy=252.0).table.to_pandas()
    mean = table.groupby(["fast", "slow"])["sharpe"].mean()
    best_params, best_val = mean.idxmax(), mean.max()
    trial, fit = res.best[0]
    assert trial.params == tuple(float(x) for x in best_params)
    assert fit == pytest.approx(best_val, rel=1e-12)


def test_random_searcher_resume_equals_uninterrupted(market, tmp_path):
    full = run_search(RandomSearcher(["sma_cross", "rsi"], 60, seed=3, batch=10), market)
    ck = tmp_path / "ck.json"

    class Stop(Exception):
        pass

    def stop_after_two(rec):
        if rec["round"] == 1:
            raise Stop

    with pytest.raises(Stop):
        run_search(RandomSearcher(["sma_cross", "rsi"], 60, seed=3, batch=10), market,
                   checkpoint=ck, on_round=stop_after_two)
    resumed = run_search(RandomSearcher(["sma_cross", "rsi"], 60, seed=3, batch=10), market,
                         checkpoint=ck)
    assert [(t.strategy, t.params, f) for t, f in resumed.best] == \
        [(t.strategy, t.params, f) for t, f in full.best]
    assert len(resumed.history) == len(full.history) == 6


def test_failed_evaluations_get_fallback_and_never_stop(market):
    # donchian needs high/low, which this market lacks: every evaluation fails
    res = run_search(RandomSearcher(["donchian", "sma_cross"], 20, seed=1, batch=10), market)
    assert res.n_failed > 0 and res.n_evaluations == 20
    fits = dict(((t.strategy, t.params), f) for t, f in res.best)
    assert all(f == FALLBACK_FITNESS for (s, _), f in fits.items() if s == "donchian")
    assert res.best[0][0].strategy == "sma_cross"


def test_duplicates_are_served_from_cache(market):
    params = np.array([[5.0, 20.0], [5.0, 20.0], [8.0, 30.0]])
    g = GridSearcher({"sma_cross": params}, batch=1)
    res = run_search(g, market)
    assert res.n_evaluations == 2 and res.n_cached == 1

"""Item 8 of issue 16 through a tournament: a window whose in-sample metric is NaN for every
combo selects nothing (``best_combo`` -> ``NO_COMBO``), keeps a flat out-of-sample series, and
marks no row ``selected``; no other window or pair is affected."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.data.market import MarketData
from quantfleet.research.tournament import tournament
from tests import reference as ref

GRID = {"sma_cross": {"fast": [3, 5, 8], "slow": [20, 30]}}


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(3)
    close = np.stack([ref.random_close(rng, 600), ref.random_close(rng, 600)])
    close[1, :260] = 100.0  # BBB does not move in window 0's training bars: every Sharpe NaN
    ts = (np.datetime64("2015-01-01") + np.arange(600)).astype("datetime64[ns]")
    m = MarketData(ts, ("AAA", "BBB"), close, source="test")
    return tournament(m, ["sma_cross"], train=200, test=100, grids=GRID, ppy=252.0)


def test_window_without_a_finite_in_sample_metric_stays_flat(result):
    t = result.table.to_pandas()
    w0 = t[(t["asset"] == "BBB") & (t["window"] == 0)]
    assert w0["is_sharpe"].isna().all()
    r = result.oos_returns["sma_cross/BBB"]
    r0 = r[(r.index >= w0["test_start"].iloc[0]) & (r.index <= w0["test_end"].iloc[0])]
    assert len(r0) == 100 and (r0 == 0.0).all()  # nothing selected, nothing traded


def test_no_row_is_selected_in_a_window_without_a_selection(result):
    t = result.table.to_pandas()
    per_window = t.groupby(["asset", "window"])["selected"].sum()
    assert per_window.loc[("BBB", 0)] == 0
    assert (per_window.drop(("BBB", 0)) == 1).all()
    assert np.isfinite(t[t["selected"]]["is_sharpe"]).all()

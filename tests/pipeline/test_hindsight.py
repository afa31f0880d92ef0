"""No stage selects on data it then scores: the portfolio's members for each rebalancing window
come from the bars before it. Checked by perturbation through the stages a run executes
(data -> tournament -> returns -> portfolio): prices changed after a date D leave every weight
bought before D and every portfolio return before D exactly as they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.reference import random_market

BARS, D = 1200, 900
ASSETS = ("A", "B", "C", "D", "E", "F")


def _config(source: Path):
    from quantfleet.pipeline.config import validate_config

    return validate_config({
        "name": "hindsight", "data": {"source": str(source)}, "executor": {"kind": "serial"},
        "costs": {"fee_bps": 5.0},
        "tournament": {"strategies": ["sma_cross", "rsi"], "train": 300, "test": 100,
                       "max_combos": 4, "checkpoint": None},
        "evolution": {"enabled": False},
        "portfolio": {"profiles": ["hrp", "max_sharpe", "equal_weight"], "winners": 3,
                      "train": 100, "test": 20},
    }, "test")


def _write(m, close: np.ndarray, path: Path) -> Path:
    df = pd.DataFrame(close.T, columns=list(m.assets))
    df.insert(0, "timestamp", pd.DatetimeIndex(m.timestamps))
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from quantfleet.pipeline.record import run_stages

    tmp = tmp_path_factory.mktemp("hindsight")
    m = random_market(3, BARS, ASSETS)
    other = m.close.copy()
    # every price from bar D on moves on another random path (same bars, same timestamps)
    rng = np.random.default_rng(9)
    other[:, D:] *= np.exp(np.cumsum(rng.normal(0.0, 0.03, (len(ASSETS), BARS - D)), axis=1))
    out = []
    for name, close in (("a", m.close), ("b", other)):
        cfg = _config(_write(m, close, tmp / f"{name}.csv"))
        out.append(run_stages(cfg, "run", record=False, log=lambda s: None).results)
    return pd.Timestamp(m.timestamps[D]), out[0], out[1]


def test_prices_after_d_change_nothing_before_d(runs):
    cut, a, b = runs
    pa, pb = a["portfolio"], b["portfolio"]
    assert list(pa.windows["test_start"]) == list(pb.windows["test_start"])
    before = pa.returns.index < cut
    assert before.sum() >= 5 * 20 and (~before).sum() >= 5 * 20  # both sides of D are traded
    np.testing.assert_array_equal(pa.returns[before].to_numpy(), pb.returns[before].to_numpy())
    for p in pa.weights:
        early = pa.weights[p].index < cut
        np.testing.assert_array_equal(pa.weights[p][early].to_numpy(),
                                      pb.weights[p][early].to_numpy())
    early = pa.members["test_start"] < cut
    pd.testing.assert_frame_equal(pa.members[early], pb.members[early])
    # the perturbation does reach the bars after D (the test can tell the runs apart)
    assert not np.array_equal(pa.returns[~before].to_numpy(), pb.returns[~before].to_numpy())


def test_returns_matrix_holds_every_pair_and_says_how_members_are_chosen(runs):
    from quantfleet.pipeline.stages import DEPENDS

    _, a, _ = runs
    mat, tour, res = a["returns"], a["tournament"], a["portfolio"]
    pairs = sorted(str(c) for c in tour.oos_returns.columns)
    assert sorted(mat.columns) == pairs and len(pairs) == 2 * len(ASSETS)
    assert mat.provenance["selection"] == (f"members chosen per window from the {len(pairs)} "
                                           f"tournament pairs by train-window Sharpe (top 3)")
    # the returns stage no longer reads the leaderboard (ranked on the whole history)
    assert "leaderboard" not in DEPENDS["returns"]
    assert res.provenance["selection"]["members"] == 3
    assert res.members.groupby("window").size().max() == 3
    # buy-and-hold beside each profile: the 6 assets the pairs trade, over the same bars
    assert res.provenance["buy_and_hold"]["assets"] == list(ASSETS)
    assert np.isfinite(res.metrics["bh_sharpe"]).all()
    assert (res.benchmark.index == res.returns.index).all()


@pytest.mark.parametrize("source, winners, expected", [
    ("strategies", None, 10), ("strategies", 4, 4), ("assets", None, None), ("data", 3, 3)])
def test_members_per_window_default(source, winners, expected):
    from quantfleet.pipeline.config import PortfolioConfig
    from quantfleet.pipeline.stages import portfolio_members

    assert portfolio_members(PortfolioConfig(source=source, winners=winners)) == expected

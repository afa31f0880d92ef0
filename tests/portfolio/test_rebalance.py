from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantfleet.errors import ConfigError, DataError
from quantfleet.portfolio import (
    Profile,
    optimize,
    portfolio_returns,
    rebalance,
    walk_forward_windows,
)
from quantfleet.portfolio.profiles import inverse_volatility

TRAIN, TEST = 252, 42


@pytest.mark.parametrize("kind", ["min_variance", "hrp"])
def test_walk_forward_equals_skfolio_cross_val_predict(kind, small):
    from skfolio.model_selection import WalkForward, cross_val_predict

    res = rebalance(small, [kind], train=TRAIN, test=TEST, drift=False)
    est = Profile(kind).build(252.0)
    pred = cross_val_predict(est, small, cv=WalkForward(train_size=TRAIN, test_size=TEST))
    assert len(res.windows) == len(pred.portfolios) == 4
    np.testing.assert_allclose(res.returns[kind].to_numpy(), np.asarray(pred.returns),
                               atol=1e-10, rtol=0)
    got_w = res.weights[kind].to_numpy()
    np.testing.assert_allclose(got_w, np.array([p.weights for p in pred.portfolios]), atol=1e-8)
    # the same splits: skfolio's test rows start where ours do
    splits = list(WalkForward(train_size=TRAIN, test_size=TEST).split(small))
    assert [int(t[0]) for _, t in splits] == [len(small.index[: small.index.get_loc(ts)])
                                             for ts in res.windows["test_start"]]


def test_drift_turnover_and_costs_by_hand():
    r = np.array([[0.0, 0.0], [0.10, -0.10], [0.0, 0.0], [0.05, 0.0]])
    w = np.array([[0.5, 0.5], [0.5, 0.5]])
    rows = np.array([[1, 3], [3, 4]])
    fee = 0.001
    out, turn, cost = portfolio_returns(r, w, rows, fee, drift=True)
    # window 0: buy from cash (traded 1), then hold; weights drift to (0.55, 0.45)
    assert turn[0] == pytest.approx(1.0)
    assert out[0] == pytest.approx((1 + 0.0) * (1 - fee) - 1)
    assert out[1] == pytest.approx(0.0)
    # window 1: back to 50/50 from 55/45 -> traded 0.1
    assert turn[1] == pytest.approx(0.1)
    assert out[2] == pytest.approx((1 + 0.5 * 0.05) * (1 - fee * 0.1) - 1)
    np.testing.assert_allclose(cost, fee * turn)
    # fixed weights: traded back to target every bar inside the window too
    out_f, turn_f, _ = portfolio_returns(r, w, rows, fee, drift=False)
    assert turn_f[0] == pytest.approx(1.0 + 0.1)  # entry, then 55/45 -> 50/50 at the 2nd bar
    assert out_f[1] == pytest.approx((1 + 0.0) * (1 - fee * 0.1) - 1)
    assert turn_f[1] == pytest.approx(0.0) and out_f[2] == pytest.approx(0.025)


def test_fees_and_metrics_consistent(small):
    res0 = rebalance(small, "equal_weight,inverse_volatility", train=TRAIN, test=TEST)
    res5 = rebalance(small, "equal_weight,inverse_volatility", train=TRAIN, test=TEST, fee_bps=5)
    log = res5.log.set_index(["profile", "window"])
    np.testing.assert_allclose(log["cost"], 5e-4 * log["turnover"])
    assert (res5.metrics["total_return"] < res0.metrics["total_return"]).all()
    from quantfleet.kernels.metrics import metrics_from_returns

    r = res5.returns["equal_weight"].to_numpy()
    assert res5.metrics.loc[0, "sharpe"] == pytest.approx(metrics_from_returns(r, res5.provenance["ppy"])[2])
    assert res5.returns.index[0] == res5.windows["test_start"][0]
    assert len(res5.returns) == 4 * TEST


def test_forced_solver_failure_falls_back_without_crashing(small):
    # 6 assets, max 10% each: no fully invested portfolio exists in any window
    res = rebalance(small, [Profile("min_variance", max_weights=0.1), "equal_weight"],
                    train=TRAIN, test=TEST)
    log = res.log[res.log["profile"] == "min_variance"]
    assert log["fallback"].tolist() == ["inverse_volatility", "previous", "previous", "previous"]
    assert log["error"].str.contains("Solver 'CLARABEL' failed").all()
    w = res.weights["min_variance"].to_numpy()
    np.testing.assert_allclose(w, np.tile(inverse_volatility(small.to_numpy()[:TRAIN]), (4, 1)))
    assert res.metrics.set_index("profile").loc["min_variance", "fallbacks"] == 4
    assert np.isfinite(res.returns.to_numpy()).all()
    assert (res.log[res.log["profile"] == "equal_weight"]["fallback"] == "").all()


def test_spans_one_per_profile_window(small):
    res = rebalance(small, "hrp,equal_weight", train=TRAIN, test=TEST, batch=3)
    comps = [s.component for s in res.spans]
    assert sorted(comps) == sorted([f"portfolio.hrp/w:{k}" for k in range(4)]
                                   + [f"portfolio.equal_weight/w:{k}" for k in range(4)])
    assert all(s.items == 1 and s.stage == "portfolio" for s in res.spans)
    t = res.timing().set_index("profile")
    assert t.loc["hrp", "windows"] == 4 and t.loc["hrp", "fit_s"] > 0


def test_processes_equal_serial(small):
    from quantfleet.compute import make_executor

    profiles = "hrp,max_sharpe,min_variance,risk_parity,equal_weight"
    serial = rebalance(small, profiles, train=TRAIN, test=TEST, fee_bps=3)
    with make_executor("processes", workers=2) as ex:
        par = rebalance(small, profiles, train=TRAIN, test=TEST, fee_bps=3, executor=ex,
                        batch=1)
        assert ex.summary.tasks == 5 * 4
        assert {s.component for s in ex.spans} == {f"portfolio.{p.name}" for p in par.profiles}
    pd.testing.assert_frame_equal(par.returns, serial.returns, check_exact=False, atol=1e-12)
    for name in serial.weights:
        pd.testing.assert_frame_equal(par.weights[name], serial.weights[name],
                                      check_exact=False, atol=1e-12)
    assert par.provenance["executor"] == "processes"


def test_optimize_one_fit_per_profile(small):
    a = optimize(small, "hrp,equal_weight")
    assert list(a.weights.index) == ["hrp", "equal_weight"]
    np.testing.assert_allclose(a.weights.sum(axis=1), 1.0)
    assert a.log["fallback"].tolist() == ["", ""]


def test_window_errors(small):
    with pytest.raises(DataError, match="cannot hold one window of train=400 \\+ test=42"):
        rebalance(small, "hrp", train=400, test=42)
    with pytest.raises(ConfigError, match="test must be a whole number of bars >= 1"):
        walk_forward_windows(100, 10, 0)
    with pytest.raises(ConfigError, match="fee_bps must be a finite number >= 0"):
        rebalance(small, "hrp", fee_bps=-1)
    w = walk_forward_windows(420, 252, 42)
    assert w.tolist()[0] == [0, 252, 252, 294] and w.shape == (4, 4)


def test_write(tmp_path, small):
    res = rebalance(small, "equal_weight", train=TRAIN, test=TEST)
    out = res.write(tmp_path / "run")
    names = {p.name for p in out.iterdir()}
    assert {"weights.parquet", "returns.parquet", "log.parquet", "metrics.parquet",
            "spans.parquet", "windows.parquet", "returns_matrix.parquet", "provenance.json"} <= names
    w = pd.read_parquet(out / "weights.parquet")
    assert list(w.columns[:2]) == ["profile", "test_start"] and len(w) == 4

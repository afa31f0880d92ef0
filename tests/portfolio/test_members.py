"""Members per window chosen from the train rows only, and the buy-and-hold beside each
profile, each against a slow reference written from its definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantfleet.errors import ConfigError, DataError
from quantfleet.portfolio import (
    Profile,
    buy_and_hold,
    fit_profile,
    rebalance,
    select_members,
    walk_forward_windows,
)

TRAIN, TEST = 252, 42


def _slow_members(values: np.ndarray, a: int, b: int, n: int) -> list[int]:
    """Rank columns by mean / std (ddof=1) of rows [a, b); finite only; ties: lowest column."""
    scored = []
    for j in range(values.shape[1]):
        x = [float(v) for v in values[a:b, j]]
        mean = sum(x) / len(x)
        var = sum((v - mean) ** 2 for v in x) / (len(x) - 1)
        if var > 0:
            scored.append((-(mean / var ** 0.5), j))
    scored.sort()  # by -sharpe, then by column index
    return [j for _, j in scored[:n]]


def _matrix(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(0.0003, 0.01, size=(400, 9)) + rng.normal(0, 0.0004, size=9)
    v[:, 2] = 0.0                 # flat: never a member
    v[:150, 5] = 0.0              # flat in the first windows only
    v[:, 7] = v[:, 3]             # a tie with column 3: the lower index ranks first
    return v


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [1, 3, 8, 20])
def test_members_equal_slow_reference(seed, n):
    v = _matrix(seed)
    rows = walk_forward_windows(len(v), 100, 30)[:, :2]
    members, sharpe = select_members(v, rows, n)
    assert members.shape == (len(rows), n)
    for k, (a, b) in enumerate(rows):
        ref = _slow_members(v, int(a), int(b), n)
        got = [int(j) for j in members[k] if j >= 0]
        assert got == ref, k
        assert (members[k, len(ref):] == -1).all() and np.isnan(sharpe[k, len(ref):]).all()
        x = v[a:b, got]
        np.testing.assert_allclose(sharpe[k, :len(ref)], x.mean(0) / x.std(0, ddof=1),
                                   rtol=1e-12)
        assert 2 not in got and (5 not in got or b > 150)
        if 3 in got and 7 in got:
            assert got.index(3) < got.index(7)


def test_members_bad_input():
    with pytest.raises(ConfigError, match="members must be a whole number >= 1"):
        select_members(np.zeros((10, 2)), np.array([[0, 5]]), 0)


def test_rebalance_fits_each_window_on_its_members_only(small):
    res = rebalance(small, "min_variance,equal_weight", train=TRAIN, test=TEST, members=3)
    values = small.to_numpy()
    cols = list(small.columns)
    assert res.members is not None and len(res.members) == 4 * 3
    for k, (a, b, _, _) in enumerate(walk_forward_windows(len(values), TRAIN, TEST)):
        ref = _slow_members(values, int(a), int(b), 3)
        chosen = res.members[res.members["window"] == k].sort_values("rank")
        assert chosen["column"].tolist() == [cols[j] for j in ref]
        for p in ("min_variance", "equal_weight"):
            w = res.weights[p].iloc[k].to_numpy()
            assert np.all(w[[j for j in range(len(cols)) if j not in ref]] == 0.0)
            direct, fb, _ = fit_profile(Profile(p), values[a:b][:, ref], 252.0)
            assert fb == ""
            np.testing.assert_allclose(w[ref], direct, atol=1e-10)
        log = res.log[(res.log["profile"] == "min_variance") & (res.log["window"] == k)]
        assert log["members"].item() == ",".join(cols[j] for j in ref)
    sel = res.provenance["selection"]
    assert sel["members"] == 3 and sel["candidates"] == len(cols)
    # without members every column is fitted, as before
    full = rebalance(small, "equal_weight", train=TRAIN, test=TEST)
    assert full.members is None and "members" not in full.log
    np.testing.assert_allclose(full.weights["equal_weight"].to_numpy(), 1 / len(cols))


def test_no_finite_member_holds_cash():
    idx = pd.date_range("2020-01-01", periods=60, freq="D", name="timestamp")
    v = np.random.default_rng(0).normal(0, 0.01, size=(60, 3))
    v[:40] = 0.0  # every column flat over the first window's train rows
    res = rebalance(pd.DataFrame(v, index=idx, columns=["a/x", "b/y", "c/z"]), "hrp",
                    train=40, test=10, members=2, ppy=252.0)
    log = res.log.set_index("window")
    assert log.loc[0, "fallback"] == "no_members" and log.loc[0, "members"] == ""
    np.testing.assert_array_equal(res.weights["hrp"].iloc[0].to_numpy(), 0.0)
    np.testing.assert_array_equal(res.returns["hrp"].to_numpy()[:10], 0.0)
    assert log.loc[1, "fallback"] == "" and res.weights["hrp"].iloc[1].sum() == pytest.approx(1)


def test_previous_fallback_only_with_the_same_members(small):
    # 10% cap on 3 members: no fully invested portfolio, every fit fails
    res = rebalance(small, [Profile("min_variance", max_weights=0.1)], train=TRAIN, test=21,
                    members=3)
    log = res.log.sort_values("window")
    assert set(log["fallback"]) == {"previous", "inverse_volatility"}  # both paths are taken
    values = small.to_numpy()
    W = res.weights["min_variance"].to_numpy()
    for k, (a, b, _, _) in enumerate(walk_forward_windows(len(values), TRAIN, 21)):
        same = k > 0 and (set(log["members"].iloc[k].split(","))
                          == set(log["members"].iloc[k - 1].split(",")))
        if same:
            assert log["fallback"].iloc[k] == "previous"
            np.testing.assert_array_equal(W[k], W[k - 1])
        else:
            assert log["fallback"].iloc[k] == "inverse_volatility"
            ref = _slow_members(values, int(a), int(b), 3)
            sd = values[a:b][:, ref].std(axis=0, ddof=1)
            np.testing.assert_allclose(W[k, ref], (1 / sd) / (1 / sd).sum(), rtol=1e-12)
            assert W[k].sum() == pytest.approx(1.0)


def _slow_buy_and_hold(r: np.ndarray, fee: float) -> np.ndarray:
    """Equal money in every asset at the start (minus the entry fee), never traded again:
    wealth_t = (1 - fee) * mean_i prod_{s <= t} (1 + r_is); per-bar return = wealth ratio."""
    n, m = r.shape
    wealth = [1.0]
    for t in range(n):
        each = [1.0 / m * np.prod(1.0 + r[: t + 1, i]) for i in range(m)]
        wealth.append((1.0 - fee) * sum(each))
    w = np.array(wealth)
    return w[1:] / w[:-1] - 1.0


@pytest.mark.parametrize("fee", [0.0, 7e-4])
def test_buy_and_hold_equals_slow_reference(fee):
    r = np.random.default_rng(3).normal(0.0005, 0.02, size=(300, 4))
    np.testing.assert_allclose(buy_and_hold(r, fee), _slow_buy_and_hold(r, fee), rtol=1e-10,
                               atol=1e-14)
    assert np.isnan(buy_and_hold(np.zeros((5, 0)))).all()


def _sharpe(x: np.ndarray, ppy: float) -> float:
    return float(np.mean(x) / np.std(x, ddof=1) * np.sqrt(ppy))


def test_profile_metrics_carry_buy_and_hold_of_the_same_bars(small):
    from quantfleet.portfolio import ReturnsMatrix

    # an assets matrix: the benchmark holds its own columns ("auto")
    rm = ReturnsMatrix(small, {"kind": "assets", "periods_per_year": 252.0})
    res = rebalance(rm, "hrp,equal_weight", train=TRAIN, test=TEST, fee_bps=5)
    oos = small.loc[res.returns.index].to_numpy()
    bh = _slow_buy_and_hold(oos, 5e-4)
    met = res.metrics.set_index("profile")
    for p in ("hrp", "equal_weight"):
        assert met.loc[p, "bh_total_return"] == pytest.approx(np.prod(1 + bh) - 1, rel=1e-10)
        assert met.loc[p, "bh_sharpe"] == pytest.approx(_sharpe(bh, 252.0), rel=1e-10)
        assert met.loc[p, "excess_total_return"] == pytest.approx(
            met.loc[p, "total_return"] - met.loc[p, "bh_total_return"], abs=1e-12)
        assert met.loc[p, "excess_sharpe"] == pytest.approx(
            _sharpe(res.returns[p].to_numpy(), 252.0) - _sharpe(bh, 252.0), rel=1e-9)
    assert res.provenance["buy_and_hold"]["assets"] == list(small.columns)
    np.testing.assert_allclose(res.benchmark.to_numpy(), bh, rtol=1e-10, atol=1e-14)


def test_buy_and_hold_of_given_asset_returns_and_its_gaps(small):
    strat = small.rename(columns=lambda c: f"sma_cross/{c}")
    none = rebalance(strat, "equal_weight", train=TRAIN, test=TEST)
    assert np.isnan(none.metrics.loc[0, "bh_sharpe"]) and none.benchmark is None
    assert none.provenance["buy_and_hold"]["text"].startswith("n/a")
    assets = small.iloc[:, :3].copy()
    assets.iloc[300, 2] = np.nan  # a gap inside the out-of-sample span: left out
    res = rebalance(strat, "equal_weight", train=TRAIN, test=TEST, benchmark=assets)
    bh = _slow_buy_and_hold(small.loc[res.returns.index].to_numpy()[:, :2], 0.0)
    assert res.metrics.loc[0, "bh_total_return"] == pytest.approx(np.prod(1 + bh) - 1)
    assert res.provenance["buy_and_hold"]["excluded"] == [small.columns[2]]
    with pytest.raises(DataError, match="benchmark: no asset returns at"):
        rebalance(strat, "equal_weight", train=TRAIN, test=TEST, benchmark=assets.iloc[:-5])

"""The winner's confidence block: stationary bootstrap (Politis & Romano 1994) and the
max-over-pairs circular-shift permutation test, against slow references written from the
definitions, calibrated on random walks and checked on a planted edge."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from quantfleet.errors import QuantfleetError
from quantfleet.kernels.bootstrap import (
    booked_sharpe,
    shifted_max_sharpe,
    stationary_bootstrap_metrics,
    stationary_indices,
)
from quantfleet.research.confidence import block_length, winner_confidence

PPY = 252.0


def ref_indices(start_u, new_u, p):
    """The stationary bootstrap from its definition: a block starts at a uniform index and
    runs on (wrapping at the end); each next bar starts a new block with probability p."""
    B, n = start_u.shape
    out = np.zeros((B, n), dtype=np.int64)
    for b in range(B):
        cur = math.floor(start_u[b, 0] * n)
        out[b, 0] = cur
        for t in range(1, n):
            cur = math.floor(start_u[b, t] * n) if new_u[b, t] < p else (cur + 1) % n
            out[b, t] = cur
    return out


def ref_sharpe(r):
    sd = np.std(r, ddof=1)
    return np.mean(r) / sd * math.sqrt(PPY) if sd > 0 else np.nan


def ref_maxdd(r):
    eq = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:]
    return float(np.max(1.0 - eq / peak))


def ref_book(pos, u, fee):
    """A path's per-bar returns: flat before bar 0, bar t earns the position held over it
    times u[t] and pays fee * |change| at its close."""
    prev = np.concatenate([[0.0], pos[:-1]])
    return (1.0 + prev * u) * (1.0 - fee * np.abs(pos - prev)) - 1.0


def ref_max_null(pos, u, shifts, fee):
    out = []
    for s in shifts:
        sh = [ref_sharpe(ref_book(np.roll(pos[i], -s), u[i], fee)) for i in range(len(pos))]
        sh = [x for x in sh if np.isfinite(x)]
        out.append(max(sh) if sh else -np.inf)
    return np.array(out)


def test_stationary_indices_match_the_definition():
    rng = np.random.default_rng(3)
    su, nu = rng.random((5, 37)), rng.random((5, 37))
    got = np.empty((5, 37), dtype=np.int64)
    stationary_indices(su, nu, 1 / 4, got)
    assert np.array_equal(got, ref_indices(su, nu, 1 / 4))
    # mean block length ~ L: new blocks start at rate 1/L
    su, nu = rng.random((200, 300)), rng.random((200, 300))
    idx = np.empty((200, 300), dtype=np.int64)
    stationary_indices(su, nu, 1 / 6, idx)
    breaks = (np.diff(idx, axis=1) != 1) & ~((idx[:, :-1] == 299) & (idx[:, 1:] == 0))
    assert abs(299 * 200 / max(breaks.sum(), 1) - 6) < 0.6


def test_bootstrap_metrics_match_numpy_reference():
    rng = np.random.default_rng(4)
    r = rng.normal(0.0005, 0.01, 50)
    su, nu = rng.random((6, 50)), rng.random((6, 50))
    got = np.empty((6, 2))
    stationary_bootstrap_metrics(r, su, nu, 1 / 5, PPY, got)
    idx = ref_indices(su, nu, 1 / 5)
    for b in range(6):
        assert got[b, 0] == pytest.approx(ref_sharpe(r[idx[b]]), rel=1e-9)
        assert got[b, 1] == pytest.approx(ref_maxdd(r[idx[b]]), rel=1e-9)


def test_shifted_null_and_p_value_match_the_definition():
    rng = np.random.default_rng(5)
    P, n = 4, 60
    u = rng.normal(0, 0.01, (P, n))
    pos = np.where(rng.random((P, n)) < 0.5, 1.0, 0.0)
    pos[2] = 0.0  # a flat pair: no Sharpe, never the max
    shifts = rng.integers(1, n, size=9)
    got = np.empty(9)
    shifted_max_sharpe(pos, u, shifts, 0.001, PPY, got)
    np.testing.assert_allclose(got, ref_max_null(pos, u, shifts, 0.001), rtol=1e-9)
    obs = np.empty(P)
    booked_sharpe(pos, u, 0.001, PPY, obs)
    np.testing.assert_allclose(obs[[0, 1, 3]], [ref_sharpe(ref_book(pos[i], u[i], 0.001))
                                                for i in (0, 1, 3)], rtol=1e-9)
    assert np.isnan(obs[2])
    # the p-value: (1 + #{k: max_k >= observed}) / (1 + K), with the shifts the seed draws
    w = int(np.nanargmax(obs))
    c = winner_confidence(ref_book(pos[w], u[w], 0.001), pos, u, w, fee_rate=0.001, ppy=PPY,
                          n_boot=10, n_perm=25, seed=7)
    from quantfleet.research.confidence import permutation_shifts

    _, perm_ss = np.random.SeedSequence(7).spawn(2)
    sh = permutation_shifts(n, 25, np.random.default_rng(perm_ss), block_length(n))
    null = ref_max_null(pos, u, sh, 0.001)
    assert c.p_value == pytest.approx((1 + np.sum(null >= obs[w])) / 26)
    assert c.observed == pytest.approx(obs[w]) and c.n_pairs == P


def _universe(seed, P=10, n=300, edge=0.0):
    """Random-walk bar returns; random long/flat positions; with ``edge`` > 0 the winner-to-be
    (row 0) knows the sign of the next bar's return with probability 0.5 + edge."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0.0, 0.01, (P, n))
    pos = np.sign(rng.normal(size=(P, n)))
    if edge:
        nxt = np.sign(np.concatenate([u[0, 1:], [0.0]]))
        know = rng.random(n) < 2 * edge
        pos[0] = np.where(know, nxt, pos[0])
    obs = np.empty(P)
    booked_sharpe(pos, u, 0.0, PPY, obs)
    w = int(np.nanargmax(obs))
    return ref_book(pos[w], u[w], 0.0), pos, u, w


def test_calibrated_on_random_walks_across_seeds():
    ps, covers = [], 0
    for seed in range(40):
        r, pos, u, w = _universe(seed)
        c = winner_confidence(r, pos, u, w, ppy=PPY, n_boot=200, n_perm=99, seed=seed)
        ps.append(c.p_value)
        covers += c.sharpe_ci[0] <= 0.0 <= c.sharpe_ci[1]
    ps = np.array(ps)
    assert np.mean(ps < 0.05) <= 0.15
    assert covers >= 24  # the winner's interval covers 0 in most seeds (it is the best of 10)


def test_planted_edge_is_found():
    for seed in range(5):
        r, pos, u, w = _universe(100 + seed, edge=0.15)
        assert w == 0
        c = winner_confidence(r, pos, u, w, ppy=PPY, n_boot=200, n_perm=99, seed=seed)
        assert c.p_value < 0.05
        assert c.sharpe_ci[0] > 0.0
        assert c.max_drawdown_ci[0] <= c.max_drawdown <= c.max_drawdown_ci[1]


def test_deterministic_and_seeded():
    r, pos, u, w = _universe(1)
    a = winner_confidence(r, pos, u, w, ppy=PPY, n_boot=100, n_perm=50, seed=3)
    b = winner_confidence(r, pos, u, w, ppy=PPY, n_boot=100, n_perm=50, seed=3)
    c = winner_confidence(r, pos, u, w, ppy=PPY, n_boot=100, n_perm=50, seed=4)
    assert a == b and a.to_dict() == b.to_dict()
    assert a.sharpe_ci != c.sharpe_ci
    assert a.block_length == block_length(300) == 7  # ceil(300 ** (1/3))


def test_block_length_rule_and_bad_input():
    assert [block_length(n) for n in (1, 8, 9, 27, 1000, 1001)] == [1, 2, 3, 3, 10, 11]
    r, pos, u, w = _universe(2, P=3, n=20)
    with pytest.raises(QuantfleetError, match="level"):
        winner_confidence(r, pos, u, w, level=1.5)
    with pytest.raises(QuantfleetError, match="n_boot"):
        winner_confidence(r, pos, u, w, n_boot=0)
    with pytest.raises(QuantfleetError, match="winner row"):
        winner_confidence(r, pos, u, 5)


# ---- the tournament's confidence block (the path the CLI runs) ----

def _ar1(seed, phi):
    from tests import reference as ref

    return ref.ar1_universe(seed, phi, n_assets=3, n=1500, start="2000-01-03")


KW = dict(train=400, test=220, grids={"sma_cross": {"fast": [2, 5], "slow": [10, 30]}},
          ppy=252.0, long_short=True, keep_table=False,
          confidence={"n_boot": 200, "n_perm": 99, "seed": 1})


def test_tournament_block_books_the_winner_as_its_path_and_finds_a_planted_edge():
    from quantfleet.backtest.terms import Costs
    from quantfleet.research.tournament import tournament

    # AR(1) phi = 0.5 returns: a trend follower's edge (measured on seeds 0-3: p = 0.01, the
    # smallest 99 shifts can give, CI lower ends 1.1-2.5); phi = 0.3 on these 1100 test bars
    # is too weak for the max over 6 pairs (p 0.02-0.41)
    res = tournament(_ar1(0, 0.5), ["sma_cross", "rsi"], costs=Costs(fee_bps=2), **KW)
    c, top = res.confidence, res.leaderboard.iloc[0]
    assert (c["strategy"], c["asset"]) == (top["strategy"], top["asset"])
    # the null books every pair from its positions and its asset's closes: unshifted, the
    # winner's figure is its path's own Sharpe (close fills, fees as the path pays them)
    assert c["observed"] == pytest.approx(top["oos_sharpe"], rel=1e-9)
    assert c["sharpe"] == pytest.approx(top["oos_sharpe"], rel=1e-9)
    assert c["max_drawdown"] == pytest.approx(top["oos_max_drawdown"], rel=1e-9)
    assert c["n_pairs"] == 6 and c["n_bars"] == len(res.oos_returns)
    assert c["p_value"] == pytest.approx(1 / 100) and c["sharpe_ci"][0] > 0.0
    from quantfleet.research.confidence import confidence_line

    line = confidence_line(c)
    assert line.startswith(f"How sure ({c['strategy']}/{c['asset']}: out of sample): Sharpe 95 % CI")
    assert "p = 0.010 over 6 pairs" in line


def test_tournament_block_is_the_same_on_every_executor_and_can_be_skipped():
    from quantfleet.compute import ProcessExecutor, SerialExecutor
    from quantfleet.research.tournament import tournament

    m = _ar1(2, 0.0)
    serial = tournament(m, ["sma_cross", "rsi"], executor=SerialExecutor(), **KW)
    with ProcessExecutor(workers=2) as ex:
        procs = tournament(m, ["sma_cross", "rsi"], executor=ex,
                           map_options={"chunk_size": 1}, **KW)
    assert serial.confidence is not None
    assert json.dumps(serial.confidence) == json.dumps(procs.confidence)
    assert tournament(m, ["sma_cross"], **{**KW, "confidence": False}).confidence is None
    with pytest.raises(QuantfleetError, match="confidence options: unknown n_boots"):
        tournament(m, ["sma_cross"], **{**KW, "confidence": {"n_boots": 5}})
    with pytest.raises(QuantfleetError, match="confidence option n_perm: 0; give an integer"):
        tournament(m, ["sma_cross"], **{**KW, "confidence": {"n_perm": 0}})


def test_profile_intervals_are_the_percentiles_of_the_bootstrap_from_its_definition():
    import pandas as pd

    from quantfleet.research.confidence import bootstrap_intervals, profile_confidence

    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"hrp": rng.normal(4e-4, 0.01, 120), "ew": rng.normal(0, 0.01, 120)})
    got = profile_confidence(frame, ppy=PPY, n_boot=40, level=0.9, seed=5)
    streams = np.random.SeedSequence(5).spawn(2)
    for (name, col), ss in zip(frame.items(), streams, strict=True):
        r = col.to_numpy()
        g = np.random.default_rng(ss)  # 40 replicates: one batch of uniforms, start then new
        su, nu = g.random((40, 120)), g.random((40, 120))
        idx = ref_indices(su, nu, 1 / block_length(120))
        sh = [ref_sharpe(r[i]) for i in idx]
        dd = [ref_maxdd(r[i]) for i in idx]
        c = got[name]
        np.testing.assert_allclose(c["sharpe_ci"], np.quantile(sh, [0.05, 0.95]), rtol=1e-9)
        np.testing.assert_allclose(c["max_drawdown_ci"], np.quantile(dd, [0.05, 0.95]),
                                   rtol=1e-9)
        assert c["sharpe"] == pytest.approx(ref_sharpe(r)) and c["seed"] == 5
        assert c["block_length"] == 5 and c["n_bars"] == 120
    # a profile's figures do not depend on the columns after it
    alone = profile_confidence(frame[["hrp"]], ppy=PPY, n_boot=40, level=0.9, seed=5)
    assert alone["hrp"] == got["hrp"]
    assert bootstrap_intervals(np.zeros(1), ppy=PPY, n_boot=3)["sharpe_ci"] == [None, None]

"""Overfitting statistics: PSR, expected max Sharpe, DSR, MinTRL, PBO (CSCV) and the tournament
wrapper, against the papers' worked example, direct scipy computations, Monte Carlo and a slow
itertools reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from quantfleet.backtest.blocks import BlockStats, block_stats
from quantfleet.errors import QuantfleetError
from quantfleet.research.overfit import (
    PBOResult,
    deflated_sharpe,
    deflated_sharpe_from_returns,
    expected_max_sharpe,
    min_track_record_length,
    pbo,
    pbo_from_blocks,
    probabilistic_sharpe,
    return_moments,
    tournament_overfit,
    verdict,
)

EULER = 0.5772156649015329

# --------------------------------------------------------------------------------------------
# PSR, expected max Sharpe, DSR, MinTRL


def test_return_moments_match_scipy():
    rng = np.random.default_rng(0)
    r = rng.standard_t(5, 500) * 0.01 + 0.0005
    sr, n, skew, kurt = return_moments(np.concatenate([r, [np.nan]]))
    assert n == 500
    assert sr == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-12)
    assert skew == pytest.approx(stats.skew(r), rel=1e-10)
    assert kurt == pytest.approx(stats.kurtosis(r, fisher=False), rel=1e-10)


@pytest.mark.parametrize("sr,n,skew,kurt,sr0", [
    (0.1, 250, 0.0, 3.0, 0.0),
    (0.05, 1000, -0.8, 7.5, 0.02),
    (-0.02, 60, 0.5, 4.0, 0.0),
])
def test_psr_equals_direct_norm_computation(sr, n, skew, kurt, sr0):
    want = stats.norm.cdf((sr - sr0) * math.sqrt(n - 1)
                          / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    got = probabilistic_sharpe(sr=sr, n_bars=n, skew=skew, kurt=kurt, sr_benchmark=sr0)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_psr_from_returns_uses_the_sample_moments():
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, 750)
    sr, n, skew, kurt = return_moments(r)
    assert probabilistic_sharpe(r, 0.01) == pytest.approx(
        probabilistic_sharpe(sr=sr, n_bars=n, skew=skew, kurt=kurt, sr_benchmark=0.01))


def test_psr_rejects_excess_kurtosis_and_ambiguous_input():
    with pytest.raises(QuantfleetError, match="Pearson kurtosis .*add 3"):
        probabilistic_sharpe(sr=0.1, n_bars=100, skew=0.0, kurt=0.5)
    with pytest.raises(QuantfleetError, match="either returns or"):
        probabilistic_sharpe([0.01, 0.02, -0.01], sr=0.1, n_bars=10)
    with pytest.raises(QuantfleetError, match="give returns, or sr= and n_bars="):
        probabilistic_sharpe(sr=0.1)
    with pytest.raises(QuantfleetError, match="n_bars must be > 1"):
        probabilistic_sharpe(sr=0.1, n_bars=1)


def test_expected_max_sharpe_formula_term_by_term():
    n, v = 50, 0.04
    want = math.sqrt(v) * ((1 - EULER) * stats.norm.ppf(1 - 1 / n)
                           + EULER * stats.norm.ppf(1 - 1 / (n * math.e)))
    assert expected_max_sharpe(n, v) == pytest.approx(want, rel=1e-12)
    assert expected_max_sharpe(1, v) == 0.0
    assert expected_max_sharpe(10, 0.0) == 0.0
    with pytest.raises(QuantfleetError, match="n_trials must be a whole number >= 1"):
        expected_max_sharpe(0, v)
    with pytest.raises(QuantfleetError, match="var_trials must be a finite variance"):
        expected_max_sharpe(10, -1.0)


@pytest.mark.parametrize("n_trials", [100, 1000])
def test_expected_max_sharpe_against_monte_carlo(n_trials):
    # the maximum of N i.i.d. N(0, V) draws; the approximation is within ~1% for N >= 100
    rng = np.random.default_rng(42)
    v = 0.25
    draws = rng.standard_normal((4000, n_trials)) * math.sqrt(v)
    mc = draws.max(axis=1).mean()
    assert expected_max_sharpe(n_trials, v) == pytest.approx(mc, rel=0.02)


def test_deflated_sharpe_paper_numerical_example():
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: N = 100
    # trials, V[SR] = 1/2 annualized, winner SR = 2.5 annualized, 5 years of daily data
    # (T = 1250, 250 bars a year), skew = -3, kurtosis = 10. The paper reports
    # SR0 ≈ 0.1132 (non-annualized) and DSR ≈ 0.9004.
    ppy = 250
    sr, v = 2.5 / math.sqrt(ppy), 0.5 / ppy
    sr0 = expected_max_sharpe(100, v)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert sr0 * math.sqrt(ppy) == pytest.approx(1.7894, abs=5e-4)  # annualized
    dsr = deflated_sharpe(sr, 1250, -3.0, 10.0, 100, v)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    # term by term: DSR is PSR with the benchmark set to SR0
    z = (sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2)
    assert dsr == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    assert dsr == pytest.approx(probabilistic_sharpe(sr=sr, n_bars=1250, skew=-3, kurt=10,
                                                     sr_benchmark=sr0), rel=1e-12)


def test_deflated_sharpe_falls_with_more_trials_and_is_psr_for_one_trial():
    sr, n = 0.08, 1000
    d = [deflated_sharpe(sr, n, 0.0, 3.0, k, 0.001) for k in (1, 10, 100, 1000)]
    assert d == sorted(d, reverse=True)
    assert d[0] == pytest.approx(probabilistic_sharpe(sr=sr, n_bars=n))


def test_deflated_sharpe_from_returns():
    rng = np.random.default_rng(3)
    winner = rng.normal(0.001, 0.01, 800)
    trials = rng.normal(0.0, 0.03, 40)
    trials_with_nan = np.concatenate([trials, [np.nan]])
    sr, n, skew, kurt = return_moments(winner)
    want = deflated_sharpe(sr, n, skew, kurt, 41, np.var(trials, ddof=1))
    assert deflated_sharpe_from_returns(winner, trials_with_nan) == pytest.approx(want)
    # annualized trial Sharpes are converted with periods_per_year
    got = deflated_sharpe_from_returns(winner, trials_with_nan * math.sqrt(252),
                                       periods_per_year=252)
    assert got == pytest.approx(want)


@pytest.mark.parametrize("sr,skew,kurt,sr0,conf", [
    (0.1, 0.0, 3.0, 0.0, 0.95),
    (0.07, -1.2, 9.0, 0.02, 0.99),
    (0.2, 0.4, 4.0, 0.1, 0.9),
])
def test_min_track_record_length_gives_psr_equal_to_confidence(sr, skew, kurt, sr0, conf):
    n = min_track_record_length(sr, skew, kurt, sr0, conf)
    want = 1 + (1 - skew * sr + (kurt - 1) / 4 * sr**2) * (stats.norm.ppf(conf) / (sr - sr0))**2
    assert n == pytest.approx(want, rel=1e-12)
    psr = probabilistic_sharpe(sr=sr, n_bars=n, skew=skew, kurt=kurt, sr_benchmark=sr0)
    assert psr == pytest.approx(conf, abs=1e-12)


def test_min_track_record_length_is_infinite_without_an_edge():
    assert min_track_record_length(0.05, sr_benchmark=0.05) == math.inf
    assert min_track_record_length(-0.1) == math.inf
    with pytest.raises(QuantfleetError, match="confidence must be in"):
        min_track_record_length(0.1, confidence=95)


# --------------------------------------------------------------------------------------------
# PBO (CSCV)


def _slow_pbo(x: np.ndarray, s: int, metric="sharpe"):
    """Reference CSCV with itertools and per-combination rows, no block sums.

    From the definition: drop the first T mod S rows, S equal blocks; trials without a finite
    return left are dropped; per combination the in-sample best finite score wins (ties: the
    lowest column; none finite: no selection, logit NaN, left out of PBO); out of sample it is
    ranked with average ranks, non-finite scores below every finite one."""
    t, _ = x.shape
    x = x[t % s:]
    kept = [j for j in range(x.shape[1]) if np.isfinite(x[:, j]).any()]
    x = x[:, kept]
    n = x.shape[1]
    blocks = np.array_split(np.arange(x.shape[0]), s)

    def score(rows):
        if callable(metric):
            return np.asarray(metric(rows), dtype=float)
        out = np.full(n, np.nan)
        for j in range(n):
            r = rows[:, j][np.isfinite(rows[:, j])]
            if metric == "mean":
                out[j] = r.mean() if r.size else np.nan
            elif r.size >= 2 and r.std(ddof=1) > 0:
                out[j] = r.mean() / r.std(ddof=1)
        return out

    logits, pairs, best_trials = [], [], []
    for chosen in itertools.combinations(range(s), s // 2):
        is_rows = np.concatenate([blocks[b] for b in chosen])
        oos_rows = np.concatenate([blocks[b] for b in range(s) if b not in chosen])
        p_is, p_oos = score(x[is_rows]), score(x[oos_rows])
        finite = [j for j in range(n) if np.isfinite(p_is[j])]
        if not finite:
            logits.append(np.nan)
            pairs.append((np.nan, np.nan))
            best_trials.append(-1)
            continue
        top = max(p_is[j] for j in finite)
        best = min(j for j in finite if p_is[j] == top)
        v = np.where(np.isfinite(p_oos), p_oos, -np.inf)
        rank = stats.rankdata(v, method="average")[best]
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
        pairs.append((p_is[best], p_oos[best]))
        best_trials.append(kept[best])
    logits = np.array(logits)
    sel = np.isfinite(logits)
    return float(np.mean(logits[sel] <= 0)), logits, np.array(pairs), np.array(best_trials)


def test_pbo_hand_computed_case():
    # S = 4 blocks of 2 rows, N = 3 trials; block means (rows = blocks, cols = trials A, B, C):
    #   b0: 3 -1 0   b1: 3 -1 0   b2: -1 1 0   b3: -1 1 0
    # IS {0,1}: A wins (3), OOS {2,3}: A = -1 is worst  -> ω = 1/4, λ = ln(1/3)
    # IS {0,2},{0,3},{1,2},{1,3}: A wins (1), OOS A = 1 is best -> ω = 3/4, λ = ln 3
    # IS {2,3}: B wins (1), OOS {0,1}: B = -1 is worst -> λ = ln(1/3)
    means = np.array([[3, -1, 0], [3, -1, 0], [-1, 1, 0], [-1, 1, 0]], dtype=float)
    rows = np.repeat(means, 2, axis=0) + np.tile([[0.5], [-0.5]], (4, 3))
    x = np.vstack([[1e6, -1e6, 0.0], rows])  # one leading row, dropped (T mod S = 1)
    res = pbo(x, n_splits=4, metric="mean")
    assert res.rows_dropped == 1
    assert res.n_combinations == 6 and res.n_trials == 3
    np.testing.assert_allclose(res.logits, np.log([1 / 3, 3, 3, 3, 3, 1 / 3]))
    assert res.pbo == pytest.approx(2 / 6)
    np.testing.assert_array_equal(res.best_trial, [0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(res.is_perf, [3, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(res.oos_perf, [-1, 1, 1, 1, 1, -1])
    assert res.prob_loss == pytest.approx(2 / 6)
    # OLS of (3,-1), (1,1)x4, (1,-1): Sxy = -24/9, Sxx = 30/9
    assert res.degradation_slope == pytest.approx(-0.8)
    assert res.degradation_intercept == pytest.approx(1 / 3 + 0.8 * 4 / 3)


@pytest.mark.parametrize("metric,s,t,n", [("sharpe", 8, 203, 7), ("mean", 6, 120, 4),
                                          ("sharpe", 4, 41, 2)])
def test_vectorised_pbo_equals_slow_reference(metric, s, t, n):
    rng = np.random.default_rng(7 + s)
    x = rng.normal(0.0, 0.01, (t, n)) + rng.normal(0, 0.002, n)
    x[rng.random((t, n)) < 0.05] = np.nan  # missing bars
    got = pbo(x, n_splits=s, metric=metric)
    want_pbo, want_logits, want_pairs, want_best = _slow_pbo(x, s, metric)
    assert got.pbo == want_pbo
    np.testing.assert_array_equal(got.best_trial, want_best)
    np.testing.assert_allclose(got.logits, want_logits, rtol=1e-12)
    np.testing.assert_allclose(got.is_perf, want_pairs[:, 0], rtol=1e-9)
    np.testing.assert_allclose(got.oos_perf, want_pairs[:, 1], rtol=1e-9)


def test_callable_metric_path_matches_builtin():
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 0.01, (96, 5))

    def sharpe(a):
        return a.mean(axis=0) / a.std(axis=0, ddof=1)

    a, b = pbo(x, 6, metric=sharpe), pbo(x, 6)
    assert a.pbo == b.pbo and a.metric == "sharpe"
    np.testing.assert_allclose(a.logits, b.logits)


def _ragged(seed: int, t: int, n: int, s: int) -> np.ndarray:
    """Returns with missing bars (NaN, ±inf), an all-NaN trial, a trial whose only data is in
    the T mod S dropped rows, and a duplicate column (ties in and out of sample)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0003, 0.01, (t, n)) + rng.normal(0, 0.002, n)
    x[rng.random((t, n)) < 0.05] = np.nan
    x[rng.random((t, n)) < 0.01] = np.inf
    x[rng.random((t, n)) < 0.01] = -np.inf
    x[:, 1] = x[:, 0]
    x[:, 2] = np.nan
    assert t % s > 0
    x[:, 3] = np.nan
    x[0, 3] = 0.01
    return x


@pytest.mark.parametrize("metric,s,t,n,seed", [("sharpe", 8, 203, 9, 1), ("sharpe", 6, 125, 6, 2),
                                               ("mean", 4, 81, 5, 3), ("sharpe", 2, 33, 4, 4)])
def test_pbo_equals_slow_reference_on_ragged_data(metric, s, t, n, seed):
    x = _ragged(seed, t, n, s)
    got = pbo(x, n_splits=s, metric=metric)
    want_pbo, want_logits, want_pairs, want_best = _slow_pbo(x, s, metric)
    assert got.trials_dropped == (2, 3) and got.n_trials == n - 2
    assert got.rows_dropped == t % s
    assert got.pbo == want_pbo
    np.testing.assert_array_equal(got.best_trial, want_best)
    assert 1 not in set(got.best_trial)  # column 1 ties column 0 everywhere: the lowest wins
    np.testing.assert_allclose(got.logits, want_logits, rtol=1e-12)
    np.testing.assert_allclose(got.is_perf, want_pairs[:, 0], rtol=1e-9)
    np.testing.assert_allclose(got.oos_perf, want_pairs[:, 1], rtol=1e-9)


def test_pbo_from_blocks_is_pbo():
    x = _ragged(6, 170, 12, 16)
    df = pd.DataFrame(x, columns=[f"t{i}" for i in range(12)])
    want = pbo(df, n_splits=16)
    b = block_stats(x.T, 16)
    parts = BlockStats.concat([block_stats(x[:, :5].T, 16), block_stats(x[:, 5:].T, 16)])
    for got in (pbo_from_blocks(b, labels=list(df.columns)),
                pbo_from_blocks(parts, labels=list(df.columns))):
        assert got.pbo == want.pbo and got.trials_dropped == ("t2", "t3")
        np.testing.assert_array_equal(got.logits, want.logits)
        np.testing.assert_array_equal(got.best_trial, want.best_trial)
        np.testing.assert_array_equal(got.is_perf, want.is_perf)
        assert got.rows_dropped == want.rows_dropped == 10


def test_non_finite_in_sample_scores_never_win():
    rng = np.random.default_rng(8)
    x = rng.normal(0.0, 0.01, (64, 5))
    x[0, :] = 1.0  # a spike in block 0 of every trial

    def spiky(a):
        # +inf for trial 0 always; no finite score at all when block 0 is in the rows
        if (a > 0.5).any():
            return np.full(a.shape[1], np.nan)
        out = a.mean(axis=0)
        out[0] = np.inf
        return out

    got = pbo(x, 4, metric=spiky)
    want_pbo, want_logits, _, want_best = _slow_pbo(x, 4, spiky)
    assert 0 not in set(got.best_trial)
    # combinations with block 0 in sample select nothing: left out (logit NaN, best -1)
    none = got.best_trial == -1
    assert none.sum() == 3 and np.isnan(got.logits[none]).all()
    np.testing.assert_array_equal(got.best_trial, want_best)
    np.testing.assert_allclose(got.logits, want_logits)
    assert got.pbo == want_pbo == float(np.mean(got.logits[~none] <= 0))


def test_pbo_from_blocks_errors_name_the_fix():
    b = block_stats(np.random.default_rng(0).normal(size=(3, 100)), 16)
    with pytest.raises(TypeError, match="BlockStats"):
        pbo_from_blocks(np.zeros((16, 3)))
    with pytest.raises(QuantfleetError, match="per-bar returns: pbo"):
        pbo_from_blocks(b, metric="sortino")
    with pytest.raises(QuantfleetError, match="n_splits must be an even number"):
        pbo_from_blocks(block_stats(np.zeros((3, 100)), 5))
    with pytest.raises(QuantfleetError, match="2 names for 3 trials"):
        pbo_from_blocks(b, labels=["a", "b"])
    with pytest.raises(QuantfleetError, match="too few for n_splits=16"):
        pbo_from_blocks(block_stats(np.zeros((3, 10)), 16))
    with pytest.raises(QuantfleetError, match="cut differently"):
        BlockStats.concat([b, block_stats(np.zeros((3, 99)), 16)])


def test_pbo_near_zero_when_one_trial_dominates_every_block():
    rng = np.random.default_rng(11)
    x = rng.normal(0.0, 0.01, (1600, 10))
    x[:, 3] += 0.01  # Sharpe ~1 per bar: best in every block, in and out of sample
    res = pbo(x, n_splits=16)
    assert res.n_combinations == math.comb(16, 8) == 12870
    assert res.pbo == 0.0
    assert np.all(res.best_trial == 3)
    assert np.all(res.relative_rank == 10 / 11)
    assert res.prob_loss == 0.0


def test_pbo_near_half_for_pure_noise():
    # a single data set's PBO is noisy (its combinations share data); average over seeds
    vals = [pbo(np.random.default_rng(seed).normal(0, 0.01, (480, 20)), n_splits=8).pbo
            for seed in range(30)]
    assert np.mean(vals) == pytest.approx(0.5, abs=0.08)


def test_pbo_high_when_in_sample_winners_revert():
    # each trial's mean alternates sign between halves of the blocks: IS-best is OOS-worst
    rng = np.random.default_rng(2)
    t, n = 320, 6
    x = rng.normal(0, 0.001, (t, n))
    blocks = np.arange(t) // (t // 8)
    for j in range(n):
        x[:, j] += np.where((blocks + j) % 2 == 0, 0.01, -0.01) * (j + 1) / n
    assert pbo(x, n_splits=8).pbo > 0.5


def test_pbo_handles_nan_columns_and_labels():
    rng = np.random.default_rng(4)
    df = pd.DataFrame(rng.normal(0, 0.01, (100, 4)), columns=["a", "b", "c", "d"])
    df["c"] = np.nan
    res = pbo(df, n_splits=4)
    assert res.trials_dropped == ("c",)
    assert res.n_trials == 3
    assert set(res.best_trial) <= {0, 1, 3}  # indices into the input's columns
    assert isinstance(res, PBOResult) and "pbo=" in repr(res)


def test_pbo_errors_name_the_fix():
    x = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.raises(QuantfleetError, match="n_splits must be an even number"):
        pbo(x, n_splits=5)
    with pytest.raises(QuantfleetError, match="at least 2 trials"):
        pbo(x[:, :1])
    with pytest.raises(QuantfleetError, match="at least 2 trials.*all-NaN"):
        pbo(np.column_stack([x[:, 0], np.full(100, np.nan)]))
    with pytest.raises(QuantfleetError, match="too few for n_splits=16"):
        pbo(x[:10])
    with pytest.raises(QuantfleetError, match="2-D"):
        pbo(x[:, 0])
    with pytest.raises(QuantfleetError, match="unknown metric 'sortino'"):
        pbo(x, metric="sortino")
    with pytest.raises(QuantfleetError, match="n_splits <= 20"):
        pbo(x, n_splits=30)


def test_pbo_is_deterministic():
    x = np.random.default_rng(9).normal(size=(160, 5))
    a, b = pbo(x, 8), pbo(x, 8)
    np.testing.assert_array_equal(a.logits, b.logits)


# --------------------------------------------------------------------------------------------
# verdict


def test_verdict_words_and_thresholds():
    assert verdict(dsr=0.97, n_trials=994) == (
        "DSR 0.97: the winner's Sharpe is unlikely to be luck among 994 trials")
    assert "inconclusive" in verdict(dsr=0.8)
    assert "likely luck" in verdict(dsr=0.2)
    assert verdict(pbo=0.62) == ("PBO 0.62: the in-sample winner usually underperforms out of "
                                 "sample — likely overfit")
    assert "holds up" in verdict(pbo=0.1)
    assert "some overfitting" in verdict(pbo=0.4)
    both = verdict(0.97, 0.62, n_trials=10)
    assert both.startswith("DSR 0.97") and "; PBO 0.62" in both
    assert "n/a" in verdict(dsr=float("nan"))
    assert verdict(dsr=0.98, pbo=0.34, n_trials=180, among="20 assets × 9 combos",
                   pbo_among="BBY's 9 combos") == (
        "DSR 0.98: the winner's Sharpe is unlikely to be luck as the best of 180 trials "
        "(20 assets × 9 combos); PBO 0.34 (on BBY's 9 combos): the in-sample winner often lands "
        "in the bottom half out of sample — some overfitting")
    with pytest.raises(QuantfleetError, match="dsr= and/or pbo="):
        verdict()


# --------------------------------------------------------------------------------------------
# tournament tables


def _table(is_s: np.ndarray, oos_s: np.ndarray, strategy: str = "s", asset: str = "A"):
    """Rows for one (strategy, asset): is_s/oos_s have shape (windows, combos)."""
    w, c = is_s.shape
    rows = []
    for i in range(w):
        best = int(np.argmax(is_s[i]))
        for k in range(c):
            rows.append({"strategy": strategy, "asset": asset, "window": i, "combo": k,
                         "selected": k == best, "is_sharpe": is_s[i, k],
                         "oos_sharpe": oos_s[i, k]})
    return pd.DataFrame(rows)


def test_tournament_overfit_walk_forward_pbo():
    # 4 windows, 3 combos; IS-best OOS ranks: 3 (best), 1, 2 (median), 3
    is_s = np.array([[2.0, 1, 0], [0, 2, 1], [1, 0, 2], [2, 1, 0]])
    oos_s = np.array([[1.0, 0, -1], [1, -1, 0], [1, -1, 0], [0.5, 0.2, 0.1]])
    df = pd.concat([_table(is_s, oos_s), _table(is_s, -oos_s, asset="B")])
    out = tournament_overfit(df)
    a = out.set_index("asset").loc["A"]
    # ω = 3/4, 1/4, 2/4, 3/4 -> λ = ln3, -ln3, 0, ln3; PBO counts λ <= 0
    assert a["pbo"] == pytest.approx(2 / 4)
    assert a["mean_logit"] == pytest.approx(math.log(3) / 4)
    assert a["n_windows"] == 4 and a["n_combos"] == 3
    b = out.set_index("asset").loc["B"]  # reversed OOS: ranks 1, 3, 2, 1
    assert b["pbo"] == pytest.approx(3 / 4)
    assert np.isnan(a["dsr"]) and a["verdict"].startswith("PBO 0.50")


def test_tournament_overfit_uses_the_selected_flag():
    is_s = np.array([[2.0, 1, 0], [2.0, 1, 0]])
    oos_s = np.array([[1.0, 0, -1], [1.0, 0, -1]])
    df = _table(is_s, oos_s)
    df["selected"] = df["combo"] == 2  # the tournament picked combo 2 (another metric)
    assert tournament_overfit(df)["pbo"].iloc[0] == 1.0
    assert tournament_overfit(df.drop(columns="selected"))["pbo"].iloc[0] == 0.0


def test_tournament_overfit_windows_without_a_finite_in_sample_metric_select_nothing():
    # window 0: every IS Sharpe NaN -> no selection, left out of PBO (it used to pick combo 0);
    # window 1: NaN and +inf never win, the finite best (combo 2) does; window 2: a tie between
    # combos 1 and 2 goes to combo 1
    nan, inf = np.nan, np.inf
    is_s = np.array([[nan, nan, nan], [nan, inf, 0.5], [0.0, 1.0, 1.0]])
    oos_s = np.array([[1.0, 0, -1], [1.0, 0, -1], [-1.0, 1.0, 0.0]])
    df = _table(is_s, oos_s).drop(columns="selected")
    row = tournament_overfit(df).iloc[0]
    # window 1: combo 2 ranks 1 of 3 (ω = 1/4, λ < 0); window 2: combo 1 ranks 3 (λ > 0)
    assert row["n_windows"] == 3 and row["pbo_windows"] == 2
    assert row["pbo"] == pytest.approx(1 / 2)
    assert row["mean_logit"] == pytest.approx(0.0)
    for sign, metric in ((1.0, "sharpe"), (-1.0, "max_drawdown")):  # lower-is-better metric
        t = pd.DataFrame({"strategy": "s", "asset": "A", "window": df["window"],
                          "combo": df["combo"], f"is_{metric}": sign * df["is_sharpe"],
                          f"oos_{metric}": sign * df["oos_sharpe"]})
        assert tournament_overfit(t, metric=metric)["pbo"].iloc[0] == pytest.approx(1 / 2)


def test_tournament_overfit_deflated_sharpe_of_stitched_returns():
    rng = np.random.default_rng(8)
    w, c, ppy = 5, 4, 252.0
    is_s = rng.normal(0, 1, (w, c))
    oos_s = rng.normal(0.5, 1, (w, c))
    df = _table(is_s, oos_s)
    ts = pd.date_range("2020-01-01", periods=500, freq="D")
    r = rng.normal(0.0008, 0.01, 500)
    r[:3] = np.nan
    oos = pd.DataFrame({"s/A": r}, index=ts)
    out = tournament_overfit(df, oos, periods_per_year=ppy).iloc[0]
    trial_sr = oos_s.mean(axis=0) / math.sqrt(ppy)
    sr, n, skew, kurt = return_moments(r)
    want = deflated_sharpe(sr, n, skew, kurt, c, np.var(trial_sr, ddof=1))
    assert out["dsr"] == pytest.approx(want, rel=1e-12)
    assert out["n_bars"] == 497 and out["sharpe"] == pytest.approx(sr)
    assert out["sr0"] == pytest.approx(expected_max_sharpe(c, np.var(trial_sr, ddof=1)))
    # the pair's own DSR says what it judges: the walk-forward pick among this pair's combos
    assert out["verdict"].startswith(f"DSR {want:.2f}: the walk-forward pick's OOS Sharpe")
    assert f"as the best of {c} trials (this pair's {c} combos in each window)" in out["verdict"]
    # periods per year inferred from the timestamps (daily calendar bars: 365)
    inferred = tournament_overfit(df, oos).iloc[0]
    want365 = deflated_sharpe(sr, n, skew, kurt, c, np.var(oos_s.mean(axis=0) / math.sqrt(365),
                                                             ddof=1))
    assert inferred["dsr"] == pytest.approx(want365, rel=1e-12)


def test_tournament_overfit_accepts_arrow_and_names_missing_columns():
    import pyarrow as pa

    df = _table(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert tournament_overfit(pa.Table.from_pandas(df))["pbo"].iloc[0] == 1.0
    with pytest.raises(QuantfleetError, match="lacks column.*oos_sharpe"):
        tournament_overfit(df.drop(columns="oos_sharpe"))
    with pytest.raises(TypeError, match="pandas DataFrame or pyarrow Table"):
        tournament_overfit([1, 2])


def test_tournament_overfit_on_a_real_tournament():
    from quantfleet.data.market import MarketData
    from quantfleet.research.tournament import tournament
    from tests import reference as ref

    rng = np.random.default_rng(11)
    close = np.stack([ref.random_close(rng, 700, 0.015) for _ in range(2)])
    ts = (np.datetime64("2012-01-02") + np.arange(700)).astype("datetime64[ns]")
    market = MarketData(ts, ("X", "Y"), close, source="test")
    res = tournament(market, ["sma_cross"], train=200, test=100, ppy=252.0,
                     grids={"sma_cross": {"fast": [3, 8, 15], "slow": [20, 40]}})
    out = tournament_overfit(res.table, res.oos_returns, periods_per_year=252.0)
    assert list(out["asset"]) == ["X", "Y"]
    assert (out["n_windows"] == 5).all() and (out["n_combos"] == 6).all()
    assert out["pbo"].between(0, 1).all() and out["dsr"].between(0, 1).all()
    board = res.leaderboard.set_index("asset")["oos_sharpe"]
    np.testing.assert_allclose(out["sharpe"] * math.sqrt(252.0), board.loc[["X", "Y"]])


def test_combo_sharpes_count_a_flat_window_as_zero_and_a_never_traded_combo_as_no_trial():
    from quantfleet.research.overfit import combo_sharpes

    nan = np.nan
    # 3 windows × 3 combos, window-major; combo 1 flat in window 0, combo 2 never trades
    s = np.array([1.0, nan, nan, 2.0, 4.0, nan, 3.0, 2.0, nan])
    got = combo_sharpes(s, 3, 16.0)
    np.testing.assert_allclose(got[:2], [(1 + 2 + 3) / 3 / 4, (0 + 4 + 2) / 3 / 4])
    assert np.isnan(got[2])


def test_tournament_winner_overfit_counts_trials_over_all_pairs():
    from quantfleet.research.overfit import tournament_winner_overfit

    nan_ = float("nan")
    rng = np.random.default_rng(3)
    r = rng.normal(0.001, 0.01, 400)
    sr, n, skew, kurt = return_moments(r)
    rows = [{"strategy": "a", "asset": "X", "sharpe": sr, "n_bars": n, "skew": skew,
             "kurt": kurt, "pbo": 0.25, "pbo_windows": 4},
            {"strategy": "a", "asset": "Y", "sharpe": 0.01, "n_bars": n, "skew": 0.0,
             "kurt": 3.0, "pbo": 1.0, "pbo_windows": 2},
            {"strategy": "b", "asset": "X", "sharpe": nan_, "n_bars": 0,
             "skew": nan_, "kurt": nan_, "pbo": nan_, "pbo_windows": 0}]
    trials = [np.array([0.02, 0.01, -0.01]), np.array([0.0, 0.03, nan_]),
              np.array([0.005, -0.02, 0.01, 0.0, 0.04])]
    of = tournament_winner_overfit(rows, trials, 0)
    fin = np.array([0.02, 0.01, -0.01, 0.0, 0.03, 0.005, -0.02, 0.01, 0.0, 0.04])
    v = np.var(fin, ddof=1)
    assert (of["n_trials"], of["n_unscored"], of["n_pairs"]) == (10, 1, 3)
    assert of["var_trials"] == pytest.approx(v, rel=1e-12)
    assert of["dsr"] == pytest.approx(deflated_sharpe(sr, n, skew, kurt, 10, v), rel=1e-12)
    assert of["pbo"] == pytest.approx((0.25 * 4 + 1.0 * 2) / 6) and of["pbo_windows"] == 6
    assert of["selected_among"] == ("3 strategy × asset pairs × 3–5 combos each; 1 trial "
                                    "without an out-of-sample Sharpe (never traded) left out")
    assert "as the best of 10 trials (3 strategy × asset pairs" in of["verdict"]
    assert "PBO 0.50 (on 6 walk-forward windows of 2 pairs, pooled)" in of["verdict"]
    # a winner without a Sharpe (never traded out of sample) has no DSR, and says so
    assert "DSR n/a" in tournament_winner_overfit(rows, trials, 2)["verdict"]
    with pytest.raises(QuantfleetError, match="3 pair rows and 2 trial Sharpe arrays"):
        tournament_winner_overfit(rows, trials[:2], 0)

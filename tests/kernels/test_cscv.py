"""``kernels.cscv.cscv_select`` against a slow reference written from CSCV's definition: per
split, each trial's returns on the in-sample rows and on the others, the Sharpe ratio (or mean)
of each, the first in-sample maximum among finite values, its out-of-sample rank among all
trials (non-finite lowest, ties averaged) / (N + 1)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from quantfleet.backtest.blocks import block_stats
from quantfleet.kernels.cscv import cscv_select


def _slow(x: np.ndarray, s: int, sharpe: bool):
    """From the rows: x (T, N) with T a multiple of S; NaN/inf = missing bars."""
    t, n = x.shape
    blocks = np.split(x, s)
    out = []
    for ins in itertools.combinations(range(s), s // 2):
        is_rows = np.concatenate([blocks[b] for b in ins])
        oos_rows = np.concatenate([blocks[b] for b in range(s) if b not in ins])

        def metric(rows):
            vals = []
            for j in range(n):
                r = rows[:, j][np.isfinite(rows[:, j])]
                if sharpe:
                    sd = r.std(ddof=1) if r.size >= 2 else 0.0
                    vals.append(r.mean() / sd if r.size >= 2 and sd > 0 else math.nan)
                else:
                    vals.append(r.mean() if r.size else math.nan)
            return np.array(vals)

        ip, op = metric(is_rows), metric(oos_rows)
        fin = [j for j in range(n) if np.isfinite(ip[j])]
        if not fin:
            out.append((-1, math.nan))
            continue
        b = max(fin, key=lambda j: (ip[j], -j))  # the first of equal maxima
        v = np.where(np.isfinite(op), op, -np.inf)
        rank = (v < v[b]).sum() + ((v == v[b]).sum() + 1) / 2
        out.append((b, rank / (n + 1), ip[b], op[b]))
    return out


def _run(x: np.ndarray, s: int, sharpe: bool):
    st = block_stats(x.T, s)
    n_all = st.count.sum(axis=0)
    m0 = (st.count * st.mean).sum(axis=0) / n_all
    d = st.mean - m0
    s1 = st.count * d
    s2 = st.m2 + s1 * d
    mask = np.zeros((math.comb(s, s // 2), s), dtype=bool)
    for c, ins in enumerate(itertools.combinations(range(s), s // 2)):
        mask[c, list(ins)] = True
    c = mask.shape[0]
    pair = np.array([next(q for q in range(c) if (mask[q] == ~mask[i]).all()) for i in range(c)])
    best, omega = np.empty(c, np.intp), np.empty(c)
    is_b, oos_b = np.empty(c), np.empty(c)
    cscv_select(mask, pair, st.count.astype(np.float64), s1, s2, st.count.sum(axis=0), s1.sum(axis=0),
                s2.sum(axis=0), m0, sharpe, best, omega, is_b, oos_b)
    return best, omega, is_b, oos_b


@pytest.mark.parametrize("sharpe,s,t,n,seed", [(True, 6, 120, 7, 1), (False, 4, 80, 5, 2),
                                               (True, 8, 160, 4, 3), (True, 2, 30, 3, 4)])
def test_cscv_select_equals_the_definition(sharpe, s, t, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0003, 0.01, (t, n)) + rng.normal(0, 0.002, n)
    x[rng.random((t, n)) < 0.05] = np.nan
    x[rng.random((t, n)) < 0.02] = np.inf
    x[:, 1] = x[:, 0]  # a duplicate: ties in and out of sample go to the lowest column
    best, omega, is_b, oos_b = _run(x, s, sharpe)
    want = _slow(x, s, sharpe)
    assert [int(b) for b in best] == [w[0] for w in want]
    assert 1 not in set(best.tolist())
    for c, w in enumerate(want):
        if w[0] < 0:
            assert math.isnan(omega[c])
            continue
        assert omega[c] == w[1]
        np.testing.assert_allclose([is_b[c], oos_b[c]], [w[2], w[3]], rtol=1e-9)


def test_a_split_without_finite_in_sample_values_selects_nothing():
    # one bar per block, two trials: a single in-sample bar gives no Sharpe ratio
    x = np.array([[0.01, 0.02], [0.03, -0.01]])
    best, omega, _, _ = _run(x, 2, True)
    assert (best == -1).all() and np.isnan(omega).all()
    best, omega, _, _ = _run(x, 2, False)  # the mean of 1 bar exists
    assert (best >= 0).all() and np.isfinite(omega).all()


def _from_sums(x: np.ndarray, s: int):
    """CSCV (Sharpe) on the block sums exactly as the module states it: each half's count and
    sums of deviations from m0 added over its in-sample blocks in block order from zero (the
    other half = the totals minus them), every trial's Sharpe ratio computed plainly (mean over
    the square root of the sample variance), the first finite maximum, its rank. Plain Python:
    no keys, no stack of partial sums."""
    st = block_stats(x.T, s)
    n_all = st.count.sum(axis=0)
    m0 = (st.count * st.mean).sum(axis=0) / n_all
    d = st.mean - m0
    s1 = st.count * d
    s2 = st.m2 + s1 * d
    cnt = st.count.astype(np.float64)
    tot = (cnt.sum(axis=0), s1.sum(axis=0), s2.sum(axis=0))
    n = x.shape[1]

    def perf(nn, a, b, mm):
        # docs/overfit.md: the variance is zero when the sum of squared deviations is within
        # 64 ulps of the terms it is the difference of
        if nn < 2.0:
            return math.nan
        dev = a / nn
        q = nn * dev * dev
        if not b - q > 64 * np.finfo(float).eps * (b + q):
            return math.nan
        return (mm + dev) / math.sqrt((b - q) / (nn - 1.0))

    out = {}
    combos = list(itertools.combinations(range(s), s // 2))
    for c, ins in enumerate(combos):
        sums = []
        for j in range(n):
            a = [0.0, 0.0, 0.0]
            for k in ins:
                a = [a[0] + cnt[k, j], a[1] + s1[k, j], a[2] + s2[k, j]]
            sums.append(a)
        half_a = [perf(a[0], a[1], a[2], m0[j]) for j, a in enumerate(sums)]
        half_b = [perf(tot[0][j] - a[0], tot[1][j] - a[1], tot[2][j] - a[2], m0[j])
                  for j, a in enumerate(sums)]
        if 0 not in ins:  # the complement's pass: its blocks are the other half's
            continue
        q = combos.index(tuple(k for k in range(s) if k not in ins))
        for cc, ip, op in ((c, half_a, half_b), (q, half_b, half_a)):
            fin = [j for j in range(n) if math.isfinite(ip[j])]
            if not fin:
                out[cc] = (-1, math.nan)
                continue
            b = max(fin, key=lambda j: (ip[j], -j))
            v = [o if math.isfinite(o) else -math.inf for o in op]
            rank = sum(u < v[b] for u in v) + (sum(u == v[b] for u in v) + 1) / 2
            out[cc] = (b, rank / (n + 1), ip[b], op[b])
    return [out[c] for c in range(len(combos))]


@pytest.mark.parametrize("seed", range(6))
def test_sharpe_keys_decide_as_the_plain_sharpe_ratios(seed):
    # trials built to defeat the keys: exact duplicates, Sharpe ratios a few ulps apart,
    # constant (zero-variance) trials, trials constant through some blocks (a half whose
    # variance is rounding noise has no Sharpe ratio), near-zero means, too few bars: winners,
    # ranks and values must equal the plain computation's, bit for bit
    rng = np.random.default_rng(seed)
    s, t = 6, 60
    base = rng.normal(0.0005, 0.01, t)
    cols = [base, base.copy(),                            # duplicates
            base * (1 + 1e-15), base + 1e-18,              # within ulps of the first
            np.full(t, 0.001), np.zeros(t),                # constant
            np.where(np.arange(t) < 30, 0.0, base),        # flat half the time
            base - base.mean(),                            # mean ~ 0
            rng.normal(0.0, 0.01, t), rng.normal(0.001, 0.02, t)]
    one = np.full(t, np.nan)
    one[::10] = 0.002                                     # one bar per block
    cols.append(one)
    for v in (0.0, 0.0013, -0.0071, rng.normal(0, 0.01)):  # constant through some blocks
        c = rng.normal(0.0004, 0.01, t)
        for k in rng.choice(s, s // 2, replace=False):
            c[k * 10:(k + 1) * 10] = v
        cols.append(c)
    x = np.column_stack(cols)
    x = x[:, rng.permutation(x.shape[1])]
    best, omega, is_b, oos_b = _run(x, s, True)
    want = _from_sums(x, s)
    for c, w in enumerate(want):
        assert int(best[c]) == w[0], c
        if w[0] < 0:
            assert math.isnan(omega[c])
            continue
        assert omega[c] == w[1], c
        for got, exp in ((is_b[c], w[2]), (oos_b[c], w[3])):
            assert got == exp or (math.isnan(got) and math.isnan(exp)), c


def test_a_half_flat_through_its_blocks_has_no_sharpe_ratio():
    # a combo flat (constant returns) through every in-sample block of a split: its variance
    # there is rounding noise of the block sums -- here positive, so the plain formula gives a
    # Sharpe ratio of ~1e8 -- and it must not be that split's winner; out of sample it ranks
    # with the non-finite values
    rng = np.random.default_rng(0)
    s, t = 4, 400
    good = rng.normal(0.0005, 0.01, (t, 3))
    for _ in range(200):  # deterministic: the first constant whose rounding noise is positive
        flat = rng.normal(0.0005, 0.01, t)
        flat[:200] = abs(rng.normal(0.0, 0.01))  # constant through blocks 0 and 1
        st = block_stats(flat[None, :], s)
        m0 = (st.count * st.mean).sum() / st.count.sum()
        s1 = st.count[:, 0] * (st.mean[:, 0] - m0)
        s2 = st.m2[:, 0] + s1 * (st.mean[:, 0] - m0)
        n, a1, a2 = st.count[0, 0] + st.count[1, 0], s1[0] + s1[1], s2[0] + s2[1]
        dev = a1 / n
        if (a2 - n * dev * dev) / (n - 1) > 0:
            break
    else:
        pytest.fail("no constant with positive rounding noise found")
    x = np.column_stack([good, flat])
    best, omega, is_b, _ = _run(x, s, True)
    combos = list(itertools.combinations(range(s), s // 2))
    c = combos.index((0, 1))
    assert best[c] != 3 and math.isfinite(is_b[c])
    want = _from_sums(x, s)
    assert [int(b) for b in best] == [w[0] for w in want]
    assert [float(o) for o in omega] == [w[1] for w in want]

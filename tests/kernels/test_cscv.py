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

"""The inner loop of CSCV (PBO) from per-block sums: for each split of the S blocks into in- and
out-of-sample halves, every trial's metric on both halves, the in-sample winner and its
out-of-sample relative rank (what ``research.overfit.pbo_from_blocks`` runs), in one pass per
split with no (splits, trials) temporaries."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["cscv_select"]


@njit(cache=True, inline="always", error_model="numpy")
def _perf(n, s1, s2, m0, sharpe):
    """Metric of one trial from its count and sums of returns centred at ``m0``: the mean
    (NaN without a bar) or the Sharpe ratio (NaN below 2 bars or without variance)."""
    dev = s1 / n
    mean = m0 + dev
    if not sharpe:
        return mean if n >= 1.0 else math.nan
    var = (s2 - n * dev * dev) / (n - 1.0)
    if n >= 2.0 and var > 0.0:
        return mean / math.sqrt(var)
    return math.nan


@njit(cache=True, error_model="numpy")
def _sharpes(cnt, s1, s2, m0, out):
    """``_perf(..., sharpe=True)`` of every trial, branch-free so the loop vectorizes (the
    same operations, so the same bits)."""
    for j in range(cnt.shape[0]):
        n = cnt[j]
        dev = s1[j] / n
        mean = m0[j] + dev
        var = (s2[j] - n * dev * dev) / (n - 1.0)
        v = mean / math.sqrt(var)
        out[j] = v if (n >= 2.0) & (var > 0.0) else math.nan


@njit(cache=True, error_model="numpy")
def _pick(is_p, oos_p, c, best, omega, is_best, oos_best):
    """Split ``c``'s winner (the first of equal finite in-sample values) and its relative rank
    among the out-of-sample values (non-finite lowest, ties at their average rank)."""
    n = is_p.shape[0]
    b = -1
    bv = -math.inf
    for j in range(n):
        v = is_p[j]
        if math.isfinite(v) and (b < 0 or v > bv):
            b = j
            bv = v
    if b < 0:
        best[c] = -1
        omega[c] = math.nan
        is_best[c] = is_p[n - 1]
        oos_best[c] = oos_p[n - 1]
        return
    x = oos_p[b]
    if not math.isfinite(x):
        x = -math.inf
    lt = 0
    eq = 0
    for j in range(n):  # branch-free, so it vectorizes
        v = oos_p[j]
        v = v if math.isfinite(v) else -math.inf
        lt += v < x
        eq += v == x
    best[c] = b
    omega[c] = (float(lt) + (float(eq) + 1.0) / 2.0) / (n + 1.0)
    is_best[c] = bv
    oos_best[c] = oos_p[b]


@njit(cache=True, error_model="numpy")
def cscv_select(mask, pair, cnt, s1, s2, tot_n, tot_s1, tot_s2, m0, sharpe, best, omega,
                is_best, oos_best):
    """Per split: the in-sample winner, its relative rank out of sample and both metrics.

    Parameters
    ----------
    mask : bool (C, S), row c marks the in-sample blocks of split c
    pair : intp (C,), the split whose in-sample blocks are split c's out-of-sample blocks
    cnt, s1, s2 : float64 (S, N): per block and trial the count of finite returns and the sums
        of their deviations from ``m0`` and of the squared deviations
    tot_n, tot_s1, tot_s2 : float64 (N,): the same summed over all S blocks
    m0 : float64 (N,): each trial's centre
    sharpe : True for the Sharpe ratio, False for the mean
    best : intp (C,), written: the in-sample winner (the first of equal finite values; -1 when
        no trial has a finite in-sample value)
    omega : float64 (C,), written: the winner's out-of-sample rank / (N + 1), rank 1 the worst,
        non-finite values below every finite one, ties at their average rank; NaN without a
        winner
    is_best, oos_best : float64 (C,), written: the winner's metric in and out of sample (without
        a winner: the last trial's)

    Each pair of complementary splits shares one pass: for the split of the pair with the
    lower index, the sums start at 0 and add its in-sample blocks in block order, the other
    half is the total minus them; each trial's two metrics are split c's in-sample and
    out-of-sample values and ``pair[c]``'s out-of-sample and in-sample ones.
    """
    n_splits, s = mask.shape
    n = cnt.shape[1]
    ins = np.empty(s, np.intp)
    a_n = np.empty(n)
    a_1 = np.empty(n)
    a_2 = np.empty(n)
    b_n = np.empty(n)
    b_1 = np.empty(n)
    b_2 = np.empty(n)
    a_p = np.empty(n)
    b_p = np.empty(n)
    for c in range(n_splits):
        q = pair[c]
        if q < c:
            continue  # done with its pair
        h = 0
        for k in range(s):
            if mask[c, k]:
                ins[h] = k
                h += 1
        # block by block over every trial (the inner loop runs along a block's row: SIMD); each
        # trial's sums still add its blocks in block order
        a_n[:] = 0.0
        a_1[:] = 0.0
        a_2[:] = 0.0
        for i in range(h):
            k = ins[i]
            for j in range(n):
                a_n[j] += cnt[k, j]
                a_1[j] += s1[k, j]
                a_2[j] += s2[k, j]
        if sharpe:
            _sharpes(a_n, a_1, a_2, m0, a_p)
            for j in range(n):
                b_n[j] = tot_n[j] - a_n[j]
                b_1[j] = tot_s1[j] - a_1[j]
                b_2[j] = tot_s2[j] - a_2[j]
            _sharpes(b_n, b_1, b_2, m0, b_p)
        else:
            for j in range(n):
                a_p[j] = _perf(a_n[j], a_1[j], a_2[j], m0[j], sharpe)
                b_p[j] = _perf(tot_n[j] - a_n[j], tot_s1[j] - a_1[j], tot_s2[j] - a_2[j],
                               m0[j], sharpe)
        _pick(a_p, b_p, c, best, omega, is_best, oos_best)
        if q != c:
            _pick(b_p, a_p, q, best, omega, is_best, oos_best)

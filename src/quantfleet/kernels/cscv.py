"""The inner loop of CSCV (PBO) from per-block sums: for each split of the S blocks into in- and
out-of-sample halves, every trial's metric on both halves, the in-sample winner and its
out-of-sample relative rank (what ``research.overfit.pbo_from_blocks`` runs), in one pass per
split with no (splits, trials) temporaries.

For the Sharpe ratio the pass ranks trials by a *key*, sharpe·|sharpe| written with one division
and no square root (``_keys``: with A = N·mean and D = N·Σ(r − mean)² over the half's N bars,
key = A·|A|·(N − 1) / (N·D)), a strictly increasing function of the Sharpe ratio. A key is
trusted only where the arithmetic behind it is well conditioned (D and A not the small
difference of large terms); elsewhere it is the Sharpe ratio itself, computed as ``_perf``
does, squared with its sign. Decisions that keys cannot settle for certain -- two keys within a
relative 1e-9 of each other, the winner's own key among them -- are taken on the Sharpe ratios
computed exactly as ``_perf`` computes them, so every winner, rank and value is the one the
plain computation (every trial's ``_perf`` on both halves, then ``_pick``) gives.
The sums of a half come from a stack of partial sums over its in-sample blocks in block order:
consecutive splits share their leading blocks, so only the blocks after the first difference
are added again (the same additions in the same order as summing from zero)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["cscv_select"]

_TOL = 1e-3  # a key is trusted when D > _TOL·(N·S2 + S1²) and |A| > _TOL·(|m0·N| + |S1|)
_REL = 1e-9  # keys closer than this (relative) are decided on exact Sharpe ratios
_ABS = 1e-280  # ... and keys this close to zero
_BIG = 1.7976931348623157e308
_RES = 64.0 * 2.220446049250313e-16  # relative resolution of a half's sum of squared deviations


@njit(cache=True, inline="always", error_model="numpy")
def _perf(n, s1, s2, m0, sharpe):
    """Metric of one trial from its count and sums of returns centred at ``m0``: the mean
    (NaN without a bar) or the Sharpe ratio (NaN below 2 bars or without variance: a sum of
    squared deviations within 64 ulps of the terms it is the difference of counts as zero)."""
    dev = s1 / n
    mean = m0 + dev
    if not sharpe:
        return mean if n >= 1.0 else math.nan
    q = n * dev * dev
    var = (s2 - q) / (n - 1.0)
    # a variance within the sums' rounding of zero is zero: a half whose returns are constant
    # (a combo flat through it) has no Sharpe ratio, not the ratio of two rounding errors
    if n >= 2.0 and var > 0.0 and s2 - q > _RES * (s2 + q):
        return mean / math.sqrt(var)
    return math.nan


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



@njit(cache=True, inline="always")
def _key_of(p):
    """The key of a Sharpe ratio ``p``: p·|p|, -inf when ``p`` is not finite (finite ``p`` keep
    a finite key)."""
    if not math.isfinite(p):
        return -math.inf
    return min(max(p * abs(p), -_BIG), _BIG)


@njit(cache=True, error_model="numpy")
def _keys(cnt, s1, s2, m0, key):
    """Every trial's key (the module docstring): division-only and branch-free where trusted
    (vectorizes), the exact Sharpe ratio's key where not; -inf below 2 bars."""
    n = cnt.shape[0]
    u = 0
    for j in range(n):
        nn = cnt[j]
        a1 = s1[j]
        a = m0[j] * nn + a1
        d = nn * s2[j] - a1 * a1
        sc = nn * s2[j] + a1 * a1
        k = a * abs(a) * (nn - 1.0) / (nn * d)
        ok = (nn >= 2.0) & (d > _TOL * sc) & (abs(a) > _TOL * (abs(m0[j] * nn) + abs(a1)))
        key[j] = k if ok else -math.inf
        u += (~ok) & (nn >= 2.0)
    if u:  # the untrusted keys (-inf with 2 bars or more) from the exact Sharpe ratio
        for j in range(n):
            if cnt[j] >= 2.0 and key[j] == -math.inf:
                key[j] = _key_of(_perf(cnt[j], s1[j], s2[j], m0[j], True))


@njit(cache=True, inline="always")
def _band(k):
    """Half-width of the band of keys that cannot be told apart from ``k``."""
    return _REL * abs(k) + _ABS


@njit(cache=True)
def _kargmax(k):
    """The first index of the largest key, -1 when every key is -inf (four interleaved lanes,
    each keeping its first maximum; ties between lanes go to the lowest index)."""
    n = k.shape[0]
    m0 = m1 = m2 = m3 = -math.inf
    i0 = i1 = i2 = i3 = -1
    j = 0
    while j + 4 <= n:
        v0 = k[j]
        v1 = k[j + 1]
        v2 = k[j + 2]
        v3 = k[j + 3]
        if v0 > m0:
            m0 = v0
            i0 = j
        if v1 > m1:
            m1 = v1
            i1 = j + 1
        if v2 > m2:
            m2 = v2
            i2 = j + 2
        if v3 > m3:
            m3 = v3
            i3 = j + 3
        j += 4
    while j < n:
        if k[j] > m0:
            m0 = k[j]
            i0 = j
        j += 1
    b = i0
    m = m0
    if i1 >= 0 and (b < 0 or m1 > m or (m1 == m and i1 < b)):
        b = i1
        m = m1
    if i2 >= 0 and (b < 0 or m2 > m or (m2 == m and i2 < b)):
        b = i2
        m = m2
    if i3 >= 0 and (b < 0 or m3 > m or (m3 == m and i3 < b)):
        b = i3
    return b


@njit(cache=True, error_model="numpy")
def _pick_keys(ka, kb, an, a1, a2, bn, b1, b2, m0, c, best, omega, is_best, oos_best):
    """:func:`_pick` on the Sharpe ratios of the halves a (in sample) and b, from their keys
    ``ka``/``kb`` and their sums (for the exact Sharpe ratios of undecided trials)."""
    n = ka.shape[0]
    b = _kargmax(ka)
    if b < 0:
        best[c] = -1
        omega[c] = math.nan
        is_best[c] = _perf(an[n - 1], a1[n - 1], a2[n - 1], m0[n - 1], True)
        oos_best[c] = _perf(bn[n - 1], b1[n - 1], b2[n - 1], m0[n - 1], True)
        return
    lo = ka[b] - _band(ka[b])
    nc = 0
    for j in range(n):
        nc += ka[j] >= lo
    bv = _perf(an[b], a1[b], a2[b], m0[b], True)
    if nc > 1:  # near the top: the first of the largest exact values
        b = -1
        bv = -math.inf
        for j in range(n):
            if ka[j] >= lo:
                v = _perf(an[j], a1[j], a2[j], m0[j], True)
                if math.isfinite(v) and (b < 0 or v > bv):
                    b = j
                    bv = v
    x = _perf(bn[b], b1[b], b2[b], m0[b], True)
    lt = 0
    eq = 0
    if not math.isfinite(x):  # ranked below every finite value, tied with the non-finite ones
        for j in range(n):
            eq += kb[j] == -math.inf
    else:
        kx = _key_of(x)
        w = _band(kx)
        klo = kx - w
        khi = kx + w
        nb = 0
        for j in range(n):  # branch-free, so it vectorizes
            v = kb[j]
            lt += v < klo
            nb += (v >= klo) & (v <= khi)
        if nb == 1:
            eq = 1  # the winner alone
        else:
            for j in range(n):
                v = kb[j]
                if (v >= klo) & (v <= khi):
                    p = _perf(bn[j], b1[j], b2[j], m0[j], True)
                    p = p if math.isfinite(p) else -math.inf
                    lt += p < x
                    eq += p == x
    best[c] = b
    omega[c] = (float(lt) + (float(eq) + 1.0) / 2.0) / (n + 1.0)
    is_best[c] = bv
    oos_best[c] = x


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
    done = np.full(s, -1, np.intp)  # the blocks behind each level of the stack
    depth = 0
    # level i + 1 = level i + the i-th in-sample block: level h is the in-sample sums
    l_n = np.zeros((s + 1, n))
    l_1 = np.zeros((s + 1, n))
    l_2 = np.zeros((s + 1, n))
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
        i0 = 0
        while i0 < h and i0 < depth and ins[i0] == done[i0]:
            i0 += 1
        # block by block over every trial (the inner loop runs along a block's row: SIMD); each
        # trial's sums still add its blocks in block order, from zero
        for i in range(i0, h):
            k = ins[i]
            src_n = l_n[i]
            src_1 = l_1[i]
            src_2 = l_2[i]
            dst_n = l_n[i + 1]
            dst_1 = l_1[i + 1]
            dst_2 = l_2[i + 1]
            for j in range(n):
                dst_n[j] = src_n[j] + cnt[k, j]
                dst_1[j] = src_1[j] + s1[k, j]
                dst_2[j] = src_2[j] + s2[k, j]
            done[i] = k
        depth = h
        a_n = l_n[h]
        a_1 = l_1[h]
        a_2 = l_2[h]
        for j in range(n):
            b_n[j] = tot_n[j] - a_n[j]
            b_1[j] = tot_s1[j] - a_1[j]
            b_2[j] = tot_s2[j] - a_2[j]
        if sharpe:
            _keys(a_n, a_1, a_2, m0, a_p)
            _keys(b_n, b_1, b_2, m0, b_p)
            _pick_keys(a_p, b_p, a_n, a_1, a_2, b_n, b_1, b_2, m0, c, best, omega, is_best,
                       oos_best)
            if q != c:
                _pick_keys(b_p, a_p, b_n, b_1, b_2, a_n, a_1, a_2, m0, q, best, omega, is_best,
                           oos_best)
            continue
        for j in range(n):
            a_p[j] = _perf(a_n[j], a_1[j], a_2[j], m0[j], False)
            b_p[j] = _perf(b_n[j], b_1[j], b_2[j], m0[j], False)
        _pick(a_p, b_p, c, best, omega, is_best, oos_best)
        if q != c:
            _pick(b_p, a_p, q, best, omega, is_best, oos_best)

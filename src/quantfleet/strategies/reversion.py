"""Mean-reversion seeds: fade moves outside a band around a fair value, exit back at the middle.

Each is a state machine (flat / long / short) run from the first bar of the slice, so bars
before ``start`` warm the state up as well as the indicators; accounting starts at ``start``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from quantfleet.kernels.fastpath import (
    FP_CHUNK,
    fp_book,
    fp_chunk,
    fp_prepare,
    fp_state,
)
from quantfleet.kernels.indicators import (
    nw_regression,
    rolling_pstd,
    rolling_vwap,
    sma,
    unique_pairs,
    unique_windows,
)
from quantfleet.kernels.metrics import bar_returns, tail_finish, tail_init, tail_step
from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.space import Constraint, Float, Int, ParamSpace

__all__ = [
    "BOLLINGER",
    "NW_ENVELOPE",
    "VWAP_REVERSION",
    "band_step",
    "bollinger_fast",
    "bollinger_kernel",
    "nw_band",
    "nw_envelope_fast",
    "nw_envelope_kernel",
    "vwap_reversion_fast",
    "vwap_reversion_kernel",
    "vwap_zscore",
]


@njit(cache=True, inline="always")
def band_step(state, x, lower, mid, upper, long_short):
    """Next state of a band-reversion rule: exits first, then entries.

    A long exits once ``x >= mid``, a short once ``x <= mid``; from flat, ``x < lower`` enters
    long and (long/short only) ``x > upper`` enters short. A NaN value or band means flat.
    """
    if not (x == x and lower == lower and mid == mid and upper == upper):
        return 0.0
    if state > 0.0 and x >= mid:
        state = 0.0
    elif state < 0.0 and x <= mid:
        state = 0.0
    if state == 0.0:
        if x < lower:
            state = 1.0
        elif long_short and x > upper:
            state = -1.0
    return state


@njit(cache=True)
def _bollinger_tables(close, windows):
    """SMA and population std of ``close`` for each distinct window: two (k, bars) tables."""
    mid = np.empty((windows.shape[0], close.shape[0]))
    sd = np.empty((windows.shape[0], close.shape[0]))
    for i in range(windows.shape[0]):
        mid[i] = sma(close, int(windows[i]))
        sd[i] = rolling_pstd(close, int(windows[i]))
    return mid, sd


@njit(cache=True)
def bollinger_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                     long_short, start, out, returns_out):
    """Band reversion around SMA(window) +- k * std(window). params: window, k."""
    n = close.shape[0]
    r = bar_returns(close)
    uniq, idx = unique_windows(params[:, 0].copy())
    mid, sd = _bollinger_tables(close, uniq)
    for c in range(params.shape[0]):
        m = mid[idx[c]]
        s = sd[idx[c]]
        k = params[c, 1]
        tail = tail_init()
        state = 0.0
        for t in range(n):
            state = band_step(state, close[t], m[t] - k * s[t], m[t], m[t] + k * s[t], long_short)
            if t < start:
                continue
            tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


_WELFORD_MIN = 17
"""``rolling_pstd`` slides windows of at least this many bars by a Welford step (recomputing
them in two passes every ``w`` bars); shorter windows are two-pass on every bar."""


@njit(cache=True)
def _bollinger_chunk_tables(close, wins, st, c0, c1, mid, sd, scratch):
    """Bars ``[c0, c1)`` of ``sma(close, w)`` and ``rolling_pstd(close, w)`` for each window
    ``w`` of ``wins``, into ``mid[g, :c1 - c0]`` and ``sd[g, :c1 - c0]``: the same bits as those
    functions (the same operations in the same order), one chunk of bars at a time.

    st : float64 (len(wins), 3) each window's running state (the SMA's sum, the std's mean and
        sum of squares) after bar ``c0 - 1``: zeros before bar 0, then carried from the call
        for the previous chunk (chunks in order from bar 0, none skipped)
    scratch : float64 (3, >= len(wins), >= c1 - c0)

    The running sums of every window advance together in one loop over the bars (independent
    dependency chains that overlap); the divisions, square roots and two-pass sums run in
    separate loops that vectorise.
    """
    g_n = wins.shape[0]
    nc = c1 - c0
    dd = scratch[0]
    rm = scratch[1]
    rss = scratch[2]
    wi = np.empty(g_n, dtype=np.int64)
    nx = np.empty(g_n, dtype=np.int64)
    for g in range(g_n):
        w = int(wins[g])
        # a window under 1 bar is NaN throughout, as one longer than the data
        wi[g] = w if w >= 1 else c1 + 1
        nx[g] = nc  # no sliding std in this chunk
        if w < _WELFORD_MIN or w > c1:
            continue
        # the first bar of the chunk recomputed in two passes: (t - w + 1) % w == 0
        first = w - 1
        if c0 > first:
            first += ((c0 - first + w - 1) // w) * w
        nx[g] = first - c0
        # the sliding step's mean increment (new - old) / w, bars t >= w
        # (slices indexed by a loop counter: no negative-index test, the loop vectorises)
        lo = max(c0, w)
        dr = dd[g, lo - c0:nc]
        xn = close[lo:c1]
        xo = close[lo - w:c1 - w]
        for i in range(c1 - lo):
            dr[i] = xn[i] - xo[i]
        _divide(dr, w, False)
        # the two-pass mean and sum of squares at the recomputation bars first + p * w
        npt = (c1 - 1 - first) // w + 1 if first < c1 else 0
        mr = rm[g]
        qr = rss[g]
        for p in range(npt):
            mr[p] = 0.0
            qr[p] = 0.0
        # bars first + p * w - w + 1 + j as xw[p, j]
        xw = close[first - w + 1:first - w + 1 + npt * w].reshape((npt, w))
        for j in range(w):
            for p in range(npt):
                mr[p] += xw[p, j]
        for p in range(npt):
            mr[p] /= w
        for j in range(w):
            for p in range(npt):
                d = xw[p, j] - mr[p]
                qr[p] += d * d
    # the running sums, a window at a time: the SMA's sum and (windows >= 17 bars) the sliding
    # std's mean and sum of squares, two dependency chains that overlap in one loop
    for g in range(g_n):
        w = wi[g]
        mr = mid[g]
        sr = sd[g]
        s = st[g, 0]
        m = st[g, 1]
        ss = st[g, 2]
        e0 = min(max(w - c0, 0), nc)  # rows before bar w: nothing leaves the SMA's sum
        for i in range(e0):
            s += close[c0 + i]
            mr[i] = s
        if e0 > 0 and nx[g] < e0:  # bar w - 1: the first two-pass std
            m = rm[g, 0]
            ss = rss[g, 0]
            sr[nx[g]] = ss
        xs = close[c0 + e0:c1]
        xo = close[c0 + e0 - w:c1 - w] if e0 < nc else close[c0:c0]
        ms = mr[e0:nc]
        if w < _WELFORD_MIN:
            for i in range(nc - e0):
                s += xs[i]
                s -= xo[i]
                ms[i] = s
        else:
            qq = 1 if e0 > 0 and nx[g] < e0 else 0
            nxt = nx[g] + w * qq - e0  # next two-pass row, counted from row e0
            dr = dd[g, e0:nc]
            ssr = sr[e0:nc]
            for i in range(nc - e0):
                new = xs[i]
                old = xo[i]
                s += new
                s -= old
                ms[i] = s
                if i == nxt:
                    m = rm[g, qq]
                    ss = rss[g, qq]
                    qq += 1
                    nxt += w
                else:
                    m_new = m + dr[i]
                    ss += (new - old) * (new - m_new + old - m)
                    m = m_new
                    if ss < 0.0:
                        ss = 0.0
                ssr[i] = ss
        st[g, 0] = s
        st[g, 1] = m
        st[g, 2] = ss
    # the divisions and square roots; two-pass std of the windows under 17 bars
    for g in range(g_n):
        w = wi[g]
        mr = mid[g]
        sr = sd[g]
        a = min(max(w - 1 - c0, 0), nc)
        for i in range(a):
            mr[i] = np.nan
            sr[i] = np.nan
        _divide(mr[a:nc], w, False)
        if w >= _WELFORD_MIN:
            _divide(sr[a:nc], w, True)
        else:
            # bar c0 + a + i of the chunk, term j: close[c0 + a + i - w + 1 + j]
            b = c0 + a - w + 1
            m = nc - a
            acc = dd[g, a:nc]
            so = sr[a:nc]
            for i in range(m):
                acc[i] = 0.0
                so[i] = 0.0
            for j in range(w):
                xs = close[b + j:b + j + m]
                for i in range(m):
                    acc[i] += xs[i]
            _divide(acc, w, False)
            for j in range(w):
                xs = close[b + j:b + j + m]
                for i in range(m):
                    d = xs[i] - acc[i]
                    so[i] += d * d
            _divide(so, w, True)


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (llvm.fma)."""
    if not (a == types.float64 and b == types.float64 and c == types.float64):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


_DIV_SAFE = 2.0 ** 900
""":func:`_divide` divides by multiplications where ``2**-900 < |a| < 2**900`` (no overflow,
no underflow in the remainders), ``a`` zero or NaN."""


@njit(cache=True)
def _divide(a, w, root):
    """``a[i] = a[i] / w`` (``np.sqrt(a[i] / w)`` with ``root``) in place, the same bits as the
    division: from ``y = 1 / w`` (correctly rounded), ``q = a * y`` and two Newton-Markstein
    corrections ``q += (a - q * w) * y`` (each an FMA); ``q`` is within an ulp of ``a / w``
    after the first, and the second then rounds it correctly (Markstein's theorem: ``y`` within
    half an ulp of ``1 / w``, ``q`` within one ulp of ``a / w``, the remainder exact). A zero
    keeps its sign; a row with any value outside the safe range is divided by ``/``.
    """
    wf = float(w)
    y = 1.0 / wf
    odd = np.uint8(0)
    for i in range(a.shape[0]):
        x = a[i]
        ax = abs(x)
        odd |= np.uint8(not ((ax > 1.0 / _DIV_SAFE) & (ax < _DIV_SAFE))) \
            & np.uint8(x != 0.0) & np.uint8(x == x)
    if odd:
        for i in range(a.shape[0]):
            a[i] = a[i] / wf
    else:
        for i in range(a.shape[0]):
            x = a[i]
            q0 = x * y
            q = _fma(_fma(-q0, wf, x), y, q0)
            q = _fma(_fma(-q, wf, x), y, q)
            a[i] = q if x != 0.0 else q0
    if root:
        for i in range(a.shape[0]):
            a[i] = np.sqrt(a[i])


@intrinsic
def _cttz(typingctx, x):
    """Trailing zero bits of a uint64 (64 for 0)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return types.uint64(types.uint64), codegen


@njit(cache=True, inline="always")
def _band_entry(x, mi, s, k, ls):
    """``band_step``'s entry test from flat with the band ``mi -+ k * s`` (the reference's
    values: ``k * s`` is the same product on both sides) and whether both band edges are not
    NaN, as two 0/1 uint8 (``ls``: long_short as a uint8; no branch: the loop vectorises)."""
    ks = k * s
    lo = mi - ks
    up = mi + ks
    ok = np.uint8(lo == lo) & np.uint8(up == up)
    return ok & (np.uint8(x < lo) | (ls & np.uint8(x > up))), ok


@njit(cache=True)
def _band_flags(xa, ma, sa, ks, flags, lsb, nc):
    """``flags[i]`` for bars ``i < nc`` of a chunk (close ``xa``, SMA ``ma``, std ``sa``): bit j
    (< 6) where a flat combo with k = ``ks[j]`` would enter, bit 6 where a long would exit
    (x >= mid or a NaN), bit 7 where a short would (x <= mid or a NaN).

    Without infinities in ``ma``, ``sa`` and ``ks``, both band edges are NaN exactly where
    ``mi`` or ``s`` is (``k * s`` is then never NaN), and a NaN edge already fails ``x < lo`` /
    ``x > up``: the entry bit is the comparison alone (the same bits, fewer operations)."""
    one, two, three, four, five, six, seven = (np.uint8(1), np.uint8(2), np.uint8(3),
                                               np.uint8(4), np.uint8(5), np.uint8(6),
                                               np.uint8(7))
    k0, k1, k2, k3, k4, k5 = ks[0], ks[1], ks[2], ks[3], ks[4], ks[5]
    inf = np.inf
    odd = np.uint8(0)
    for j in range(6):
        odd |= np.uint8(abs(ks[j]) == inf) | np.uint8(ks[j] != ks[j])
    for i in range(nc):
        odd |= np.uint8(abs(ma[i]) == inf) | np.uint8(abs(sa[i]) == inf)
    if odd:
        for i in range(nc):
            x = xa[i]
            mi = ma[i]
            sv = sa[i]
            f0, o0 = _band_entry(x, mi, sv, k0, lsb)
            f1, o1 = _band_entry(x, mi, sv, k1, lsb)
            f2, o2 = _band_entry(x, mi, sv, k2, lsb)
            f3, o3 = _band_entry(x, mi, sv, k3, lsb)
            f4, o4 = _band_entry(x, mi, sv, k4, lsb)
            f5, o5 = _band_entry(x, mi, sv, k5, lsb)
            # a NaN in x, mi or any slot's band marks both exits (band_step goes flat); an
            # entry needs x and both edges not NaN, which x < lo or x > up already implies
            nok = (o0 & o1 & o2 & o3 & o4 & o5 & np.uint8(x == x) & np.uint8(mi == mi)) ^ one
            flags[i] = (f0 | (f1 << one) | (f2 << two) | (f3 << three) | (f4 << four)
                        | (f5 << five) | ((nok | np.uint8(x >= mi)) << six)
                        | ((nok | np.uint8(x <= mi)) << seven))
    elif lsb:
        for i in range(nc):
            x = xa[i]
            mi = ma[i]
            sv = sa[i]
            nok = (np.uint8(x == x) & np.uint8(mi == mi) & np.uint8(sv == sv)) ^ one
            flags[i] = (np.uint8(x < mi - k0 * sv) | np.uint8(x > mi + k0 * sv)
                        | ((np.uint8(x < mi - k1 * sv) | np.uint8(x > mi + k1 * sv)) << one)
                        | ((np.uint8(x < mi - k2 * sv) | np.uint8(x > mi + k2 * sv)) << two)
                        | ((np.uint8(x < mi - k3 * sv) | np.uint8(x > mi + k3 * sv)) << three)
                        | ((np.uint8(x < mi - k4 * sv) | np.uint8(x > mi + k4 * sv)) << four)
                        | ((np.uint8(x < mi - k5 * sv) | np.uint8(x > mi + k5 * sv)) << five)
                        | ((nok | np.uint8(x >= mi)) << six)
                        | ((nok | np.uint8(x <= mi)) << seven))
    else:
        for i in range(nc):
            x = xa[i]
            mi = ma[i]
            sv = sa[i]
            nok = (np.uint8(x == x) & np.uint8(mi == mi) & np.uint8(sv == sv)) ^ one
            flags[i] = (np.uint8(x < mi - k0 * sv) | (np.uint8(x < mi - k1 * sv) << one)
                        | (np.uint8(x < mi - k2 * sv) << two)
                        | (np.uint8(x < mi - k3 * sv) << three)
                        | (np.uint8(x < mi - k4 * sv) << four)
                        | (np.uint8(x < mi - k5 * sv) << five)
                        | ((nok | np.uint8(x >= mi)) << six)
                        | ((nok | np.uint8(x <= mi)) << seven))


_BOLL_GROUP = 8
"""Windows whose chunk tables :func:`bollinger_fast` builds together."""

_BOLL_PASS = 6
"""Combos of one window whose flat-state events share a flag byte (bits 0-5; bit 6 marks the
bars where a long may exit, bit 7 where a short may)."""


@njit(cache=True)
def bollinger_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                   start, out, bsum, bsq, blk):
    """The fast path of :func:`bollinger_kernel` (kernels/fastpath.py), one chunk of bars at a
    time: the chunk's SMA and std rows of a few windows at once
    (:func:`_bollinger_chunk_tables`), then for each window one flag byte a bar marking where
    each of up to six of its combos would leave flat (the entry test of its own k, the
    reference's expression) and where a long or a short would exit (shared: the exits do not
    depend on k); each combo runs the exact ``band_step`` only on the marked bars of its
    current state and ``fp_book`` books its changes."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    uniq, idx = unique_windows(params[:, 0].copy())
    nw = uniq.shape[0]
    m = params.shape[0]
    # combos grouped by window
    order = np.argsort(idx, kind="mergesort")
    first = np.zeros(nw + 1, dtype=np.int64)
    for c in range(m):
        first[idx[c] + 1] += 1
    for u in range(nw):
        first[u + 1] += first[u]
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    words = np.zeros(FP_CHUNK // 8 + 1, dtype=np.uint64)
    flags = words.view(np.uint8)
    ks = np.empty(_BOLL_PASS)
    lsb = np.uint8(1) if long_short else np.uint8(0)
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    st = np.zeros((nw, 3))
    gmax = min(nw, _BOLL_GROUP)
    # rows a little longer than a chunk: rows 16 KiB apart would share cache sets
    mid = np.empty((gmax, FP_CHUNK + 24))
    sd = np.empty((gmax, FP_CHUNK + 24))
    scratch = np.empty((3, gmax, FP_CHUNK + 24))
    bl = np.uint8(64)
    bs = np.uint8(128)
    rep = np.uint64(0x0101010101010101)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        nc = c1 - c0
        nwd = (nc + 7) >> 3
        xa = close[c0:c1]
        for g0 in range(0, nw, _BOLL_GROUP):
            g1 = min(nw, g0 + _BOLL_GROUP)
            _bollinger_chunk_tables(close, uniq[g0:g1], st[g0:g1], c0, c1, mid, sd, scratch)
            for u in range(g0, g1):
                ma = mid[u - g0]
                sa = sd[u - g0]
                for p0 in range(first[u], first[u + 1], _BOLL_PASS):
                    p1 = min(first[u + 1], p0 + _BOLL_PASS)
                    words[nwd - 1] = 0
                    # six k slots (the last k repeated into unused ones: the same bits)
                    for jj in range(_BOLL_PASS):
                        ks[jj] = params[order[min(p0 + jj, p1 - 1)], 1]
                    _band_flags(xa, ma, sa, ks, flags, lsb, nc)
                    for jj in range(p1 - p0):
                        c = order[p0 + jj]
                        k = params[c, 1]
                        fbit = np.uint8(1 << jj)
                        rule = state[c, 15]
                        prev = state[c, 13]
                        j = 0
                        t = c0
                        while t < c1:
                            mask = fbit if rule == 0.0 else (bl if rule > 0.0 else bs)
                            stop = min(start, c1) if t <= start else c1
                            # the first bar from t whose flag has the mask's bit (8 a word;
                            # the bytes past the chunk's end are 0)
                            i = t - c0
                            wm = np.uint64(mask) * rep
                            wj = i >> 3
                            v = words[wj] & wm & (full << np.uint64(8 * (i & 7)))
                            while v == 0 and wj < nwd - 1:
                                wj += 1
                                v = words[wj] & wm
                            e = c0 + ((wj << 3) + np.int64(_cttz(v) >> np.uint64(3)) if v else nc)
                            if t <= start:
                                # before start only the state moves; bar start books it
                                if e >= stop:
                                    if start >= c1:
                                        break
                                    e = start
                            elif e >= c1:
                                break
                            if flags[e - c0] & mask:
                                rule = band_step(rule, close[e], ma[e - c0] - k * sa[e - c0],
                                                 ma[e - c0], ma[e - c0] + k * sa[e - c0],
                                                 long_short)
                            if e >= start and rule != prev:
                                ct[j] = e
                                cp[j] = rule
                                j += 1
                                prev = rule
                            t = e + 1
                        state[c, 15] = rule
                        fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n,
                                ppy, out[c])


BOLLINGER = register(Strategy(
    name="bollinger",
    family="reversion",
    description="Long below SMA - k*std, short above SMA + k*std (long/short), exit at the SMA.",
    space=ParamSpace(
        dims=(Int("window", 10, 100, default=20, hard_min=2),
              Float("k", 1.0, 3.0, default=2.0, hard_min=0.0)),
        strategy="bollinger",
    ),
    kernel=bollinger_kernel,
    fast=bollinger_fast,
    warmup=lambda p: int(p["window"]) - 1,
    cost_ns=3.5,
))


@njit(cache=True)
def vwap_zscore(high, low, close, volume, w):
    """z-score of close against the rolling VWAP of the typical price ``(h + l + c) / 3``:
    ``(close - vwap) / std(close - vwap)``, both over ``w`` bars, the std with ddof=0; 0 where
    that std is 0. Defined from bar ``2 * w - 2`` (the deviation needs ``w - 1`` bars first)."""
    n = close.shape[0]
    z = np.full(n, np.nan)
    if w < 1 or 2 * w - 1 > n:
        return z
    tp = (high + low + close) / 3.0
    dev = close - rolling_vwap(tp, volume, w)
    sd = np.full(n, np.nan)
    sd[w - 1:] = rolling_pstd(dev[w - 1:], w)
    for t in range(2 * w - 2, n):
        if sd[t] > 0.0:
            z[t] = dev[t] / sd[t]
        elif sd[t] == 0.0:
            z[t] = 0.0
    return z


@njit(cache=True)
def vwap_reversion_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                          long_short, start, out, returns_out):
    """Band reversion of the close-vs-VWAP z-score at -+z, exit at 0. params: window, z."""
    n = close.shape[0]
    r = bar_returns(close)
    uniq, idx = unique_windows(params[:, 0].copy())
    table = np.empty((uniq.shape[0], n))
    for i in range(uniq.shape[0]):
        table[i] = vwap_zscore(high, low, close, volume, int(uniq[i]))
    for c in range(params.shape[0]):
        zs = table[idx[c]]
        ze = params[c, 1]
        tail = tail_init()
        state = 0.0
        for t in range(n):
            state = band_step(state, zs[t], -ze, 0.0, ze, long_short)
            if t < start:
                continue
            tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def vwap_reversion_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                        start, out, bsum, bsq, blk):
    """The fast path of :func:`vwap_reversion_kernel` (kernels/fastpath.py): the same band state machine per bar, its changes booked by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    uniq, idx = unique_windows(params[:, 0].copy())
    table = np.empty((uniq.shape[0], n))
    for i in range(uniq.shape[0]):
        table[i] = vwap_zscore(high, low, close, volume, int(uniq[i]))
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            zs = table[idx[c]]
            ze = params[c, 1]
            rule = state[c, 15]
            j = 0
            prev = state[c, 13]
            for t in range(c0, c1):
                rule = band_step(rule, zs[t], -ze, 0.0, ze, long_short)
                if t >= start:
                    ct[j] = t
                    cp[j] = rule
                    j += rule != prev
                    prev = rule
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


VWAP_REVERSION = register(Strategy(
    name="vwap_reversion",
    family="reversion",
    description="Long when close is z std below its rolling VWAP, short z above (long/short), exit at VWAP.",
    space=ParamSpace(
        dims=(Int("window", 10, 100, default=20, hard_min=2),
              Float("z", 1.0, 3.0, default=2.0, hard_min=0.0)),
        strategy="vwap_reversion",
    ),
    kernel=vwap_reversion_kernel,
    fast=vwap_reversion_fast,
    needs=("high", "low", "volume"),
    warmup=lambda p: 2 * int(p["window"]) - 2,
    cost_ns=3,
))


@njit(cache=True)
def nw_band(close, h, w):
    """Nadaraya-Watson estimate and its mean absolute deviation: two (bars,) arrays.

    The deviation is the mean over the last ``w`` bars of ``|close - estimate|``, each bar
    against its own causal estimate (nothing repaints). The estimate is defined from bar
    ``w - 1``, the deviation from bar ``2 * w - 2``.
    """
    n = close.shape[0]
    est = nw_regression(close, h, w)
    mad = np.full(n, np.nan)
    if w <= n:
        mad[w - 1:] = sma(np.abs(close[w - 1:] - est[w - 1:]), w)
    return est, mad


@njit(cache=True)
def nw_envelope_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                       long_short, start, out, returns_out):
    """Band reversion around a causal Nadaraya-Watson estimate +- mult * MAD.
    params: bandwidth, mult, window."""
    n = close.shape[0]
    r = bar_returns(close)
    ub, uw, idx = unique_pairs(params[:, 0].copy(), params[:, 2].copy())
    est = np.empty((ub.shape[0], n))
    mad = np.empty((ub.shape[0], n))
    for i in range(ub.shape[0]):
        est[i], mad[i] = nw_band(close, ub[i], int(uw[i]))
    for c in range(params.shape[0]):
        e = est[idx[c]]
        d = mad[idx[c]]
        k = params[c, 1]
        tail = tail_init()
        state = 0.0
        for t in range(n):
            state = band_step(state, close[t], e[t] - k * d[t], e[t], e[t] + k * d[t], long_short)
            if t < start:
                continue
            tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def nw_envelope_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                     start, out, bsum, bsq, blk):
    """The fast path of :func:`nw_envelope_kernel` (kernels/fastpath.py): the same band state machine per bar, its changes booked by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    ub, uw, idx = unique_pairs(params[:, 0].copy(), params[:, 2].copy())
    est = np.empty((ub.shape[0], n))
    mad = np.empty((ub.shape[0], n))
    for i in range(ub.shape[0]):
        est[i], mad[i] = nw_band(close, ub[i], int(uw[i]))
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            e = est[idx[c]]
            d = mad[idx[c]]
            k = params[c, 1]
            rule = state[c, 15]
            j = 0
            prev = state[c, 13]
            for t in range(c0, c1):
                rule = band_step(rule, close[t], e[t] - k * d[t], e[t], e[t] + k * d[t], long_short)
                if t >= start:
                    ct[j] = t
                    cp[j] = rule
                    j += rule != prev
                    prev = rule
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


NW_ENVELOPE = register(Strategy(
    name="nw_envelope",
    family="reversion",
    description="Long below a causal Nadaraya-Watson estimate - mult*MAD, short above + (long/short), exit at it.",
    space=ParamSpace(
        dims=(Float("bandwidth", 2.0, 16.0, default=8.0, hard_min=0.1),
              Float("mult", 1.0, 4.0, default=2.0, hard_min=0.0),
              Int("window", 20, 150, default=50, hard_min=2)),
        constraints=(Constraint("bandwidth", "<", "window"),),
        strategy="nw_envelope",
    ),
    kernel=nw_envelope_kernel,
    fast=nw_envelope_fast,
    warmup=lambda p: 2 * int(p["window"]) - 2,
    cost_ns=9.5,
))

"""Mean-reversion seeds: fade moves outside a band around a fair value, exit back at the middle.

Each is a state machine (flat / long / short) run from the first bar of the slice, so bars
before ``start`` warm the state up as well as the indicators; accounting starts at ``start``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantfleet.kernels.fastpath import (
    EV_FLAT,
    EV_LONG,
    EV_SHORT,
    FP_CHUNK,
    ONE,
    TWO,
    fp_book,
    fp_chunk,
    fp_next_event,
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
def _bollinger_tables_fused(close, windows):
    """:func:`_bollinger_tables` with the SMA and the population std of a window computed in one
    loop over the bars (two independent dependency chains that overlap) and the std's
    every-``w``-bars recomputation tracked by a counter instead of a modulo; each value is the
    same operations in the same order as ``sma`` and ``rolling_pstd``, hence the same bits."""
    n = close.shape[0]
    k = windows.shape[0]
    mid = np.empty((k, n))
    sd = np.empty((k, n))
    for i in range(k):
        w = int(windows[i])
        mr = mid[i]
        sr = sd[i]
        mr[:] = np.nan
        sr[:] = np.nan
        if w < 1 or w > n:
            continue
        s = 0.0
        for t in range(w - 1):
            s += close[t]
        m = 0.0
        ss = 0.0
        phase = 0
        short = w <= 16
        for t in range(w - 1, n):
            s += close[t]
            if t >= w:
                s -= close[t - w]
            mr[t] = s / w
            if short or phase == 0:
                m = 0.0
                for j in range(t - w + 1, t + 1):
                    m += close[j]
                m /= w
                ss = 0.0
                for j in range(t - w + 1, t + 1):
                    d = close[j] - m
                    ss += d * d
            else:
                new = close[t]
                old = close[t - w]
                m_new = m + (new - old) / w
                ss += (new - old) * (new - m_new + old - m)
                m = m_new
                if ss < 0.0:
                    ss = 0.0
            sr[t] = np.sqrt(ss / w)
            phase += 1
            if phase == w:
                phase = 0
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


@njit(cache=True)
def bollinger_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                   start, out, bsum, bsq, blk):
    """The fast path of :func:`bollinger_kernel` (kernels/fastpath.py): per chunk, a vectorised
    pass marks the bars that would change the band state from flat / long / short; the exact
    ``band_step`` runs only on the marked bars of the current state, and its changes are booked
    by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    uniq, idx = unique_windows(params[:, 0].copy())
    mid, sd = _bollinger_tables_fused(close, uniq)
    m = params.shape[0]
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    flags = np.zeros(FP_CHUNK + 8, dtype=np.uint8)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        nc = c1 - c0
        flags[nc:] = 0
        for c in range(m):
            mm = mid[idx[c]]
            ss = sd[idx[c]]
            k = params[c, 1]
            xa = close[c0:c1]
            ma = mm[c0:c1]
            sa = ss[c0:c1]
            for i in range(nc):
                x = xa[i]
                mi = ma[i]
                lo = mi - k * sa[i]
                up = mi + k * sa[i]
                # band_step keeps flat unless an entry, long/short unless an exit or a NaN
                # (bitwise, not short-circuit, operators: the loop vectorises)
                ok = (x == x) & (lo == lo) & (mi == mi) & (up == up)
                f_flat = ok & ((x < lo) | (long_short & (x > up)))
                f_long = (~ok) | (x >= mi)
                f_short = (~ok) | (x <= mi)
                flags[i] = (np.uint8(f_flat) | (np.uint8(f_long) << ONE)
                            | (np.uint8(f_short) << TWO))
            rule = state[c, 15]
            prev = state[c, 13]
            j = 0
            t = c0
            while t < c1:
                mask = EV_FLAT if rule == 0.0 else (EV_LONG if rule > 0.0 else EV_SHORT)
                if t <= start:
                    # before start only the state moves; bar start books what it holds
                    stop = min(start, c1)
                    e = c0 + fp_next_event(flags, t - c0, stop - c0, mask)
                    if e >= stop:
                        if start >= c1:
                            break
                        e = start
                else:
                    e = c0 + fp_next_event(flags, t - c0, nc, mask)
                    if e >= c1:
                        break
                if flags[e - c0] & mask:
                    rule = band_step(rule, close[e], mm[e] - k * ss[e], mm[e],
                                     mm[e] + k * ss[e], long_short)
                if e >= start and rule != prev:
                    ct[j] = e
                    cp[j] = rule
                    j += 1
                    prev = rule
                t = e + 1
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


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

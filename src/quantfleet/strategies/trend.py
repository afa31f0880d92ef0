"""Trend-following seeds: moving-average crossovers and a trend filter."""

from __future__ import annotations

import numpy as np
from numba import njit

from quantfleet.kernels.fastpath import (
    FP_CHUNK,
    ONE,
    ZERO,
    fp_book,
    fp_chunk,
    fp_flag_changes,
    fp_prepare,
    fp_state,
)
from quantfleet.kernels.indicators import ema, unique_windows
from quantfleet.kernels.metrics import bar_returns, tail_finish, tail_flat, tail_init, tail_step
from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.space import Constraint, Int, ParamSpace

__all__ = [
    "EMA_CROSS",
    "SMA_CROSS",
    "SMA_TREND",
    "ema_cross_fast",
    "ema_cross_kernel",
    "sma_cross_fast",
    "sma_cross_kernel",
    "sma_trend_fast",
    "sma_trend_kernel",
]


@njit(cache=True)
def sma_cross_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                     long_short, start, out, returns_out):
    """Long 1 while SMA_fast > SMA_slow, else 0 (-1 in long/short mode). params: fast, slow.

    Both SMAs come from one prefix sum of close shared by every combo (O(bars) memory however
    many distinct windows the batch has): SMA_w[t] = (cs[t+1] - cs[t+1-w]) / w.
    """
    n = close.shape[0]
    r = bar_returns(close)
    cs = np.empty(n + 1)
    cs[0] = 0.0
    for t in range(n):
        cs[t + 1] = cs[t] + close[t]
    low_pos = -1.0 if long_short else 0.0
    for c in range(params.shape[0]):
        fw = int(params[c, 0])
        sw = int(params[c, 1])
        ff = float(fw)
        sf = float(sw)
        t0 = max(start, max(fw, sw) - 1)
        tail = tail_flat(tail_init(), float(min(t0, n) - start))
        for t in range(t0, n):
            # SMA_f > SMA_s  <=>  sum_f * sw > sum_s * fw  (no division in the hot loop)
            hi = cs[t + 1]
            pos = 1.0 if (hi - cs[t + 1 - fw]) * sf > (hi - cs[t + 1 - sw]) * ff else low_pos
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def sma_cross_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                   start, out, bsum, bsq, blk):
    """The fast path of :func:`sma_cross_kernel` (``Strategy.fast``; kernels/fastpath.py): the
    same rule, same expressions, scanned into change bars and booked by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    cs = np.empty(n + 1)
    cs[0] = 0.0
    for t in range(n):
        cs[t + 1] = cs[t] + close[t]
    low_pos = -1.0 if long_short else 0.0
    m = params.shape[0]
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    flags = np.zeros(FP_CHUNK + 8, dtype=np.uint8)
    for c0 in range(start, max(n, start + 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            fw = int(params[c, 0])
            sw = int(params[c, 1])
            ff = float(fw)
            sf = float(sw)
            t0 = max(c0, max(fw, sw) - 1)
            # slices and an explicit uint8 let LLVM vectorize the rule (4x)
            hs = cs[t0 + 1:c1 + 1]
            fs = cs[t0 + 1 - fw:c1 + 1 - fw]
            ss = cs[t0 + 1 - sw:c1 + 1 - sw]
            for i in range(c1 - t0):
                flags[i] = ONE if (hs[i] - fs[i]) * sf > (hs[i] - ss[i]) * ff else ZERO
            k = fp_flag_changes(flags, c1 - t0, t0, state[c, 13], 1.0, low_pos, ct, cp)
            fp_book(fp, ct, cp, k, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


SMA_CROSS = register(Strategy(
    name="sma_cross",
    family="trend",
    description="Long while SMA(fast) > SMA(slow) of close, else flat (short in long/short mode).",
    space=ParamSpace(
        dims=(Int("fast", 5, 50, default=10, hard_min=1), Int("slow", 20, 200, default=50, hard_min=2)),
        constraints=(Constraint("fast", "<", "slow"),),
        strategy="sma_cross",
    ),
    kernel=sma_cross_kernel,
    fast=sma_cross_fast,
    warmup=lambda p: int(p["slow"]) - 1,
    cost_ns=4,
))


@njit(cache=True)
def _ema_table(close, windows):
    """SMA-seeded EMA of ``close`` for each distinct window: (k, bars)."""
    table = np.empty((windows.shape[0], close.shape[0]))
    for i in range(windows.shape[0]):
        table[i] = ema(close, int(windows[i]))
    return table


@njit(cache=True)
def _ema_seed(close, w, row, upto):
    """``ema(close, w)`` into ``row`` up to bar ``upto`` (exclusive); returns the last value."""
    alpha = 2.0 / (w + 1.0)
    s = 0.0
    for t in range(w):
        s += close[t]
    v = s / w
    row[:w - 1] = np.nan
    row[w - 1] = v
    for t in range(w, upto):
        v = alpha * close[t] + (1.0 - alpha) * v
        row[t] = v
    return v


@njit(cache=True)
def _ema_table_interleaved(close, windows):
    """:func:`_ema_table` with four windows' recurrences advanced in one loop over the bars, so
    the four dependency chains overlap; each value is the same operations in the same order as
    :func:`ema`, hence the same bits."""
    n = close.shape[0]
    k = windows.shape[0]
    table = np.empty((k, n))
    i = 0
    while i < k:
        if i + 4 > k or windows[i] < 1 or windows[i + 3] > n:
            table[i] = ema(close, int(windows[i]))
            i += 1
            continue
        w0 = int(windows[i])
        w1 = int(windows[i + 1])
        w2 = int(windows[i + 2])
        w3 = int(windows[i + 3])
        top = max(max(w0, w1), max(w2, w3))
        r0 = table[i]
        r1 = table[i + 1]
        r2 = table[i + 2]
        r3 = table[i + 3]
        v0 = _ema_seed(close, w0, r0, top)
        v1 = _ema_seed(close, w1, r1, top)
        v2 = _ema_seed(close, w2, r2, top)
        v3 = _ema_seed(close, w3, r3, top)
        a0 = 2.0 / (w0 + 1.0)
        a1 = 2.0 / (w1 + 1.0)
        a2 = 2.0 / (w2 + 1.0)
        a3 = 2.0 / (w3 + 1.0)
        for t in range(top, n):
            x = close[t]
            v0 = a0 * x + (1.0 - a0) * v0
            v1 = a1 * x + (1.0 - a1) * v1
            v2 = a2 * x + (1.0 - a2) * v2
            v3 = a3 * x + (1.0 - a3) * v3
            r0[t] = v0
            r1[t] = v1
            r2[t] = v2
            r3[t] = v3
        i += 4
    return table


@njit(cache=True)
def ema_cross_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                     long_short, start, out, returns_out):
    """Long 1 while EMA_fast > EMA_slow, else 0 (-1 in long/short mode). params: fast, slow."""
    n = close.shape[0]
    r = bar_returns(close)
    both = np.concatenate((params[:, 0], params[:, 1]))
    uniq, idx = unique_windows(both)
    table = _ema_table(close, uniq)
    m = params.shape[0]
    low_pos = -1.0 if long_short else 0.0
    for c in range(m):
        f = table[idx[c]]
        s = table[idx[m + c]]
        warm = int(max(params[c, 0], params[c, 1])) - 1
        tail = tail_init()
        for t in range(start, n):
            pos = 0.0
            if t >= warm:
                pos = 1.0 if f[t] > s[t] else low_pos
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def ema_cross_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                   start, out, bsum, bsq, blk):
    """The fast path of :func:`ema_cross_kernel` (kernels/fastpath.py)."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    both = np.concatenate((params[:, 0], params[:, 1]))
    uniq, idx = unique_windows(both)
    table = _ema_table_interleaved(close, uniq)
    m = params.shape[0]
    low_pos = -1.0 if long_short else 0.0
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    flags = np.zeros(FP_CHUNK + 8, dtype=np.uint8)
    for c0 in range(start, max(n, start + 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            f = table[idx[c]]
            s = table[idx[m + c]]
            warm = int(max(params[c, 0], params[c, 1])) - 1
            t0 = max(c0, warm)
            fa = f[t0:c1]
            sa = s[t0:c1]
            for i in range(c1 - t0):
                flags[i] = ONE if fa[i] > sa[i] else ZERO
            k = fp_flag_changes(flags, c1 - t0, t0, state[c, 13], 1.0, low_pos, ct, cp)
            fp_book(fp, ct, cp, k, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


EMA_CROSS = register(Strategy(
    name="ema_cross",
    family="trend",
    description="Long while EMA(fast) > EMA(slow) of close, else flat (short in long/short mode).",
    space=ParamSpace(
        dims=(Int("fast", 5, 50, default=12, hard_min=1), Int("slow", 20, 200, default=26, hard_min=2)),
        constraints=(Constraint("fast", "<", "slow"),),
        strategy="ema_cross",
    ),
    kernel=ema_cross_kernel,
    fast=ema_cross_fast,
    warmup=lambda p: int(p["slow"]) - 1,
    cost_ns=4,
))


@njit(cache=True)
def _close_prefix(close):
    """Prefix sums of close, (bars + 1,): cs[t + 1] - cs[t + 1 - w] is the sum of the last w."""
    n = close.shape[0]
    cs = np.empty(n + 1)
    cs[0] = 0.0
    for t in range(n):
        cs[t + 1] = cs[t] + close[t]
    return cs


@njit(cache=True)
def sma_trend_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                     long_short, start, out, returns_out):
    """Long 1 while close > SMA(window), else 0 (-1 in long/short mode). params: window.

    The SMA comes from one prefix sum of close shared by every combo (O(bars) memory however
    many distinct windows), compared without division: close * w > sum of the last w closes.
    """
    n = close.shape[0]
    r = bar_returns(close)
    cs = _close_prefix(close)
    low_pos = -1.0 if long_short else 0.0
    for c in range(params.shape[0]):
        w = int(params[c, 0])
        wf = float(w)
        t0 = max(start, w - 1)
        tail = tail_flat(tail_init(), float(min(t0, n) - start))
        for t in range(t0, n):
            pos = 1.0 if close[t] * wf > cs[t + 1] - cs[t + 1 - w] else low_pos
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def sma_trend_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                   start, out, bsum, bsq, blk):
    """The fast path of :func:`sma_trend_kernel` (kernels/fastpath.py)."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    cs = _close_prefix(close)
    low_pos = -1.0 if long_short else 0.0
    m = params.shape[0]
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    flags = np.zeros(FP_CHUNK + 8, dtype=np.uint8)
    for c0 in range(start, max(n, start + 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            w = int(params[c, 0])
            wf = float(w)
            t0 = max(c0, w - 1)
            xa = close[t0:c1]
            hs = cs[t0 + 1:c1 + 1]
            ls = cs[t0 + 1 - w:c1 + 1 - w]
            for i in range(c1 - t0):
                flags[i] = ONE if xa[i] * wf > hs[i] - ls[i] else ZERO
            k = fp_flag_changes(flags, c1 - t0, t0, state[c, 13], 1.0, low_pos, ct, cp)
            fp_book(fp, ct, cp, k, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


SMA_TREND = register(Strategy(
    name="sma_trend",
    family="trend",
    description="Long while close > SMA(window), else flat (short in long/short mode).",
    space=ParamSpace(
        dims=(Int("window", 20, 250, step=5, default=200, hard_min=2),),
        strategy="sma_trend",
    ),
    kernel=sma_trend_kernel,
    fast=sma_trend_fast,
    warmup=lambda p: int(p["window"]) - 1,
    cost_ns=4.5,
))

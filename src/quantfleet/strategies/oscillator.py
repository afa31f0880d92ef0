"""Oscillator seeds: mean reversion on RSI and on stochastic %K/%D crosses.

Both rules are stateful: the state evolves from the first bar where every indicator is defined,
warm-up bars before ``start`` included; long-only mode never enters a short.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantfleet.kernels.fastpath import FP_CHUNK, fp_book, fp_chunk, fp_prepare, fp_state
from quantfleet.kernels.indicators import rsi, sma, stochastic_k, unique_windows
from quantfleet.kernels.metrics import bar_returns, tail_finish, tail_init, tail_step
from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.space import Constraint, Float, Int, ParamSpace

__all__ = [
    "RSI",
    "STOCHASTIC",
    "rsi_fast",
    "rsi_kernel",
    "stochastic_fast",
    "stochastic_kernel",
]


@njit(cache=True)
def _rsi_table(close, windows):
    table = np.empty((windows.shape[0], close.shape[0]))
    for i in range(windows.shape[0]):
        table[i] = rsi(close, int(windows[i]))
    return table


@njit(cache=True)
def rsi_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
               long_short, start, out, returns_out):
    """RSI mean reversion. params: window, lower, upper.

    Each bar, first the exit: a long exits when RSI > upper, a short when RSI < lower. Then,
    when flat (just exited included): long when RSI < lower; short (long/short mode) when
    RSI > upper. In long/short mode a position therefore reverses at the opposite threshold.
    """
    n = close.shape[0]
    r = bar_returns(close)
    uniq, idx = unique_windows(params[:, 0].copy())
    table = _rsi_table(close, uniq)
    for c in range(params.shape[0]):
        v = table[idx[c]]
        lower = params[c, 1]
        upper = params[c, 2]
        warm = int(params[c, 0])  # RSI(w) is defined from bar w
        tail = tail_init()
        state = 0.0
        for t in range(min(start, warm), n):
            if t >= warm:
                x = v[t]
                if state > 0.0 and x > upper:
                    state = 0.0
                elif state < 0.0 and x < lower:
                    state = 0.0
                if state == 0.0:
                    if x < lower:
                        state = 1.0
                    elif long_short and x > upper:
                        state = -1.0
            if t >= start:
                tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def rsi_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
             start, out, bsum, bsq, blk):
    """The fast path of :func:`rsi_kernel` (kernels/fastpath.py): the same threshold state machine per bar, its changes booked by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    uniq, idx = unique_windows(params[:, 0].copy())
    table = _rsi_table(close, uniq)
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            v = table[idx[c]]
            lower = params[c, 1]
            upper = params[c, 2]
            warm = int(params[c, 0])
            rule = state[c, 15]
            j = 0
            prev = state[c, 13]
            for t in range(max(c0, warm), c1):
                x = v[t]
                if rule > 0.0 and x > upper:
                    rule = 0.0
                elif rule < 0.0 and x < lower:
                    rule = 0.0
                if rule == 0.0:
                    if x < lower:
                        rule = 1.0
                    elif long_short and x > upper:
                        rule = -1.0
                if t >= start:
                    ct[j] = t
                    cp[j] = rule
                    j += rule != prev
                    prev = rule
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


RSI = register(Strategy(
    name="rsi",
    family="oscillator",
    description="Mean reversion: long when RSI < lower until RSI > upper (short the mirror image).",
    space=ParamSpace(
        dims=(
            Int("window", 5, 30, default=14, hard_min=2),
            Float("lower", 10.0, 40.0, default=30.0, hard_min=0.0, hard_max=100.0),
            Float("upper", 60.0, 90.0, default=70.0, hard_min=0.0, hard_max=100.0),
        ),
        constraints=(Constraint("lower", "<", "upper"),),
        strategy="rsi",
    ),
    kernel=rsi_kernel,
    fast=rsi_fast,
    warmup=lambda p: int(p["window"]),
    cost_ns=3.5,
))


@njit(cache=True)
def _stoch_tables(high, low, close, k_windows, d_windows, pair_keys):
    """%K for each distinct k window, (k, bars); %D for each distinct (k, d) pair, (p, bars).

    ``pair_keys`` are ``k_index * len(d_windows) + d_index``.
    """
    n = close.shape[0]
    ktab = np.empty((k_windows.shape[0], n))
    for i in range(k_windows.shape[0]):
        ktab[i] = stochastic_k(high, low, close, int(k_windows[i]))
    nd = d_windows.shape[0]
    dtab = np.full((pair_keys.shape[0], n), np.nan)
    for j in range(pair_keys.shape[0]):
        ki = int(pair_keys[j]) // nd
        di = int(pair_keys[j]) % nd
        first = int(k_windows[ki]) - 1
        if first < n:
            # %K is NaN before ``first``: average only its defined part
            dtab[j, first:] = sma(ktab[ki, first:], int(d_windows[di]))
    return ktab, dtab


@njit(cache=True)
def stochastic_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                      long_short, start, out, returns_out):
    """Stochastic %K/%D crosses. params: k_window, d_window, lower, upper.

    %K crosses above %D at bar t when K[t] > D[t] and K[t-1] <= D[t-1] (below: mirrored).
    Each bar, first the exit: a long exits on a cross below while D[t] > upper, a short on a
    cross above while D[t] < lower. Then, when flat (just exited included): long on a cross
    above while D[t] < lower; short (long/short mode) on a cross below while D[t] > upper.
    """
    n = close.shape[0]
    r = bar_returns(close)
    ku, ki = unique_windows(params[:, 0].copy())
    du, di = unique_windows(params[:, 1].copy())
    keys = (ki * du.shape[0] + di).astype(np.float64)
    pu, pi = unique_windows(keys)
    ktab, dtab = _stoch_tables(high, low, close, ku, du, pu)
    for c in range(params.shape[0]):
        k = ktab[ki[c]]
        d = dtab[pi[c]]
        lower = params[c, 2]
        upper = params[c, 3]
        # %D is defined from bar k + d - 2; a cross also needs the bar before
        warm = int(params[c, 0]) + int(params[c, 1]) - 1
        tail = tail_init()
        state = 0.0
        for t in range(min(start, warm), n):
            if t >= warm:
                up = k[t] > d[t] and k[t - 1] <= d[t - 1]
                down = k[t] < d[t] and k[t - 1] >= d[t - 1]
                if state > 0.0 and down and d[t] > upper:
                    state = 0.0
                elif state < 0.0 and up and d[t] < lower:
                    state = 0.0
                if state == 0.0:
                    if up and d[t] < lower:
                        state = 1.0
                    elif long_short and down and d[t] > upper:
                        state = -1.0
            if t >= start:
                tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def stochastic_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                    start, out, bsum, bsq, blk):
    """The fast path of :func:`stochastic_kernel` (kernels/fastpath.py): the same cross state machine per bar, its changes booked by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    ku, ki = unique_windows(params[:, 0].copy())
    du, di = unique_windows(params[:, 1].copy())
    keys = (ki * du.shape[0] + di).astype(np.float64)
    pu, pi = unique_windows(keys)
    ktab, dtab = _stoch_tables(high, low, close, ku, du, pu)
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            k = ktab[ki[c]]
            d = dtab[pi[c]]
            lower = params[c, 2]
            upper = params[c, 3]
            warm = int(params[c, 0]) + int(params[c, 1]) - 1
            rule = state[c, 15]
            j = 0
            prev = state[c, 13]
            for t in range(max(c0, warm), c1):
                up = k[t] > d[t] and k[t - 1] <= d[t - 1]
                down = k[t] < d[t] and k[t - 1] >= d[t - 1]
                if rule > 0.0 and down and d[t] > upper:
                    rule = 0.0
                elif rule < 0.0 and up and d[t] < lower:
                    rule = 0.0
                if rule == 0.0:
                    if up and d[t] < lower:
                        rule = 1.0
                    elif long_short and down and d[t] > upper:
                        rule = -1.0
                if t >= start:
                    ct[j] = t
                    cp[j] = rule
                    j += rule != prev
                    prev = rule
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


STOCHASTIC = register(Strategy(
    name="stochastic",
    family="oscillator",
    description="Long when %K crosses above %D below lower, out when it crosses below %D above upper.",
    space=ParamSpace(
        dims=(
            Int("k_window", 5, 30, default=14, hard_min=1),
            Int("d_window", 2, 10, default=3, hard_min=2),
            Float("lower", 10.0, 40.0, default=20.0, hard_min=0.0, hard_max=100.0),
            Float("upper", 60.0, 90.0, default=80.0, hard_min=0.0, hard_max=100.0),
        ),
        constraints=(Constraint("lower", "<", "upper"),),
        strategy="stochastic",
    ),
    kernel=stochastic_kernel,
    fast=stochastic_fast,
    needs=("high", "low"),
    warmup=lambda p: int(p["k_window"]) + int(p["d_window"]) - 1,
    cost_ns=5,
))

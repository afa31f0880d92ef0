"""Indicator kernels: arrays in, arrays out, NaN where the indicator is not yet defined.

Every function is ``@njit(cache=True)`` and O(bars) unless its docstring says otherwise.
Strategy kernels compute each unique window once per batch with these and share the result
across every combo that uses it (see ``unique_windows``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "atr",
    "ema",
    "midpoint",
    "nw_regression",
    "rolling_max",
    "rolling_min",
    "rolling_pstd",
    "rolling_quantiles",
    "rolling_std",
    "rolling_vwap",
    "rsi",
    "sma",
    "sma_table",
    "stochastic_k",
    "unique_pairs",
    "unique_windows",
]


@njit(cache=True)
def unique_windows(values):
    """Distinct values and, for each input, the index of its value: ``(uniq, idx)``.

    Parameters
    ----------
    values : float64 (combos,)

    Returns
    -------
    uniq : float64 (k,) sorted distinct values
    idx : int64 (combos,) with ``uniq[idx[i]] == values[i]``
    """
    uniq = np.unique(values)
    idx = np.searchsorted(uniq, values)
    return uniq, idx


@njit(cache=True)
def sma(x, w):
    """Simple moving average over ``w`` bars; defined from bar ``w - 1``."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if w < 1 or w > n:
        return out
    s = 0.0
    for t in range(n):
        s += x[t]
        if t >= w:
            s -= x[t - w]
        if t >= w - 1:
            out[t] = s / w
    return out


@njit(cache=True)
def sma_table(close, windows):
    """SMA of ``close`` for each distinct window, float64 (k, bars): one row per window."""
    table = np.empty((windows.shape[0], close.shape[0]))
    for i in range(windows.shape[0]):
        table[i] = sma(close, int(windows[i]))
    return table


@njit(cache=True)
def ema(x, w):
    """Exponential moving average, alpha = 2 / (w + 1), seeded with the SMA of the first ``w`` bars.

    Defined from bar ``w - 1`` (as TA-Lib and vectorbt's ``ewm=True`` with ``adjust=False``
    after an SMA seed).
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    if w < 1 or w > n:
        return out
    alpha = 2.0 / (w + 1.0)
    s = 0.0
    for t in range(w):
        s += x[t]
    v = s / w
    out[w - 1] = v
    for t in range(w, n):
        v = alpha * x[t] + (1.0 - alpha) * v
        out[t] = v
    return out


@njit(cache=True)
def rolling_std(x, w):
    """Rolling sample standard deviation (ddof=1) over ``w`` bars; O(bars * w) for exactness."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if w < 2 or w > n:
        return out
    for t in range(w - 1, n):
        m = 0.0
        for k in range(t - w + 1, t + 1):
            m += x[k]
        m /= w
        ss = 0.0
        for k in range(t - w + 1, t + 1):
            d = x[k] - m
            ss += d * d
        out[t] = math.sqrt(ss / (w - 1))
    return out


@njit(cache=True)
def rolling_max(x, w):
    """Highest value of the last ``w`` bars (monotone deque, O(bars)); defined from bar ``w - 1``."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if w < 1 or w > n:
        return out
    dq = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    for t in range(n):
        while tail > head and x[dq[tail - 1]] <= x[t]:
            tail -= 1
        dq[tail] = t
        tail += 1
        if dq[head] <= t - w:
            head += 1
        if t >= w - 1:
            out[t] = x[dq[head]]
    return out


@njit(cache=True)
def rolling_min(x, w):
    """Lowest value of the last ``w`` bars; defined from bar ``w - 1``."""
    return -rolling_max(-x, w)


@njit(cache=True)
def atr(high, low, close, w):
    """Average true range, Wilder's smoothing (alpha = 1 / w) seeded with the mean of the first
    ``w`` true ranges; the first true range is ``high - low``. Defined from bar ``w - 1``."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if w < 1 or w > n:
        return out
    tr = np.empty(n)
    for t in range(n):
        hl = high[t] - low[t]
        if t == 0:
            tr[t] = hl
        else:
            tr[t] = max(hl, abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
    s = 0.0
    for t in range(w):
        s += tr[t]
    v = s / w
    out[w - 1] = v
    for t in range(w, n):
        v = v + (tr[t] - v) / w
        out[t] = v
    return out


@njit(cache=True)
def rsi(close, w):
    """Relative strength index with Wilder's smoothing; defined from bar ``w``.

    Average gain and loss are seeded with the simple mean of the first ``w`` changes.
    RSI is 100 when there is no loss and 50 when there is neither gain nor loss.
    """
    n = close.shape[0]
    out = np.full(n, np.nan)
    if w < 1 or w >= n:
        return out
    g = 0.0
    lo = 0.0
    for t in range(1, w + 1):
        d = close[t] - close[t - 1]
        if d > 0:
            g += d
        else:
            lo -= d
    g /= w
    lo /= w
    for t in range(w, n):
        if t > w:
            d = close[t] - close[t - 1]
            up = d if d > 0 else 0.0
            dn = -d if d < 0 else 0.0
            g = (g * (w - 1) + up) / w
            lo = (lo * (w - 1) + dn) / w
        if lo == 0.0:
            out[t] = 50.0 if g == 0.0 else 100.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + g / lo)
    return out


@njit(cache=True)
def midpoint(high, low, w):
    """Donchian midline ``(highest high + lowest low) / 2`` of the last ``w`` bars (current bar
    included), as Ichimoku's tenkan, kijun and senkou B lines; defined from bar ``w - 1``."""
    return (rolling_max(high, w) + rolling_min(low, w)) / 2.0


@njit(cache=True)
def stochastic_k(high, low, close, w):
    """Stochastic %K: ``100 * (close - lowest low) / (highest high - lowest low)`` over the last
    ``w`` bars (current bar included), 50 when that range is 0; defined from bar ``w - 1``."""
    hh = rolling_max(high, w)
    ll = rolling_min(low, w)
    n = close.shape[0]
    out = np.full(n, np.nan)
    for t in range(n):
        if not (np.isnan(hh[t]) or np.isnan(ll[t])):
            rng = hh[t] - ll[t]
            out[t] = 50.0 if rng == 0.0 else 100.0 * (close[t] - ll[t]) / rng
    return out


@njit(cache=True)
def unique_pairs(a, b):
    """Distinct ``(a, b)`` pairs and, for each input, the index of its pair: ``(ua, ub, idx)``.

    Parameters
    ----------
    a, b : float64 (combos,)

    Returns
    -------
    ua, ub : float64 (k,) distinct pairs sorted by ``a`` then ``b``
    idx : int64 (combos,) with ``(ua[idx[i]], ub[idx[i]]) == (a[i], b[i])``
    """
    va, ia = unique_windows(a)
    vb, ib = unique_windows(b)
    # one exact integer key per pair, as float64 so the same unique_windows specialization
    # serves (cheap to compile); exact while combos ** 2 < 2 ** 53
    nb = vb.shape[0]
    keys, idx = unique_windows((ia * nb + ib).astype(np.float64))
    k = keys.astype(np.int64)
    return va[k // nb], vb[k % nb], idx


@njit(cache=True)
def rolling_pstd(x, w):
    """Rolling population standard deviation (ddof=0, as Bollinger bands in TA-Lib) over ``w``
    bars; defined from bar ``w - 1``.

    O(bars): a sliding Welford update, recomputed exactly (two passes) every ``w`` bars so
    rounding cannot build up over a long series; windows up to 16 bars, where a sliding update
    loses the most to cancellation, are always computed in two passes.
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    if w < 1 or w > n:
        return out
    m = 0.0
    ss = 0.0
    for t in range(w - 1, n):
        if w <= 16 or (t - w + 1) % w == 0:
            m = 0.0
            for k in range(t - w + 1, t + 1):
                m += x[k]
            m /= w
            ss = 0.0
            for k in range(t - w + 1, t + 1):
                d = x[k] - m
                ss += d * d
        else:
            new = x[t]
            old = x[t - w]
            m_new = m + (new - old) / w
            ss += (new - old) * (new - m_new + old - m)
            m = m_new
            if ss < 0.0:
                ss = 0.0
        out[t] = math.sqrt(ss / w)
    return out


@njit(cache=True)
def rolling_vwap(price, volume, w):
    """Rolling volume-weighted average ``sum(price * volume) / sum(volume)`` over the last ``w``
    bars; defined from bar ``w - 1`` where the window has some volume (NaN where it has none)."""
    n = price.shape[0]
    out = np.full(n, np.nan)
    if w < 1 or w > n:
        return out
    pv = 0.0
    v = 0.0
    traded = 0  # bars with volume in the window: an exact zero test despite rounding in v
    for t in range(n):
        pv += price[t] * volume[t]
        v += volume[t]
        traded += volume[t] > 0.0
        if t >= w:
            pv -= price[t - w] * volume[t - w]
            v -= volume[t - w]
            traded -= volume[t - w] > 0.0
        if t >= w - 1 and traded > 0 and v > 0.0:
            out[t] = pv / v
    return out


@njit(cache=True)
def nw_regression(x, h, w):
    """Causal Nadaraya-Watson estimate with a Gaussian kernel: at bar ``t`` the average of
    ``x[t - k]``, k = 0..w-1, weighted ``exp(-k**2 / (2 h**2))``. Uses no later bar, so it never
    repaints. O(bars * w); defined from bar ``w - 1``."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if w < 1 or w > n or not h > 0.0:
        return out
    wt = np.empty(w)
    tot = 0.0
    for k in range(w):
        wt[k] = math.exp(-(k * k) / (2.0 * h * h))
        tot += wt[k]
    for t in range(w - 1, n):
        s = 0.0
        for k in range(w):
            s += wt[k] * x[t - k]
        out[t] = s / tot
    return out


@njit(cache=True)
def rolling_quantiles(x, w, qs):
    """Quantiles ``qs`` of the last ``w`` values (current bar included) with linear
    interpolation (numpy's default method): float64 (len(qs), bars). An insertion-sorted window,
    O(bars * w); defined from bar ``w - 1``."""
    n = x.shape[0]
    nq = qs.shape[0]
    out = np.full((nq, n), np.nan)
    if w < 1 or w > n:
        return out
    buf = np.empty(w)
    size = 0
    for t in range(n):
        if t >= w:
            # drop x[t - w]: find it, close the gap
            old = x[t - w]
            j = 0
            while j < size - 1 and buf[j] != old:
                j += 1
            for k in range(j, size - 1):
                buf[k] = buf[k + 1]
            size -= 1
        v = x[t]
        j = size
        while j > 0 and buf[j - 1] > v:
            buf[j] = buf[j - 1]
            j -= 1
        buf[j] = v
        size += 1
        if t >= w - 1:
            for i in range(nq):
                pos = (w - 1) * qs[i]
                lo = int(math.floor(pos))
                if lo >= w - 1:
                    out[i, t] = buf[w - 1]
                else:
                    frac = pos - lo
                    out[i, t] = buf[lo] + frac * (buf[lo + 1] - buf[lo])
    return out

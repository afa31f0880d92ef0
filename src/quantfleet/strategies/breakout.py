"""Breakout seeds: Donchian channels, an SMA entry with an ATR trailing stop, the Ichimoku cloud.

Stateful rules (donchian, atr_stop) evolve their state from the first bar where every indicator
is defined, warm-up bars before ``start`` included; long-only mode never enters a short.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

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
    atr,
    midpoint,
    rolling_max,
    rolling_min,
    sma_table,
    unique_windows,
)
from quantfleet.kernels.metrics import bar_returns, tail_finish, tail_init, tail_step
from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.space import Constraint, Float, Int, ParamSpace

__all__ = [
    "ATR_STOP",
    "DONCHIAN",
    "ICHIMOKU",
    "atr_stop_fast",
    "atr_stop_kernel",
    "donchian_fast",
    "donchian_kernel",
    "ichimoku_fast",
    "ichimoku_kernel",
]


@njit(cache=True)
def _channel_tables(high, low, windows):
    """Highest high and lowest low of the last ``w`` bars for each distinct window: 2 × (k, bars)."""
    hh = np.empty((windows.shape[0], high.shape[0]))
    ll = np.empty((windows.shape[0], high.shape[0]))
    for i in range(windows.shape[0]):
        hh[i] = rolling_max(high, int(windows[i]))
        ll[i] = rolling_min(low, int(windows[i]))
    return hh, ll


@njit(cache=True)
def donchian_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                    long_short, start, out, returns_out):
    """Donchian channel breakout, Turtle style. params: entry, exit.

    Each bar, first the exit: a long exits when close < lowest low of the previous ``exit``
    bars, a short when close > highest high of the previous ``exit`` bars. Then, when flat
    (just exited included), the entry: long when close > highest high of the previous
    ``entry`` bars; short (long/short mode) when close < lowest low of the previous ``entry``
    bars. The current bar is excluded from both channels.
    """
    n = close.shape[0]
    r = bar_returns(close)
    m = params.shape[0]
    uniq, idx = unique_windows(np.concatenate((params[:, 0], params[:, 1])))
    hh, ll = _channel_tables(high, low, uniq)
    for c in range(m):
        he = hh[idx[c]]
        le = ll[idx[c]]
        hx = hh[idx[m + c]]
        lx = ll[idx[m + c]]
        # the channels of the previous w bars exist from bar w
        warm = int(max(params[c, 0], params[c, 1]))
        tail = tail_init()
        state = 0.0
        for t in range(min(start, warm), n):
            if t >= warm:
                x = close[t]
                if state > 0.0 and x < lx[t - 1]:
                    state = 0.0
                elif state < 0.0 and x > hx[t - 1]:
                    state = 0.0
                if state == 0.0:
                    if x > he[t - 1]:
                        state = 1.0
                    elif long_short and x < le[t - 1]:
                        state = -1.0
            if t >= start:
                tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def _breakout_ages(high, low, close, cap):
    """Per bar ``t``, how many bars back the channels of ``close[t]`` reach: ``up[t]`` is ``t - s``
    for the last ``s < t`` with ``high[s] >= close[t]`` (``t + 1`` if none), ``dn[t]`` the same
    with ``low[s] <= close[t]``; both capped at ``cap`` (int32, bars).

    For a window ``1 <= w < cap`` and a bar ``t >= w``, ``close[t] > max(high[t-w:t])`` exactly
    when ``up[t] > w`` and ``close[t] < min(low[t-w:t])`` exactly when ``dn[t] > w`` (a max is
    one of its values, no rounding): one age per bar answers every window's channel test.
    high and low without NaN. The last such ``s`` is found by jumping from ``t - 1`` along
    ``ph`` (the previous bar with a high >= this bar's high; every bar jumped over is lower):
    at most ``cap`` jumps a bar, O(bars) in all when ``low <= close <= high`` (a bar the close
    jumps over is lower than the bar's own high, so building ``ph[t]`` jumps over it for good).
    """
    n = close.shape[0]
    up = np.empty(n, dtype=np.int32)
    dn = np.empty(n, dtype=np.int32)
    ph = np.empty(n, dtype=np.int64)
    pl = np.empty(n, dtype=np.int64)
    for t in range(n):
        x = close[t]
        s = t - 1
        while s >= 0 and high[s] < x and t - s < cap:
            s = ph[s]
        up[t] = min(t - s, cap)
        s = t - 1
        while s >= 0 and low[s] > x and t - s < cap:
            s = pl[s]
        dn[t] = min(t - s, cap)
        v = high[t]
        s = t - 1
        while s >= 0 and high[s] < v:
            s = ph[s]
        ph[t] = s
        v = low[t]
        s = t - 1
        while s >= 0 and low[s] > v:
            s = pl[s]
        pl[t] = s
    return up, dn


@njit(cache=True)
def _window_ranks(windows, cap):
    """``(lo, rank)`` for the sorted distinct ``windows``: ``rank[a]`` (``a`` in ``0..cap``) is
    how many of them, as whole bars (``int``, the per-bar kernel's), are in ``[1, a)``; those are
    rows ``lo .. lo + rank[a] - 1`` (rows of windows < 1, whose channels never exist, come
    first and stay empty)."""
    k = windows.shape[0]
    lo = 0
    while lo < k and int(windows[lo]) < 1:
        lo += 1
    rank = np.zeros(cap + 1, dtype=np.int64)
    i = lo
    for a in range(cap + 1):
        while i < k and int(windows[i]) < a:
            i += 1
        rank[a] = i - lo
    return lo, rank


@njit(cache=True)
def _channel_ages(high, low, close, windows):
    """:func:`_breakout_ages` capped one bar above the longest window (or the data: ages above
    it answer every window alike) and :func:`_window_ranks` of the sorted distinct ``windows``:
    ``(lo, rank, up, dn)``, what :func:`_channel_bits` reads."""
    n = close.shape[0]
    cap = 0
    for i in range(windows.shape[0]):
        cap = max(cap, min(int(windows[i]), n))
    cap += 1
    lo, rank = _window_ranks(windows, cap)
    up, dn = _breakout_ages(high, low, close, cap)
    return lo, rank, up, dn


@njit(cache=True)
def _channel_bits(up, dn, lo, rank, c0, c1, UD):
    """Bars ``[c0, c1)`` (at most FP_CHUNK) as bit rows, one per window (rows as in
    :func:`_window_ranks`): bit ``i`` of row ``r`` of ``UD`` (64 bars a word) is set when bar
    ``c0 + i`` closes above the highest high of the previous ``w`` bars (window ``r``), of row
    ``k + r`` below the lowest low (``k`` windows; rows from ``2k`` on stay empty). A bar sets
    the bits of the windows below its ages: most bars set none."""
    k = (UD.shape[0] - 1) // 2
    UD[:, :] = 0
    one = np.uint64(1)
    for t in range(c0, c1):
        i = t - c0
        w = i >> 6
        b = one << np.uint64(i & 63)
        for r in range(lo, lo + rank[up[t]]):
            UD[r, w] |= b
        for r in range(k + lo, k + lo + rank[dn[t]]):
            UD[r, w] |= b


@njit(cache=True)
def _donchian_fast_bits(high, low, close, params, fee_rate, ppy, long_short, start, out, bsum,
                        bsq, blk):
    """:func:`donchian_fast` on high and low without NaN: the channel tests from one age per bar
    (:func:`_breakout_ages`), as per-window bit rows per chunk (:func:`_channel_bits`) shared by
    every combo with that entry or exit window; a combo jumps from one set bit of its current
    state's row to the next (a word of 64 bars at a time, the first set bit by count of trailing
    zeros) and runs the rule there, every bar in between provably keeping its state."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    uniq, idx = unique_windows(np.concatenate((params[:, 0], params[:, 1])))
    k = uniq.shape[0]
    lo, rank, up, dn = _channel_ages(high, low, close, uniq)
    # rows: U (close above the highest high) 0..k-1, D (below the lowest low) k..2k-1, and an
    # empty row 2k
    UD = np.zeros((2 * k + 1, FP_CHUNK >> 6), dtype=np.uint64)
    zero = 2 * k
    one = np.uint64(1)
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        _channel_bits(up, dn, lo, rank, c0, c1, UD)
        nc = c1 - c0
        for c in range(m):
            ue = idx[c]
            de = k + ue if long_short else zero
            ux = idx[m + c]
            dx = k + ux
            warm = int(max(params[c, 0], params[c, 1]))
            rule = int(state[c, 15])
            prev = state[c, 13]
            # the rows whose bits would move the current state: flat -> entry rows, long -> the
            # exit's D row, short -> the exit's U row
            ra, rb = (ue, de) if rule == 0 else ((dx, zero) if rule > 0 else (ux, zero))
            j = 0
            i = min(max(c0, warm), c1) - c0
            # bars before ``start`` move the state only; bar ``start`` books what it holds
            ps = min(max(start - c0, i), nc)
            lim = ps
            while True:
                # the first bar in [i, lim) with a bit in row ra or rb, else lim
                e = lim
                if i < lim:
                    w = i >> 6
                    x = ((UD[ra, w] | UD[rb, w]) >> np.uint64(i & 63)) << np.uint64(i & 63)
                    last = (lim - 1) >> 6
                    while x == 0 and w < last:
                        w += 1
                        x = UD[ra, w] | UD[rb, w]
                    if x != 0:
                        e = min((w << 6) + np.int64(trailing_zeros(x)), lim)
                if e == lim:
                    if lim == nc:
                        break
                    i = ps
                    lim = nc
                    if c0 + ps != start:
                        continue
                    # bar start: the rule runs whether the bar is marked or not
                    e = ps
                # the rule on bar e, from the bits of its windows
                if rule > 0 and (UD[dx, e >> 6] >> np.uint64(e & 63)) & one:
                    rule = 0
                elif rule < 0 and (UD[ux, e >> 6] >> np.uint64(e & 63)) & one:
                    rule = 0
                if rule == 0:
                    if (UD[ue, e >> 6] >> np.uint64(e & 63)) & one:
                        rule = 1
                    elif (UD[de, e >> 6] >> np.uint64(e & 63)) & one:
                        rule = -1
                ra, rb = (ue, de) if rule == 0 else ((dx, zero) if rule > 0 else (ux, zero))
                if c0 + e >= start and rule != prev:
                    ct[j] = c0 + e
                    cp[j] = rule
                    j += 1
                    prev = float(rule)
                i = e + 1
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


@njit(cache=True)
def _donchian_fast_tables(high, low, close, params, fee_rate, ppy, long_short, start, out, bsum,
                          bsq, blk):
    """:func:`donchian_fast` when high or low has a NaN: the per-bar kernel's channel tables
    (deque), a vectorised pass per chunk marking the bars that would change the state from
    flat / long / short, the exact rule on the marked bars of the current state."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    uniq, idx = unique_windows(np.concatenate((params[:, 0], params[:, 1])))
    hh, ll = _channel_tables(high, low, uniq)
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
            he = hh[idx[c]]
            le = ll[idx[c]]
            hx = hh[idx[m + c]]
            lx = ll[idx[m + c]]
            # the channels of the previous w bars exist from bar w
            warm = int(max(params[c, 0], params[c, 1]))
            t0 = min(max(c0, warm), c1)
            flags[:t0 - c0] = 0
            xa = close[t0:c1]
            hea = he[t0 - 1:c1 - 1]
            lea = le[t0 - 1:c1 - 1]
            hxa = hx[t0 - 1:c1 - 1]
            lxa = lx[t0 - 1:c1 - 1]
            b = t0 - c0
            for i in range(c1 - t0):
                x = xa[i]
                f_flat = (x > hea[i]) | (long_short & (x < lea[i]))
                flags[b + i] = (np.uint8(f_flat) | (np.uint8(x < lxa[i]) << ONE)
                                | (np.uint8(x > hxa[i]) << TWO))
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
                    x = close[e]
                    if rule > 0.0 and x < lx[e - 1]:
                        rule = 0.0
                    elif rule < 0.0 and x > hx[e - 1]:
                        rule = 0.0
                    if rule == 0.0:
                        if x > he[e - 1]:
                            rule = 1.0
                        elif long_short and x < le[e - 1]:
                            rule = -1.0
                if e >= start and rule != prev:
                    ct[j] = e
                    cp[j] = rule
                    j += 1
                    prev = rule
                t = e + 1
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


@njit(cache=True)
def donchian_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                  start, out, bsum, bsq, blk):
    """The fast path of :func:`donchian_kernel` (kernels/fastpath.py): the bars where each
    combo's state changes, booked by ``fp_book``; found from per-window bit rows of the channel
    tests (:func:`_donchian_fast_bits`), or, when high or low has a NaN, from the per-bar
    kernel's channel tables (:func:`_donchian_fast_tables`)."""
    for t in range(close.shape[0]):
        if np.isnan(high[t]) or np.isnan(low[t]):
            _donchian_fast_tables(high, low, close, params, fee_rate, ppy, long_short, start, out,
                                  bsum, bsq, blk)
            return
    _donchian_fast_bits(high, low, close, params, fee_rate, ppy, long_short, start, out, bsum,
                        bsq, blk)


DONCHIAN = register(Strategy(
    name="donchian",
    family="breakout",
    description="Long on a close above the prior entry-bar high, out below the prior exit-bar low (Turtle).",
    space=ParamSpace(
        dims=(Int("entry", 10, 100, default=20, hard_min=1), Int("exit", 5, 50, default=10, hard_min=1)),
        constraints=(Constraint("exit", "<=", "entry"),),
        strategy="donchian",
    ),
    kernel=donchian_kernel,
    fast=donchian_fast,
    needs=("high", "low"),
    warmup=lambda p: max(int(p["entry"]), int(p["exit"])),
    cost_ns=5,
))


@njit(cache=True)
def _atr_table(high, low, close, windows):
    table = np.empty((windows.shape[0], close.shape[0]))
    for i in range(windows.shape[0]):
        table[i] = atr(high, low, close, int(windows[i]))
    return table


@njit(cache=True)
def atr_stop_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                    long_short, start, out, returns_out):
    """SMA trend entry with an ATR trailing (chandelier) stop. params: trend, atr_window, mult.

    Each bar, first the stop: a long exits when close < highest close since entry
    - mult * ATR; a short (long/short mode) when close > lowest close since entry + mult * ATR.
    A side is re-armed by a close on the other side of the SMA (<= for longs, >= for shorts)
    on any bar since its last stop, the stop bar included; it starts armed. Then, when flat,
    enter long if armed and close > SMA, or short if armed and close < SMA.
    """
    n = close.shape[0]
    r = bar_returns(close)
    su, si = unique_windows(params[:, 0].copy())
    au, ai = unique_windows(params[:, 1].copy())
    smas = sma_table(close, su)
    atrs = _atr_table(high, low, close, au)
    for c in range(params.shape[0]):
        s = smas[si[c]]
        a = atrs[ai[c]]
        mult = params[c, 2]
        warm = int(max(params[c, 0], params[c, 1])) - 1
        tail = tail_init()
        state = 0.0
        ext = 0.0
        armed_long = True
        armed_short = True
        for t in range(min(start, warm), n):
            if t >= warm:
                x = close[t]
                if state > 0.0:
                    ext = max(ext, x)
                    if x < ext - mult * a[t]:
                        state = 0.0
                        armed_long = False
                elif state < 0.0:
                    ext = min(ext, x)
                    if x > ext + mult * a[t]:
                        state = 0.0
                        armed_short = False
                if x <= s[t]:
                    armed_long = True
                if x >= s[t]:
                    armed_short = True
                if state == 0.0:
                    if armed_long and x > s[t]:
                        state = 1.0
                        ext = x
                    elif long_short and armed_short and x < s[t]:
                        state = -1.0
                        ext = x
            if t >= start:
                tail = tail_step(tail, state, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def atr_stop_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                  start, out, bsum, bsq, blk):
    """The fast path of :func:`atr_stop_kernel` (kernels/fastpath.py): the same stop state machine per bar (its state: position, extreme since entry, armed flags, carried between chunks), its changes booked by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    su, si = unique_windows(params[:, 0].copy())
    au, ai = unique_windows(params[:, 1].copy())
    smas = sma_table(close, su)
    atrs = _atr_table(high, low, close, au)
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            s = smas[si[c]]
            a = atrs[ai[c]]
            mult = params[c, 2]
            warm = int(max(params[c, 0], params[c, 1])) - 1
            ext = state[c, 16]
            armed_long = state[c, 17] == 0.0
            armed_short = state[c, 18] == 0.0
            rule = state[c, 15]
            j = 0
            prev = state[c, 13]
            for t in range(max(c0, warm), c1):
                x = close[t]
                if rule > 0.0:
                    ext = max(ext, x)
                    if x < ext - mult * a[t]:
                        rule = 0.0
                        armed_long = False
                elif rule < 0.0:
                    ext = min(ext, x)
                    if x > ext + mult * a[t]:
                        rule = 0.0
                        armed_short = False
                if x <= s[t]:
                    armed_long = True
                if x >= s[t]:
                    armed_short = True
                if rule == 0.0:
                    if armed_long and x > s[t]:
                        rule = 1.0
                        ext = x
                    elif long_short and armed_short and x < s[t]:
                        rule = -1.0
                        ext = x
                if t >= start:
                    ct[j] = t
                    cp[j] = rule
                    j += rule != prev
                    prev = rule
            state[c, 15] = rule
            state[c, 16] = ext
            state[c, 17] = 0.0 if armed_long else 1.0
            state[c, 18] = 0.0 if armed_short else 1.0
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


ATR_STOP = register(Strategy(
    name="atr_stop",
    family="breakout",
    description="Long above SMA(trend) with a mult × ATR trailing stop; re-entry after a new cross.",
    space=ParamSpace(
        dims=(
            Int("trend", 20, 200, default=50, hard_min=2),
            Int("atr_window", 5, 50, default=22, hard_min=1),
            Float("mult", 1.0, 5.0, default=3.0, hard_min=0.0),
        ),
        strategy="atr_stop",
    ),
    kernel=atr_stop_kernel,
    fast=atr_stop_fast,
    needs=("high", "low"),
    warmup=lambda p: max(int(p["trend"]), int(p["atr_window"])) - 1,
    cost_ns=4,
))


@njit(cache=True)
def _midpoint_table(high, low, windows):
    table = np.empty((windows.shape[0], high.shape[0]))
    for i in range(windows.shape[0]):
        table[i] = midpoint(high, low, int(windows[i]))
    return table


@njit(cache=True)
def ichimoku_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                    long_short, start, out, returns_out):
    """Ichimoku cloud filter. params: tenkan, kijun, senkou.

    Long when close is above the cloud and tenkan > kijun; short (long/short mode) when close is
    below the cloud and tenkan < kijun; else flat. The cloud at bar t is span A = (tenkan +
    kijun) / 2 and span B = senkou midline, both as of bar t - kijun (no look-ahead).
    """
    n = close.shape[0]
    r = bar_returns(close)
    m = params.shape[0]
    # tenkan, kijun and senkou B are all midlines: one table serves the three
    uniq, idx = unique_windows(np.concatenate((params[:, 0], params[:, 1], params[:, 2])))
    mid = _midpoint_table(high, low, uniq)
    for c in range(m):
        tk = mid[idx[c]]
        kj = mid[idx[m + c]]
        sb = mid[idx[2 * m + c]]
        lag = int(params[c, 1])
        warm = int(max(params[c, 0], params[c, 1], params[c, 2])) - 1 + lag
        tail = tail_init()
        for t in range(start, n):
            pos = 0.0
            if t >= warm:
                a = (tk[t - lag] + kj[t - lag]) / 2.0
                b = sb[t - lag]
                x = close[t]
                if x > max(a, b) and tk[t] > kj[t]:
                    pos = 1.0
                elif long_short and x < min(a, b) and tk[t] < kj[t]:
                    pos = -1.0
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


@njit(cache=True)
def ichimoku_fast(open_, high, low, close, volume, extra, params, fee_rate, ppy, long_short,
                  start, out, bsum, bsq, blk):
    """The fast path of :func:`ichimoku_kernel` (kernels/fastpath.py): the same cloud rule per bar, its changes booked by ``fp_book``."""
    n = close.shape[0]
    fp = fp_prepare(close, long_short)
    m = params.shape[0]
    uniq, idx = unique_windows(np.concatenate((params[:, 0], params[:, 1], params[:, 2])))
    mid = _midpoint_table(high, low, uniq)
    state = fp_state(m, start)
    ct = np.empty(FP_CHUNK, dtype=np.int64)
    cp = np.empty(FP_CHUNK)
    for c0 in range(0, max(n, 1), FP_CHUNK):
        c1 = min(n, c0 + FP_CHUNK)
        fp_chunk(fp, c0, c1)
        for c in range(m):
            tk = mid[idx[c]]
            kj = mid[idx[m + c]]
            sb = mid[idx[2 * m + c]]
            lag = int(params[c, 1])
            warm = int(max(params[c, 0], params[c, 1], params[c, 2])) - 1 + lag
            rule = state[c, 15]
            j = 0
            prev = state[c, 13]
            for t in range(max(c0, warm), c1):
                a = (tk[t - lag] + kj[t - lag]) / 2.0
                b = sb[t - lag]
                x = close[t]
                rule = 0.0
                if x > max(a, b) and tk[t] > kj[t]:
                    rule = 1.0
                elif long_short and x < min(a, b) and tk[t] < kj[t]:
                    rule = -1.0
                if t >= start:
                    ct[j] = t
                    cp[j] = rule
                    j += rule != prev
                    prev = rule
            state[c, 15] = rule
            fp_book(fp, ct, cp, j, state, c, fee_rate, bsum, bsq, blk, c1 == n, ppy, out[c])


ICHIMOKU = register(Strategy(
    name="ichimoku",
    family="breakout",
    description="Long above the Ichimoku cloud with tenkan > kijun (short below it with tenkan < kijun).",
    space=ParamSpace(
        dims=(
            Int("tenkan", 5, 20, default=9, hard_min=1),
            Int("kijun", 15, 60, default=26, hard_min=2),
            Int("senkou", 30, 120, default=52, hard_min=3),
        ),
        constraints=(Constraint("tenkan", "<", "kijun"), Constraint("kijun", "<", "senkou")),
        strategy="ichimoku",
    ),
    kernel=ichimoku_kernel,
    fast=ichimoku_fast,
    needs=("high", "low"),
    warmup=lambda p: max(int(p["tenkan"]), int(p["kijun"]), int(p["senkou"])) - 1 + int(p["kijun"]),
    cost_ns=5,
))

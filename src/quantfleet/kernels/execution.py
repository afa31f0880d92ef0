"""Execution of target positions under fill, stop and sizing options, booked by the one
accumulator (``kernels.metrics.acc_step_pnl``), so every metric keeps its convention.

A strategy kernel decides a target position at each bar's close; :func:`execute` turns those
targets into the positions actually held: filled at the close or at the next bar's open,
sized at each entry (a fixed fraction of equity, optionally scaled to a volatility target),
exited intrabar by a stop loss, take profit or trailing stop, and charged a borrow cost while
short. The exact rules, with a worked example per option: docs/conventions.md, "Execution
options". With the default values the result is bit for bit ``evaluate_positions``.

Per-combo execution values are one float64 row each, columns in :data:`EX_FIELDS` order (NaN:
the option is off).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantfleet.kernels.metrics import acc_finish, acc_init, acc_step_pnl

__all__ = ["EX_FIELDS", "N_EX", "execute", "execute_path", "execute_segments"]

EX_FIELDS = ("fill", "stop_loss", "take_profit", "trailing_stop", "fraction", "vol_target",
             "vol_window", "vol_cap", "borrow_rate")
"""Columns of an execution row: fill (0: close, 1: next_open), then the options (NaN: off)."""
N_EX = len(EX_FIELDS)


@njit(cache=True, inline="always")
def _sign(x):
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0


@njit(cache=True, inline="always")
def _vol(close, t, window, ppy):
    """Annualised std (ddof=1) of the ``window`` close-to-close returns ending at bar ``t``
    (NaN when the bars before ``t`` are too few)."""
    if window < 2 or t - window < 0:
        return np.nan
    s1 = 0.0
    for j in range(t - window + 1, t + 1):
        s1 += close[j] / close[j - 1] - 1.0
    mean = s1 / window
    ss = 0.0
    for j in range(t - window + 1, t + 1):
        d = close[j] / close[j - 1] - 1.0 - mean
        ss += d * d
    return math.sqrt(ss / (window - 1)) * math.sqrt(ppy)


@njit(cache=True, inline="always")
def _exit_price(o, h, lo, side, entry, extreme, sl, tp, ts, gap):
    """Where a position of sign ``side`` entered at ``entry`` exits within a bar (o, h, lo), or
    NaN: gap through a level at the open fills at the open (``gap``; not in the bar whose open
    is the entry fill); the stop is assumed hit before the target."""
    stop = np.nan
    target = np.nan
    if side > 0.0:
        if sl == sl:
            stop = entry * (1.0 - sl)
        if ts == ts:
            trail = extreme * (1.0 - ts)
            if not (stop >= trail):  # NaN stop: the trailing level alone
                stop = trail
        if tp == tp:
            target = entry * (1.0 + tp)
        if gap and (o <= stop or o >= target):
            return o
        if lo <= stop:
            return stop
        if h >= target:
            return target
    else:
        if sl == sl:
            stop = entry * (1.0 + sl)
        if ts == ts:
            trail = extreme * (1.0 + ts)
            if not (stop <= trail):
                stop = trail
        if tp == tp:
            target = entry * (1.0 - tp)
        if gap and (o >= stop or o <= target):
            return o
        if h >= stop:
            return stop
        if lo <= target:
            return target
    return np.nan


@njit(cache=True, inline="always")
def _book(st, prev, end, pnl, growth, fills, two, fee_rate):
    """Book one bar: ``pnl`` the bar's P&L before fees when it has at most one fill, else
    (``two``) ``growth`` (every factor, fees included) and ``fills`` (Σ |fill|) of its two."""
    if not two:
        return acc_step_pnl(st, prev, end, pnl, fee_rate)
    d = abs(end - prev)
    # two fills in the bar (a stop exit and a re-entry at the close, or a resize at the open
    # and a stop exit): the equity is the product of every factor; the turnover every fill
    den = 1.0 - fee_rate * d
    p = growth / den - 1.0 if den > 0.0 else growth - 1.0
    st = acc_step_pnl(st, prev, end, p, fee_rate)
    eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn = st
    return (eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed,
            turn + fills - d)


@njit(cache=True)
def _run(open_, high, low, close, funding, target, ex, ex_row, fee_rate, ppy, start, stop,
         returns_out, c):
    """Accumulator state of one target series executed over bars ``[start, stop)`` (flat
    before ``start``); bar ``t`` uses execution row ``ex[ex_row[t]]``. ``returns_out``
    (combos, 2, bars) or None gets each bar's return and the position held at its close.
    ``funding`` (bars,) or empty: the rate longs pay shorts for each bar (NaN: 0), charged on
    the position carried into the bar, as the strategy kernels charge it."""
    st = acc_init()
    pos = 0.0        # position held at the previous close
    pending = 0.0    # next_open: the position to fill at this bar's open
    size = 1.0       # the open trade's size multiplier, set at its entry fill
    entry = 0.0      # the open trade's entry fill price
    extreme = 0.0    # highest high (long) / lowest low (short) since the entry fill
    entry_bar = -1   # the bar whose close (or open) filled the entry
    lock = 0.0       # sign of the last stopped trade while its signal has not turned off
    for t in range(start, stop):
        e = ex[ex_row[t]]
        next_open = e[0] == 1.0
        sl, tp, ts = e[1], e[2], e[3]
        frac, vt, vw, cap, borrow = e[4], e[5], int(e[6]), e[7], e[8] / ppy
        prev = pos
        pnl = 0.0
        growth = 1.0
        fills = 0.0
        two = False
        round_trip = -1.0  # a trade entered and stopped within this bar: 1 a win, 0 a loss
        held = pos  # the position after this bar's intrabar fills
        if t > start:
            carry = borrow * -prev if prev < 0.0 else 0.0
            if funding.shape[0] > 0 and funding[t] == funding[t]:
                carry += prev * funding[t]
            if next_open:
                q = pending
                a = prev * (open_[t] / close[t - 1] - 1.0) - carry
                f1 = abs(q - prev)
                if q != 0.0 and _sign(q) != _sign(prev):
                    # a new trade filled at the open: the whole bar follows the fill, so its
                    # levels (from P = open, trailing extreme P) are checked in this bar
                    entry = open_[t]
                    extreme = entry
                    entry_bar = t
                    x = np.nan
                    if sl == sl or tp == tp or ts == ts:
                        x = _exit_price(open_[t], high[t], low[t], q, entry, extreme, sl, tp,
                                        ts, False)
                    if x == x:
                        b = q * (x / open_[t] - 1.0)
                        held = 0.0
                        f2 = abs(q)
                        lock = _sign(q)
                        # a trade entered and exited within the bar: flat at both closes
                        round_trip = 1.0 if (1.0 + b) * (1.0 - fee_rate * f2) ** 2 > 1.0 \
                            else 0.0
                    else:
                        b = q * (close[t] / open_[t] - 1.0)
                        held = q
                        f2 = 0.0
                        # this bar's range raises the extreme for the next bar on
                        if q > 0.0:
                            extreme = max(extreme, high[t])
                        else:
                            extreme = min(extreme, low[t])
                elif q != 0.0:
                    x = _exit_price(open_[t], high[t], low[t], q, entry, extreme, sl, tp, ts,
                                    True)
                    if x == x:
                        b = q * (x / open_[t] - 1.0)
                        held = 0.0
                        f2 = abs(q)
                        lock = _sign(q)
                    else:
                        b = q * (close[t] / open_[t] - 1.0)
                        held = q
                        f2 = 0.0
                        if q > 0.0:
                            extreme = max(extreme, high[t])
                        else:
                            extreme = min(extreme, low[t])
                else:
                    b = 0.0
                    held = 0.0
                    f2 = 0.0
                pnl = (1.0 + a) * (1.0 + b) - 1.0
                growth = (1.0 + a) * (1.0 - fee_rate * f1) * (1.0 + b) * (1.0 - fee_rate * f2)
                fills = f1 + f2
                two = f1 > 0.0 and f2 > 0.0
            elif prev != 0.0:
                x = np.nan
                if entry_bar < t:
                    x = _exit_price(open_[t], high[t], low[t], prev, entry, extreme, sl, tp, ts,
                                    True) if (sl == sl or tp == tp or ts == ts) else np.nan
                if x == x:
                    pnl = prev * (x / close[t - 1] - 1.0) - carry
                    held = 0.0
                    lock = _sign(prev)
                    fills = abs(prev)
                    growth = (1.0 + pnl) * (1.0 - fee_rate * fills)
                else:
                    pnl = prev * (close[t] / close[t - 1] - 1.0) - carry
                    if sl == sl or tp == tp or ts == ts:
                        if prev > 0.0:
                            extreme = max(extreme, high[t])
                        else:
                            extreme = min(extreme, low[t])
        # the decision at this bar's close
        x = target[t]
        sx = _sign(x)
        if lock != 0.0:
            if sx == lock:
                x = 0.0
                sx = 0.0
            else:
                lock = 0.0
        want = 0.0
        new_trade = False
        if sx != 0.0:
            if sx == _sign(held):
                want = x * size
            else:
                s = frac
                if vt == vt:
                    vol = _vol(close, t, vw, ppy)
                    s = s * min(cap, vt / vol) if vol > 0.0 else 0.0
                if s > 0.0:
                    want = x * s
                    size = s
                    new_trade = True
        if next_open:
            pending = want
            end = held
        else:
            end = want
            if new_trade:
                entry = close[t]
                extreme = close[t]
                entry_bar = t
            if end != held:
                f = abs(end - held)
                two = fills > 0.0
                if two:
                    growth = growth * (1.0 - fee_rate * f)
                fills += f
        if returns_out is not None:
            returns_out[c, 1, t] = end
            if two:
                returns_out[c, 0, t] = growth - 1.0
            else:
                returns_out[c, 0, t] = (1.0 + pnl) * (1.0 - fee_rate * abs(end - prev)) - 1.0
        st = _book(st, prev, end, pnl, growth, fills, two, fee_rate)
        if round_trip >= 0.0:
            # the accumulator sees positions at closes only: count the trade and its result
            eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn = st
            st = (eq, peak, maxdd, n, s1, s2, down2, entries + 1.0, wins + round_trip,
                  closed + 1.0, entry_eq, exposed, turn)
        pos = end
    return st


@njit(cache=True)
def execute(open_, high, low, close, funding, targets, ex, fee_rate, ppy, start, out,
            returns_out):
    """Metrics of target positions executed under per-combo execution rows.

    Parameters
    ----------
    open_, high, low, close : float64 (bars,)  (open/high/low may be empty when neither
        next_open nor a stop is used)
    funding : float64 (bars,) or (0,)  per-bar funding rate longs pay shorts (empty: none)
    targets : float64 (combos, bars)  target position decided at each bar's close
    ex : float64 (combos, N_EX)       execution row of each combo (:data:`EX_FIELDS`)
    fee_rate : float                  (fee_bps + slippage_bps) / 1e4, on every fill
    ppy : float                       periods per year
    start : int                       first bar counted (flat before it)
    out : float64 (combos, N_METRICS)
    returns_out : float64 (combos, 2, bars) or None  per-bar returns [:, 0] and the positions
        held at each close [:, 1]
    """
    n = close.shape[0]
    row = np.zeros(n, dtype=np.int64)
    for c in range(targets.shape[0]):
        st = _run(open_, high, low, close, funding, targets[c], ex[c:c + 1], row, fee_rate, ppy,
                  start, n, returns_out, c)
        acc_finish(st, ppy, out[c])


@njit(cache=True)
def execute_segments(open_, high, low, close, funding, targets, ex, bounds, fee_rate, ppy, out):
    """Metrics of every combo over every segment ``[lo, hi)`` of ``bounds`` (segments, 2),
    each executed and booked on its own, flat before its first bar; out (combos, segments,
    N_METRICS)."""
    n = close.shape[0]
    row = np.zeros(n, dtype=np.int64)
    for c in range(targets.shape[0]):
        for s in range(bounds.shape[0]):
            st = _run(open_, high, low, close, funding, targets[c], ex[c:c + 1], row, fee_rate,
                      ppy, bounds[s, 0], bounds[s, 1], None, 0)
            acc_finish(st, ppy, out[c, s])


@njit(cache=True)
def execute_path(open_, high, low, close, funding, target, ex, ex_row, fee_rate, ppy, start,
                 out, returns_out):
    """Metrics of one target path over bars ``[start, bars)`` in one pass (the position and
    its trade carry across the path's pieces); bar ``t`` executes under ``ex[ex_row[t]]``.
    returns_out (1, 2, bars) or None."""
    st = _run(open_, high, low, close, funding, target, ex, ex_row, fee_rate, ppy, start,
              close.shape[0], returns_out, 0)
    acc_finish(st, ppy, out)

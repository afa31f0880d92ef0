"""The metrics (names, directions) and the per-bar tail every fused kernel shares.

A strategy kernel runs one pass per combo: ``tail_init()`` (or ``tail_flat`` after bars known
to be flat), ``tail_step`` once per bar with the position decided at that bar's close (P&L,
running metric sums, optional per-bar stores), and ``tail_finish`` to write one row of metrics.
The ``acc_*`` functions underneath keep the running sums as a tuple of floats, which numba
keeps in registers. Conventions: docs/conventions.md.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "N_METRICS",
    "RETURN_METRIC_NAMES",
    "acc_finish",
    "acc_flat",
    "acc_init",
    "acc_step",
    "acc_step_pnl",
    "bar_returns",
    "check_metric",
    "evaluate_positions",
    "metric_sign",
    "metrics_from_returns",
    "tail_finish",
    "tail_flat",
    "tail_init",
    "tail_step",
]

METRIC_NAMES = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "n_trades",
    "win_rate",
    "exposure",
    "turnover",
)
N_METRICS = len(METRIC_NAMES)

LOWER_IS_BETTER = frozenset({"max_drawdown", "turnover"})
"""Metrics where a smaller value is the better one (``max_drawdown`` is a positive fraction);
every other metric is higher-is-better. The one definition every ranking uses."""


def metric_sign(name: str) -> float:
    """``+1.0`` for a higher-is-better metric, ``-1.0`` for one in :data:`LOWER_IS_BETTER`:
    ``sign * value`` is then always higher-is-better."""
    return -1.0 if name in LOWER_IS_BETTER else 1.0


def check_metric(name: str, choices: tuple[str, ...] = METRIC_NAMES) -> str:
    """``name`` if it is one of ``choices``; else the one unknown-metric error everyone raises."""
    if name in choices:
        return name
    from quantfleet.errors import QuantfleetError, did_you_mean

    raise QuantfleetError(f"unknown metric {name!r}{did_you_mean(str(name), choices)}; "
                          f"choose one of {', '.join(choices)}")


@njit(cache=True, inline="always")
def acc_init():
    """Fresh state: equity 1, no bars, no trades."""
    # eq, peak, maxdd, n, sum r, sum r^2, sum min(r,0)^2, entries, wins, closed, entry_eq, exposed, turnover
    return (1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)


@njit(cache=True, inline="always")
def acc_step_pnl(st, pos_prev, pos, pnl, fee_rate):
    """Advance one bar whose P&L (a fraction of equity) is given.

    The position ``pos_prev`` held over the bar earned ``pnl``; then the position moves to
    ``pos`` at the bar's close, paying ``fee_rate * |pos - pos_prev|`` of equity. A strategy's
    bar earns ``pos_prev * r`` (:func:`acc_step`); a replayed book of several members earns
    ``Σ w_i · pos_i[t-1] · r_i[t]`` with each member's own return (funding included), which is
    no single position times one return, and can be non-zero while the netted position is flat.
    """
    eq, peak, maxdd, n, mean, m2, down2, entries, wins, closed, entry_eq, exposed, turn = st
    if pos_prev == 0.0 and pos == 0.0 and pnl == 0.0:
        # flat before and after (common for long-only rules): only the bar count moves
        return (eq, peak, maxdd, n + 1.0, mean, m2, down2, entries, wins, closed, entry_eq,
                exposed, turn)
    eq = eq * (1.0 + pnl)
    d = abs(pos - pos_prev)
    growth = 1.0 + pnl
    if d != 0.0:
        flip = pos * pos_prev < 0.0
        if pos_prev != 0.0 and (pos == 0.0 or flip):
            # the old trade's exit pays its share of the fill's fee
            after_exit = eq * (1.0 - fee_rate * abs(pos_prev))
            closed += 1.0
            if after_exit > entry_eq:
                wins += 1.0
            if flip:
                entry_eq = after_exit
        elif pos != 0.0 and pos_prev == 0.0:
            entry_eq = eq
        if pos != 0.0 and (pos_prev == 0.0 or flip):
            entries += 1.0
        cost = 1.0 - fee_rate * d
        eq = eq * cost
        growth = growth * cost
        turn += d
    rb = growth - 1.0
    n += 1.0
    mean += rb  # running sum; acc_finish turns sums into moments
    m2 += rb * rb
    if rb < 0.0:
        down2 += rb * rb
    if eq > peak:
        peak = eq
    elif eq < peak * (1.0 - maxdd):
        # a deeper drawdown than any so far: only then pay for the division
        maxdd = 1.0 - eq / peak
    if pos != 0.0:
        exposed += 1.0
    return (eq, peak, maxdd, n, mean, m2, down2, entries, wins, closed, entry_eq, exposed, turn)


@njit(cache=True, inline="always")
def acc_step(st, pos_prev, pos, r, fee_rate):
    """Advance one bar: ``pos_prev`` (held over the bar) earns the bar's return ``r``; then the
    position moves to ``pos`` at the bar's close (:func:`acc_step_pnl`)."""
    if pos_prev == 0.0 and pos == 0.0:
        # flat before and after: only the count moves, whatever r is (NaN included)
        eq, peak, maxdd, n, mean, m2, down2, entries, wins, closed, entry_eq, exposed, turn = st
        return (eq, peak, maxdd, n + 1.0, mean, m2, down2, entries, wins, closed, entry_eq,
                exposed, turn)
    return acc_step_pnl(st, pos_prev, pos, pos_prev * r, fee_rate)


@njit(cache=True, inline="always")
def acc_flat(st, k):
    """Advance ``k`` bars that are flat before and after (the warm-up): only the count moves."""
    eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn = st
    return (eq, peak, maxdd, n + max(k, 0), s1, s2, down2, entries, wins, closed, entry_eq,
            exposed, turn)


@njit(cache=True, inline="always")
def acc_finish(st, ppy, out):
    """Write the metric row (order of ``METRIC_NAMES``) into ``out``."""
    eq, peak, maxdd, n, s1, s2, down2, entries, wins, closed, entry_eq, exposed, turn = st
    nan = np.nan
    mean = s1 / n if n > 0.0 else nan
    m2 = max(s2 - s1 * mean, 0.0) if n > 0.0 else nan
    out[0] = eq - 1.0
    if n > 0.0:
        cagr = eq ** (ppy / n) - 1.0 if eq > 0.0 else -1.0
    else:
        cagr = nan
    out[1] = cagr
    sd = math.sqrt(m2 / (n - 1.0)) if n > 1.0 else nan
    out[2] = mean / sd * math.sqrt(ppy) if sd > 0.0 else nan
    dsd = math.sqrt(down2 / n) if n > 0.0 else nan
    if dsd > 0.0:
        out[3] = mean / dsd * math.sqrt(ppy)
    elif n > 0.0 and mean > 0.0:
        out[3] = np.inf
    else:
        out[3] = nan
    out[4] = maxdd
    out[5] = cagr / maxdd if maxdd > 0.0 else nan
    out[6] = entries
    out[7] = wins / closed if closed > 0.0 else nan
    out[8] = exposed / n if n > 0.0 else nan
    out[9] = turn


@njit(cache=True, inline="always")
def tail_init():
    """Fresh per-combo state of a fused pass: ``(accumulator, position held)``, flat."""
    return acc_init(), 0.0


@njit(cache=True, inline="always")
def tail_flat(tail, k):
    """Skip ``k`` bars known to be flat before and after (the warm-up of a combo)."""
    st, prev = tail
    return acc_flat(st, k), prev


@njit(cache=True, inline="always")
def tail_step(tail, pos, r, fee_rate, returns_out, c, t):
    """Advance bar ``t`` of combo ``c``: the position held earns the bar's return ``r``, then
    moves to ``pos`` at the close (docs/conventions.md).

    ``returns_out`` (combos, 2, bars) gets the bar's strategy return ([c, 0, t]) and ``pos``
    ([c, 1, t]); a ``None`` there compiles a specialization without the stores, which keeps
    the hot loop in registers.
    """
    st, prev = tail
    if returns_out is not None:
        returns_out[c, 1, t] = pos
        returns_out[c, 0, t] = (1.0 + prev * r) * (1.0 - fee_rate * abs(pos - prev)) - 1.0
    return acc_step(st, prev, pos, r, fee_rate), pos


@njit(cache=True, inline="always")
def tail_finish(tail, ppy, out):
    """Write the combo's metric row (order of ``METRIC_NAMES``) into ``out``."""
    acc_finish(tail[0], ppy, out)


@njit(cache=True)
def bar_returns(close):
    """Close-to-close simple returns, shape (bars,); the first bar's return is 0."""
    n = close.shape[0]
    r = np.empty(n)
    if n:
        r[0] = 0.0
    for t in range(1, n):
        r[t] = close[t] / close[t - 1] - 1.0
    return r


@njit(cache=True)
def evaluate_positions(close, positions, fee_rate, ppy, start, out, returns_out):
    """Metrics of given position series: the check on every kernel (tests), and what a caller
    with positions and closes alone uses.

    Parameters
    ----------
    close : float64 (bars,)
    positions : float64 (combos, bars)  target position decided at each bar's close
    fee_rate : float    (fee_bps + slippage_bps) / 1e4
    ppy : float         periods per year
    start : int         first bar counted (equity is 1 at its close; earlier bars only warm up)
    out : float64 (combos, N_METRICS)
    returns_out : float64 (combos, 2, bars) or None   per-bar returns [:, 0] and positions [:, 1]
        when wanted (see ``tail_step``)
    """
    r = bar_returns(close)
    n = close.shape[0]
    for c in range(positions.shape[0]):
        tail = tail_init()
        for t in range(start, n):
            tail = tail_step(tail, positions[c, t], r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


RETURN_METRIC_NAMES = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar")


@njit(cache=True)
def metrics_from_returns(returns, ppy):
    """Metrics of a per-bar return series (a portfolio's, a strategy's), conventions as above.

    Parameters
    ----------
    returns : float64 (bars,)  finite per-bar simple returns; equity starts at 1 before bar 0
    ppy : float                periods per year

    Returns float64 (6,) in the order of ``RETURN_METRIC_NAMES``.
    """
    out = np.empty(6)
    n = returns.shape[0]
    eq = 1.0
    peak = 1.0
    maxdd = 0.0
    s1 = 0.0
    down2 = 0.0
    for t in range(n):
        r = returns[t]
        eq *= 1.0 + r
        s1 += r
        if r < 0.0:
            down2 += r * r
        if eq > peak:
            peak = eq
        elif 1.0 - eq / peak > maxdd:
            maxdd = 1.0 - eq / peak
    mean = s1 / n if n > 0 else np.nan
    ss = 0.0
    for t in range(n):
        ss += (returns[t] - mean) ** 2
    out[0] = eq - 1.0
    if n > 0:
        cagr = eq ** (ppy / n) - 1.0 if eq > 0.0 else -1.0
    else:
        cagr = np.nan
    out[1] = cagr
    sd = math.sqrt(ss / (n - 1.0)) if n > 1 else np.nan
    out[2] = mean / sd * math.sqrt(ppy) if sd > 0.0 else np.nan
    dsd = math.sqrt(down2 / n) if n > 0 else np.nan
    if dsd > 0.0:
        out[3] = mean / dsd * math.sqrt(ppy)
    elif n > 0 and mean > 0.0:
        out[3] = np.inf
    else:
        out[3] = np.nan
    out[4] = maxdd
    out[5] = cagr / maxdd if maxdd > 0.0 else np.nan
    return out

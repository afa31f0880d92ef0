"""Resampling kernels for confidence statements: the stationary bootstrap of a return series
(Politis & Romano 1994) and a timing-destroying permutation null for the best of many position
paths (circular shifts of the positions against the bars' returns). The random numbers come
in as arguments (drawn by the caller from one seeded generator), so a result is a function of
its inputs alone, whatever process runs it. Formulas and references: docs/overfit.md,
"How sure are we?".
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantfleet.kernels.metrics import metrics_from_returns

__all__ = [
    "booked_sharpe",
    "shifted_max_sharpe",
    "stationary_bootstrap_metrics",
    "stationary_indices",
]


@njit(cache=True)
def stationary_indices(start_u, new_u, p_new, out):
    """Index sequences of the stationary bootstrap, one per replicate.

    Bar 0 of replicate ``b`` starts a block at ``floor(start_u[b, 0] * n)``; at every later bar
    a new block starts (at ``floor(start_u[b, t] * n)``) when ``new_u[b, t] < p_new``, else the
    block continues with the next index, wrapping from ``n - 1`` to 0. Block lengths are then
    geometric with mean ``1 / p_new``.

    Parameters
    ----------
    start_u, new_u : float64 (B, n)  uniforms on [0, 1)
    p_new : float                    probability of starting a new block, ``1 / L``
    out : int64 (B, n)
    """
    n = start_u.shape[1]
    for b in range(start_u.shape[0]):
        i = min(int(start_u[b, 0] * n), n - 1)
        out[b, 0] = i
        for t in range(1, n):
            if new_u[b, t] < p_new:
                i = min(int(start_u[b, t] * n), n - 1)
            else:
                i = i + 1
                if i == n:
                    i = 0
            out[b, t] = i


@njit(cache=True)
def stationary_bootstrap_metrics(returns, start_u, new_u, p_new, ppy, out):
    """Sharpe and maximum drawdown of stationary-bootstrap replicates of ``returns``.

    Replicate ``b`` is ``returns[idx[b]]`` with ``idx`` as :func:`stationary_indices` makes
    it; its metrics are :func:`~quantfleet.kernels.metrics.metrics_from_returns`' (annualised
    Sharpe with ``ppy``, max drawdown a positive fraction of the running peak).

    Parameters
    ----------
    returns : float64 (n,)           finite per-bar returns
    start_u, new_u : float64 (B, n)  uniforms on [0, 1)
    p_new : float                    ``1 / L``, L the mean block length
    ppy : float                      periods per year
    out : float64 (B, 2)             Sharpe, max drawdown
    """
    n = returns.shape[0]
    idx = np.empty((1, n), dtype=np.int64)
    buf = np.empty(n)
    for b in range(start_u.shape[0]):
        stationary_indices(start_u[b:b + 1], new_u[b:b + 1], p_new, idx)
        for t in range(n):
            buf[t] = returns[idx[0, t]]
        m = metrics_from_returns(buf, ppy)
        out[b, 0] = m[2]
        out[b, 1] = m[4]


@njit(cache=True, inline="always")
def _run_sums(pos, u, t0, t1, off, fee_rate):
    """Sum and sum of squares of the booked returns of bars ``[t0, t1)``, bar ``t`` holding
    ``pos[t + off - 1]`` and moving to ``pos[t + off]`` (both in range): four independent
    accumulators, as the bars do not depend on each other."""
    a0 = a1 = a2 = a3 = 0.0
    b0 = b1 = b2 = b3 = 0.0
    t = t0
    while t + 4 <= t1:
        j = t + off
        r0 = (1.0 + pos[j - 1] * u[t]) * (1.0 - fee_rate * abs(pos[j] - pos[j - 1])) - 1.0
        r1 = (1.0 + pos[j] * u[t + 1]) * (1.0 - fee_rate * abs(pos[j + 1] - pos[j])) - 1.0
        r2 = (1.0 + pos[j + 1] * u[t + 2]) * (1.0 - fee_rate * abs(pos[j + 2] - pos[j + 1])) - 1.0
        r3 = (1.0 + pos[j + 2] * u[t + 3]) * (1.0 - fee_rate * abs(pos[j + 3] - pos[j + 2])) - 1.0
        a0 += r0
        a1 += r1
        a2 += r2
        a3 += r3
        b0 += r0 * r0
        b1 += r1 * r1
        b2 += r2 * r2
        b3 += r3 * r3
        t += 4
    while t < t1:
        j = t + off
        r = (1.0 + pos[j - 1] * u[t]) * (1.0 - fee_rate * abs(pos[j] - pos[j - 1])) - 1.0
        a0 += r
        b0 += r * r
        t += 1
    return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3)


@njit(cache=True, inline="always")
def _shifted_sharpe(positions, unit, row, shift, fee_rate, ppy):
    """Sharpe of row ``row``'s positions moved ``shift`` bars (circularly) against its bars'
    returns, booked as a path is: flat before bar 0, bar ``t`` earns the position held times
    ``unit[t]`` and pays ``fee_rate * |Δpos|`` at its close."""
    n = positions.shape[1]
    if n < 2:
        return np.nan
    pos = positions[row]
    u = unit[row]
    # bar t moves to pos[(t + shift) mod n], holding the previous bar's (flat before bar 0):
    # bar 0, bars 1 .. cut-1 (no wrap), bar cut (wraps: holds pos[n-1], moves to pos[0]), then
    # bars cut+1 .. n-1
    cut = n - shift
    p0 = pos[shift % n]
    r = (1.0 + 0.0 * u[0]) * (1.0 - fee_rate * abs(p0)) - 1.0
    s1, s2 = r, r * r
    x1, x2 = _run_sums(pos, u, 1, cut, shift, fee_rate)
    s1 += x1
    s2 += x2
    if cut < n:
        r = (1.0 + pos[n - 1] * u[cut]) * (1.0 - fee_rate * abs(pos[0] - pos[n - 1])) - 1.0
        s1 += r
        s2 += r * r
        x1, x2 = _run_sums(pos, u, cut + 1, n, -cut, fee_rate)
        s1 += x1
        s2 += x2
    mean = s1 / n
    m2 = max(s2 - s1 * mean, 0.0)
    sd = math.sqrt(m2 / (n - 1.0))
    return mean / sd * math.sqrt(ppy) if sd > 0.0 else np.nan


@njit(cache=True)
def booked_sharpe(positions, unit, fee_rate, ppy, out):
    """Each row's Sharpe as the permutation null books it, unshifted (the observed statistic).

    positions, unit : float64 (pairs, n)  positions decided at each bar's close; each bar's
        per-unit return of the pair's asset (0 where unknown)
    out : float64 (pairs,)  NaN for a path with no variation (flat)
    """
    for i in range(positions.shape[0]):
        out[i] = _shifted_sharpe(positions, unit, i, 0, fee_rate, ppy)


@njit(cache=True)
def shifted_max_sharpe(positions, unit, shifts, fee_rate, ppy, out):
    """The permutation null of the best pair's Sharpe: for permutation ``k`` every pair's
    positions move by the same ``shifts[k]`` bars (circularly) against its asset's returns,
    and ``out[k]`` is the largest finite Sharpe over the pairs (``-inf`` if none is finite).

    positions, unit : float64 (pairs, n)  as :func:`booked_sharpe`
    shifts : int64 (K,)  in ``[1, n - 1]``
    out : float64 (K,)
    """
    out[:] = -np.inf
    # pair by pair, every shift: one pair's rows stay in cache (the maximum does not depend on
    # the order it is taken in)
    for i in range(positions.shape[0]):
        for k in range(shifts.shape[0]):
            s = _shifted_sharpe(positions, unit, i, shifts[k], fee_rate, ppy)
            if s == s and s > out[k]:
                out[k] = s

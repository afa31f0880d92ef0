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
def _shifted_sharpe(positions, unit, row, shift, fee_rate, ppy):
    """Sharpe of row ``row``'s positions moved ``shift`` bars (circularly) against its bars'
    returns, booked as a path is: flat before bar 0, bar ``t`` earns the position held times
    ``unit[t]`` and pays ``fee_rate * |Δpos|`` at its close."""
    n = positions.shape[1]
    prev = 0.0
    s1 = 0.0
    s2 = 0.0
    for t in range(n):
        j = t + shift
        if j >= n:
            j -= n
        pos = positions[row, j]
        r = (1.0 + prev * unit[row, t]) * (1.0 - fee_rate * abs(pos - prev)) - 1.0
        s1 += r
        s2 += r * r
        prev = pos
    if n < 2:
        return np.nan
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
    for k in range(shifts.shape[0]):
        best = -np.inf
        for i in range(positions.shape[0]):
            s = _shifted_sharpe(positions, unit, i, shifts[k], fee_rate, ppy)
            if s == s and s > best:
                best = s
        out[k] = best

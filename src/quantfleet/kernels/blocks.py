"""Per-block moments of per-bar return rows: the reduction ``backtest.blocks.block_stats`` runs
(what CSCV / PBO needs of each trial), one row at a time in two passes over its bars."""

from __future__ import annotations

import math

from numba import njit

__all__ = ["block_moments"]


@njit(cache=True)
def block_moments(r, start, block, count, mean, m2):
    """Count of finite values, their mean and M2 in each block of each row of ``r``.

    Parameters
    ----------
    r : float64 (rows, bars), any strides
    start : first bar of block 0; block ``b`` is bars ``[start + b·block, start + (b+1)·block)``
    block : bars per block (>= 1)
    count, mean, m2 : float64 (S, rows), written: per block and row the number of finite bars,
        their mean (0 when none) and the sum of their squared deviations from that mean
        (two passes: the mean, then the deviations; NaN and ±inf bars are skipped)

    Each row is reduced on its own, in bar order: its statistics do not depend on the other
    rows.
    """
    n = r.shape[0]
    s = count.shape[0]
    for j in range(n):
        for b in range(s):
            lo = start + b * block
            c = 0
            acc = 0.0
            for i in range(lo, lo + block):
                x = r[j, i]
                if math.isfinite(x):
                    c += 1
                    acc += x
            mu = acc / c if c > 0 else 0.0
            q = 0.0
            if c > 0:
                for i in range(lo, lo + block):
                    x = r[j, i]
                    if math.isfinite(x):
                        d = x - mu
                        q += d * d
            count[b, j] = c
            mean[b, j] = mu
            m2[b, j] = q

"""Carry seeds: earn perpetual-futures funding by leaning against the crowded side.

Funding convention: ``funding_rate[t]`` is the rate longs pay shorts for bar ``t`` (the bar
ending at ``t``'s close), as a fraction of notional; negative means shorts pay longs. A
position ``p`` held over bar ``t`` earns ``p * (r[t] - funding_rate[t])``. Missing (NaN)
funding counts as 0. Funding is often quoted at exactly a round rate (e.g. 0.01% per 8 h) for
long stretches, so a mean within ``TIE = 1e-12`` of the threshold counts as equal to it (not
beyond): rounding in the rolling mean must not make the position flicker.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantfleet.kernels.indicators import sma, unique_windows
from quantfleet.kernels.metrics import bar_returns, tail_finish, tail_init, tail_step
from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.space import Float, Int, ParamSpace

__all__ = ["FUNDING_CARRY", "TIE", "funding_carry_kernel"]

TIE = 1e-12


@njit(cache=True)
def funding_carry_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                         long_short, start, out, returns_out):
    """Short 1 (long/short only) while mean funding over ``window`` > threshold, long 1 while it
    is < -threshold, else 0; P&L net of funding. extra[0]: funding_rate.
    params: window, threshold."""
    n = close.shape[0]
    r = bar_returns(close)
    f = np.empty(n)
    for t in range(n):
        f[t] = extra[0, t] if np.isfinite(extra[0, t]) else 0.0
    radj = r - f  # what a long earns per unit over each bar
    uniq, idx = unique_windows(params[:, 0].copy())
    table = np.empty((uniq.shape[0], n))
    for i in range(uniq.shape[0]):
        table[i] = sma(f, int(uniq[i]))
    low_pos = -1.0 if long_short else 0.0
    for c in range(params.shape[0]):
        mf = table[idx[c]]
        th = params[c, 1]
        tail = tail_init()
        for t in range(start, n):
            pos = 0.0
            if mf[t] > th + TIE:
                pos = low_pos
            elif mf[t] < -th - TIE:
                pos = 1.0
            tail = tail_step(tail, pos, radj[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


FUNDING_CARRY = register(Strategy(
    name="funding_carry",
    family="carry",
    description="Short the perp while mean funding > threshold, long while < -threshold; P&L net of funding.",
    space=ParamSpace(
        dims=(Int("window", 3, 60, default=14, hard_min=1),
              Float("threshold", 0.0, 0.0005, default=0.0001, hard_min=0.0)),
        strategy="funding_carry",
    ),
    kernel=funding_carry_kernel,
    extras=("funding_rate",),
    warmup=lambda p: int(p["window"]) - 1,
    cost_ns=2,
))

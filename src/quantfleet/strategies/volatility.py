"""Volatility seeds: size positions by realized volatility (fractional positions)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantfleet.kernels.indicators import rolling_std, sma, unique_windows
from quantfleet.kernels.metrics import bar_returns, tail_finish, tail_init, tail_step
from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.space import Float, Int, ParamSpace

__all__ = ["VOL_SCALING", "realized_vol", "vol_scaling_kernel"]


@njit(cache=True)
def realized_vol(r, w, ppy):
    """Annualized realized volatility: sample std (ddof=1) of the last ``w`` bar returns times
    ``sqrt(ppy)``. ``r[0]`` (no previous close) is left out, so it is defined from bar ``w``."""
    n = r.shape[0]
    out = np.full(n, np.nan)
    if n > 1:
        out[1:] = rolling_std(r[1:], w) * math.sqrt(ppy)
    return out


@njit(cache=True)
def vol_scaling_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                       long_short, start, out, returns_out):
    """Position min(target_vol / realized_vol, max_leverage) while close > SMA(trend), its
    negative below (long/short only), else 0. params: window, target_vol, trend, max_leverage."""
    n = close.shape[0]
    r = bar_returns(close)
    uv, iv = unique_windows(params[:, 0].copy())
    vol = np.empty((uv.shape[0], n))
    for i in range(uv.shape[0]):
        vol[i] = realized_vol(r, int(uv[i]), ppy)
    ut, it = unique_windows(params[:, 2].copy())
    trend = np.empty((ut.shape[0], n))
    for i in range(ut.shape[0]):
        trend[i] = sma(close, int(ut[i]))
    for c in range(params.shape[0]):
        v = vol[iv[c]]
        s = trend[it[c]]
        target = params[c, 1]
        cap = params[c, 3]
        tail = tail_init()
        for t in range(start, n):
            pos = 0.0
            if v[t] == v[t] and s[t] == s[t]:
                size = cap
                if v[t] > 0.0 and target / v[t] < cap:
                    size = target / v[t]
                if close[t] > s[t]:
                    pos = size
                elif long_short and close[t] < s[t]:
                    pos = -size
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


VOL_SCALING = register(Strategy(
    name="vol_scaling",
    family="volatility",
    description="Long min(target_vol / realized vol, max_leverage) above SMA(trend), short below (long/short).",
    space=ParamSpace(
        dims=(Int("window", 10, 60, default=20, hard_min=2),
              Float("target_vol", 0.05, 0.40, default=0.15, hard_min=0.001),
              Int("trend", 20, 200, default=100, hard_min=2),
              Float("max_leverage", 0.5, 2.0, default=1.0, hard_min=0.01)),
        strategy="vol_scaling",
    ),
    kernel=vol_scaling_kernel,
    warmup=lambda p: max(int(p["window"]), int(p["trend"]) - 1),
    cost_ns=6.5,
))

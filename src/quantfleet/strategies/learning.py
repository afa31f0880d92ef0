"""Learning seeds: rolling, strictly causal statistical rules refitted at every bar.

``linear_classifier`` refits a least-squares autoregression of returns on each bar;
``quantile_regime`` compares the close with rolling quantiles of the closes before it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantfleet.kernels.indicators import rolling_quantiles, unique_pairs
from quantfleet.kernels.metrics import bar_returns, tail_finish, tail_init, tail_step
from quantfleet.strategies.base import Strategy, register
from quantfleet.strategies.space import Constraint, Float, Int, ParamSpace

__all__ = [
    "LINEAR_CLASSIFIER",
    "QUANTILE_REGIME",
    "ar_forecast",
    "linear_classifier_kernel",
    "quantile_regime_kernel",
]


@njit(cache=True, inline="always")
def _cholesky_solve(a, b, low, x):
    """Solve ``a @ x = b`` for symmetric positive definite ``a`` (only its lower triangle is
    read) through the Cholesky factor ``low``. Returns False when ``a`` is numerically
    singular: a pivot below 1e-12 of its diagonal entry, i.e. a feature that is (nearly) a
    linear combination of the others over the window."""
    d = b.shape[0]
    for j in range(d):
        s = a[j, j]
        for k in range(j):
            s -= low[j, k] * low[j, k]
        if not s > 1e-12 * a[j, j]:
            return False
        low[j, j] = np.sqrt(s)
        for i in range(j + 1, d):
            s = a[i, j]
            for k in range(j):
                s -= low[i, k] * low[j, k]
            low[i, j] = s / low[j, j]
    for i in range(d):  # low @ y = b
        s = b[i]
        for k in range(i):
            s -= low[i, k] * x[k]
        x[i] = s / low[i, i]
    for i in range(d - 1, -1, -1):  # low.T @ x = y
        s = x[i]
        for k in range(i + 1, d):
            s -= low[k, i] * x[k]
        x[i] = s / low[i, i]
    return True


@njit(cache=True)
def ar_forecast(r, w, lags):
    """Rolling least-squares forecast of the next bar's return.

    At bar ``t`` fits ``r[s] ~ b0 + b1 r[s-1] + ... + b_lags r[s-lags]`` on the ``w`` samples
    ``s = t-w+1 .. t`` (normal equations kept as running sums, O(lags**2) per bar, solved by
    Cholesky, O(lags**3)) and returns ``b0 + b1 r[t] + ... + b_lags r[t-lags+1]``. Uses returns
    up to ``t`` only. ``r[0]`` is not a return, so the forecast is defined from bar
    ``w + lags``; NaN where the fit is singular.
    """
    n = r.shape[0]
    d = lags + 1
    out = np.full(n, np.nan)
    xtx = np.zeros((d, d))  # lower triangle used
    xty = np.zeros(d)
    low = np.zeros((d, d))
    beta = np.empty(d)
    x = np.empty(d)
    for t in range(lags + 1, n):
        for which in range(2):
            s = t if which == 0 else t - w
            if s < lags + 1:
                continue
            sign = 1.0 if which == 0 else -1.0
            x[0] = 1.0
            for j in range(1, d):
                x[j] = r[s - j]
            y = sign * r[s]
            for i in range(d):
                xty[i] += x[i] * y
                xi = sign * x[i]
                for j in range(i + 1):
                    xtx[i, j] += xi * x[j]
        if t < w + lags:
            continue
        if _cholesky_solve(xtx, xty, low, beta):
            p = beta[0]
            for j in range(1, d):
                p += beta[j] * r[t - j + 1]
            out[t] = p
    return out


@njit(cache=True)
def linear_classifier_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                             long_short, start, out, returns_out):
    """Long 1 when the rolling AR(lags) forecast is > 0, -1 when < 0 (long/short only), else 0.
    params: window, lags."""
    n = close.shape[0]
    r = bar_returns(close)
    uw, ul, idx = unique_pairs(params[:, 0].copy(), params[:, 1].copy())
    table = np.empty((uw.shape[0], n))
    for i in range(uw.shape[0]):
        table[i] = ar_forecast(r, int(uw[i]), int(ul[i]))
    low_pos = -1.0 if long_short else 0.0
    for c in range(params.shape[0]):
        f = table[idx[c]]
        tail = tail_init()
        for t in range(start, n):
            pos = 0.0
            if f[t] > 0.0:
                pos = 1.0
            elif f[t] < 0.0:
                pos = low_pos
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


LINEAR_CLASSIFIER = register(Strategy(
    name="linear_classifier",
    family="learning",
    description="Long when a rolling least-squares AR(lags) fit forecasts a positive next return, else flat/short.",
    space=ParamSpace(
        dims=(Int("window", 20, 250, default=100, hard_min=2),
              Int("lags", 1, 5, default=2, hard_min=1)),
        constraints=(Constraint("lags", "<", "window"),),
        strategy="linear_classifier",
    ),
    kernel=linear_classifier_kernel,
    warmup=lambda p: int(p["window"]) + int(p["lags"]),
    cost_ns=29,
))


@njit(cache=True)
def quantile_regime_kernel(open_, high, low, close, volume, extra, params, fee_rate, ppy,
                           long_short, start, out, returns_out):
    """Long 1 when close > the q-quantile of the previous ``window`` closes, -1 (long/short only)
    when close < their (1 - q)-quantile, else 0. params: window, q."""
    n = close.shape[0]
    r = bar_returns(close)
    uw, uq, idx = unique_pairs(params[:, 0].copy(), params[:, 1].copy())
    k = uw.shape[0]
    hi = np.empty((k, n))
    lo = np.empty((k, n))
    i = 0
    while i < k:
        # pairs sharing a window are contiguous: one sorted-window pass serves all their q's
        j = i
        while j < k and uw[j] == uw[i]:
            j += 1
        qs = np.concatenate((uq[i:j], 1.0 - uq[i:j]))
        table = rolling_quantiles(close, int(uw[i]), qs)
        for g in range(j - i):
            hi[i + g] = table[g]
            lo[i + g] = table[j - i + g]
        i = j
    for c in range(params.shape[0]):
        h = hi[idx[c]]
        lw = lo[idx[c]]
        tail = tail_init()
        for t in range(start, n):
            pos = 0.0
            if t >= 1:
                if close[t] > h[t - 1]:
                    pos = 1.0
                elif long_short and close[t] < lw[t - 1]:
                    pos = -1.0
            tail = tail_step(tail, pos, r[t], fee_rate, returns_out, c, t)
        tail_finish(tail, ppy, out[c])


QUANTILE_REGIME = register(Strategy(
    name="quantile_regime",
    family="learning",
    description="Long when close > the q-quantile of the previous window closes, short below the (1-q)-quantile.",
    space=ParamSpace(
        dims=(Int("window", 10, 250, default=50, hard_min=1),
              Float("q", 0.5, 0.95, default=0.8, hard_min=0.5, hard_max=1.0)),
        strategy="quantile_regime",
    ),
    kernel=quantile_regime_kernel,
    warmup=lambda p: int(p["window"]),
    cost_ns=12,
))

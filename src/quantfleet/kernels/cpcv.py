"""The inner loop of combinatorial purged cross-validation (``research.cpcv``): every combo's
metric on every split's training bars and test bars, from its per-bar returns booked with the
position carried in and booked entering flat, in one compiled pass with one scratch row (no
(splits, combos, bars) copies)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantfleet.kernels.metrics import metrics_from_returns

__all__ = ["cpcv_metric_table"]


@njit(cache=True)
def cpcv_metric_table(carried, flat, test_r, train, starts, test, k, ppy, is_out, oos_out):
    """Metric ``k`` (``RETURN_METRIC_NAMES`` order) of each combo on each split's bars.

    Parameters
    ----------
    carried, flat, test_r : float64 (combos, bars)  each bar's return with the position carried
        in, entering flat there, and as the test groups book it
    train, starts, test : bool (splits, bars)  the split's training bars, the first bar of each
        run of training bars (booked flat), its test bars
    k : int; ppy : float
    is_out, oos_out : float64 (splits, combos), written (NaN for a split without bars)

    A combo's training series is its ``carried`` returns on the training bars in bar order, with
    the ``flat`` return at each run's first bar; its test series its ``test_r`` returns on the
    test bars; each goes through ``metrics_from_returns`` as the series it is.
    """
    n_s, n = train.shape
    n_c = carried.shape[0]
    buf = np.empty(n)
    for s in range(n_s):
        for c in range(n_c):
            m = 0
            for t in range(n):
                if train[s, t]:
                    buf[m] = flat[c, t] if starts[s, t] else carried[c, t]
                    m += 1
            is_out[s, c] = metrics_from_returns(buf[:m], ppy)[k] if m > 0 else math.nan
            m = 0
            for t in range(n):
                if test[s, t]:
                    buf[m] = test_r[c, t]
                    m += 1
            oos_out[s, c] = metrics_from_returns(buf[:m], ppy)[k] if m > 0 else math.nan

"""Walk-forward accounting on cached per-bar series: a combo's metrics over bar segments, and a
position path (one series spliced from several combos) evaluated in one pass.

Both read a strategy kernel's target positions and *earned* P&L: the kernel's per-bar return at
zero fees, i.e. what the position held over the bar earned (funding included). Each segment
(and the path) is booked as the kernel books bars ``[start, stop)``: the book enters flat at
the segment's first bar (which earns nothing; a position opened at its close pays the fee),
then bar ``t`` earns ``earned[t]`` on the position held and pays ``fee_rate * |Δpos|``, through
the one accumulator step (``acc_step_pnl``). Conventions: docs/conventions.md.
"""

from __future__ import annotations

from numba import njit

from quantfleet.kernels.metrics import acc_finish, acc_init, acc_step_pnl

__all__ = ["path_metrics", "segment_metrics"]


@njit(cache=True, inline="always")
def _book(positions, earned, c, lo, hi, fee_rate, returns_out):
    """Accumulator state of combo ``c`` over bars ``[lo, hi)``, entering flat at ``lo``;
    ``returns_out`` (hi - lo,) gets the per-bar returns net of fees (None: not kept)."""
    st = acc_init()
    prev = 0.0
    for t in range(lo, hi):
        pos = positions[c, t]
        # a flat book earns nothing, whatever the bar did (the segment's first bar included)
        pnl = earned[c, t] if prev != 0.0 else 0.0
        if returns_out is not None:
            returns_out[t - lo] = (1.0 + pnl) * (1.0 - fee_rate * abs(pos - prev)) - 1.0
        st = acc_step_pnl(st, prev, pos, pnl, fee_rate)
        prev = pos
    return st


@njit(cache=True)
def segment_metrics(positions, earned, bounds, fee_rate, ppy, out):
    """Metrics of every combo over every segment, each booked on its own (entering flat).

    Parameters
    ----------
    positions : float64 (combos, bars)  target position decided at each bar's close
    earned : float64 (combos, bars)     P&L of the position held over each bar (zero fees)
    bounds : int64 (segments, 2)        ``[lo, hi)`` bar ranges, indices into the bars axis
    fee_rate : float                    (fee_bps + slippage_bps) / 1e4
    ppy : float                         periods per year
    out : float64 (combos, segments, N_METRICS)
    """
    for c in range(positions.shape[0]):
        for s in range(bounds.shape[0]):
            st = _book(positions, earned, c, bounds[s, 0], bounds[s, 1], fee_rate, None)
            acc_finish(st, ppy, out[c, s])


@njit(cache=True)
def path_metrics(positions, earned, fee_rate, ppy, out, returns_out):
    """Metrics and per-bar returns of one position path over all its bars, in one pass: the
    position carries from bar to bar, so a fee is paid only where it actually changes.

    Parameters
    ----------
    positions, earned : float64 (bars,)  the path's positions and their earned P&L
    out : float64 (N_METRICS,)
    returns_out : float64 (bars,)        per-bar returns net of fees
    """
    st = _book(positions.reshape(1, -1), earned.reshape(1, -1), 0, 0, positions.shape[0],
               fee_rate, returns_out)
    acc_finish(st, ppy, out)

"""Walk-forward evaluation of a parameter block: one kernel pass per sub-batch of combos over an
asset's history, then every window's in-sample and out-of-sample metrics, the selection, and
the selected combos' out-of-sample positions evaluated as one continuous path.

A :class:`Walk` on a :class:`~quantfleet.backtest.job.BacktestJob` makes it a walk-forward job;
:func:`evaluate_walk` runs it (``backtest.job.evaluate`` hands walk jobs here).

Why one pass: every kernel's position at bar ``t`` depends only on bars up to ``t`` (from where
indicators start, the asset's first valid bar by default), never on the bar range accounted. So
the positions a combo holds in a window are a function of that combo and the data before the
window's end alone — not of the other combos in the grid (the old per-window warm-up was the
grid's longest) — and indicators with memory (EMA, Wilder RSI, stateful exits) are as converged
as the asset's history allows. Metrics of a window part are then an accumulator pass over the
cached positions and earned P&L (``kernels.walk``), booked exactly as a kernel books bars
``[start, stop)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from quantfleet.backtest.job import NO_COMBO, BacktestJob, best_combo
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.kernels.metrics import METRIC_NAMES, N_METRICS, check_metric
from quantfleet.kernels.walk import path_metrics, segment_metrics
from quantfleet.strategies.registry import get

__all__ = ["BUFFER_BYTES", "Walk", "WalkResult", "evaluate_walk"]

BUFFER_BYTES = 32 << 20
"""Bound on the per-bar buffer of one kernel pass (positions and earned P&L, 16 bytes per combo
and bar): combos run in sub-batches of ``max(1, BUFFER_BYTES // (bars * 16))``."""


@dataclass(frozen=True)
class Walk:
    """Walk-forward windows and the in-sample selection metric.

    windows : ``(train_start, train_end, test_start, test_end)`` per window, bar indices; test
        parts consecutive (each starts where the previous ended), as ``walk_forward`` makes them
    metric : selected in sample by :func:`~quantfleet.backtest.job.best_combo` (finite values
        only, ties to the lowest combo, none finite: no selection, flat out of sample)
    buffer_bytes : bound on one kernel pass's per-bar buffer (see :data:`BUFFER_BYTES`)

    The job's bars ``[start, stop)`` are the test span: the first test part's start to the last
    one's end.
    """

    windows: tuple[tuple[int, int, int, int], ...]
    metric: str = "sharpe"
    buffer_bytes: int = BUFFER_BYTES

    def __post_init__(self) -> None:
        check_metric(self.metric)
        wins = tuple(tuple(int(b) for b in w) for w in self.windows)
        object.__setattr__(self, "windows", wins)
        if not wins:
            raise QuantfleetError("Walk: windows is empty; give at least one "
                                  "(train_start, train_end, test_start, test_end)")
        for i, w in enumerate(wins):
            if len(w) != 4 or not (0 <= w[0] < w[1] and w[2] < w[3]):
                raise QuantfleetError(
                    f"Walk: window {i} {w} is not (train_start, train_end, test_start, "
                    f"test_end) with train_start < train_end and test_start < test_end")
            if i and w[2] != wins[i - 1][3]:
                raise QuantfleetError(
                    f"Walk: window {i} tests from bar {w[2]}, the previous test part ends at "
                    f"{wins[i - 1][3]}; test parts must be consecutive (one continuous path)")

    @property
    def start(self) -> int:
        """First bar of the test span."""
        return self.windows[0][2]

    @property
    def stop(self) -> int:
        """End (exclusive) of the test span."""
        return self.windows[-1][3]

    def n_backtests(self, n_combos: int) -> int:
        """Backtests reported per asset: every combo on each window's two parts, and the path."""
        return 2 * len(self.windows) * n_combos + 1

    def evaluate(self, market: MarketData, job: BacktestJob) -> WalkResult:
        """``evaluate_walk(market, job)``: what ``backtest.job.evaluate`` calls for a walk job."""
        return evaluate_walk(market, job)


@dataclass(frozen=True, eq=False)
class WalkResult:
    """What a walk-forward job returns.

    is_metrics, oos_metrics : (assets, windows, combos, N_METRICS) every combo on each
        window's train bars (in sample) and test bars (out of sample), each part booked alone
    chosen : (assets, windows) the combo selected in sample, ``NO_COMBO`` (-1) where none had
        a finite metric (the window is then flat out of sample)
    metrics : (assets, 1, N_METRICS) the out-of-sample path over the test span: the chosen
        combos' positions window after window, one position series evaluated in one pass
    series : per asset, (1, bars) the path's per-bar returns (keep="returns") or positions
        (keep="positions"), (2, bars) both (keep="path": returns, positions); None for
        keep="metrics"
    """

    is_metrics: np.ndarray
    oos_metrics: np.ndarray
    chosen: np.ndarray
    metrics: np.ndarray
    series: tuple[np.ndarray, ...] | None = None


def _batch_size(bars: int, buffer_bytes: int) -> int:
    return max(1, int(buffer_bytes) // max(1, bars * 16))


def evaluate_walk(market: MarketData, job: BacktestJob) -> WalkResult:
    """Run the walk-forward job ``job`` (``job.walk`` a :class:`Walk`) asset by asset.

    Per asset, each sub-batch of combos is one kernel pass over bars ``[lo, stop)`` (``lo``:
    ``warm_from``, by default the asset's first valid bar) at zero fees keeping positions and
    earned P&L; every combo's window parts are booked with the job's fees; the selection
    streams over the sub-batches (the running best per window and its test-part series, ties
    to the lower combo, so any sub-batch size selects what one batch does); the path is then
    booked once over the test span.
    """
    if not job.terms.plain:
        from quantfleet.backtest.execution import evaluate_walk_executed

        is_m, oos_m, chosen, path_m, series = evaluate_walk_executed(
            market, job, best_combo, NO_COMBO,
            lambda bars: _batch_size(bars, job.walk.buffer_bytes))
        return WalkResult(is_metrics=is_m, oos_metrics=oos_m, chosen=chosen, metrics=path_m,
                          series=series)
    walk: Walk = job.walk
    strat = get(job.strategy)
    t = job.terms
    fee, ls = float(t.fee_rate), bool(t.long_short)
    ppy = float(t.ppy if t.ppy is not None else market.periods_per_year)
    wins = np.array(walk.windows, dtype=np.int64)
    n_w, n_c, n_a = wins.shape[0], job.params.shape[0], len(job.assets)
    t0, t1 = walk.start, walk.stop
    k = METRIC_NAMES.index(walk.metric)
    is_m = np.empty((n_a, n_w, n_c, N_METRICS))
    oos_m = np.empty((n_a, n_w, n_c, N_METRICS))
    chosen = np.full((n_a, n_w), NO_COMBO, dtype=np.int64)
    path_m = np.empty((n_a, 1, N_METRICS))
    series: list[np.ndarray] | None = None if job.keep == "metrics" else []
    first = market.first_valid()
    for i, a in enumerate(job.assets):
        lo = max(int(first[a]), 0 if job.warm_from is None else int(job.warm_from))
        if lo > int(wins[:, 0].min()):
            raise QuantfleetError(
                f"walk-forward job {job.strategy}: a window starts at bar {int(wins[:, 0].min())}, "
                f"before asset {market.assets[a]!r} is priced or warmed up (bar {lo}); start the "
                f"windows at or after it")
        bars = t1 - lo
        # segment bounds relative to lo: train parts, then test parts
        bounds = np.ascontiguousarray(np.concatenate([wins[:, 0:2], wins[:, 2:4]]) - lo)
        best_val = np.full(n_w, np.nan)
        # the running best's test-part positions and earned P&L, on the test span
        p_pos = np.zeros(t1 - t0)
        p_earn = np.zeros(t1 - t0)
        # the running best's position at the close before its test part (what it earned on)
        p_before = np.zeros(n_w)
        size = _batch_size(bars, walk.buffer_bytes)
        seg = np.empty((min(size, n_c), 2 * n_w, N_METRICS))
        for c0 in range(0, n_c, size):
            c1 = min(c0 + size, n_c)
            _, earned, pos = strat.run_asset(market, a, job.params[c0:c1], fee_rate=0.0, ppy=ppy,
                                             long_short=ls, start=lo, stop=t1,
                                             warm_from=job.warm_from, returns=True,
                                             positions=True)
            out = seg[:c1 - c0]
            segment_metrics(pos, earned, bounds, fee, ppy, out)
            is_m[i, :, c0:c1] = out[:, :n_w].transpose(1, 0, 2)
            oos_m[i, :, c0:c1] = out[:, n_w:].transpose(1, 0, 2)
            for w in range(n_w):
                # the running best first: a tie keeps it (the lower combo index)
                b = best_combo(np.concatenate(([best_val[w]], out[:, w, k])), walk.metric)
                if b <= 0:
                    continue
                c = b - 1
                best_val[w] = out[c, w, k]
                chosen[i, w] = c0 + c
                ts, te = wins[w, 2], wins[w, 3]
                p_pos[ts - t0:te - t0] = pos[c, ts - lo:te - lo]
                p_earn[ts - t0:te - t0] = earned[c, ts - lo:te - lo]
                p_before[w] = pos[c, ts - 1 - lo] if ts - 1 >= lo else 0.0
        _hold_across_boundaries(market, strat, a, wins, t0, p_pos, p_earn, p_before)
        rets = np.empty(t1 - t0)
        path_metrics(p_pos, p_earn, fee, ppy, path_m[i, 0], rets)
        if series is not None:
            series.append(np.stack([rets, p_pos]) if job.keep == "path" else
                          (p_pos if job.keep == "positions" else rets).reshape(1, -1))
    return WalkResult(is_metrics=is_m, oos_metrics=oos_m, chosen=chosen, metrics=path_m,
                      series=None if series is None else tuple(series))


def _hold_across_boundaries(market: MarketData, strat: Any, asset: int, wins: np.ndarray,
                            t0: int, p_pos: np.ndarray, p_earn: np.ndarray,
                            p_before: np.ndarray) -> None:
    """Correct the path's P&L at the first bar of each test window: over that bar the path
    holds the previous window's last position, not the position the newly chosen combo held
    at the close before (whose earned P&L the test part was copied with). Where the two
    differ, the bar earns the held position times the asset's per-unit bar return (net of
    funding for a strategy that pays it)."""
    for w in range(wins.shape[0]):
        k = int(wins[w, 2]) - t0
        if k <= 0 or p_pos[k - 1] == p_before[w]:
            continue
        t = t0 + k
        close = market.close[asset]
        unit = close[t] / close[t - 1] - 1.0
        if "funding_rate" in strat.extras:
            f = float(market.field("funding_rate")[asset, t])
            unit -= f if np.isfinite(f) else 0.0
        held = p_pos[k - 1]
        p_earn[k] = (1.0 + held * unit) - 1.0  # as the kernels book a bar at zero fees

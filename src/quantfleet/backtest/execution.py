"""Jobs whose terms carry execution options: the strategy kernel gives target positions, the
execution kernel (``kernels.execution``) fills, stops, sizes and books them.

``backtest.job.evaluate`` hands every job with non-default execution (``Terms.plain`` False)
here, and ``backtest.walk.evaluate_walk`` its walk-forward jobs. Execution options searched
like parameters (``Terms.searched``) are the trailing columns of the job's parameter block: they
are split off, each combo's execution row is the job's :class:`Execution` with them replaced,
and the strategy runs once per distinct strategy parameter set.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from quantfleet.backtest.blocks import BLOCK_BATCH_BYTES, BlockStats, block_stats
from quantfleet.backtest.terms import EXECUTION_OPTIONS, Terms
from quantfleet.data.market import MarketData
from quantfleet.errors import DataError, QuantfleetError
from quantfleet.kernels.execution import execute, execute_path, execute_segments
from quantfleet.kernels.metrics import N_METRICS
from quantfleet.strategies.registry import get
from quantfleet.strategies.space import Float, Int, ParamSpace

__all__ = ["OHLC", "SEARCH_DIMS", "evaluate_executed", "evaluate_walk_executed",
           "execution_rows", "execution_space", "searched_in", "split_params"]

SEARCH_DIMS = {
    "stop_loss": Float("stop_loss", 0.01, 0.10, hard_min=0.0, hard_max=1.0),
    "take_profit": Float("take_profit", 0.02, 0.20, hard_min=0.0),
    "trailing_stop": Float("trailing_stop", 0.01, 0.10, hard_min=0.0, hard_max=1.0),
    "fraction": Float("fraction", 0.25, 1.0, hard_min=0.0),
    "vol_target": Float("vol_target", 0.05, 0.40, hard_min=0.0),
    "vol_window": Int("vol_window", 10, 60, 10, hard_min=2, window=False),
    "vol_cap": Float("vol_cap", 0.5, 2.0, hard_min=0.0),
    "borrow_rate": Float("borrow_rate", 0.0, 0.10, hard_min=0.0),
}
"""The dimension each searchable execution option adds to a strategy's ParamSpace; the bounds
are search defaults (what random and genetic search draw from)."""


def searched_in(strategy: Any, names: Any) -> tuple[str, ...]:
    """The execution options among ``names`` (a grid's keys, say) that are not parameters of
    ``strategy``, in ``SEARCH_DIMS`` order; ``fill`` is refused (it is not searchable)."""
    names = set(names or ())
    if "fill" in names and "fill" not in strategy.space.names:
        raise QuantfleetError("execution option 'fill' cannot be searched; run close and "
                              "next_open as two runs (--fill)")
    return tuple(n for n in SEARCH_DIMS if n in names and n not in strategy.space.names)


def execution_space(strategy: Any, searched: tuple[str, ...], execution: Any = None) -> Any:
    """``strategy`` with the ``searched`` execution options appended to its ParamSpace (a
    Strategy-compatible view: grids, samples, result columns and leaderboards then carry them;
    jobs run it with ``Terms.searched`` = ``searched``). Each option's default is the value of
    ``execution`` (None: the option's search range)."""
    if not searched:
        return strategy
    dims = []
    for name in searched:
        d = SEARCH_DIMS[name]
        v = None if execution is None else getattr(execution, name)
        if v is not None:
            d = dataclasses.replace(d, default=v)
        dims.append(d)
    space = ParamSpace(tuple(strategy.space.dims) + tuple(dims), strategy.space.constraints,
                       strategy.space.strategy)
    return dataclasses.replace(strategy, space=space)


def split_params(strat: Any, terms: Terms, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(strategy params (combos, dims), execution rows (combos, N_EX)) of a job's block."""
    n_d = len(strat.space.dims)
    want = n_d + len(terms.searched)
    if params.ndim != 2 or params.shape[1] != want:
        names = [*strat.space.names, *terms.searched]
        raise QuantfleetError(f"{strat.name}: params must have shape (combos, {want}) for "
                              f"{', '.join(names)}; got {params.shape}")
    return np.ascontiguousarray(params[:, :n_d]), execution_rows(terms, params[:, n_d:])


def execution_rows(terms: Terms, searched: np.ndarray) -> np.ndarray:
    """Each combo's execution row: the terms' :class:`Execution`, with the searched options
    (columns of ``searched``, in ``terms.searched`` order) replaced and validated."""
    base = np.array(terms.execution.row(), dtype=np.float64)
    n_c = searched.shape[0]
    rows = np.tile(base, (n_c, 1))
    if not terms.searched:
        return rows
    # validate each distinct value through Execution (one-line errors naming the option)
    for j, name in enumerate(terms.searched):
        col = searched[:, j]
        for v in np.unique(col):
            kw = {name: int(v) if name == "vol_window" else float(v)}
            terms.execution.replace(**kw)
        rows[:, EXECUTION_OPTIONS.index(name)] = col
    return rows


class OHLC:
    """The price arrays the execution kernel reads for one asset over ``[lo, stop)``."""

    def __init__(self, market: MarketData, terms: Terms, asset: int, lo: int, stop: int,
                 ex: np.ndarray, extras: tuple[str, ...] = ()) -> None:
        close = np.ascontiguousarray(market.close[asset, lo:stop])
        need = []
        if (ex[:, 0] == 1.0).any() or np.isfinite(ex[:, 1:4]).any():
            need.append("open")
        if np.isfinite(ex[:, 1:4]).any():
            need += ["high", "low"]
        arrays = {}
        for f in ("open", "high", "low"):
            src = market.field(f) if f in need else None
            if f in need and src is None:
                what = ("fill=next_open needs" if not need[1:] else
                        "stop_loss / take_profit / trailing_stop need")
                raise DataError(f"{market.source}: execution option {what} the "
                                f"{', '.join(repr(x) for x in need)} column(s); the data has "
                                f"{', '.join(market.columns())} (use OHLC data, e.g. "
                                f"sp500_ohlcv, or drop the option)")
            arrays[f] = close if src is None else np.ascontiguousarray(src[asset, lo:stop])
        self.open, self.high, self.low, self.close = (arrays["open"], arrays["high"],
                                                      arrays["low"], close)
        # a strategy that pays funding (funding_carry) pays it under any execution too
        self.funding = (np.ascontiguousarray(market.field("funding_rate")[asset, lo:stop])
                        if "funding_rate" in extras else np.empty(0))


def _lo(market: MarketData, asset: int, warm_from: int | None) -> int:
    return max(int(market.first_valid()[asset]), 0 if warm_from is None else int(warm_from))


def _targets(strat: Any, market: MarketData, asset: int, uparams: np.ndarray, inverse:
             np.ndarray, combos: np.ndarray, lo: int, start: int, stop: int, ls: bool,
             ppy: float, cache: dict[int, np.ndarray]) -> np.ndarray:
    """Target positions (len(combos), stop - lo) of ``combos``, zero before ``start``; the
    strategy runs once per distinct strategy parameter set (``cache`` keeps them)."""
    need = sorted({int(inverse[c]) for c in combos} - set(cache))
    if need:
        _, _, pos = strat.run_asset(market, asset, uparams[need], ppy=ppy, long_short=ls,
                                    start=start, stop=stop, warm_from=lo, positions=True)
        for k, u in enumerate(need):
            cache[u] = pos[k]
    out = np.zeros((len(combos), stop - lo))
    for k, c in enumerate(combos):
        row = cache[int(inverse[c])]
        out[k, stop - lo - row.shape[0]:] = row
    return out


def evaluate_executed(market: MarketData, job: Any) -> tuple[np.ndarray, Any, Any]:
    """``backtest.job.evaluate`` of a job with execution options (not a walk job): the
    ``JobResult`` fields (metrics, series or None, blocks or None)."""

    strat = get(job.strategy)
    t = job.terms
    sparams, ex = split_params(strat, t, job.params)
    ppy = float(t.ppy if t.ppy is not None else market.periods_per_year)
    n_a, n_c = len(job.assets), sparams.shape[0]
    metrics = np.empty((n_a, n_c, N_METRICS))
    series: list[np.ndarray] | None = None if job.keep == "metrics" else []
    stats: list[BlockStats] = []
    uparams, inverse = np.unique(sparams, axis=0, return_inverse=True) if n_c else \
        (sparams, np.zeros(0, dtype=np.int64))
    inverse = np.asarray(inverse).reshape(-1)
    stop = market.n_bars if job.stop is None else int(job.stop)
    strat.check_market(market)
    for i, a in enumerate(job.assets):
        lo = _lo(market, a, job.warm_from)
        start = max(int(job.start), lo)
        px = OHLC(market, t, a, lo, stop, ex, strat.extras)
        bars = stop - lo
        per = max(1, BLOCK_BATCH_BYTES // (24 * max(bars, 1)))
        cache: dict[int, np.ndarray] = {}
        keep_rows = set(range(n_c)) if job.combos is None else set(job.combos)
        kept: dict[int, np.ndarray] = {}
        parts = []
        for c0 in range(0, max(n_c, 1), per):
            idx = np.arange(c0, min(n_c, c0 + per))
            tg = _targets(strat, market, a, uparams, inverse, idx, lo, start, stop,
                          t.long_short, ppy, cache)
            want_series = job.blocks or (series is not None and keep_rows & set(idx.tolist()))
            rets = np.zeros((len(idx), 2, bars)) if want_series else None
            execute(px.open, px.high, px.low, px.close, px.funding, tg,
                    np.ascontiguousarray(ex[idx]),
                    float(t.fee_rate), ppy, start - lo, metrics[i, c0:c0 + len(idx)], rets)
            if len(cache) > 4 * per:
                cache.clear()
            if rets is None:
                continue
            if job.blocks:
                parts.append(block_stats(np.ascontiguousarray(rets[:, 0, start - lo:]),
                                         job.blocks))
                continue
            k = 1 if job.keep == "positions" else 0
            for j, c in enumerate(idx.tolist()):
                if c in keep_rows:
                    kept[c] = rets[j, k, start - lo:]
        if job.blocks:
            stats.append(BlockStats.concat(parts))
        if series is not None:
            rows = range(n_c) if job.combos is None else job.combos
            series.append(np.ascontiguousarray(
                np.array([kept[c] for c in rows]).reshape(len(rows), stop - start)))
    return (metrics, None if series is None else tuple(series),
            tuple(stats) if job.blocks else None)


def evaluate_walk_executed(market: MarketData, job: Any, best_combo: Any, no_combo: int,
                           batch_size: int) -> tuple[Any, ...]:
    """``backtest.walk.evaluate_walk`` of a walk job with execution options: every window
    part executed and booked on its own (flat before its first bar), the selection as there
    (``best_combo``, streaming over sub-batches of ``batch_size(bars)`` combos), and the
    out-of-sample path executed in one pass over the test span (the position and its trade
    carry across windows; each window's bars use its chosen combo's execution row). Returns
    the ``WalkResult`` fields."""
    from quantfleet.kernels.metrics import METRIC_NAMES


    walk = job.walk
    strat = get(job.strategy)
    t = job.terms
    fee, ls = float(t.fee_rate), bool(t.long_short)
    ppy = float(t.ppy if t.ppy is not None else market.periods_per_year)
    sparams, ex = split_params(strat, t, job.params)
    wins = np.array(walk.windows, dtype=np.int64)
    n_w, n_c, n_a = wins.shape[0], sparams.shape[0], len(job.assets)
    t0, t1 = walk.start, walk.stop
    k = METRIC_NAMES.index(walk.metric)
    is_m = np.empty((n_a, n_w, n_c, N_METRICS))
    oos_m = np.empty((n_a, n_w, n_c, N_METRICS))
    chosen = np.full((n_a, n_w), no_combo, dtype=np.int64)
    path_m = np.empty((n_a, 1, N_METRICS))
    series: list[np.ndarray] | None = None if job.keep == "metrics" else []
    uparams, inverse = np.unique(sparams, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for i, a in enumerate(job.assets):
        lo = _lo(market, a, job.warm_from)
        if lo > int(wins[:, 0].min()):
            raise QuantfleetError(
                f"walk-forward job {job.strategy}: a window starts at bar "
                f"{int(wins[:, 0].min())}, before asset {market.assets[a]!r} is priced or "
                f"warmed up (bar {lo}); start the windows at or after it")
        px = OHLC(market, t, a, lo, t1, ex, strat.extras)
        bars = t1 - lo
        bounds = np.ascontiguousarray(np.concatenate([wins[:, 0:2], wins[:, 2:4]]) - lo)
        best_val = np.full(n_w, np.nan)
        p_tg = np.zeros(bars)  # the path's targets: each window's chosen combo's
        size = batch_size(bars)
        cache: dict[int, np.ndarray] = {}
        for c0 in range(0, n_c, size):
            idx = np.arange(c0, min(c0 + size, n_c))
            tg = _targets(strat, market, a, uparams, inverse, idx, lo, lo, t1, ls, ppy, cache)
            if len(cache) > 4 * size:
                cache.clear()
            out = np.empty((len(idx), 2 * n_w, N_METRICS))
            execute_segments(px.open, px.high, px.low, px.close, px.funding, tg,
                             np.ascontiguousarray(ex[idx]), bounds, fee, ppy, out)
            is_m[i, :, c0:c0 + len(idx)] = out[:, :n_w].transpose(1, 0, 2)
            oos_m[i, :, c0:c0 + len(idx)] = out[:, n_w:].transpose(1, 0, 2)
            for w in range(n_w):
                b = best_combo(np.concatenate(([best_val[w]], out[:, w, k])), walk.metric)
                if b <= 0:
                    continue
                best_val[w] = out[b - 1, w, k]
                chosen[i, w] = c0 + b - 1
                ts, te = wins[w, 2] - lo, wins[w, 3] - lo
                p_tg[ts:te] = tg[b - 1, ts:te]
        # the path's execution rows: window w's bars use its chosen combo's (none: flat)
        rows = np.zeros(bars, dtype=np.int64)
        p_ex = np.tile(np.array(t.execution.row()), (n_w, 1))
        for w in range(n_w):
            rows[wins[w, 2] - lo:wins[w, 3] - lo] = w
            if chosen[i, w] != no_combo:
                p_ex[w] = ex[chosen[i, w]]
        rets = np.zeros((1, 2, bars))
        execute_path(px.open, px.high, px.low, px.close, px.funding, p_tg,
                     np.ascontiguousarray(p_ex),
                     rows, fee, ppy, t0 - lo, path_m[i, 0], rets)
        if series is not None:
            if job.keep == "path":  # returns, positions
                series.append(np.ascontiguousarray(rets[0, :, t0 - lo:]))
            else:
                kk = 1 if job.keep == "positions" else 0
                series.append(np.ascontiguousarray(rets[0, kk, t0 - lo:]).reshape(1, -1))
    return is_m, oos_m, chosen, path_m, None if series is None else tuple(series)

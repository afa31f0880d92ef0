"""Backtest tournaments: strategies × assets × walk-forward windows.

In each window every parameter set is evaluated on the train part (in sample) and on the test
part (out of sample); the best in sample by ``metric`` is marked ``selected``. Keeping every
combo's out-of-sample metrics is what the overfitting statistics (PBO, deflated Sharpe) need.
The selected parameters' out-of-sample returns, stitched over windows, feed the leaderboard and
the portfolio's returns matrix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError, did_you_mean
from quantfleet.kernels.metrics import METRIC_NAMES
from quantfleet.research.costs import Costs
from quantfleet.research.windows import Window, walk_forward
from quantfleet.strategies.registry import Strategy, get
from quantfleet.strategies.space import Choice, Float, Int, ParamSpace

__all__ = ["TournamentResult", "bar_returns", "coarse_grid", "evaluate_pair",
           "evaluate_pair_packed", "evaluate_window", "leaderboard_order", "pack_returns",
           "tournament", "unpack_returns"]

_LOWER_IS_BETTER = {"max_drawdown", "turnover"}
# the tournament's default chunking: equal chunks (items are asset-major, so equal chunks
# cost about the same), this many per worker, each at most CHUNK_MAX_ITEMS (strategy, asset)
# pairs; ``map_options={"chunk_size": n}`` overrides it
CHUNKS_PER_WORKER = 2
CHUNK_MAX_ITEMS = 64


def coarse_grid(space: ParamSpace, max_combos: int = 64) -> np.ndarray:
    """An evenly spaced grid over the search bounds with at most ~``max_combos`` feasible rows.

    Each dimension gets ``k`` values (the same ``k`` for all, the largest that keeps the
    cartesian product within budget before constraints); choices keep all their options.
    """
    n_free = sum(1 for d in space.dims if not isinstance(d, Choice))
    fixed = math.prod(len(d.options) for d in space.dims if isinstance(d, Choice))
    k = 2
    while n_free and (k + 1) ** n_free * fixed <= max_combos * 2:
        k += 1
    spec: dict[str, list[Any]] = {}
    for d in space.dims:
        if isinstance(d, Choice):
            spec[d.name] = list(d.options)
        elif isinstance(d, Int):
            vals = np.unique(np.round(np.linspace(d.low, d.high, k)).astype(int))
            spec[d.name] = [int(v) for v in vals]
        elif isinstance(d, Float):
            spec[d.name] = [float(v) for v in np.linspace(d.low, d.high, k)]
    params, _ = space.grid(spec)
    if params.shape[0] > max_combos:
        idx = np.unique(np.linspace(0, params.shape[0] - 1, max_combos).round().astype(int))
        params = params[idx]
    return params


@dataclass
class TournamentResult:
    """Rows, leaderboard and stitched out-of-sample returns of a tournament."""

    metric: str
    windows: list[Window]
    n_rows: int
    n_backtests: int
    table: Any = None  # pyarrow.Table, one row per (strategy, asset, window, params)
    leaderboard: Any = None  # pandas.DataFrame, one row per (strategy, asset)
    oos_returns: Any = None  # pandas.DataFrame, timestamps × "strategy/asset"
    overfit: Any = None  # pandas.DataFrame, research.overfit.tournament_overfit's columns
    path: Path | None = None
    failed: list[Any] = field(default_factory=list)
    wall_s: float = 0.0
    speedup: dict[str, Any] | None = None


def _best(values: np.ndarray, metric: str) -> int:
    v = np.where(np.isfinite(values), values, np.nan)
    if np.all(np.isnan(v)):
        return 0
    return int(np.nanargmin(v) if metric in _LOWER_IS_BETTER else np.nanargmax(v))


def bar_returns(market: MarketData, asset: int, start: int, stop: int) -> np.ndarray:
    """The asset's close-to-close returns ``close[t] / close[t-1] - 1`` for bars
    ``[start, stop)`` (NaN where there is no previous bar): the reference
    :func:`pack_returns` codes a strategy's returns against."""
    close = market.field("close")[asset]
    out = np.full(stop - start, np.nan)
    lo = max(start, 1)
    if stop > lo:
        out[lo - start:] = close[lo:stop] / close[lo - 1:stop - 1] - 1.0
    return out


def pack_returns(x: np.ndarray, ref: np.ndarray | None = None
                 ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Lossless compact form of a returns series for the trip from worker to driver.

    Each entry gets a 2-bit code: +0.0 (a flat bar), exactly ``ref`` (fully long: the bar's
    own return, see :func:`bar_returns`), exactly ``-ref`` (fully short), or a stored value.
    At ~10k backtests on sp500 48% of a tournament's stitched out-of-sample returns are 0.0
    and 87% of the others equal the bar's return or its negation, so a series packs to about
    a sixth of its bytes. Codes compare bits, so NaN and -0.0 come back exactly from
    :func:`unpack_returns` given the same ``ref`` (without ``ref``: only zeros are coded).
    Returns ``(n, low code bits, high code bits, stored values)``.
    """
    xb = x.view(np.int64)
    code = np.full(x.shape[0], 3, np.uint8)
    if ref is not None:
        code[xb == (-ref).view(np.int64)] = 2
        code[xb == ref.view(np.int64)] = 1
    code[xb == 0] = 0
    return x.shape[0], np.packbits(code & 1), np.packbits(code >> 1), x[code == 3]


def unpack_returns(packed: tuple[int, np.ndarray, np.ndarray, np.ndarray],
                   ref: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """The series :func:`pack_returns` packed, bit for bit (``ref``: the same reference),
    written into ``out`` if given."""
    n, lo, hi, values = packed
    a = np.unpackbits(lo, count=n).view(bool)  # code 1 or 3
    b = np.unpackbits(hi, count=n).view(bool)  # code 2 or 3
    if out is None:
        out = np.empty(n)
    out.fill(0.0)
    if ref is not None:
        np.copyto(out, ref, where=a)
        np.negative(ref, out=out, where=b & ~a)
    elif (a ^ b).any():
        raise ValueError("unpack_returns: these returns were packed against a reference; "
                         "pass the same ref")
    out[a & b] = values
    return out


def evaluate_window(market: MarketData, item: tuple) -> dict[str, Any]:
    """Worker body: every combo of one (strategy, asset, window) in and out of sample.

    Returns ``{"is": (combos, M), "oos": (combos, M), "best": int, "returns": (test bars,)}``.
    """
    name, asset, params, window, warm, fee_rate, ppy, long_short, metric = item
    strat = get(name)
    w = window
    kw = {"fee_rate": fee_rate, "ppy": ppy, "long_short": long_short}
    is_m, _ = strat.run_asset(market, asset, params, start=w.train_start, stop=w.train_end,
                              warm_from=max(0, w.train_start - warm), **kw)
    oos_m, _ = strat.run_asset(market, asset, params, start=w.test_start, stop=w.test_end,
                               warm_from=max(0, w.test_start - warm), **kw)
    best = _best(is_m[:, METRIC_NAMES.index(metric)], metric)
    _, rets = strat.run_asset(market, asset, params[best:best + 1], start=w.test_start,
                              stop=w.test_end, warm_from=max(0, w.test_start - warm),
                              returns=True, **kw)
    return {"is": is_m, "oos": oos_m, "best": best, "returns": rets[0]}


def evaluate_pair(market: MarketData, item: tuple, *, pack: bool = False) -> dict[str, Any]:
    """Worker body: one strategy on one asset over every walk-forward window.

    Runs :func:`evaluate_window` per window, then everything the result needs from this pair
    alone, so the driver only concatenates: the result rows' columns, the selected combos'
    out-of-sample returns stitched over the windows (with ``pack``: :func:`pack_returns`,
    for results that travel between processes), the leaderboard row and the overfitting row
    (PBO, deflated Sharpe; :func:`~quantfleet.research.overfit.pair_overfit`).

    ``item = (strategy, asset row, params, windows, warm-up bars, fee rate, periods per year,
    long_short, metric)``.
    """
    from quantfleet.research.overfit import pair_overfit

    name, asset, params, windows, warm, fee_rate, ppy, long_short, metric = item
    k = METRIC_NAMES.index(metric)
    n_c = params.shape[0]
    t0 = windows[0].test_start
    series = np.full(windows[-1].test_end - t0, np.nan)
    is_parts, oos_parts, best_pairs, best_idx = [], [], [], []
    sel = np.zeros(n_c * len(windows), dtype=bool)
    for j, w in enumerate(windows):
        res = evaluate_window(market, (name, asset, params, w, warm, fee_rate, ppy, long_short,
                                       metric))
        is_parts.append(res["is"])
        oos_parts.append(res["oos"])
        sel[j * n_c + res["best"]] = True
        series[w.test_start - t0:w.test_end - t0] = res["returns"]
        best_pairs.append((res["is"][res["best"], k], res["oos"][res["best"], k]))
        best_idx.append(res["best"])
    is_m, oos_m = np.concatenate(is_parts), np.concatenate(oos_parts)
    win_col = np.repeat(np.array([w.index for w in windows], np.int32), n_c)
    combo_col = np.tile(np.arange(n_c, dtype=np.int32), len(windows))
    # only what the driver cannot derive: window, dates and combo columns follow from the
    # windows and the grid size, so the driver builds them for many pairs at once
    cols = {"best": np.array(best_idx, np.int32), "is": is_m, "oos": oos_m}
    asset_name = market.assets[asset]
    # leaderboard row: the stitched out-of-sample record of the selected parameters
    r = series[np.isfinite(series)]
    eq = np.cumprod(1.0 + r)
    sd = r.std(ddof=1) if r.size > 1 else np.nan
    peak = np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:]
    pairs = np.array(best_pairs)
    board = {
        "strategy": name, "asset": asset_name, "windows": len(windows),
        "oos_total_return": float(eq[-1] - 1.0) if r.size else np.nan,
        "oos_sharpe": float(r.mean() / sd * math.sqrt(ppy)) if sd and sd > 0 else np.nan,
        "oos_max_drawdown": float(np.max(1.0 - eq / peak)) if r.size else np.nan,
        f"mean_is_{metric}": float(np.nanmean(pairs[:, 0])) if np.isfinite(pairs[:, 0]).any() else np.nan,
        f"mean_oos_{metric}": float(np.nanmean(pairs[:, 1])) if np.isfinite(pairs[:, 1]).any() else np.nan,
    }
    overfit = pair_overfit(name, asset_name, win_col, combo_col, is_m[:, k], oos_m[:, k], sel,
                           oos_m[:, METRIC_NAMES.index("sharpe")], series, metric=metric,
                           periods_per_year=ppy)
    if pack:
        packed = pack_returns(series, bar_returns(market, asset, t0, windows[-1].test_end))
    return {"cols": cols, "returns": packed if pack else series, "board": board,
            "overfit": overfit}


def evaluate_pair_packed(market: MarketData, item: tuple) -> dict[str, Any]:
    """:func:`evaluate_pair` for a worker process: the returns travel packed against the
    asset's bar returns (:func:`pack_returns`), ~a sixth of their bytes (Ray stores and fetches
    each task's result at ~3-4 ms per MB on this 2-core machine); the driver unpacks them bit
    for bit."""
    return evaluate_pair(market, item, pack=True)


def leaderboard_order(board: Sequence[Mapping[str, Any]]) -> list[int]:
    """Row order of the leaderboard: best out-of-sample Sharpe first (NaN last), then
    strategy, then asset, ties in the given order — what ``DataFrame.sort_values(["oos_sharpe",
    "strategy", "asset"], ascending=[False, True, True], na_position="last", kind="stable")``
    gives, without building and sorting a frame (~2 ms of the driver's serial tail at 10k)."""
    def rank(i: int) -> tuple[bool, float, str, str]:
        b = board[i]
        sh = float(b["oos_sharpe"])
        nan = sh != sh
        return nan, 0.0 if nan else -sh, b["strategy"], b["asset"]

    return sorted(range(len(board)), key=rank)


class _RowBuffer:
    """Collects finished (strategy, asset) results and turns every ``flush_at`` of them into
    one Arrow table (a table per item costs the driver more than small windows' backtests)."""

    def __init__(self, market: MarketData, params_json: Mapping[str, list[str]],
                 windows: Sequence[Window], flush_at: int = 128) -> None:
        self.market = market
        self.windows = tuple(windows)
        self.params_json = params_json
        self.flush_at = flush_at
        self.parts: list[tuple[str, int, Mapping[str, Any]]] = []

    def add(self, name: str, asset: int, res: Mapping[str, Any]):
        self.parts.append((name, asset, res["cols"]))
        return self.flush() if len(self.parts) >= self.flush_at else None

    def flush(self):
        import pyarrow as pa

        if not self.parts:
            return None
        wins = self.windows
        n_w = len(wins)
        pj = self.params_json
        n_c = np.array([len(pj[p[0]]) for p in self.parts])  # combos of each pair's strategy
        counts = n_c * n_w
        rep = np.repeat
        cat = np.concatenate
        ts = self.market.timestamps
        # per (pair, window): window position and the pair's grid size; per row: its window
        # and combo, from the pairs' grid sizes
        pw_win = np.tile(np.arange(n_w), len(self.parts))
        pw_nc = rep(n_c, n_w)
        w_pos = rep(pw_win, pw_nc)
        starts = np.cumsum(counts) - counts
        row_pair = rep(np.arange(len(self.parts)), counts)
        combo = (np.arange(int(counts.sum())) - starts[row_pair]) % rep(n_c, counts)
        best = cat([p[2]["best"] for p in self.parts]).astype(np.int64)
        sel = np.zeros(combo.shape[0], dtype=bool)
        sel[rep(starts, n_w) + pw_win * pw_nc + best] = True
        cols: dict[str, Any] = {
            "strategy": pa.array(rep([p[0] for p in self.parts], counts), pa.string()),
            "asset": pa.array(rep([self.market.assets[p[1]] for p in self.parts], counts),
                              pa.string()),
            "window": pa.array(np.array([w.index for w in wins], np.int32)[w_pos]),
            "train_start": pa.array(ts[np.array([w.train_start for w in wins])][w_pos]),
            "test_start": pa.array(ts[np.array([w.test_start for w in wins])][w_pos]),
            "test_end": pa.array(ts[np.array([w.test_end - 1 for w in wins])][w_pos]),
            "combo": pa.array(combo.astype(np.int32)),
        }
        cols["params"] = pa.array([j for p in self.parts for j in pj[p[0]] * n_w], pa.string())
        cols["selected"] = pa.array(sel)
        for prefix, part in (("is_", "is"), ("oos_", "oos")):
            m = cat([p[2][part] for p in self.parts])
            for k, name in enumerate(METRIC_NAMES):
                cols[prefix + name] = pa.array(m[:, k])
        self.parts = []
        return pa.table(cols)


def tournament(market: MarketData, strategies: Sequence[str], *,
               assets: Sequence[str] | None = None, train: int | str | None = None,
               test: int | str | None = None, n_windows: int | None = None,
               anchored: bool = False, metric: str = "sharpe",
               grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
               max_combos: int = 64, costs: Costs | None = None, long_short: bool = False,
               ppy: float | None = None, executor: Any = None, out: str | Path | None = None,
               keep_table: bool = True, baseline: bool = False,
               baseline_budget_s: float = 10.0,
               checkpoint_dir: str | Path | None = None,
               map_options: Mapping[str, Any] | None = None) -> TournamentResult:
    """Run every strategy on every asset in every walk-forward window.

    Parameters
    ----------
    strategies : names; each uses ``grids[name]`` if given, else ``coarse_grid(space, max_combos)``
    train, test : window lengths in bars or durations ("2Y"); or ``n_windows`` K alone
    metric : in-sample selection metric (higher is better; max_drawdown/turnover lower)
    executor : a ``quantfleet.compute`` Executor (None: in this process); one task item per
        (strategy, asset) over all windows (:func:`evaluate_pair`), chunked by the executor
    out : directory; ``results.parquet`` (streamed row groups), ``leaderboard.parquet`` and
        ``oos_returns.parquet`` are written there
    map_options : further ``executor.map`` arguments (chunk_size, retries, timeout_s, progress)
    checkpoint_dir : finished chunks are kept there; running the same tournament again with
        the same directory (after the driver was killed) skips them
    baseline : also run the same work serially in this process (all of it, or an evenly
        spaced sample within ``baseline_budget_s``, extrapolated and labelled) and report the
        speedup and parallel efficiency in ``result.speedup``
    """
    import time

    import pandas as pd

    if metric not in METRIC_NAMES:
        raise QuantfleetError(
            f"unknown metric {metric!r}{did_you_mean(metric, METRIC_NAMES)}; "
            f"choose one of {', '.join(METRIC_NAMES)}"
        )
    if not strategies:
        raise QuantfleetError("no strategies given; e.g. --strategies sma_cross,rsi")
    strats = [get(s) for s in strategies]
    rows = list(range(market.n_assets)) if assets is None else [market.asset_index(a) for a in assets]
    costs = costs or Costs()
    ppy = float(ppy) if ppy is not None else market.periods_per_year
    first = int(market.first_valid()[rows].max()) if rows else 0
    windows = walk_forward(market.timestamps, train, test, n_windows, anchored, start=first)

    plan: list[tuple[Strategy, np.ndarray, int]] = []
    for s in strats:
        s.check_market(market)
        if grids and s.name in grids:
            params, _ = s.space.grid(grids[s.name], market.n_bars)
        else:
            params = coarse_grid(s.space, max_combos)
        if params.shape[0] == 0:
            raise QuantfleetError(f"{s.name}: the grid has no combo satisfying its constraints")
        warm = max(s.min_bars(d) for d in s.space.to_dicts(params))
        plan.append((s, params, warm))

    params_json = {s.name: [json.dumps(d, sort_keys=True) for d in s.space.to_dicts(p)]
                   for s, p, _ in plan}
    wins = tuple(windows)
    # asset-major: consecutive items cycle through the strategies, so any run of items holds
    # every strategy once per asset and equal chunks cost about the same, although one
    # strategy's pair can cost ~20x another's; equal chunks then need no shrinking tail
    items = [(s.name, a, params, wins, warm, costs.fee_rate, ppy, long_short, metric)
             for a in rows for s, params, warm in plan]

    t_start = time.perf_counter()
    if executor is None and checkpoint_dir is not None:
        from quantfleet.compute import SerialExecutor

        executor = SerialExecutor()
    if executor is None:
        results: Iterator[Any] = (evaluate_pair(market, it) for it in items)
    else:
        opts = dict(map_options or {})
        # explicit chunks: the executor's own probe would time a cold first item (numba cache
        # load) and cut the work into single-item tasks. Two equal chunks per worker: each
        # task costs Ray ~4-5 ms of wall on 2 cores (8 -> 4 tasks: 3% less wall at 10k and
        # 70k backtests, paired runs), and a worker that falls behind costs at most half its
        # share; at most CHUNK_MAX_ITEMS items a chunk, so long runs still checkpoint and
        # report progress as they go
        opts.setdefault("chunk_size", max(1, min(CHUNK_MAX_ITEMS, math.ceil(
            len(items) / (CHUNKS_PER_WORKER * max(executor.workers, 1))))))
        from quantfleet.compute import SerialExecutor

        # results that cross a process boundary travel packed; in this process they need not
        fn = evaluate_pair if isinstance(executor, SerialExecutor) else evaluate_pair_packed
        # names the packed format in checkpoint fingerprints: chunks checkpointed by a version
        # that packed returns differently are not reused
        opts.setdefault("checkpoint_key", "returns-packed-v2" if fn is evaluate_pair_packed else "")
        results = executor.map(fn, items, shared=market, stage="tournament",
                               component=[it[0] for it in items],
                               checkpoint_dir=checkpoint_dir, **opts)

    out_dir = Path(out) if out is not None else None
    writer = None
    tables = []
    failed: list[Any] = []
    n_rows = 0
    n_bt = 0
    # stitched out-of-sample returns, one row per pair, strategy by strategy (the order
    # given) and assets in data order within each: results are written in place
    n_s, n_a = len(plan), len(rows)
    block = np.empty((n_s * n_a, wins[-1].test_end - wins[0].test_start))
    done = np.zeros(n_s * n_a, dtype=bool)
    board: list[dict[str, Any]] = []
    of_rows: list[dict[str, Any]] = []
    buffer = _RowBuffer(market, params_json, wins)
    # each asset's bar returns over the stitched test span: what packed returns refer to
    refs: dict[int, np.ndarray] = {}
    t_lo, t_hi = wins[0].test_start, wins[-1].test_end

    def emit(tbl: Any) -> None:
        nonlocal writer, n_rows
        if tbl is None:
            return
        n_rows += tbl.num_rows
        if out_dir is not None:
            if writer is None:
                import pyarrow.parquet as pq

                out_dir.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(out_dir / "results.parquet.partial", tbl.schema)
            writer.write_table(tbl)
        if keep_table or out_dir is None:
            tables.append(tbl)

    try:
        for k, (it, res) in enumerate(zip(items, results, strict=True)):
            if not isinstance(res, dict):
                failed.append(res)
                continue
            n_bt += len(wins) * (2 * it[2].shape[0] + 1)  # in and out of sample, selected again
            row = (k % n_s) * n_a + k // n_s  # items are asset-major, rows strategy-major
            rets = res["returns"]
            if isinstance(rets, tuple):
                ref = refs.get(it[1])
                if ref is None:
                    ref = refs[it[1]] = bar_returns(market, it[1], t_lo, t_hi)
                unpack_returns(rets, ref, out=block[row])
            else:
                block[row] = rets
            done[row] = True
            board.append(res["board"])
            of_rows.append(res["overfit"])
            emit(buffer.add(it[0], it[1], res))
        emit(buffer.flush())
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        (out_dir / "results.parquet.partial").replace(out_dir / "results.parquet")

    wall = time.perf_counter() - t_start
    speed = None
    if baseline:
        from quantfleet.research.baseline import measure_serial, speedup

        speed = speedup(measure_serial(evaluate_pair, market, items, budget_s=baseline_budget_s),
                        wall, int(getattr(executor, "workers", 1) or 1))

    import pyarrow as pa

    from quantfleet.research.overfit import OVERFIT_COLUMNS

    # stitched out-of-sample returns of the selected parameters, the leaderboard and the
    # overfitting statistics: each pair's part was computed in its task
    ts = market.timestamps
    index = pd.DatetimeIndex(ts[windows[0].test_start:windows[-1].test_end], name="timestamp")
    # one 2-D block, rows contiguous per column (pandas keeps a block as columns x rows): a
    # frame from a dict of 1-D columns costs ~1 ms per 10 columns
    names = [f"{s.name}/{market.assets[a]}" for s, _, _ in plan for a in rows]
    if not done.all():  # failed pairs have no column
        names = [c for c, d in zip(names, done, strict=True) if d]
        block = block[done]
    oos = pd.DataFrame(block.T, index=index, columns=pd.Index(names, dtype=object), copy=False)
    # the pairs' rows come in item order (asset-major); overfit sorted by strategy, asset
    order = sorted(range(len(of_rows)), key=lambda i: (of_rows[i]["strategy"],
                                                       of_rows[i]["asset"]))
    overfit = pd.DataFrame({c: [of_rows[i][c] for i in order] for c in OVERFIT_COLUMNS},
                           columns=list(OVERFIT_COLUMNS))
    if board:
        order = leaderboard_order(board)
        # board[i] and of_rows[i] are the same pair: the overfitting verdict joins by position
        cols_b: dict[str, list[Any]] = {k: [board[i][k] for i in order] for k in board[0]}
        for k in ("pbo", "dsr", "verdict"):
            cols_b[k] = [of_rows[i][k] for i in order]
        leaderboard = pd.DataFrame(cols_b)
    else:
        leaderboard = pd.DataFrame()
    table = pa.concat_tables(tables) if tables else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        leaderboard.to_parquet(out_dir / "leaderboard.parquet", index=False)
        oos.to_parquet(out_dir / "oos_returns.parquet")

    return TournamentResult(
        metric=metric, windows=windows, n_rows=n_rows, n_backtests=n_bt,
        table=table, leaderboard=leaderboard,
        oos_returns=oos, overfit=overfit, path=out_dir, failed=failed, wall_s=wall, speedup=speed,
    )

"""Backtest tournaments: strategies × assets × walk-forward windows.

In each window every parameter set is evaluated on the train part (in sample) and on the test
part (out of sample); the best in sample by ``metric`` is marked ``selected``. Keeping every
combo's out-of-sample metrics is what the overfitting statistics (PBO, deflated Sharpe) need.
The selected parameters' positions, window after window, are one out-of-sample path evaluated
in one pass (the position carries across window boundaries); its returns feed the leaderboard
and the portfolio's returns matrix. Each (strategy, asset) is one walk-forward job
(``backtest.walk``): indicators warm up from the asset's first bar, so a combo's results do
not depend on the rest of its grid.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.backtest.execution import (
    SEARCH_DIMS,
    execution_rows,
    execution_space,
    searched_in,
)
from quantfleet.backtest.job import NO_COMBO, BacktestJob, JobBatch, evaluate_jobs
from quantfleet.backtest.terms import SEARCHABLE, Costs, Execution, Terms
from quantfleet.backtest.walk import Walk, WalkResult
from quantfleet.data.market import MarketData
from quantfleet.data.shards import is_view
from quantfleet.errors import QuantfleetError, did_you_mean
from quantfleet.kernels.metrics import METRIC_NAMES, check_metric
from quantfleet.observe.spans import DRIVER_NODE, Span, SpanTimer
from quantfleet.research.overfit import combo_sharpes
from quantfleet.research.windows import Window, walk_forward
from quantfleet.strategies.registry import Strategy, get
from quantfleet.strategies.space import Choice, Float, Int, ParamSpace

__all__ = [
    "CHUNK_MAX_ITEMS",
    "ITEM_OVERHEAD_S",
    "TASK_TARGET_S",
    "TournamentPlan",
    "TournamentResult",
    "coarse_grid",
    "evaluate_shard_pair",
    "leaderboard_order",
    "pair_jobs",
    "pair_summary",
    "pair_table",
    "plan_tournament",
    "resolve_grids",
    "tournament",
]

# the tournament's default chunking: adaptive chunks (compute.chunking.adaptive_chunk_size),
# cut while the map runs from the measured seconds per (strategy, asset) pair and the workers
# there are then: tasks of about TASK_TARGET_S, at most CHUNK_MAX_ITEMS pairs, shorter towards
# the end; ``map_options={"chunk_size": n}`` (fixed chunks) or ``{"schedule": ...}`` overrides it
TASK_TARGET_S = 1.0
CHUNK_MAX_ITEMS = 64
_SHARPE = METRIC_NAMES.index("sharpe")
_ROWS_FLUSH_AT = 32  # pairs' row tables per Parquet row group

# names what a checkpointed chunk of tournament items holds (pair_summary's results of
# walk-forward jobs: converged warm-up, one continuous out-of-sample path and its positions);
# mixed into the checkpoint fingerprint so chunks of older formats are never resumed
_CHUNK_FORMAT = "tournament-walk-4"


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


def resolve_grids(strategies: Sequence[str | Strategy],
                  grid: Mapping[str, Sequence[Any]] | None = None,
                  grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
                  ) -> dict[str, dict[str, list[Any]]]:
    """The explicit grid of each strategy: ``{strategy: {param: values}}``.

    ``grid`` is shared: each key applies to every strategy that has that parameter, and a key
    no strategy has is an error naming the strategies and their parameters. ``grids`` is per
    strategy (its keys must be among ``strategies``) and wins over ``grid`` for a parameter
    both name. A strategy that no key applies to is absent (it keeps the coarse grid); in a
    strategy's grid, parameters no key names take their search values, as in ``sweep``.
    A ``grid`` key naming an execution option (no strategy's parameter) is left out here:
    :func:`plan_tournament` searches it for every strategy.
    """
    strats = [get(s) if isinstance(s, str) else s for s in strategies]
    by_name = {s.name: s for s in strats}
    out: dict[str, dict[str, list[Any]]] = {}
    for key, values in (grid or {}).items():
        having = [s for s in strats if key in s.space.names]
        if not having and key in (*SEARCHABLE, "fill"):
            searched_in(strats[0], [key])  # fill is refused there
            continue  # an execution option: searched by plan_tournament, not a strategy's
        if not having:
            every = sorted({n for s in strats for n in s.space.names})
            listing = "; ".join(f"{s.name} has {', '.join(s.space.names)}" for s in strats)
            raise QuantfleetError(
                f"grid key {key!r} is not a parameter of any selected strategy"
                f"{did_you_mean(key, every)}; {listing}")
        for s in having:
            out.setdefault(s.name, {})[key] = list(values)
    for name, spec in (grids or {}).items():
        s = by_name.get(name)
        if s is None:
            raise QuantfleetError(
                f"grid for strategy {name!r}: not among the selected strategies "
                f"({', '.join(by_name)}){did_you_mean(name, list(by_name))}; add it to the "
                f"strategies or remove its grid")
        for key in spec:
            if key not in s.space.names:
                raise QuantfleetError(
                    f"grid of {name}: unknown parameter {key!r}"
                    f"{did_you_mean(key, s.space.names)}; {name} has {', '.join(s.space.names)}")
        out.setdefault(name, {}).update({k: list(v) for k, v in spec.items()})
    return out


ITEM_OVERHEAD_S = 0.005
"""Estimated fixed seconds of one (strategy, asset) item besides its bars: the job's set-up,
the overfitting statistics and the result rows (measured: docs/BENCHMARKS.md, "What a
tournament costs")."""


@dataclass(frozen=True)
class TournamentPlan:
    """What a tournament will run: asset rows, walk-forward windows and each strategy's grid.

    :meth:`estimate_s` is the work it is expected to take in one process, from each
    strategy's ``cost_ns`` (seconds per bar × combo, measured) — an estimate for
    ``executor = "auto"`` to choose a backend, labelled as such wherever it is shown.
    """

    rows: list[int]
    windows: list[Window]
    plan: list[tuple[Strategy, np.ndarray]]
    searched: tuple[str, ...] = ()  # execution options searched: each grid's trailing columns

    @property
    def n_items(self) -> int:
        return len(self.rows) * len(self.plan)

    def estimate_s(self) -> float:
        """Estimated single-process seconds: per item, each combo runs from the asset's first
        bar to the last test bar, and each window's train and test bars are booked again."""
        if not self.windows:
            return 0.0
        span = self.windows[-1].test_end
        booked = sum((w.train_end - w.train_start) + (w.test_end - w.test_start)
                     for w in self.windows)
        per_asset = sum(params.shape[0] * (span + booked) * s.cost_ns * 1e-9
                        for s, params in self.plan)
        return len(self.rows) * per_asset + self.n_items * ITEM_OVERHEAD_S


def plan_tournament(market: Any, strategies: Sequence[str], *,
                    assets: Sequence[str] | None = None, train: int | str | None = None,
                    test: int | str | None = None, n_windows: int | None = None,
                    anchored: bool = False, grid: Mapping[str, Sequence[Any]] | None = None,
                    grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
                    max_combos: int = 64) -> TournamentPlan:
    """The assets, windows and grids :func:`tournament` runs (its arguments of the same
    names; ``market`` a MarketData or a shard dataset's MarketView), checked: unknown strategies, data a strategy cannot use and empty grids are
    errors naming the fix."""
    if not strategies:
        raise QuantfleetError("no strategies given; e.g. --strategies sma_cross,rsi")
    strats = [get(s) for s in strategies]
    rows = list(range(market.n_assets)) if assets is None else [market.asset_index(a) for a in assets]
    first = int(market.first_valid()[rows].max()) if rows else 0
    windows = walk_forward(market.timestamps, train, test, n_windows, anchored, start=first)
    explicit = resolve_grids(strats, grid, grids)
    searched = tuple(n for n in SEARCHABLE
                     if n in (grid or {}) and not any(n in s.space.names for s in strats))
    ex_grid = np.zeros((1, 0))
    if searched:
        ex_space = ParamSpace(tuple(SEARCH_DIMS[n] for n in searched), (), "execution")
        ex_grid, _ = ex_space.grid({n: grid[n] for n in searched})
        execution_rows(Terms(searched=searched), ex_grid)  # one-line errors for bad values
    plan: list[tuple[Strategy, np.ndarray]] = []
    for s in strats:
        s.check_market(market)
        if s.name in explicit:
            params, _ = s.space.grid(explicit[s.name], market.n_bars)
        else:
            params = coarse_grid(s.space, max_combos)
        if params.shape[0] == 0:
            raise QuantfleetError(f"{s.name}: the grid has no combo satisfying its constraints")
        if searched:  # every strategy combo under every searched execution combo
            params = np.hstack([np.repeat(params, len(ex_grid), axis=0),
                                np.tile(ex_grid, (params.shape[0], 1))])
        plan.append((s, params))
    return TournamentPlan(rows, windows, plan, searched)


@dataclass
class TournamentResult:
    """Rows, leaderboard and stitched out-of-sample returns of a tournament.

    ``leaderboard`` rows carry each pair's own ``pair_pbo``, ``pair_dsr``, ``pair_verdict``
    and the asset's buy-and-hold over the same test bars (``bh_*``, ``excess_*``);
    ``winner_overfit`` deflates the first row by every (pair, combo) it was chosen among.
    """

    metric: str
    windows: list[Window]
    n_rows: int
    n_backtests: int
    table: Any = None  # pyarrow.Table, one row per (strategy, asset, window, params)
    leaderboard: Any = None  # pandas.DataFrame, one row per (strategy, asset)
    oos_returns: Any = None  # pandas.DataFrame, timestamps × "strategy/asset"
    overfit: Any = None  # pandas.DataFrame, research.overfit.tournament_overfit's columns
    # the leaderboard winner's DSR among every (pair, combo) trial, the pooled PBO, a verdict:
    # research.overfit.tournament_winner_overfit
    winner_overfit: dict[str, Any] | None = None
    path: Path | None = None
    failed: list[Any] = field(default_factory=list)
    wall_s: float = 0.0
    speedup: dict[str, Any] | None = None
    # a shard tournament: {"results": [part, ...] in item order, "oos_returns": [part, ...] in
    # column order, "oos_span": (first, last + 1) bar of the returns, "loaded": [(pid, shard
    # hashes read), ...] per item}; parts are {"hash", "rows", "bytes"} (evaluate_shard_pair)
    parts: dict[str, Any] | None = None
    # how sure we are of the leaderboard's first row: research.confidence.tournament_confidence
    # (stationary-bootstrap CIs of its OOS Sharpe and max drawdown, max-over-pairs permutation
    # p-value); None when not computed (confidence=False, a shard tournament, no winner)
    confidence: dict[str, Any] | None = None
    # one block per strategy (grid order of ``strategies``): its map of the out-of-sample
    # metric over its two most important parameters and the plateau drop at its most chosen
    # combo (research.stability.strategy_stability); the leaderboard has each pair's
    # ``plateau_drop`` and ``stable``
    stability: list[dict[str, Any]] = field(default_factory=list)
    # cv="cpcv" (research.cpcv): per pair CPCV_SUMMARY_COLUMNS, per pair and path
    # CPCV_PATH_COLUMNS (pandas.DataFrame); None under walk-forward only
    cpcv: Any = None
    cpcv_paths: Any = None


def pair_jobs(strategy: str, asset: int, params: np.ndarray, windows: Sequence[Window],
              terms: Terms, metric: str) -> tuple[BacktestJob, ...]:
    """The walk-forward job of one (strategy, asset): every combo on every window's train bars
    (in sample) and test bars (out of sample), the combo best in sample by ``metric`` selected
    per window, and the selected combos' out-of-sample returns and positions as one continuous
    path over the test span (``keep="path"``). Indicators warm up from the asset's first valid
    bar (``warm_from=None``)."""
    walk = _walk(metric, tuple(windows))
    return (BacktestJob(strategy, (asset,), params, start=walk.start, stop=walk.stop,
                        warm_from=None, terms=terms, keep="path", walk=walk),)


@functools.lru_cache(maxsize=64)
def _walk(metric: str, windows: tuple[Window, ...]) -> Walk:
    # one object per tournament, shared by every pair's job: a task pickles it once
    return Walk(tuple((w.train_start, w.train_end, w.test_start, w.test_end) for w in windows),
                metric)


def pair_summary(market: MarketData, jobs: Sequence[BacktestJob],
                 results: Sequence[WalkResult]) -> dict[str, Any]:
    """Everything a tournament needs from one (strategy, asset) over its windows (the
    :func:`pair_jobs`), computed in the worker so the driver only concatenates: the result
    rows (:func:`pair_table`), each combo's mean out-of-sample Sharpe (a trial of the
    winner's deflated Sharpe), the out-of-sample path of the selected
    combos (one position series over the test span), the leaderboard row and the overfitting
    row (PBO, deflated Sharpe; :func:`~quantfleet.research.overfit.pair_overfit`)."""
    from quantfleet.research.overfit import pair_overfit
    from quantfleet.research.stability import pair_stability

    job, res = jobs[0], results[0]
    name, asset, metric = job.strategy, job.assets[0], job.walk.metric
    ppy = job.terms.ppy if job.terms.ppy is not None else market.periods_per_year
    k = METRIC_NAMES.index(metric)
    n_w, n_c = len(job.walk.windows), job.params.shape[0]
    series, path_pos = res.series[0][0], res.series[0][1]
    best_idx = res.chosen[0]
    # rows window by window, combos in grid order within each
    is_m = res.is_metrics[0].reshape(n_w * n_c, -1)
    oos_m = res.oos_metrics[0].reshape(n_w * n_c, -1)
    picked = best_idx != NO_COMBO  # no finite in-sample metric: nothing selected, a flat window
    sel = np.zeros(n_w * n_c, dtype=bool)
    sel[(np.arange(n_w) * n_c + best_idx)[picked]] = True
    best_pairs = [(is_m[j * n_c + b, k], oos_m[j * n_c + b, k]) if b != NO_COMBO
                  else (np.nan, np.nan) for j, b in enumerate(best_idx)]
    win_col = np.repeat(np.arange(n_w, dtype=np.int32), n_c)
    combo_col = np.tile(np.arange(n_c, dtype=np.int32), n_w)
    asset_name = market.assets[asset]
    # leaderboard row: the out-of-sample record of the selected parameters' path
    r = series[np.isfinite(series)]
    eq = np.cumprod(1.0 + r)
    sd = r.std(ddof=1) if r.size > 1 else np.nan
    peak = np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:]
    pairs = np.array(best_pairs)
    board = {
        "strategy": name, "asset": asset_name, "windows": n_w,
        "oos_total_return": float(eq[-1] - 1.0) if r.size else np.nan,
        "oos_sharpe": float(r.mean() / sd * math.sqrt(ppy)) if sd and sd > 0 else np.nan,
        "oos_max_drawdown": float(np.max(1.0 - eq / peak)) if r.size else np.nan,
        f"mean_is_{metric}": float(np.nanmean(pairs[:, 0])) if np.isfinite(pairs[:, 0]).any() else np.nan,
        f"mean_oos_{metric}": float(np.nanmean(pairs[:, 1])) if np.isfinite(pairs[:, 1]).any() else np.nan,
    }
    # parameter stability: each combo's mean OOS metric over windows, the plateau drop at the
    # combo chosen most often (research.stability)
    stab = pair_stability(job.params, res.oos_metrics[0][:, :, k], best_idx, metric)
    board["plateau_drop"], board["stable"] = stab["plateau_drop"], stab["stable"]
    overfit = pair_overfit(name, asset_name, win_col, combo_col, is_m[:, k], oos_m[:, k], sel,
                           oos_m[:, METRIC_NAMES.index("sharpe")], series, metric=metric,
                           periods_per_year=ppy)
    # the result rows as one Arrow table, built here in the worker: on the driver, decoding
    # and assembling a million rows was a serial tail after the last task and took CPU from
    # the workers while they ran
    table = pair_table(market, name, asset, job.params, job.walk.windows, best_idx, is_m, oos_m,
                       searched=job.terms.searched)
    return {"table": table, "returns": series, "positions": path_pos, "board": board,
            "overfit": overfit,
            "stability": {"score": stab["score"], "chosen": stab["chosen"]},
            "trial_sr": combo_sharpes(oos_m[:, _SHARPE], n_c, ppy)}


def evaluate_shard_pair(source: Any, batch: JobBatch) -> dict[str, Any]:
    """The worker function of a tournament on a shard dataset (``source``: a
    ``store.datasets.ShardDataset``): loads the pair's asset (once per process: the dataset's
    cache), runs :func:`~quantfleet.backtest.job.evaluate_jobs` on it, writes the pair's
    result rows and out-of-sample returns to the store as Parquet parts and returns the
    summary without them: the leaderboard and overfitting rows, the trial Sharpes, the
    asset's buy-and-hold over the test span (``bh``), the parts' references and the shards
    this call read (``loaded``: process id and hashes)."""
    import dataclasses

    import pyarrow as pa

    from quantfleet.research.benchmark import buy_and_hold

    view = source.view
    names = list(dict.fromkeys(view.assets[a] for j in batch.jobs for a in j.assets))
    before = len(source.loads()[1])
    market = source.load(names)
    pos = {n: i for i, n in enumerate(market.assets)}
    jobs = tuple(dataclasses.replace(j, assets=tuple(pos[view.assets[a]] for a in j.assets))
                 for j in batch.jobs)
    out = evaluate_jobs(market, JobBatch(jobs, batch.combine))
    job = jobs[0]
    lo, hi = job.walk.windows[0][2], job.walk.windows[-1][3]
    ppy = job.terms.ppy if job.terms.ppy is not None else view.periods_per_year
    column = f"{job.strategy}/{market.assets[job.assets[0]]}"
    table = out.pop("table")
    returns = out.pop("returns")
    out.pop("positions")  # a shard tournament has no confidence block (its driver keeps no paths)
    out["table_part"] = source.put_part(table, "tournament_results_part")
    out["returns_part"] = source.put_part(
        pa.table({column: np.ascontiguousarray(returns, dtype=np.float64)}), "oos_returns_part")
    out["bh"] = buy_and_hold(market, job.assets[0], lo, hi, ppy, job.terms.fee_rate)
    pid, loads = source.loads()
    out["loaded"] = (pid, loads[before:])
    return out


def leaderboard_order(board: Sequence[Mapping[str, Any]]) -> list[int]:
    """Row order of the leaderboard: best out-of-sample Sharpe first (NaN last), then
    strategy, then asset, ties in the given order — what ``DataFrame.sort_values(["oos_sharpe",
    "strategy", "asset"], ascending=[False, True, True], na_position="last", kind="stable")``
    gives, without building and sorting a frame (it is on the driver's serial tail)."""
    def rank(i: int) -> tuple[bool, float, str, str]:
        b = board[i]
        sh = float(b["oos_sharpe"])
        nan = sh != sh
        return nan, 0.0 if nan else -sh, b["strategy"], b["asset"]

    return sorted(range(len(board)), key=rank)


def pair_table(market: MarketData, strategy: str, asset: int, params: np.ndarray,
               windows: Sequence[tuple[int, int, int, int]], best: np.ndarray,
               is_m: np.ndarray, oos_m: np.ndarray, searched: tuple[str, ...] = ()) -> Any:
    """One (strategy, asset)'s result rows as an Arrow table: window by window, combos in grid
    order within each; ``windows`` as ``(train_start, train_end, test_start, test_end)`` bar
    positions, ``best`` each window's selected combo (``NO_COMBO``: none), ``is_m``/``oos_m``
    one row of ``METRIC_NAMES`` per (window, combo); ``searched``: the execution options that
    are the trailing columns of ``params`` (named in the ``params`` column too)."""
    import pyarrow as pa

    n_w, n_c = len(windows), int(params.shape[0])
    n = n_w * n_c
    w = np.asarray(windows, dtype=np.int64).reshape(n_w, 4)
    best = np.asarray(best, dtype=np.int64)
    sel = np.zeros(n, dtype=bool)
    picked = best != NO_COMBO  # windows without a finite in-sample metric select nothing
    sel[(np.arange(n_w) * n_c + best)[picked]] = True
    ts = market.timestamps
    bounds = np.stack([ts[w[:, 0]], ts[w[:, 2]], ts[w[:, 3] - 1]])
    # every asset of a strategy shares these columns: built once per worker process
    fixed = _strategy_columns(strategy, params.tobytes(), params.shape, str(params.dtype),
                              bounds.tobytes(), str(bounds.dtype), n_w, tuple(searched))
    cols: dict[str, Any] = {"strategy": fixed[0],
                            "asset": pa.repeat(pa.scalar(market.assets[asset], pa.string()), n),
                            **fixed[1], "selected": pa.array(sel)}
    for prefix, m in (("is_", is_m), ("oos_", oos_m)):
        for k, name in enumerate(METRIC_NAMES):
            cols[prefix + name] = pa.array(np.ascontiguousarray(m[:, k]))
    return pa.table(cols)


@functools.lru_cache(maxsize=64)
def _strategy_columns(strategy: str, params: bytes, shape: tuple[int, ...], dtype: str,
                      bounds: bytes, bounds_dtype: str, n_w: int,
                      searched: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """The result-row columns every asset of one strategy shares (its grid over the same
    windows): strategy, window, train_start, test_start, test_end, combo, params."""
    import pyarrow as pa

    grid = np.frombuffer(params, dtype=dtype).reshape(shape)
    n_c = shape[0]
    b = np.frombuffer(bounds, dtype=bounds_dtype).reshape(3, n_w)
    w_pos = np.repeat(np.arange(n_w), n_c)
    combo = np.tile(np.arange(n_c, dtype=np.int32), n_w)
    # string columns from a dictionary and row indices (cast in C++, not a Python string per row)
    space = execution_space(get(strategy), searched).space
    params_json = [json.dumps(d, sort_keys=True) for d in space.to_dicts(grid)]
    return pa.repeat(pa.scalar(strategy, pa.string()), n_w * n_c), {
        "window": pa.array(w_pos.astype(np.int32)),
        "train_start": pa.array(b[0][w_pos]),
        "test_start": pa.array(b[1][w_pos]),
        "test_end": pa.array(b[2][w_pos]),
        "combo": pa.array(combo),
        "params": _strings(params_json, combo),
    }


def _strings(dictionary: Sequence[str], indices: np.ndarray) -> Any:
    """A plain Arrow string array of ``dictionary[indices]``."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(indices, np.int32)),
                                          pa.array(list(dictionary), pa.string())
                                          ).cast(pa.string())


def tournament(market: Any, strategies: Sequence[str], *,
               assets: Sequence[str] | None = None, train: int | str | None = None,
               test: int | str | None = None, n_windows: int | None = None,
               anchored: bool = False, metric: str = "sharpe",
               grid: Mapping[str, Sequence[Any]] | None = None,
               grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
               max_combos: int = 64, costs: Costs | None = None, long_short: bool = False,
               ppy: float | None = None, executor: Any = None, out: str | Path | None = None,
               keep_table: bool = True, baseline: bool = False,
               baseline_budget_s: float | None = None,
               checkpoint_dir: str | Path | None = None,
               map_options: Mapping[str, Any] | None = None,
               execution: Execution | None = None,
               confidence: bool | Mapping[str, Any] = True,
               cv: Any = None) -> TournamentResult:
    """Run every strategy on every asset in every walk-forward window.

    Parameters
    ----------
    market : MarketData, or a shard dataset (``store.datasets.ShardDataset``: a ``view`` and
        ``load(assets)``): then each task loads its pair's asset in the worker
        (:func:`evaluate_shard_pair`), which writes the pair's rows and returns to the store
        and sends back a summary; the result has ``table`` and ``oos_returns`` None and
        ``parts`` (the part references in order) instead
    strategies : names; each runs the explicit grid :func:`resolve_grids` gives it (``grid``
        keys it has, ``grids[name]``; other parameters: their search values, as in ``sweep``),
        else ``coarse_grid(space, max_combos)``; combos violating a constraint are skipped
    grid : {param: values} shared by every strategy that has the parameter
    grids : {strategy: {param: values}}, per strategy; wins over ``grid``
    train, test : window lengths in bars or durations ("2Y"); or ``n_windows`` K alone
    metric : in-sample selection metric (higher is better; max_drawdown/turnover lower)
    executor : a ``quantfleet.compute`` Executor (None: in this process); one task item per
        (strategy, asset) over all windows: a :class:`~quantfleet.backtest.job.JobBatch` of
        :func:`pair_jobs` combined by :func:`pair_summary` in the worker
    out : directory; ``results.parquet`` (streamed row groups), ``leaderboard.parquet`` and
        ``oos_returns.parquet`` are written there
    map_options : further ``executor.map`` arguments (chunk_size, retries, timeout_s, progress)
    execution : fills, stops, sizing, borrow for every strategy (:class:`Execution`; None:
        fill at the close, no stops): each window part and the out-of-sample path are executed
        under it (docs/conventions.md, "Execution options"). An execution option named in
        ``grid`` is searched like a parameter: every strategy's grid (explicit or coarse) runs
        under each of its values, which the in-sample selection then chooses among; the
        ``params`` column names it
    confidence : compute ``result.confidence`` for the leaderboard's winner in the driver
        after the map (:func:`~quantfleet.research.confidence.tournament_confidence`); a
        mapping gives its options (``n_boot``, ``n_perm``, ``level``, ``seed``, ``block``);
        False: skip it. Not available on a shard dataset (its driver keeps no paths)
    cv : a :class:`~quantfleet.research.cpcv.Cpcv`: each pair is also cross-validated by
        CPCV over the span from the first bar every asset is priced to the last, in its task
        (:class:`~quantfleet.research.cpcv.CpcvSummary`): ``result.cpcv`` (per pair: φ paths'
        Sharpe distribution, PBO) and ``result.cpcv_paths`` (per pair and path); the
        leaderboard stays the walk-forward's. None: walk-forward only
    checkpoint_dir : finished chunks are kept there; running the same tournament again with
        the same directory (after the driver was killed) skips them
    baseline : also run the same work serially in this process after the parallel run
        (every strategy warmed up untimed first, then every item timed; with
        ``baseline_budget_s`` a sample stratified by strategy, extrapolated and labelled) and
        report the speedup and parallel efficiency in ``result.speedup``
        (:func:`~quantfleet.research.baseline.speedup`: a ratio above the worker count is
        marked invalid, never reported as a speedup)

    With an executor, the driver's own steps leave spans on ``executor.spans`` (node
    ``driver``): ``driver.results`` (from the last task's end to the last result handled),
    ``driver.baseline`` and ``driver.tables`` (leaderboard, returns, overfitting tables).
    """
    import time

    import pandas as pd

    from quantfleet.research.confidence import confidence_options

    check_metric(metric)
    conf_opts = confidence_options(confidence)  # bad options fail before the map, not after
    sharded = is_view(market)
    view = market.view if sharded else market
    if sharded and out is not None:
        raise QuantfleetError("out: a tournament on a shard dataset keeps its rows and returns "
                              "in the store (the run's results/oos_returns artifacts); drop "
                              "--out and read them with `quantfleet runs show` / query")
    tp = plan_tournament(view, strategies, assets=assets, train=train, test=test,
                         n_windows=n_windows, anchored=anchored, grid=grid, grids=grids,
                         max_combos=max_combos)
    rows, windows, plan = tp.rows, tp.windows, tp.plan
    costs = costs or Costs()
    ppy = float(ppy) if ppy is not None else view.periods_per_year
    worker_fn = evaluate_shard_pair if sharded else evaluate_jobs

    wins = tuple(windows)
    terms = Terms.of(costs, ppy, long_short, execution, tp.searched)
    # asset-major: consecutive items cycle through the strategies, so any run of items holds
    # every strategy once per asset and equal chunks cost about the same, although one
    # strategy's pair can cost many times another's; equal chunks then need no shrinking tail
    pairs = [(s.name, a) for a in rows for s, _ in plan]
    combine: Any = pair_summary
    if cv is not None:
        from quantfleet.research.cpcv import CpcvSummary, check_cpcv

        combine = CpcvSummary(cv, *check_cpcv(view, rows, terms, metric, cv),
                              pair_summary)
    items = [JobBatch(pair_jobs(s.name, a, params, wins, terms, metric), combine)
             for a in rows for s, params in plan]

    t_start = time.perf_counter()
    t_epoch = time.time()
    if executor is None and checkpoint_dir is not None:
        from quantfleet.compute import SerialExecutor

        executor = SerialExecutor()
    if executor is None:
        results: Iterator[Any] = (worker_fn(market, it) for it in items)
    else:
        opts = dict(map_options or {})
        # adaptive chunks, not the executor's probe (which would time one cold item, numba
        # cache load included, and cut the work into single-item tasks): the cost is measured
        # on finished tasks, a worker's first task of the map counting only until warm ones
        # finish. Tasks of ~TASK_TARGET_S make many more chunks than workers on a long run,
        # so nodes that join have work; the tail's shorter tasks let the driver handle most
        # results while the last ones run; at most CHUNK_MAX_ITEMS pairs a chunk, so long
        # runs checkpoint and report progress as they go
        if "chunk_size" not in opts and "schedule" not in opts:
            opts.update(schedule="adaptive", chunk_size=CHUNK_MAX_ITEMS)
            opts.setdefault("target_task_s", TASK_TARGET_S)
        fmt = _CHUNK_FORMAT if cv is None else f"{_CHUNK_FORMAT}+{cv!r}"  # CPCV rows too
        opts["checkpoint_key"] = f"{fmt}:{opts.get('checkpoint_key', '')}"
        results = executor.map(worker_fn, items, shared=market, stage="tournament",
                               component=[name for name, _ in pairs],
                               checkpoint_dir=checkpoint_dir, **opts)

    import pyarrow as pa

    out_dir = Path(out) if out is not None else None
    writer = None
    tables = []
    failed: list[Any] = []
    n_rows = 0
    n_bt = 0
    bt_per_pair: dict[str, int] = {}  # every asset's batch of a strategy has as many backtests
    # stitched out-of-sample returns, one row per pair, strategy by strategy (the order
    # given) and assets in data order within each: results are written in place
    n_s, n_a = len(plan), len(rows)
    # a shard tournament keeps references to the parts its workers wrote instead
    block = np.empty((0 if sharded else n_s * n_a, wins[-1].test_end - wins[0].test_start))
    want_conf = conf_opts is not None and not sharded
    # the paths' positions, rows as ``block``'s: the confidence block's permutation null
    pos_block = np.zeros_like(block) if want_conf else None
    board_rows: list[int] = []  # board[i]'s row in block
    done = np.zeros(n_s * n_a, dtype=bool)
    table_parts: list[dict[str, Any]] = []
    returns_parts: list[Any] = [None] * (n_s * n_a)
    bh: dict[str, dict[str, float]] = {}
    loaded: list[tuple[int, tuple[str, ...]]] = []
    board: list[dict[str, Any]] = []
    of_rows: list[dict[str, Any]] = []
    # each pair's combos' mean out-of-sample Sharpe (per bar): the trials the winner beat
    trial_sr: list[np.ndarray] = []
    stab_parts: dict[int, dict[str, np.ndarray]] = {}  # by row in block: data order per strategy
    cpcv_rows: list[dict[str, Any]] = []  # cv="cpcv": per pair, and per pair and path
    cpcv_path_rows: list[dict[str, Any]] = []
    # pairs' row tables written and kept a few dozen at a time: bigger Parquet row groups
    pending: list[Any] = []

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
            sname = pairs[k][0]
            if sname not in bt_per_pair:
                bt_per_pair[sname] = it.n_backtests  # in and out of sample, the selected again
            n_bt += bt_per_pair[sname]
            row = (k % n_s) * n_a + k // n_s  # items are asset-major, rows strategy-major
            done[row] = True
            board.append(res["board"])
            board_rows.append(row)
            of_rows.append(res["overfit"])
            trial_sr.append(res["trial_sr"])
            stab_parts[row] = res["stability"]
            if "cpcv" in res:
                cpcv_rows.append(res["cpcv"])
                cpcv_path_rows.extend(res["cpcv_paths"])
            if sharded:
                n_rows += res["table_part"]["rows"]
                table_parts.append(res["table_part"])
                returns_parts[row] = res["returns_part"]
                bh[res["board"]["asset"]] = res["bh"]
                loaded.append(res["loaded"])
                continue
            block[row] = res["returns"]
            if pos_block is not None:
                pos_block[row] = res["positions"]
            pending.append(res["table"])
            if len(pending) >= _ROWS_FLUSH_AT:
                emit(pa.concat_tables(pending))
                pending = []
        if pending:
            emit(pa.concat_tables(pending))
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        (out_dir / "results.parquet.partial").replace(out_dir / "results.parquet")

    wall = time.perf_counter() - t_start
    recorder = getattr(executor, "spans", None)
    if recorder is not None:
        # the driver's handling of the results that came in after the last task ended
        # (decoding, rows, leaderboard rows): until the loop ends, no worker span covers it
        ends = [sp.end for sp in recorder.spans if sp.stage == "tournament"
                and sp.node != DRIVER_NODE and sp.start >= t_epoch]
        if ends:
            recorder.add(Span(stage="tournament", component="driver.results",
                              worker=f"driver:{os.getpid()}", node=DRIVER_NODE,
                              start=min(max(ends), time.time()), end=time.time(),
                              cpu_s=math.nan, items=0, ok=True, attempt=1))
    speed = None
    if baseline:
        from quantfleet.research.baseline import measure_serial, speedup

        t_base = SpanTimer()
        speed = speedup(measure_serial(worker_fn, market, items,
                                       labels=[name for name, _ in pairs],
                                       budget_s=baseline_budget_s),
                        wall, int(getattr(executor, "workers", 1) or 1))
        if recorder is not None:
            recorder.add(t_base.finish_driver("tournament", "driver.baseline", items=len(items)))
    t_tables = SpanTimer()

    from quantfleet.research.benchmark import with_benchmark
    from quantfleet.research.overfit import OVERFIT_COLUMNS, tournament_winner_overfit

    if failed and not done.any():
        # nothing to rank: say why in one line (every pair failed the same way, typically bad
        # input a worker found, e.g. an execution option on data without the columns it reads)
        first = failed[0]
        raise QuantfleetError(f"tournament: all {len(failed)} (strategy, asset) pairs failed; "
                              f"the first: {getattr(first, 'error_type', 'error')}: "
                              f"{getattr(first, 'message', first)}")
    # stitched out-of-sample returns of the selected parameters, the leaderboard and the
    # overfitting statistics: each pair's part was computed in its task
    ts = view.timestamps
    index = pd.DatetimeIndex(ts[windows[0].test_start:windows[-1].test_end], name="timestamp")
    # one 2-D block, rows contiguous per column (pandas keeps a block as columns x rows): a
    # frame from a dict of 1-D columns copies every column into a new block
    names = [f"{s.name}/{view.assets[a]}" for s, _ in plan for a in rows]
    oos = parts = None
    if sharded:
        parts = {"results": table_parts,
                 "oos_returns": [p for p, d in zip(returns_parts, done, strict=True) if d],
                 "oos_span": (wins[0].test_start, wins[-1].test_end), "loaded": loaded}
    else:
        if not done.all():  # failed pairs have no column
            names = [c for c, d in zip(names, done, strict=True) if d]
            block = block[done]
        oos = pd.DataFrame(block.T, index=index, columns=pd.Index(names, dtype=object),
                           copy=False)
    # the pairs' rows come in item order (asset-major); overfit sorted by strategy, asset
    order = sorted(range(len(of_rows)), key=lambda i: (of_rows[i]["strategy"],
                                                       of_rows[i]["asset"]))
    overfit = pd.DataFrame({c: [of_rows[i][c] for i in order] for c in OVERFIT_COLUMNS},
                           columns=list(OVERFIT_COLUMNS))
    winner = None
    win_row = -1  # the winner's row in ``block``
    if board:
        order = leaderboard_order(board)
        # board[i] and of_rows[i] are the same pair: the overfitting verdict joins by position;
        # each pair's own PBO/DSR judge its walk-forward pick among its combos (pair_*), the
        # winner's DSR among every pair's combos is winner_overfit
        cols_b: dict[str, list[Any]] = {k: [board[i][k] for i in order] for k in board[0]}
        for k in ("pbo", "dsr", "verdict"):
            cols_b[f"pair_{k}"] = [of_rows[i][k] for i in order]
        # buy-and-hold of each row's asset over the same test bars, and the row's excess
        leaderboard = with_benchmark(pd.DataFrame(cols_b), None if sharded else market,
                                     wins[0].test_start, wins[-1].test_end, ppy, terms.fee_rate,
                                     total_return="oos_total_return", sharpe="oos_sharpe",
                                     bh=bh if sharded else None)
        winner = tournament_winner_overfit(of_rows, trial_sr, order[0])
        win_row = board_rows[order[0]]
    else:
        leaderboard = pd.DataFrame()
    from quantfleet.research.stability import strategy_stability

    stability = []
    for i, (s, params) in enumerate(plan):
        got = [stab_parts[r] for r in range(i * n_a, (i + 1) * n_a) if r in stab_parts]
        if got:
            stability.append(strategy_stability(
                s.name, execution_space(s, tp.searched).space.names, params,
                [g["score"] for g in got], [g["chosen"] for g in got], metric))
    table = pa.concat_tables(tables) if tables else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        leaderboard.to_parquet(out_dir / "leaderboard.parquet", index=False)
        oos.to_parquet(out_dir / "oos_returns.parquet")

    if recorder is not None:
        recorder.add(t_tables.finish_driver("tournament", "driver.tables"))
    conf = None
    if want_conf and win_row >= 0:
        from quantfleet.research.confidence import tournament_confidence

        t_conf = SpanTimer()
        conf = tournament_confidence(
            market, [s for s, _ in plan for _ in rows],
            [a for _ in plan for a in rows], block, pos_block, done,
            win_row, wins[0].test_start, wins[-1].test_end, fee_rate=terms.fee_rate, ppy=ppy,
            **conf_opts)
        if recorder is not None:
            recorder.add(t_conf.finish_driver("tournament", "driver.confidence"))
    return TournamentResult(
        metric=metric, windows=windows, n_rows=n_rows, n_backtests=n_bt,
        table=table, leaderboard=leaderboard,
        oos_returns=oos, overfit=overfit, winner_overfit=winner, path=out_dir, failed=failed,
        wall_s=wall, speedup=speed, parts=parts, confidence=conf,
        stability=stability,
        **(_cpcv_frames(cpcv_rows, cpcv_path_rows) if cv is not None else {}),
    )


def _cpcv_frames(rows: list[dict[str, Any]], paths: list[dict[str, Any]]) -> dict[str, Any]:
    """``cpcv`` and ``cpcv_paths`` frames sorted by strategy, asset (and path)."""
    import pandas as pd

    from quantfleet.research.cpcv import CPCV_PATH_COLUMNS, CPCV_SUMMARY_COLUMNS

    def frame(r: list[dict[str, Any]], cols: tuple[str, ...], key: tuple[str, ...]) -> Any:
        r = sorted(r, key=lambda x: tuple(x[k] for k in key))
        return pd.DataFrame({c: [x[c] for x in r] for c in cols}, columns=list(cols))

    return {"cpcv": frame(rows, CPCV_SUMMARY_COLUMNS, ("strategy", "asset")),
            "cpcv_paths": frame(paths, CPCV_PATH_COLUMNS, ("strategy", "asset", "path"))}

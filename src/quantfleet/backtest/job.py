"""The one backtest job every research driver builds, and the one worker function that runs it.

A :class:`BacktestJob` names a strategy, asset rows, a parameter block, a bar range with its
warm-up start, the execution :class:`~quantfleet.backtest.terms.Terms` and what to return.
:func:`evaluate` runs it through ``Strategy.run_asset``; :func:`evaluate_jobs` runs a
:class:`JobBatch` and is the only function a driver hands to ``Executor.map``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantfleet.backtest.blocks import BLOCK_BATCH_BYTES, BlockStats, block_stats
from quantfleet.backtest.terms import Terms
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.kernels.metrics import N_METRICS, metric_sign
from quantfleet.strategies.registry import get

__all__ = ["KEEP", "NO_COMBO", "BacktestJob", "JobBatch", "JobResult", "best_combo", "evaluate",
           "evaluate_jobs", "run_blocks"]

_FREE = Terms()

KEEP = ("metrics", "returns", "positions", "path")
"""What a job returns besides metrics: nothing, per-bar returns or per-bar target positions;
"path" (walk jobs only): the out-of-sample path's returns and positions, rows 0 and 1."""

NO_COMBO = -1
"""What :func:`best_combo` (and a walk job's ``chosen``) gives when no combo has a finite metric."""


@dataclass(frozen=True, eq=False)
class BacktestJob:
    """Every combo of ``params`` on every asset of ``assets`` over bars ``[start, stop)``.

    strategy : registered strategy name
    assets : asset rows of the market
    params : float64 (combos, dims), in the order of the strategy's ParamSpace
    start, stop : counted bars (stop None: the last bar)
    warm_from : where indicators start computing (None: each asset's first valid bar); bars in
        ``[warm_from, start)`` only warm them up
    terms : fees, periods per year, long/short, execution options (non-default execution
        runs through :mod:`quantfleet.backtest.execution`; searched execution options are the
        trailing columns of ``params``, ``Terms.searched``)
    keep : "metrics", or also per-bar "returns" or "positions"; a walk job also "path" (its
        out-of-sample path's returns and positions, two rows)
    combos : rows of ``params`` whose series are kept (None: all)
    walk : a :class:`~quantfleet.backtest.walk.Walk`: a walk-forward job over its windows,
        ``[start, stop)`` its test span; :func:`evaluate` returns a
        :class:`~quantfleet.backtest.walk.WalkResult` (kept series: the out-of-sample path)
    blocks : S > 0: also return each combo's per-bar returns reduced to S blocks
        (:class:`~quantfleet.backtest.blocks.BlockStats`, what PBO needs) instead of the
        series: the kernel runs on sub-batches of combos and each sub-batch's per-bar buffer is
        dropped once reduced, so memory is O(combos × S) + O(``BLOCK_BATCH_BYTES``). The blocks
        are those ``research.overfit.pbo`` cuts from the series ``keep="returns"`` would
        return. Needs keep="metrics", no combos, no walk. 0: no blocks.
    """

    strategy: str
    assets: tuple[int, ...]
    params: np.ndarray
    start: int = 0
    stop: int | None = None
    warm_from: int | None = None
    terms: Terms | None = None  # None: free trading at the market's periods per year
    keep: str = "metrics"
    combos: tuple[int, ...] | None = None
    walk: Any = None  # a backtest.walk.Walk (that module builds on this one)
    blocks: int = 0

    def __post_init__(self) -> None:
        params = self.params
        if not (type(params) is np.ndarray and params.dtype == np.float64
                and params.flags.c_contiguous):
            params = np.ascontiguousarray(params, dtype=np.float64)
            object.__setattr__(self, "params", params)
        if params.ndim != 2:
            raise QuantfleetError(f"BacktestJob({self.strategy}): params must be a 2-D block "
                                  f"(combos, dims), got shape {params.shape}")
        object.__setattr__(self, "assets", tuple(map(int, self.assets)))
        if self.terms is None:
            object.__setattr__(self, "terms", _FREE)
        if self.keep not in KEEP:
            raise QuantfleetError(f"BacktestJob: keep must be one of {', '.join(KEEP)} "
                                  f"(got {self.keep!r})")
        if self.combos is not None:
            object.__setattr__(self, "combos", tuple(int(c) for c in self.combos))
        if self.keep == "path" and self.walk is None:
            raise QuantfleetError("BacktestJob: keep='path' is a walk job's (its out-of-sample "
                                  "path's returns and positions); without walk keep 'returns' "
                                  "or 'positions'")
        if self.walk is not None:
            if self.combos is not None:
                raise QuantfleetError("BacktestJob: a walk job selects per window itself; "
                                      "give walk without combos")
            if (self.start, self.stop) != (self.walk.start, self.walk.stop):
                raise QuantfleetError(
                    f"BacktestJob({self.strategy}): with walk, [start, stop) is the test span "
                    f"[{self.walk.start}, {self.walk.stop}) (got [{self.start}, {self.stop}))")
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, int | np.integer) \
                or self.blocks < 0:
            raise QuantfleetError(f"BacktestJob: blocks must be an int >= 0 (S, the number of "
                                  f"blocks for PBO; 0: none), got {self.blocks!r}")
        object.__setattr__(self, "blocks", int(self.blocks))
        if self.blocks and (self.keep != "metrics" or self.combos is not None
                            or self.walk is not None):
            raise QuantfleetError("BacktestJob: blocks= replaces the per-bar series; use it "
                                  "with keep='metrics' and without combos or walk")

    def __reduce__(self) -> tuple[Any, ...]:
        # the field values in order, not a dict of them: a task carries many jobs
        return (BacktestJob, (self.strategy, self.assets, self.params, self.start, self.stop,
                              self.warm_from, self.terms, self.keep, self.combos, self.walk,
                              self.blocks))

    @property
    def n_backtests(self) -> int:
        """Kernel passes over a combo's bars: the metrics, the kept series (a walk job: its
        metric rows, :meth:`~quantfleet.backtest.walk.Walk.n_backtests`; ``blocks`` adds none:
        the metrics and the blocks come from one pass)."""
        n_c = self.params.shape[0]
        if self.walk is not None:
            return self.walk.n_backtests(n_c) * len(self.assets)
        per_asset = n_c
        if self.combos is not None and self.keep != "metrics":
            per_asset += len(self.combos)
        return per_asset * len(self.assets)


@dataclass(frozen=True, eq=False)
class JobResult:
    """What :func:`evaluate` returns for a job.

    metrics : (assets, combos, N_METRICS) on the job's bars
    series : per asset, (kept combos, bars) returns or positions; None for keep="metrics"
    blocks : per asset, the combos' returns in ``job.blocks`` blocks (:class:`BlockStats`,
        (S, combos)); None without ``blocks``
    """

    metrics: np.ndarray
    series: tuple[np.ndarray, ...] | None = None
    blocks: tuple[BlockStats, ...] | None = None


def best_combo(values: np.ndarray, metric: str) -> int:
    """Index of the combo with the best finite value of ``metric``, or :data:`NO_COMBO` (-1).

    The selection rule every driver shares (docs/overfit.md, "Selection: NaN and ties"):

    - the direction is the metric's (``kernels.metrics.metric_sign``: higher is better, lower
      for ``max_drawdown`` and ``turnover``);
    - only finite values compete: NaN, +inf and -inf never win, so a combo that never traded
      (NaN Sharpe) is never chosen while any combo has a finite value;
    - ties go to the lowest combo index;
    - when no value is finite there is no selection: :data:`NO_COMBO`.
    """
    v = np.asarray(values, dtype=np.float64)
    fin = np.isfinite(v)
    if not fin.any():
        return NO_COMBO
    fill = np.inf if metric_sign(metric) < 0 else -np.inf
    v = np.where(fin, v, fill)
    # argmax/argmin return the first of equal values: ties go to the lowest index
    return int(np.argmin(v) if metric_sign(metric) < 0 else np.argmax(v))


def evaluate(market: MarketData, job: BacktestJob) -> JobResult:
    """Run ``job`` on ``market`` through ``Strategy.run_asset``, asset by asset (a walk job
    through its ``walk``: :func:`~quantfleet.backtest.walk.evaluate_walk`)."""
    if job.walk is not None:
        return job.walk.evaluate(market, job)
    t = job.terms
    if not t.plain:
        # execution options: targets from the strategy, fills/stops/sizing by kernels.execution
        from quantfleet.backtest.execution import evaluate_executed

        metrics, series, blocks = evaluate_executed(market, job)
        return JobResult(metrics=metrics, series=series, blocks=blocks)
    strat = get(job.strategy)
    kw = {"fee_rate": t.fee_rate, "ppy": t.ppy, "long_short": t.long_short}
    bars = {"start": job.start, "stop": job.stop, "warm_from": job.warm_from}
    if job.blocks:
        return _evaluate_blocks(market, job, strat, kw, bars)
    keep = job.keep
    flags = {"returns": keep == "returns", "positions": keep == "positions"}
    n_a, n_c = len(job.assets), job.params.shape[0]
    metrics = np.empty((n_a, n_c, N_METRICS))
    series: list[np.ndarray] | None = None if keep == "metrics" else []
    for i, a in enumerate(job.assets):
        rows = job.combos
        if series is None or rows is None:
            out = strat.run_asset(market, a, job.params, **bars, **kw,
                                  **(flags if series is not None else {}))
            metrics[i] = out[0]
            if series is not None:
                series.append(np.ascontiguousarray(out[2] if flags["positions"] else out[1]))
            continue
        metrics[i] = strat.run_asset(market, a, job.params, **bars, **kw)[0]
        out = strat.run_asset(market, a, job.params[list(rows)], **bars, **kw, **flags)
        series.append(np.ascontiguousarray(out[2] if flags["positions"] else out[1]))
    return JobResult(metrics=metrics, series=None if series is None else tuple(series))


# -- jobs with blocks: per-block return statistics instead of per-bar series -------------------

def _evaluate_blocks(market: MarketData, job: BacktestJob, strat: Any, kw: dict[str, Any],
                     bars: dict[str, Any]) -> JobResult:
    """``evaluate`` of a job with ``blocks``: metrics and per-asset :class:`BlockStats`."""
    n_a, n_c = len(job.assets), job.params.shape[0]
    metrics = np.empty((n_a, n_c, N_METRICS))
    # the kernel's per-bar buffer holds 2 float64 per bar and combo (returns, positions)
    per_batch = max(1, BLOCK_BATCH_BYTES // (16 * max(market.n_bars, 1)))
    stats = []
    for i, a in enumerate(job.assets):
        metrics[i], st = run_blocks(strat, market, a, job.params, job.blocks, per_batch,
                                    **bars, **kw)
        stats.append(st)
    return JobResult(metrics=metrics, blocks=tuple(stats))


def run_blocks(strat: Any, market: MarketData, asset: int, params: np.ndarray, n_splits: int,
               per_batch: int, **run_kw: Any) -> tuple[np.ndarray, BlockStats]:
    """Metrics (combos, N_METRICS) and :class:`BlockStats` (``n_splits`` blocks) of ``params``
    on one asset. A strategy with a fast path books them directly
    (``Strategy.run_asset_blocks``, equal to the per-bar reduction to rounding:
    docs/conventions.md, "Fast path"); otherwise ``Strategy.run_asset(..., returns=True)`` runs
    on ``per_batch`` combos at a time: only one sub-batch's per-bar returns exist at once, and
    the statistics are the same bits whatever ``per_batch`` (each combo's row is reduced on its
    own). The fast path covers the default execution terms (``run_kw``: fees, ppy,
    long/short, bar range) only."""
    fast = strat.run_asset_blocks(market, asset, params, n_splits, **run_kw) \
        if getattr(strat, "fast", None) is not None else None
    if fast is not None:
        # the fast path books the block sums directly: no per-bar buffer at all
        metrics, count, mean, m2, bars = fast
        return metrics, BlockStats(count, mean, m2, bars)
    n_c = params.shape[0]
    metrics = np.empty((n_c, N_METRICS))
    parts = []
    step = max(1, int(per_batch))
    for lo in range(0, max(n_c, 1), step):  # no combos: one empty call, for the bar count
        hi = min(n_c, lo + step)
        metrics[lo:hi], rets = strat.run_asset(market, asset, params[lo:hi], returns=True,
                                               **run_kw)
        parts.append(block_stats(rets, n_splits))
        del rets
    return metrics, BlockStats.concat(parts)


@dataclass(frozen=True, eq=False)
class JobBatch:
    """The jobs of one map item, and what to make of their results in the worker.

    ``combine(market, jobs, results)`` (a module-level function, so it pickles by name) runs
    where the jobs ran: statistics over several jobs (a tournament pair's windows) are then
    computed in parallel instead of in the driver. Without it the item's result is the list of
    :class:`JobResult`.
    """

    jobs: tuple[BacktestJob, ...]
    combine: Callable[[MarketData, tuple[BacktestJob, ...], list[JobResult]], Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs", tuple(self.jobs))

    @property
    def n_backtests(self) -> int:
        return sum(j.n_backtests for j in self.jobs)


def evaluate_jobs(market: MarketData, batch: JobBatch) -> Any:
    """The worker function every research driver maps: :func:`evaluate` on each job of the
    batch, then the batch's ``combine`` (if any)."""
    results = [evaluate(market, job) for job in batch.jobs]
    if batch.combine is None:
        return results
    return batch.combine(market, batch.jobs, results)

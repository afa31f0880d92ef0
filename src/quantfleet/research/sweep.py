"""Parameter sweeps: every combo of a grid on every asset, streamed to Arrow/Parquet in chunks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.backtest.blocks import BlockStats
from quantfleet.backtest.execution import execution_rows, execution_space, searched_in
from quantfleet.backtest.job import BacktestJob, JobBatch, evaluate, evaluate_jobs
from quantfleet.backtest.terms import Costs, Execution, Terms
from quantfleet.data.market import MarketData
from quantfleet.data.validate import require_bars
from quantfleet.errors import QuantfleetError
from quantfleet.kernels.metrics import METRIC_NAMES, check_metric, metric_sign
from quantfleet.research.benchmark import with_benchmark
from quantfleet.strategies.registry import Strategy, get
from quantfleet.strategies.space import Int

__all__ = ["PBO_SPLITS", "SweepResult", "results_table", "sweep"]

PBO_SPLITS = 16
"""S, the blocks of the sweep's PBO (CSCV: C(16, 8) = 12,870 combinations, the paper's choice)."""


@dataclass
class SweepResult:
    """What a sweep produced.

    ``table`` is the whole result (one row per asset × params) unless the sweep streamed to
    ``path`` with ``keep_table=False``; ``top`` is the leaderboard by ``metric`` either way,
    each row with its asset's buy-and-hold over the sweep's bars beside it
    (:data:`~quantfleet.research.benchmark.BENCHMARK_COLUMNS`).
    """

    strategy: str
    metric: str
    n_combos: int
    n_skipped: int
    n_rows: int
    assets: tuple[str, ...]
    top: Any  # pandas.DataFrame
    table: Any = None  # pyarrow.Table
    path: Path | None = None
    failed: list[Any] = field(default_factory=list)
    overfit: dict[str, Any] | None = None  # DSR (and PBO) of the winner, with a verdict


def results_table(strategy: Strategy, market: MarketData, assets: Sequence[int],
                  params: np.ndarray, metrics: np.ndarray):
    """Arrow table with one row per asset × params: strategy, asset, params..., metrics..."""
    import pyarrow as pa

    n_a, n_c = len(assets), params.shape[0]
    cols: dict[str, Any] = {
        "strategy": pa.array([strategy.name] * (n_a * n_c), pa.string()),
        "asset": pa.array(np.repeat(np.array([market.assets[a] for a in assets], dtype=object), n_c),
                          pa.string()),
    }
    for j, dim in enumerate(strategy.space.dims):
        col = np.tile(params[:, j], n_a)
        cols[dim.name] = pa.array(col.astype(np.int64) if isinstance(dim, Int) else col)
    flat = metrics.reshape(n_a * n_c, -1)
    for k, name in enumerate(METRIC_NAMES):
        col = flat[:, k]
        cols[name] = pa.array(col.astype(np.int64) if name == "n_trades" else col)
    return pa.table(cols)


def _check_history(strategy: Strategy, market: MarketData, assets: Sequence[int],
                   worst: Mapping[str, Any]) -> None:
    """Every asset has the bars the grid's longest warm-up needs (clear error otherwise)."""
    need = strategy.min_bars(worst)
    for a in assets:
        require_bars(market, a, need, strategy.name, worst)


def sweep(market: MarketData, strategy: str | Strategy,
          grid: Mapping[str, Sequence[Any]] | None = None, costs: Costs | None = None, *,
          executor: Any = None, assets: Sequence[str] | None = None, long_short: bool = False,
          ppy: float | None = None, out: str | Path | None = None, keep_table: bool = True,
          metric: str = "sharpe", top: int = 10, chunk: int = 4096,
          execution: Execution | None = None) -> SweepResult:
    """Evaluate every combo of ``grid`` (a dict of value lists; missing names use the search
    values of the strategy's ParamSpace) on every asset.

    Parameters
    ----------
    market : MarketData
    strategy : name or Strategy
    grid : {param: values}; combos violating a constraint are skipped and counted
    costs : Costs (fees and slippage in bps)
    executor : a ``quantfleet.compute`` Executor; None runs in this process
    out : Parquet path the rows stream to, chunk by chunk (memory stays flat)
    keep_table : also return the whole Arrow table (set False for huge sweeps with ``out``)
    metric, top : leaderboard column and length (higher is better; max_drawdown and turnover
        lower: ``kernels.metrics.LOWER_IS_BETTER``)
    chunk : cartesian rows per work item
    execution : fills, stops, sizing, borrow (:class:`~quantfleet.backtest.terms.Execution`;
        None: fill at the close, no stops). An execution option named in ``grid`` (e.g.
        ``{"stop_loss": [0.02, 0.04]}``) is searched like a parameter: one more column of
        the results table and the leaderboard

    The leaderboard ranks the rows with a finite ``metric``; ties go to the first asset (in
    sweep order), then the lowest combo index. ``overfit`` deflates the winner's Sharpe by
    every row it was chosen among: N = assets × combos with a finite ``metric``, V = the
    variance of those rows' Sharpe ratios (docs/overfit.md, "How a sweep counts its trials").
    It also holds the PBO (CSCV, ``PBO_SPLITS`` blocks) of every asset × combo row (assets
    priced over the winner's bars), whatever the grid's size (at least 2 combos): the jobs return every asset × combo's
    returns reduced to per-block statistics (``BacktestJob(blocks=PBO_SPLITS)``), so memory is
    O(assets × combos × S), never O(combos × bars), and there is no second pass.

    Each chunk of combos is one :class:`~quantfleet.backtest.job.BacktestJob` on every asset,
    mapped with :func:`~quantfleet.backtest.job.evaluate_jobs`.
    """
    import pandas as pd

    strat = get(strategy) if isinstance(strategy, str) else strategy
    strat.check_market(market)
    check_metric(metric)
    costs = costs or Costs()
    execution = execution or Execution()
    searched = searched_in(strat, grid)
    strat = execution_space(strat, searched, execution)
    rows = list(range(market.n_assets)) if assets is None else [market.asset_index(a) for a in assets]
    space = strat.space
    axes = space.grid_axes(grid, market.n_bars)
    _check_history(strat, market, rows, {d.name: (int(a[-1]) if isinstance(d, Int) else float(a[-1]))
                                         for d, a in zip(space.dims, axes, strict=True)})
    ppy = float(ppy) if ppy is not None else market.periods_per_year
    terms = Terms.of(costs, ppy, long_short, execution, searched)
    spec = {d.name: list(a) for d, a in zip(space.dims, axes, strict=True)}
    if searched:  # each searched value valid for Execution (one-line errors)
        execution_rows(terms, np.array([[spec[n][0] for n in searched],
                                        [spec[n][-1] for n in searched]]))

    skipped = 0

    def items() -> Iterator[JobBatch]:
        nonlocal skipped
        for params, sk in space.grid_chunks(spec, market.n_bars, chunk):
            skipped += sk
            if params.shape[0]:
                yield JobBatch((BacktestJob(strat.name, tuple(rows), params, terms=terms,
                                            blocks=PBO_SPLITS),))

    writer = None
    tables = []
    leaders: list[pd.DataFrame] = []
    n_combos = 0
    n_rows = 0
    failed: list[Any] = []
    ascending = metric_sign(metric) < 0
    # the trials the winner is chosen among: every asset × combo row with a finite ``metric``
    # (the leaderboard ranks only those); running (count, mean, M2) of their finite Sharpes
    # over all assets: the trial variance V the deflated Sharpe needs
    sr_stats = np.zeros((1, 3))
    n_ranked = 0
    # per asset (sweep order), the per-block return statistics of each chunk's combos: the PBO
    # of every asset × combo row is computed from them
    blocks: list[list[BlockStats]] = [[] for _ in rows]
    if executor is None:
        pairs: Iterator[tuple[JobBatch, Any]] = ((it, evaluate_jobs(market, it))
                                                 for it in items())
    else:
        work = list(items())
        pairs = zip(work, executor.map(evaluate_jobs, work, shared=market, stage="sweep",
                                       component=strat.name), strict=True)
    try:
        for it, got in pairs:
            params = it.jobs[0].params
            if not isinstance(got, list):
                failed.append(got)
                continue
            res = got[0].metrics
            for i, b in enumerate(got[0].blocks):
                blocks[i].append(b)
            tbl = results_table(strat, market, rows, params, res)
            ranked = np.isfinite(res[:, :, METRIC_NAMES.index(metric)])
            n_ranked += int(ranked.sum())
            _merge_moments(sr_stats, np.where(ranked, res[:, :, METRIC_NAMES.index("sharpe")],
                                              np.nan).reshape(1, -1))
            c0 = n_combos
            n_combos += params.shape[0]
            n_rows += tbl.num_rows
            if out is not None:
                if writer is None:
                    import pyarrow.parquet as pq

                    Path(out).parent.mkdir(parents=True, exist_ok=True)
                    tmp = Path(str(out) + ".partial")
                    writer = pq.ParquetWriter(tmp, tbl.schema)
                writer.write_table(tbl)
            if keep_table or out is None:
                tables.append(tbl)
            df = tbl.to_pandas()
            # tie keys: ties go to the first asset (in sweep order), then the lowest combo index
            df[_ASSET_KEY] = np.repeat(np.arange(len(rows)), params.shape[0])
            df[_COMBO_KEY] = np.tile(np.arange(c0, n_combos), len(rows))
            df = df[np.isfinite(df[metric])]
            leaders.append(_rank(df, metric, ascending).head(top))
    finally:
        if writer is not None:
            writer.close()
    if failed and n_rows == 0:
        first = failed[0]
        raise QuantfleetError(f"sweep: all {len(failed)} chunk(s) of combos failed; the first: "
                              f"{getattr(first, 'error_type', 'error')}: "
                              f"{getattr(first, 'message', first)}")
    if writer is not None:
        Path(str(out) + ".partial").replace(out)
    import pyarrow as pa

    table = pa.concat_tables(tables) if tables else None
    board = (pd.concat(leaders, ignore_index=True) if leaders else pd.DataFrame())
    if len(board):
        board = _rank(board, metric, ascending).head(top)
        board = board.drop(columns=[_ASSET_KEY, _COMBO_KEY]).reset_index(drop=True)
        # buy-and-hold of each row's asset over the sweep's bars, and the row's excess
        board = with_benchmark(board, market, 0, market.n_bars, terms.ppy, terms.fee_rate,
                               total_return="total_return", sharpe="sharpe")
    overfit = None
    if len(board):
        overfit = _winner_overfit(strat, market, board.iloc[0], rows, sr_stats, terms, n_combos,
                                  n_ranked, metric, blocks)
    return SweepResult(
        strategy=strat.name, metric=metric, n_combos=n_combos, n_skipped=skipped, n_rows=n_rows,
        assets=tuple(market.assets[a] for a in rows), top=board, table=table,
        path=Path(out) if out is not None else None, failed=failed, overfit=overfit,
    )


_ASSET_KEY, _COMBO_KEY = "__asset_pos", "__combo"


def _rank(df: Any, metric: str, ascending: bool) -> Any:
    """Rows best first by ``metric``; ties: the first asset in sweep order, then the lowest
    combo index (the same rule as ``backtest.job.best_combo``, whatever the chunking)."""
    return df.sort_values([metric, _ASSET_KEY, _COMBO_KEY], ascending=[ascending, True, True],
                          kind="stable")


def _merge_moments(stats: np.ndarray, sharpe: np.ndarray) -> None:
    """Fold a chunk's Sharpes (groups, trials) into per-group (count, mean, M2) (Chan et al.);
    non-finite Sharpes are left out."""
    for i in range(sharpe.shape[0]):
        x = sharpe[i][np.isfinite(sharpe[i])]
        if not x.size:
            continue
        n_b, mean_b = x.size, float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n_a, mean_a, m2_a = stats[i]
        n = n_a + n_b
        delta = mean_b - mean_a
        stats[i] = (n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n)


def _winner_overfit(strat: Strategy, market: MarketData, winner: Any, rows: Sequence[int],
                    sr_stats: np.ndarray, terms: Terms, n_combos: int, n_ranked: int,
                    metric: str, blocks: Sequence[Sequence[BlockStats]]) -> dict[str, Any]:
    """Deflated Sharpe of the leaderboard's winner and, when the grid has at least 2 combos,
    PBO (CSCV) of every asset × combo row the winner was chosen among, from their per-block
    statistics (``blocks``: per asset, one part per chunk, in combo order); assets priced over
    another history than the winner's cannot share its blocks and are left out (named in
    ``pbo_note``).

    The winner is the best of every asset × combo row with a finite ``metric``, so those rows
    are the trials: N = ``n_ranked`` and V = the variance (ddof=1, per bar) of their finite
    Sharpes, pooled over all assets (``sr_stats``, one (count, mean, M2) row)."""
    from quantfleet.research.overfit import (
        deflated_sharpe,
        pbo_from_blocks,
        return_moments,
        verdict,
    )

    a = market.asset_index(str(winner["asset"]))
    n_assets = len(rows)
    n_sr, _, m2 = sr_stats[0]
    var_trials = m2 / (n_sr - 1) / terms.ppy if n_sr > 1 else 0.0  # per-bar Sharpe variance
    params = np.array([[float(winner[d.name]) for d in strat.space.dims]])
    # the winner's returns on their own: the kernel's buffer also holds its positions
    rets = np.array(evaluate(market, BacktestJob(strat.name, (a,), params, terms=terms,
                                                 keep="returns")).series[0][0])
    sr, n, skew, kurt = return_moments(rets)
    del rets
    n_trials = int(n_ranked)
    dsr = deflated_sharpe(sr, n, skew, kurt, n_trials, var_trials)
    among = (f"{n_assets} asset{'s' if n_assets != 1 else ''} × {n_combos} "
             f"combo{'s' if n_combos != 1 else ''}")
    unscored = n_assets * n_combos - n_trials
    if unscored:
        among += f"; {unscored} row{'s' if unscored != 1 else ''} without a finite {metric} left out"
    out: dict[str, Any] = {"asset": market.assets[a], "n_trials": n_trials,
                           "n_assets": n_assets, "n_combos": int(n_combos),
                           "n_unscored": int(unscored), "selected_among": among,
                           "var_trials": float(var_trials), "dsr": dsr, "pbo": None,
                           "pbo_trials": int(n_combos), "pbo_note": None}
    na = None
    if n_combos < 2:
        out["pbo_note"] = (f"PBO skipped: {n_combos} trial; PBO measures selection among "
                           f"several trials and needs at least 2")
        na = "it needs at least 2 trials"
    else:
        # the winner was chosen among every asset's combos: CSCV ranks them all when their
        # blocks cut the same bars (assets priced over the same history); an asset with
        # another history cannot share the blocks and is left out, and the verdict says so
        mine = BlockStats.concat(blocks[list(rows).index(a)])
        same = [i for i in range(len(rows))
                if BlockStats.concat(blocks[i]).bars == mine.bars]
        pooled = BlockStats.concat([b for i in same for b in blocks[i]])
        try:
            res = pbo_from_blocks(pooled)
            # the trials PBO ranked: every row, unless one had no finite return at all
            out["pbo"], out["pbo_trials"] = res.pbo, res.n_trials
        except QuantfleetError as e:  # too few bars for the blocks, or < 2 trials with data
            out["pbo_note"] = f"PBO skipped: {e}"
            na = str(e)
        out["pbo_assets"] = len(same)
        if len(same) < len(rows):
            out["pbo_note"] = (f"PBO among the {len(same)} of {len(rows)} assets priced over "
                               f"the winner's {mine.bars} bars (CSCV needs every trial on the "
                               f"same blocks)")
    pbo_among = (f"{out['pbo_trials']} asset × combo rows" if out.get("pbo_assets", 1) > 1
                 else f"{market.assets[a]}'s {out['pbo_trials']} combos")
    out["verdict"] = verdict(dsr=dsr, pbo=out["pbo"], n_trials=n_trials, among=among,
                             pbo_among=pbo_among)
    if na is not None:
        out["verdict"] += f"; PBO n/a: {na}"
    return out

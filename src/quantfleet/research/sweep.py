"""Parameter sweeps: every combo of a grid on every asset, streamed to Arrow/Parquet in chunks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.data.market import MarketData
from quantfleet.data.validate import require_bars
from quantfleet.kernels.metrics import METRIC_NAMES
from quantfleet.research.costs import Costs
from quantfleet.strategies.registry import Strategy, get
from quantfleet.strategies.space import Int

__all__ = ["SweepResult", "evaluate_chunk", "results_table", "sweep"]


@dataclass
class SweepResult:
    """What a sweep produced.

    ``table`` is the whole result (one row per asset × params) unless the sweep streamed to
    ``path`` with ``keep_table=False``; ``top`` is the leaderboard by ``metric`` either way.
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


def evaluate_chunk(market: MarketData, item: tuple) -> np.ndarray:
    """Worker body: metrics (assets, combos, N_METRICS) of one params chunk on some assets."""
    name, assets, params, fee_rate, ppy, long_short = item
    strategy = get(name)
    out = np.empty((len(assets), params.shape[0], len(METRIC_NAMES)))
    for i, a in enumerate(assets):
        out[i] = strategy.run_asset(market, a, params, fee_rate=fee_rate, ppy=ppy,
                                    long_short=long_short)[0]
    return out


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
          progress: bool = False) -> SweepResult:
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
    metric, top : leaderboard column and length (higher is better; max_drawdown lower)
    chunk : cartesian rows per work item
    """
    import pandas as pd

    strat = get(strategy) if isinstance(strategy, str) else strategy
    strat.check_market(market)
    if metric not in METRIC_NAMES:
        from quantfleet.errors import QuantfleetError, did_you_mean

        raise QuantfleetError(
            f"unknown metric {metric!r}{did_you_mean(metric, METRIC_NAMES)}; "
            f"choose one of {', '.join(METRIC_NAMES)}"
        )
    costs = costs or Costs()
    rows = list(range(market.n_assets)) if assets is None else [market.asset_index(a) for a in assets]
    space = strat.space
    axes = space.grid_axes(grid, market.n_bars)
    _check_history(strat, market, rows, {d.name: (int(a[-1]) if isinstance(d, Int) else float(a[-1]))
                                         for d, a in zip(space.dims, axes, strict=True)})
    ppy = float(ppy) if ppy is not None else market.periods_per_year
    spec = {d.name: list(a) for d, a in zip(space.dims, axes, strict=True)}

    skipped = 0
    chunks: list[np.ndarray] = []

    def items() -> Iterator[tuple]:
        nonlocal skipped
        for params, sk in space.grid_chunks(spec, market.n_bars, chunk):
            skipped += sk
            if params.shape[0]:
                chunks.append(params)
                yield (strat.name, rows, params, costs.fee_rate, ppy, long_short)

    writer = None
    tables = []
    leaders: list[pd.DataFrame] = []
    n_combos = 0
    n_rows = 0
    failed: list[Any] = []
    ascending = metric == "max_drawdown"
    if executor is None:
        results: Iterator[Any] = (evaluate_chunk(market, it) for it in items())
    else:
        results = executor.map(evaluate_chunk, list(items()), shared=market,
                               stage="sweep", component=strat.name)
    try:
        for i, res in enumerate(results):
            params = chunks[i]
            if not isinstance(res, np.ndarray):
                failed.append(res)
                continue
            tbl = results_table(strat, market, rows, params, res)
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
            df = df[np.isfinite(df[metric])]
            leaders.append(df.sort_values(metric, ascending=ascending, kind="stable").head(top))
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        Path(str(out) + ".partial").replace(out)
    import pyarrow as pa

    table = pa.concat_tables(tables) if tables else None
    board = (pd.concat(leaders, ignore_index=True) if leaders else pd.DataFrame())
    if len(board):
        board = board.sort_values(metric, ascending=ascending, kind="stable").head(top)
        board = board.reset_index(drop=True)
    return SweepResult(
        strategy=strat.name, metric=metric, n_combos=n_combos, n_skipped=skipped, n_rows=n_rows,
        assets=tuple(market.assets[a] for a in rows), top=board, table=table,
        path=Path(out) if out is not None else None, failed=failed,
    )

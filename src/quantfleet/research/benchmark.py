"""Buy-and-hold benchmarks: the asset itself over the bars a strategy was scored on, so every
leaderboard row says whether the strategy beat simply holding what it traded."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.kernels.metrics import RETURN_METRIC_NAMES, metrics_from_returns

__all__ = ["BENCHMARK_COLUMNS", "buy_and_hold", "with_benchmark"]

BENCHMARK_COLUMNS = ("bh_total_return", "bh_sharpe", "excess_total_return", "excess_sharpe")
"""Columns :func:`with_benchmark` adds to a leaderboard row (docs/research.md)."""

_TOTAL, _SHARPE = RETURN_METRIC_NAMES.index("total_return"), RETURN_METRIC_NAMES.index("sharpe")


def buy_and_hold(market: MarketData, asset: int | str, lo: int = 0, hi: int | None = None,
                 ppy: float | None = None, fee_rate: float = 0.0) -> dict[str, float]:
    """Total return and Sharpe of holding ``asset`` fully long over bars ``[lo, hi)``.

    The conventions of a backtest (docs/conventions.md): the book is flat at the start and
    buys one unit of equity at the close of the first bar of the span with a price (paying
    ``fee_rate`` once); every later bar earns the close-to-close return. All ``hi - lo`` bars
    count, the first (and any before the asset's first price) with return 0 (``-fee_rate`` on
    the entry bar), as a strategy's warm-up bars do. Sharpe is ``mean / std(ddof=1) × √ppy``
    over those bars, annualized like the leaderboard's.

    Parameters
    ----------
    market : MarketData
    asset : index or name of the asset
    lo, hi : the bar range (``hi`` None: to the last bar)
    ppy : bars per year (None: inferred from the timestamps)
    fee_rate : cost of the one entry fill, a fraction of equity (``(fee_bps + slippage_bps) / 1e4``)

    Returns
    -------
    ``{"total_return": float, "sharpe": float}``; NaN when the span has no price or a gap
    (a non-finite close after the first price), Sharpe NaN with fewer than 2 bars or no variance.
    """
    a = market.asset_index(asset) if isinstance(asset, str) else int(asset)
    hi = market.n_bars if hi is None else int(hi)
    lo = int(lo)
    if not 0 <= lo < hi <= market.n_bars:
        raise QuantfleetError(f"buy_and_hold: bar range [{lo}, {hi}) is outside the data's "
                              f"{market.n_bars} bars; pass 0 <= lo < hi <= {market.n_bars}")
    ppy = float(ppy) if ppy is not None else market.periods_per_year
    close = np.asarray(market.close[a, lo:hi], dtype=np.float64)
    nan = {"total_return": math.nan, "sharpe": math.nan}
    ok = np.isfinite(close)
    if not ok.any():
        return nan
    first = int(np.argmax(ok))
    r = np.zeros(hi - lo)
    r[first] = -fee_rate  # the entry fill at the first priced bar's close
    r[first + 1:] = close[first + 1:] / close[first:-1] - 1.0
    if not np.isfinite(r).all():
        return nan
    m = metrics_from_returns(r, ppy)
    return {"total_return": float(m[_TOTAL]), "sharpe": float(m[_SHARPE])}


def with_benchmark(board: Any, market: MarketData | None, lo: int, hi: int | None, ppy: float,
                   fee_rate: float, *, total_return: str, sharpe: str,
                   bh: dict[str, dict[str, float]] | None = None) -> Any:
    """A leaderboard (DataFrame with an ``asset`` column) with :data:`BENCHMARK_COLUMNS`
    appended: each row's asset's :func:`buy_and_hold` over ``[lo, hi)`` (each asset computed
    once) and the row's ``total_return`` / ``sharpe`` columns minus it (NaN where either is
    NaN). The other columns are kept as they are. ``bh``: each asset's buy-and-hold computed
    already (where the prices were: a worker of a shard tournament); ``market`` is then unused."""
    out = board.copy()
    if bh is None:
        bh = {a: buy_and_hold(market, a, lo, hi, ppy, fee_rate)
              for a in dict.fromkeys(str(x) for x in board["asset"])}
    names = [str(x) for x in board["asset"]]
    tot = np.array([bh[a]["total_return"] for a in names], dtype=np.float64)
    sr = np.array([bh[a]["sharpe"] for a in names], dtype=np.float64)
    out["bh_total_return"] = tot
    out["bh_sharpe"] = sr
    out["excess_total_return"] = board[total_return].to_numpy(dtype=np.float64) - tot
    out["excess_sharpe"] = board[sharpe].to_numpy(dtype=np.float64) - sr
    return out

"""One parameter set of one strategy on some assets: the rows ``quantfleet backtest`` prints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from quantfleet.backtest.job import BacktestJob, evaluate
from quantfleet.backtest.terms import Costs, Execution, Terms
from quantfleet.data.market import MarketData
from quantfleet.errors import QuantfleetError
from quantfleet.strategies.registry import Strategy, get

__all__ = ["backtest"]


def backtest(market: MarketData, strategy: str | Strategy, params: Mapping[str, Any] | None = None,
             costs: Costs | None = None, *, assets: Sequence[str] | None = None,
             long_short: bool = False, ppy: float | None = None,
             execution: Execution | None = None) -> list[dict[str, Any]]:
    """Backtest one parameter set (missing names take their defaults) on ``assets`` (default:
    all) under ``execution`` (None: fill at the close, no stops); one dict per asset: strategy,
    asset, params, bars, terms (the execution settings as a dict) and every metric."""
    from quantfleet.research.sweep import _check_history

    strat = get(strategy) if isinstance(strategy, str) else strategy
    costs = costs or Costs()
    if ppy is not None and ppy <= 0:
        raise QuantfleetError(f"--periods-per-year must be > 0 (got {ppy}); "
                              "e.g. 252 for daily stocks")
    p = strat.space.validate(dict(params or {}), market.n_bars)
    rows = list(range(market.n_assets)) if not assets else [market.asset_index(a) for a in assets]
    _check_history(strat, market, rows, p)
    ppy_ = ppy or market.periods_per_year
    job = BacktestJob(strat.name, tuple(rows), strat.space.to_array([p]),
                      terms=Terms.of(costs, ppy_, long_short, execution))
    metrics = evaluate(market, job).metrics
    first = market.first_valid()
    out = []
    for i, a in enumerate(rows):
        out.append({
            "strategy": strat.name, "asset": market.assets[a], "params": p,
            "bars": int(market.n_bars - first[a]), "periods_per_year": ppy_,
            "fee_bps": costs.fee_bps, "slippage_bps": costs.slippage_bps,
            "long_short": long_short, "execution": (execution or Execution()).settings(),
            **strat.metrics_dict(metrics[i, 0]),
        })
    return out

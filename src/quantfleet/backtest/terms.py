"""Execution terms of a backtest: what a fill costs, how metrics are annualised, long/short."""

from __future__ import annotations

import math
from dataclasses import dataclass

from quantfleet.errors import QuantfleetError

__all__ = ["Costs", "Terms"]


@dataclass(frozen=True)
class Costs:
    """Per-fill costs. A fill of ``|Δposition|`` multiplies equity by ``1 - fee_rate * |Δposition|``."""

    fee_bps: float = 0.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{name} must be a number of basis points, got {type(v).__name__}")
            if not math.isfinite(v) or v < 0 or v >= 10_000:
                raise QuantfleetError(
                    f"{name} must be in [0, 10000) basis points (got {v}); typical values: 0-50"
                )

    @property
    def fee_rate(self) -> float:
        """(fee_bps + slippage_bps) / 1e4."""
        return (self.fee_bps + self.slippage_bps) / 1e4


@dataclass(frozen=True)
class Terms:
    """The terms every combo of a job trades on.

    fee_rate : fraction of traded value paid per fill (``Costs.fee_rate``)
    ppy : bars per year the ratios are annualised with; None: the market's own
    long_short : False turns negative target positions into flat
    """

    fee_rate: float = 0.0
    ppy: float | None = None
    long_short: bool = False

    @classmethod
    def of(cls, costs: Costs | None = None, ppy: float | None = None,
           long_short: bool = False) -> Terms:
        """Terms from a :class:`Costs` (None: free trading)."""
        return cls(fee_rate=(costs or Costs()).fee_rate,
                   ppy=None if ppy is None else float(ppy), long_short=bool(long_short))

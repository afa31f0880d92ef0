"""Trading costs applied by every backtest: fees and slippage in basis points of traded value."""

from __future__ import annotations

import math
from dataclasses import dataclass

from quantfleet.errors import QuantfleetError

__all__ = ["Costs"]


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

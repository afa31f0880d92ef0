"""MarketView: what a driver knows of a market kept as per-asset shards in a store.

Timestamps, asset names, columns, each asset's first bar with a price and the bars per year,
without a single price array: enough to plan a tournament (windows, grids, checks) while the
prices stay in the store and each worker loads the assets it evaluates
(``quantfleet.store.datasets``; docs/data.md, "Shard datasets in the store").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantfleet.errors import DataError, did_you_mean

__all__ = ["MarketView", "is_view"]


@dataclass(frozen=True, eq=False)
class MarketView:
    """The shape of a market without its prices.

    Parameters
    ----------
    timestamps : datetime64[ns] array, shape (bars,)
    assets : tuple of str
    fields : names of the columns present (``MarketData.columns()`` of the full market)
    first_valid_bars : int array, shape (assets,): each asset's first bar with a finite close
    periods_per_year : bars per year (``MarketData.periods_per_year`` of the full market)
    source : the dataset reference, for messages
    """

    timestamps: np.ndarray
    assets: tuple[str, ...]
    fields: tuple[str, ...]
    first_valid_bars: np.ndarray
    periods_per_year: float
    source: str

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    @property
    def n_bars(self) -> int:
        return len(self.timestamps)

    def columns(self) -> list[str]:
        return list(self.fields)

    def first_valid(self) -> np.ndarray:
        return np.asarray(self.first_valid_bars, dtype=np.int64).copy()

    def asset_index(self, asset: str) -> int:
        try:
            return self.assets.index(asset)
        except ValueError:
            shown = ", ".join(self.assets[:10]) + (", ..." if self.n_assets > 10 else "")
            raise DataError(f"{self.source}: unknown asset {asset!r}"
                            f"{did_you_mean(asset, self.assets)}; available: {shown}") from None

    def select(self, assets: Sequence[str] | None = None) -> MarketView:
        """The view of some assets (all bars)."""
        if assets is None:
            return self
        rows = [self.asset_index(a) for a in assets]
        return MarketView(self.timestamps, tuple(self.assets[i] for i in rows), self.fields,
                          np.asarray(self.first_valid_bars)[rows], self.periods_per_year,
                          self.source)

    def __repr__(self) -> str:
        return (f"MarketView({self.source!r}, assets={self.n_assets}, bars={self.n_bars}, "
                f"columns={list(self.fields)})")


def is_view(market: Any) -> bool:
    """True for a sharded market (an object with a ``view`` :class:`MarketView` and a
    ``load(assets)`` returning MarketData), False for in-memory MarketData."""
    return isinstance(getattr(market, "view", None), MarketView) and callable(
        getattr(market, "load", None))

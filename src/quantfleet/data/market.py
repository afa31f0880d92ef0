"""MarketData: validated, aligned price arrays shaped [asset, bar]."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from quantfleet._typing import F64
from quantfleet.errors import DataError, did_you_mean

__all__ = ["FIELDS", "MarketData", "infer_periods_per_year"]

FIELDS = ("open", "high", "low", "close", "volume")

_SECONDS_PER_YEAR = 365.25 * 86400.0


def infer_periods_per_year(timestamps: np.ndarray) -> float:
    """Bars per year from the timestamps' span (e.g. ~252 for US stocks, 365 for crypto days).

    With at least 30 days of data the answer is ``(bars - 1) / span_in_years`` rounded to an
    integer, which tells trading days (252) from calendar days (365); shorter series use the
    median bar spacing.
    """
    ts = np.asarray(timestamps, dtype="datetime64[ns]").astype(np.int64)
    if ts.size < 2:
        return 252.0
    span = float(ts[-1] - ts[0]) / 1e9
    if span >= 30 * 86400:
        return float(round((ts.size - 1) / (span / _SECONDS_PER_YEAR)))
    step = float(np.median(np.diff(ts))) / 1e9
    return float(round(_SECONDS_PER_YEAR / step)) if step > 0 else 252.0


@dataclass(frozen=True, eq=False)
class MarketData:
    """Aligned market data for one or more assets.

    Parameters
    ----------
    timestamps : datetime64[ns] array, shape (bars,)
        Strictly increasing bar timestamps shared by every asset.
    assets : tuple of str, length assets
    close : float64 array, shape (assets, bars)
    open, high, low, volume : float64 array, shape (assets, bars), optional
    extra : dict of str -> float64 array, shape (assets, bars)
        Further columns such as ``funding_rate``.
    source : str
        Where the data came from (a path or dataset name), for messages.

    Bars an asset does not trade are NaN (wide tables with different listing dates);
    ``first_valid`` gives each asset's first bar with a price.
    """

    timestamps: np.ndarray
    assets: tuple[str, ...]
    close: F64
    open: F64 | None = None
    high: F64 | None = None
    low: F64 | None = None
    volume: F64 | None = None
    extra: dict[str, F64] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        shape = self.close.shape
        if self.close.ndim != 2 or shape[0] != len(self.assets) or shape[1] != len(self.timestamps):
            raise DataError(
                f"{self.source}: close has shape {shape}, expected "
                f"({len(self.assets)} assets, {len(self.timestamps)} bars)"
            )
        for name in ("open", "high", "low", "volume"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != shape:
                raise DataError(f"{self.source}: {name} has shape {arr.shape}, expected {shape}")
        for name, arr in self.extra.items():
            if arr.shape != shape:
                raise DataError(f"{self.source}: column {name!r} has shape {arr.shape}, expected {shape}")

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    @property
    def n_bars(self) -> int:
        return len(self.timestamps)

    @cached_property
    def periods_per_year(self) -> float:
        return infer_periods_per_year(self.timestamps)

    def asset_index(self, asset: str) -> int:
        """Index of ``asset``; unknown names get close-match hints."""
        try:
            return self.assets.index(asset)
        except ValueError:
            hint = did_you_mean(asset, self.assets)
            shown = ", ".join(self.assets[:10]) + (", ..." if self.n_assets > 10 else "")
            raise DataError(
                f"{self.source}: unknown asset {asset!r}{hint}; available: {shown}"
            ) from None

    def field(self, name: str) -> F64 | None:
        """The [asset, bar] array of a field or extra column, or None when absent."""
        if name in FIELDS:
            return getattr(self, name)
        return self.extra.get(name)

    def columns(self) -> list[str]:
        """Names of the fields and extra columns present."""
        present = [f for f in FIELDS if getattr(self, f) is not None]
        return present + sorted(self.extra)

    def first_valid(self) -> np.ndarray:
        """Index of each asset's first bar with a finite close, shape (assets,)."""
        return self._first_valid.copy()

    @cached_property
    def _first_valid(self) -> np.ndarray:
        ok = np.isfinite(self.close)
        idx = np.argmax(ok, axis=1)
        idx[~ok.any(axis=1)] = self.n_bars
        return idx

    def select(self, assets: list[str] | tuple[str, ...] | None = None,
               start: int = 0, stop: int | None = None) -> MarketData:
        """A view of some assets and a bar range ``[start, stop)``."""
        rows = list(range(self.n_assets)) if assets is None else [self.asset_index(a) for a in assets]
        sl = slice(start, stop)

        def take(a: F64 | None) -> F64 | None:
            return None if a is None else a[rows, sl]

        return MarketData(
            timestamps=self.timestamps[sl],
            assets=tuple(self.assets[i] for i in rows),
            close=take(self.close),
            open=take(self.open),
            high=take(self.high),
            low=take(self.low),
            volume=take(self.volume),
            extra={k: v[rows, sl] for k, v in self.extra.items()},
            source=self.source,
        )

    def __repr__(self) -> str:
        span = ""
        if self.n_bars:
            span = f", {str(self.timestamps[0])[:10]}..{str(self.timestamps[-1])[:10]}"
        return (
            f"MarketData({self.source!r}, assets={self.n_assets}, bars={self.n_bars}{span}, "
            f"columns={self.columns()})"
        )

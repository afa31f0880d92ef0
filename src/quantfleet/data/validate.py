"""Checks on MarketData at the boundary; every message names the source, the row, the column and the fix.

``validate_market`` runs on everything ``load`` returns; ``require_bars`` is what the CLI and the
research layer call before running a strategy whose windows need more history than an asset has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantfleet._typing import I64
from quantfleet.data.market import MarketData
from quantfleet.errors import DataError

__all__ = ["Where", "require_bars", "validate_market"]

_PRICES = ("close", "open", "high", "low")
# Relative slack on high/low comparisons so float round-off in a file (e.g. 1.1 stored as
# 1.0999999999) is not reported as a broken bar.
_REL_TOL = 1e-9


@dataclass(frozen=True)
class Where:
    """How a cell [asset, bar] maps back to the user's source, for messages.

    Parameters
    ----------
    columns : field name -> column name as spelled in the file (``{"close": "Close"}``)
    rows : int64 array, shape (assets, bars), optional
        1-based data row of each cell in the file, 0 where the file has no row for it
        (long format). None means row = bar + 1 (single-asset and wide files).
    wide : the close column of each asset is named after the asset
    long : the file has one row per asset and timestamp (messages also name the asset)
    in_file : False for in-memory or synthetic data: cells are named by asset, bar and timestamp
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    rows: I64 | None = None
    wide: bool = False
    long: bool = False
    in_file: bool = True

    def row(self, a: int, b: int) -> int:
        return b + 1 if self.rows is None else int(self.rows[a, b])

    def column(self, market: MarketData, a: int, name: str) -> str:
        if self.wide and name == "close":
            return market.assets[a]
        return self.columns.get(name, name)

    def cell(self, market: MarketData, a: int, b: int, name: str) -> str:
        """``row 17, column 'close'`` (file) or ``asset 'X', bar 16 (2024-01-02), field 'close'``."""
        row = self.row(a, b) if self.in_file else 0
        if row <= 0:
            ts = str(market.timestamps[b])[:19]
            return f"asset {market.assets[a]!r}, bar {b} ({ts}), field {name!r}"
        asset = f" (asset {market.assets[a]!r})" if self.long else ""
        return f"row {row}{asset}, column {self.column(market, a, name)!r}"

    def first(self, mask: np.ndarray) -> tuple[int, int]:
        """The violation a user meets first: lowest file row, else earliest bar then asset."""
        idx = np.flatnonzero(mask)
        n_bars = mask.shape[1]
        if self.rows is not None and self.in_file:
            rows = self.rows.ravel()[idx]
            rows = np.where(rows > 0, rows, np.iinfo(np.int64).max)
            k = int(idx[int(np.argmin(rows))])
        else:
            a, b = np.divmod(idx, n_bars)
            k = int(idx[int(np.lexsort((a, b))[0])])
        return k // n_bars, k % n_bars


def _num(v: float) -> str:
    return repr(float(v))


def validate_market(market: MarketData, where: Where | None = None) -> MarketData:
    """Raise ``DataError`` on the first problem in ``market``; return it unchanged when clean.

    Checks: at least one bar and asset, unique asset names, strictly increasing timestamps,
    every asset has a price, prices finite and > 0 from each asset's first price on (leading
    NaN bars are allowed: an asset may start later), volume finite and >= 0, high >= low,
    high >= open/close, low <= open/close, no infinite values in extra columns.
    """
    w = where if where is not None else Where(in_file=False)
    src = market.source
    if market.n_assets == 0:
        raise DataError(f"{src}: no assets; the data needs at least one price column")
    if market.n_bars == 0:
        raise DataError(f"{src}: no bars; the data needs at least one row with a timestamp and a price")
    seen: set[str] = set()
    for name in market.assets:
        if name in seen:
            raise DataError(f"{src}: asset {name!r} appears twice; asset names must be unique")
        seen.add(name)
    ts = np.asarray(market.timestamps)
    if ts.dtype != np.dtype("datetime64[ns]"):
        raise TypeError(f"{src}: timestamps must be datetime64[ns], got {ts.dtype}")
    step = np.diff(ts.astype(np.int64))
    if (step <= 0).any():
        b = int(np.argmax(step <= 0)) + 1
        what = "repeats" if step[b - 1] == 0 else "is earlier than"
        raise DataError(
            f"{src}: bar {b} timestamp {str(ts[b])[:19]} {what} bar {b - 1}'s {str(ts[b - 1])[:19]}; "
            "timestamps must be strictly increasing (sort and de-duplicate them)"
        )

    close = market.close
    finite = np.isfinite(close)
    empty = ~finite.any(axis=1)
    if empty.any():
        a = int(np.argmax(empty))
        col = w.column(market, a, "close") if w.in_file else "close"
        raise DataError(
            f"{src}: asset {market.assets[a]!r} has no prices (column {col!r} is empty or NaN); "
            "drop the asset or fill in its prices"
        )
    first = market.first_valid()
    live = np.arange(market.n_bars)[None, :] >= first[:, None]

    for name in _PRICES:
        arr = market.field(name)
        if arr is None:
            continue
        bad = live & ~np.isfinite(arr)
        if bad.any():
            a, b = w.first(bad)
            v = arr[a, b]
            if np.isnan(v):
                raise DataError(
                    f"{src}: {w.cell(market, a, b, name)}: missing price (NaN) after the asset's "
                    "first price; gaps are not filled (fill the value or drop the row)"
                )
            raise DataError(
                f"{src}: {w.cell(market, a, b, name)}: infinite price {_num(v)}; "
                "prices must be finite (clean the row or drop it)"
            )
        bad = live & (arr <= 0)
        if bad.any():
            a, b = w.first(bad)
            raise DataError(
                f"{src}: {w.cell(market, a, b, name)}: non-positive price {_num(arr[a, b])}; "
                "prices must be > 0 (clean the row or drop it)"
            )

    vol = market.volume
    if vol is not None:
        bad = live & ~np.isfinite(vol)
        if bad.any():
            a, b = w.first(bad)
            raise DataError(
                f"{src}: {w.cell(market, a, b, 'volume')}: missing or infinite volume "
                f"{_num(vol[a, b])}; volume must be a finite number >= 0 (fill it, e.g. with 0)"
            )
        bad = live & (vol < 0)
        if bad.any():
            a, b = w.first(bad)
            raise DataError(
                f"{src}: {w.cell(market, a, b, 'volume')}: negative volume {_num(vol[a, b])}; "
                "volume must be >= 0 (clean the row or drop it)"
            )

    _check_ranges(market, w, live)

    for name, arr in market.extra.items():
        bad = np.isinf(arr)
        if bad.any():
            a, b = w.first(bad)
            raise DataError(
                f"{src}: {w.cell(market, a, b, name)}: infinite value {_num(arr[a, b])}; "
                "extra columns may hold NaN but not inf (clean the row)"
            )
    return market


def _check_ranges(market: MarketData, w: Where, live: np.ndarray) -> None:
    """high >= low, high >= open/close, low <= open/close on every live bar."""
    src = market.source
    hi, lo = market.high, market.low
    if hi is not None and lo is not None:
        bad = live & (hi < lo * (1 - _REL_TOL))
        if bad.any():
            a, b = w.first(bad)
            raise DataError(
                f"{src}: {w.cell(market, a, b, 'high')}: high {_num(hi[a, b])} is below low "
                f"{_num(lo[a, b])}; high must be >= low (swapped columns? fix the row or drop it)"
            )
    for name in ("open", "close"):
        px = market.field(name)
        if px is None:
            continue
        if hi is not None:
            bad = live & (hi < px * (1 - _REL_TOL))
            if bad.any():
                a, b = w.first(bad)
                raise DataError(
                    f"{src}: {w.cell(market, a, b, 'high')}: high {_num(hi[a, b])} is below "
                    f"{name} {_num(px[a, b])}; high must be >= open and close (fix the row or drop it)"
                )
        if lo is not None:
            bad = live & (lo > px * (1 + _REL_TOL))
            if bad.any():
                a, b = w.first(bad)
                raise DataError(
                    f"{src}: {w.cell(market, a, b, 'low')}: low {_num(lo[a, b])} is above "
                    f"{name} {_num(px[a, b])}; low must be <= open and close (fix the row or drop it)"
                )


def require_bars(market: MarketData, asset: int | str, n_needed: int, strategy: str,
                 params: Mapping[str, Any] | None = None) -> int:
    """Raise ``DataError`` unless ``asset`` has at least ``n_needed`` bars from its first price.

    Parameters
    ----------
    market : the data
    asset : asset index or name
    n_needed : bars the strategy needs (e.g. ``Strategy.min_bars(params)``)
    strategy : strategy name for the message
    params : the parameters that set the need, for the message (e.g. ``{"slow": 50}``)

    Returns the number of bars the asset has.
    """
    a = market.asset_index(asset) if isinstance(asset, str) else int(asset)
    have = int(market.n_bars - market.first_valid()[a])
    if have < n_needed:
        with_ = ""
        if params:
            with_ = " with " + ", ".join(f"{k}={v}" for k, v in params.items())
        raise DataError(
            f"{market.source}: asset {market.assets[a]!r} has {have} bars but strategy "
            f"{strategy}{with_} needs {n_needed}; use shorter windows or more data"
        )
    return have

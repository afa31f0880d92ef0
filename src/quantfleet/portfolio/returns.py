"""The returns matrix a portfolio is built from: assets' price returns or strategies' OOS returns.

One row per timestamp, one column per asset or strategy, simple returns, no NaN. The gap policy
(which rows are dropped, which gaps are filled) is written into the provenance so a stored
matrix says what produced it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantfleet.data.market import MarketData, infer_periods_per_year
from quantfleet.errors import DataError

__all__ = [
    "MIN_ROWS",
    "ReturnsMatrix",
    "from_assets",
    "from_strategies",
    "read_returns",
    "returns_matrix",
]

MIN_ROWS = 2
"""Fewest aligned rows a returns matrix may have (a walk-forward asks for train + test)."""

_META_KEY = b"quantfleet.provenance"


@dataclass(frozen=True, eq=False)
class ReturnsMatrix:
    """Aligned simple returns and where they came from.

    Attributes
    ----------
    returns : DataFrame (timestamps, columns) of float64, index named ``timestamp``, no NaN
    provenance : JSON-ready dict: ``kind`` ("assets" | "strategies"), ``source``, ``gap_policy``,
        ``rows_dropped_leading``, ``rows_dropped_gaps``, ``cells_filled``, ``start``, ``end``,
        ``rows``, ``columns``, ``periods_per_year``
    """

    returns: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.returns.columns]

    @property
    def periods_per_year(self) -> float:
        return float(self.provenance.get("periods_per_year") or
                     infer_periods_per_year(self.returns.index.to_numpy()))

    def values(self) -> np.ndarray:
        """float64 (rows, columns), C-contiguous."""
        return np.ascontiguousarray(self.returns.to_numpy(dtype=np.float64))

    def to_parquet(self, path: str | Path) -> Path:
        """Write the returns with the provenance in the file's schema metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(self.returns, preserve_index=True)
        meta = dict(table.schema.metadata or {})
        meta[_META_KEY] = json.dumps(self.provenance, default=str).encode()
        pq.write_table(table.replace_schema_metadata(meta), path)
        return path

    def __repr__(self) -> str:
        r = self.returns
        span = f"{r.index[0]:%Y-%m-%d}..{r.index[-1]:%Y-%m-%d}" if len(r) else "empty"
        return (f"ReturnsMatrix({self.provenance.get('kind', '?')}, rows={len(r)}, "
                f"columns={r.shape[1]}, {span})")


def read_returns(path: str | Path) -> ReturnsMatrix:
    """A matrix written by :meth:`ReturnsMatrix.to_parquet`."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    prov = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    return ReturnsMatrix(table.to_pandas(), prov)


def _check_columns(frame: pd.DataFrame, source: str) -> None:
    if frame.shape[1] == 0:
        raise DataError(f"{source}: no columns; pass at least one asset or strategy")
    dup = frame.columns[frame.columns.duplicated()].tolist()
    if dup:
        raise DataError(f"{source}: duplicate column(s) {dup[:5]}; column names must be unique")
    empty = [str(c) for c in frame.columns if not np.isfinite(frame[c].to_numpy(float)).any()]
    if empty:
        raise DataError(f"{source}: column(s) {', '.join(empty[:5])} have no finite value; "
                        f"drop them before building the returns matrix")


def _check_length(frame: pd.DataFrame, source: str, min_rows: int, why: str) -> None:
    if len(frame) < min_rows:
        raise DataError(f"{source}: only {len(frame)} aligned row(s) of returns {why}, need at "
                        f"least {min_rows}; use a longer history or fewer late-starting columns")


def _leading_drop(valid: np.ndarray) -> int:
    """Rows before every column has started (each column's first finite value)."""
    firsts = [int(np.argmax(valid[:, j])) for j in range(valid.shape[1])]
    return max(firsts) if firsts else 0


def from_assets(market: MarketData, assets: list[str] | None = None, *, gaps: str = "error",
                min_rows: int = MIN_ROWS) -> ReturnsMatrix:
    """Close-to-close simple returns of assets: ``r[t] = close[t] / close[t-1] - 1``.

    Gap policy: rows before the last asset's first price are dropped (late listings), and the
    first priced row gives no return. A missing price after that (an interior or trailing
    gap) raises with ``gaps="error"``; ``gaps="drop"`` drops those bars for every asset, so
    the next return runs from the last bar all assets priced (no return is lost, the bar
    count shrinks).

    Parameters
    ----------
    market : MarketData, close (assets, bars)
    assets : subset of ``market.assets`` (default: all)
    gaps : "error" | "drop"
    min_rows : fewest rows accepted
    """
    if not isinstance(market, MarketData):
        raise TypeError(f"from_assets expects MarketData, got {type(market).__name__}")
    if gaps not in ("error", "drop"):
        raise DataError(f"gaps={gaps!r}: choose 'error' or 'drop' for missing asset prices")
    idx = [market.asset_index(a) for a in assets] if assets else list(range(market.n_assets))
    names = [market.assets[i] for i in idx]
    close = market.close[idx].T  # (bars, assets)
    source = market.source
    frame = pd.DataFrame(close, index=pd.DatetimeIndex(market.timestamps, name="timestamp"),
                         columns=names)
    _check_columns(frame, source)
    valid = np.isfinite(close) & (close > 0)
    lead = _leading_drop(valid)
    px = frame.iloc[lead:]
    v = valid[lead:]
    dropped_gaps = 0
    bad_rows = ~v.all(axis=1)
    if bad_rows.any():
        if gaps == "error":
            row = int(np.argmax(bad_rows))
            col = names[int(np.argmax(~v[row]))]
            raise DataError(
                f"{source}: asset {col!r} has no valid price at {px.index[row]:%Y-%m-%d} after "
                f"its history started ({int(bad_rows.sum())} such bar(s) in all); pass "
                f"gaps='drop' to drop those bars, or choose assets with complete histories")
        dropped_gaps = int(bad_rows.sum())
        px = px.loc[~bad_rows]
    rets = px.pct_change().iloc[1:].astype(np.float64)
    _check_length(rets, source, min_rows, "after the last asset starts")
    prov = {
        "kind": "assets", "source": source, "gap_policy": f"leading rows dropped; gaps={gaps}",
        "rows_dropped_leading": int(lead + 1), "rows_dropped_gaps": dropped_gaps,
        "cells_filled": 0, "start": str(rets.index[0]), "end": str(rets.index[-1]),
        "rows": int(len(rets)), "columns": names,
        "periods_per_year": float(market.periods_per_year),
    }
    return ReturnsMatrix(rets, prov)


def from_strategies(oos_returns: pd.DataFrame | str | Path, columns: list[str] | None = None, *,
                    min_rows: int = MIN_ROWS, source: str | None = None) -> ReturnsMatrix:
    """Out-of-sample return series of tournament winners (``TournamentResult.oos_returns``,
    or the path of its ``oos_returns.parquet`` / the tournament's output directory).

    Gap policy: rows before every column has its first finite return are dropped; a NaN
    after that means the strategy was not trading (a failed or missing window) and is filled
    with 0 (flat, cash earns nothing). The number of filled cells is in the provenance.

    Parameters
    ----------
    oos_returns : DataFrame (timestamps, "strategy/asset") of per-bar returns, or a path
    columns : subset of columns (default: all)
    min_rows : fewest rows accepted
    source : a label for messages and provenance
    """
    if isinstance(oos_returns, (str, Path)):
        p = Path(oos_returns)
        if p.is_dir():
            p = p / "oos_returns.parquet"
        if not p.exists():
            raise DataError(f"{p}: no such file; pass a tournament's oos_returns.parquet or its "
                            f"--out directory")
        source = source or str(p)
        frame = pd.read_parquet(p)
    elif isinstance(oos_returns, pd.DataFrame):
        frame = oos_returns
        source = source or "oos_returns"
    else:
        raise TypeError(f"from_strategies expects a DataFrame or a path, "
                        f"got {type(oos_returns).__name__}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        if "timestamp" in frame.columns:
            frame = frame.set_index("timestamp")
        else:
            raise DataError(f"{source}: expected a timestamp index (or a 'timestamp' column)")
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            from quantfleet.errors import did_you_mean

            raise DataError(f"{source}: unknown column {missing[0]!r}"
                            f"{did_you_mean(missing[0], [str(c) for c in frame.columns])}")
        frame = frame[columns]
    frame = frame.astype(np.float64)
    frame.columns = [str(c) for c in frame.columns]
    frame.index = pd.DatetimeIndex(frame.index, name="timestamp", freq=None)
    if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
        frame = frame[~frame.index.duplicated(keep="first")].sort_index()
    _check_columns(frame, source)
    arr = frame.to_numpy()
    if np.isinf(arr).any():
        col = frame.columns[int(np.argmax(np.isinf(arr).any(axis=0)))]
        raise DataError(f"{source}: column {col!r} has an infinite return; fix the series")
    lead = _leading_drop(np.isfinite(arr))
    frame = frame.iloc[lead:]
    filled = int(frame.isna().to_numpy().sum())
    frame = frame.fillna(0.0)
    _check_length(frame, source, min_rows, "after the last strategy starts")
    prov = {
        "kind": "strategies", "source": source,
        "gap_policy": "leading rows dropped; interior NaN -> 0 (flat)",
        "rows_dropped_leading": int(lead), "rows_dropped_gaps": 0, "cells_filled": filled,
        "start": str(frame.index[0]), "end": str(frame.index[-1]), "rows": int(len(frame)),
        "columns": list(frame.columns),
        "periods_per_year": float(infer_periods_per_year(frame.index.to_numpy())),
    }
    return ReturnsMatrix(frame, prov)


def returns_matrix(source: Any, columns: list[str] | None = None, *, kind: str = "auto",
                   **kw: Any) -> ReturnsMatrix:
    """One entry for both kinds.

    ``kind="auto"``: a ``ReturnsMatrix`` is returned as is; ``MarketData`` -> assets; a
    DataFrame -> strategies; a directory holding ``oos_returns.parquet`` or a ``.parquet``
    file whose columns all look like ``strategy/asset`` -> strategies; any other string
    (dataset name, CSV/Parquet prices, ``synthetic:...``) is loaded with ``data.load`` -> assets.
    """
    if kind not in ("auto", "assets", "strategies"):
        raise DataError(f"kind={kind!r}: choose 'auto', 'assets' or 'strategies'")
    if isinstance(source, ReturnsMatrix):
        return source
    if isinstance(source, MarketData):
        if kind == "strategies":
            raise DataError("kind='strategies' needs out-of-sample returns, got MarketData")
        return from_assets(source, columns, **kw)
    if isinstance(source, pd.DataFrame):
        if kind == "assets":
            raise DataError("kind='assets' needs MarketData or a data source, got a DataFrame")
        return from_strategies(source, columns, **kw)
    if isinstance(source, (str, Path)):
        p = Path(source)
        is_strat = kind == "strategies"
        if kind == "auto":
            if p.is_dir() and (p / "oos_returns.parquet").exists():
                is_strat = True
            elif p.suffix == ".parquet" and p.is_file():
                import pyarrow.parquet as pq

                names = [n for n in pq.read_schema(p).names
                         if n != "timestamp" and not n.startswith("__index")]
                is_strat = bool(names) and all("/" in n for n in names)
        if is_strat:
            return from_strategies(p, columns, **kw)
        from quantfleet.data import load

        return from_assets(load(str(source)), columns, **kw)
    raise TypeError(f"returns_matrix expects MarketData, a DataFrame or a path, "
                    f"got {type(source).__name__}")

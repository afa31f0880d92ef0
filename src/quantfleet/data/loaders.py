"""``load``: CSV, Parquet, a bundled dataset or a ``synthetic:`` URL -> validated MarketData.

Three table shapes are recognised (column names are matched case-insensitively, ignoring spaces,
``_`` and ``-``): one asset's OHLCV, a long table with an ``asset``/``symbol`` column, and a wide
table of close prices with one column per asset. See docs/data.md for the rules.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quantfleet.data.arrow import to_numpy
from quantfleet.data.datasets import DATASETS, dataset_names, locate
from quantfleet.data.market import MarketData
from quantfleet.data.synthetic import from_url
from quantfleet.data.validate import Where, validate_market
from quantfleet.errors import DataError, did_you_mean, printable

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "ASSET_NAMES",
    "CLOSE_NAMES",
    "EXTENSIONS",
    "FIELD_NAMES",
    "TIMESTAMP_NAMES",
    "fingerprint_source",
    "from_frame",
    "info",
    "load",
    "read_table",
]

TIMESTAMP_NAMES = ("timestamp", "datetime", "date", "time")
ASSET_NAMES = ("asset", "symbol", "ticker")
CLOSE_NAMES = ("close", "adjclose", "price")  # first present wins: Adj Close only without Close
FIELD_NAMES = ("open", "high", "low", "volume")
EXTENSIONS = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".parquet", ".pq")

_ACCEPTED_CLOSE = "close, adj close (adj_close, adjclose), price"
_TS_HINT = "use ISO 8601 such as 2024-01-31 or 2024-01-31T09:30:00Z"


def _key(name: object) -> str:
    """Column name as matched: lower case without spaces, underscores or dashes."""
    return re.sub(r"[\s_\-]+", "", str(name).lower())


def _extra_name(name: object) -> str:
    """Name an extra column gets in MarketData.extra: ``Funding Rate`` -> ``funding_rate``."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _ignored(name: object) -> bool:
    """Columns a writer adds by accident (a pandas index saved to CSV)."""
    k = _key(name)
    return k == "" or k.startswith("unnamed") or k in ("index", "level0")


# ---------------------------------------------------------------------------------------------
# entry points


def load(source: str | os.PathLike[str]) -> MarketData:
    """Load and validate market data.

    Parameters
    ----------
    source : str or path
        A CSV or Parquet file (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``), a bundled dataset
        name (``dataset_names()``), or a synthetic URL such as ``synthetic:gbm?bars=1000&assets=3``.

    Returns
    -------
    MarketData with float64 arrays of shape (assets, bars).

    Raises
    ------
    DataError naming the file, row, column and fix when the source cannot be read or is invalid.
    """
    if isinstance(source, str):
        if source.startswith("synthetic:"):
            return validate_market(from_url(source))
        if source.startswith("shards:"):
            raise DataError(f"{source}: a shard dataset lives in a store; give it to a research "
                            f"command with --store URL (it is read there, not loaded whole)")
        if source in DATASETS:
            return _load_dataset(source)
    elif not isinstance(source, os.PathLike):
        raise TypeError(
            f"load() takes a path, dataset name or synthetic: URL, got {type(source).__name__}"
        )
    return _load_path(Path(source), str(source))


def fingerprint_source(source: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies the bytes ``load(source)`` reads, for cache keys and checkpoints.

    A file (or a bundled dataset's file): its size and sha256; a ``synthetic:`` URL: the URL
    itself (the generator is seeded by it). Two sources with the same fingerprint load the
    same market (given the same loader code). Errors as :func:`load`'s.
    """
    import hashlib

    if isinstance(source, str) and source.startswith("synthetic:"):
        return {"kind": "synthetic", "url": source}
    if isinstance(source, str) and source in DATASETS:
        _, path = locate(source)
        kind, shown = "dataset", source
    else:
        path, shown = Path(source), str(source)
        if not path.is_file():
            _load_path(path, shown)  # raises the loader's own one-line error
        kind = "file"
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:  # hashed on every call: an mtime can repeat within a tick
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return {"kind": kind, "source": shown, "bytes": size, "sha256": h.hexdigest()}


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame as ``load`` sees it (no validation)."""
    p = Path(path)
    return _read(p, p.name)


def from_frame(frame: pd.DataFrame, *, source: str = "<frame>", asset: str | None = None,
               file_rows: bool = True) -> MarketData:
    """Turn a DataFrame in any of the three shapes into validated MarketData.

    Parameters
    ----------
    frame : the table; a DatetimeIndex (or a MultiIndex with timestamp and asset) is used
        when no timestamp column exists
    source : name used in messages (a file name)
    asset : asset name for a single-asset table (default: ``source``'s file stem)
    file_rows : messages give 1-based data rows ("row 17"); False names bars instead
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"from_frame() takes a pandas DataFrame, got {type(frame).__name__}")
    frame = _index_to_columns(frame)
    found = [str(c) for c in frame.columns]
    if frame.shape[0] == 0:
        raise DataError(
            f"{source}: no data rows (columns found: {', '.join(found) or 'none'}); "
            "the file needs a header row and at least one row of prices"
        )
    cols = _columns(frame, source)
    ts_col = _find_timestamp(cols, frame, source, found)
    ts = _timestamps(frame, ts_col, source)
    used = {ts_col} if isinstance(ts_col, str) else set(ts_col)
    label = ts_col if isinstance(ts_col, str) else "/".join(ts_col)
    asset_col = next((cols[k] for k in ASSET_NAMES if k in cols), None)
    close_col = next((cols[k] for k in CLOSE_NAMES if k in cols), None)
    fields = {k: cols[k] for k in FIELD_NAMES if k in cols}
    if asset_col is not None or close_col is not None or fields:
        if close_col is None:
            raise DataError(
                f"{source}: no close column; found columns {found}; accepted names (any case): "
                f"{_ACCEPTED_CLOSE} — or a wide table with one numeric column per asset"
            )
        fields["close"] = close_col
        skip = used | set(fields.values()) | {c for k, c in cols.items() if k in CLOSE_NAMES}
        if asset_col is not None:
            skip.add(asset_col)
            return _long(frame, ts, label, asset_col, fields, skip, source, file_rows)
        name = asset if asset is not None else _stem(source)
        return _single(frame, ts, label, name, fields, skip, source, file_rows)
    return _wide(frame, ts, label, used, source, file_rows)


def info(market: MarketData) -> dict[str, Any]:
    """A JSON-serializable summary: source, assets, bars, span, columns, periods per year and,
    per asset, its first/last bar with a price and its min/max close."""
    import pandas as pd

    ts = market.timestamps

    def iso(i: int) -> str | None:
        return pd.Timestamp(ts[i]).isoformat() if 0 <= i < market.n_bars else None

    finite = np.isfinite(market.close)
    per_asset = []
    for a, name in enumerate(market.assets):
        ok = np.flatnonzero(finite[a])
        if ok.size:
            first, last = int(ok[0]), int(ok[-1])
            px = market.close[a, ok]
            lo, hi = float(px.min()), float(px.max())
        else:
            first, last, lo, hi = -1, -1, None, None
        per_asset.append({
            "asset": name,
            "first_bar": first,
            "last_bar": last,
            "first": iso(first),
            "last": iso(last),
            "bars": last - first + 1 if ok.size else 0,
            "min_close": lo,
            "max_close": hi,
        })
    return {
        "source": market.source,
        "assets": list(market.assets),
        "n_assets": market.n_assets,
        "bars": market.n_bars,
        "start": iso(0),
        "end": iso(market.n_bars - 1),
        "columns": market.columns(),
        "periods_per_year": float(market.periods_per_year),
        "per_asset": per_asset,
    }


# ---------------------------------------------------------------------------------------------
# sources


def _load_dataset(name: str) -> MarketData:
    ds, path = locate(name)
    return _load_file(path, name, ds.asset)


def _stem(source: str) -> str:
    name = Path(source).name
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem or name


def _load_path(path: Path, shown: str) -> MarketData:
    if not path.exists():
        if not path.suffix and os.sep not in shown and "/" not in shown:
            raise DataError(
                f"{shown!r} is neither a file nor a bundled dataset"
                f"{did_you_mean(shown, DATASETS)}; datasets: "
                f"{', '.join(dataset_names())}; or give a path to a .csv or .parquet file"
            )
        raise DataError(f"{shown}: file not found (looked for {path.absolute()}); check the path")
    if path.is_dir():
        raise DataError(f"{shown}: is a directory; give one .csv or .parquet file")
    # messages and lineage show the path as the user gave it
    return _load_file(path, shown)


def _load_file(path: Path, name: str, asset: str | None = None) -> MarketData:
    """A CSV that :func:`_from_arrow` can take is read without pandas; anything else (and any
    file that does not pass its checks) goes through :func:`from_frame`."""
    if path.name.lower().endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zst")):
        table = _csv_table(path, name)
        if table is not None:
            market = _from_arrow(table, name, asset)
            if market is not None:
                return market
        return from_frame(_csv_frame(table, path, name), source=name, asset=asset)
    return from_frame(_read(path, name), source=name, asset=asset)


def _read(path: Path, name: str) -> pd.DataFrame:
    low = path.name.lower()
    if low.endswith((".parquet", ".pq")):
        return _read_parquet(path, name)
    if low.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zst")):
        return _read_csv(path, name)
    ext = "".join(path.suffixes[-2:]) or "(none)"
    raise DataError(
        f"{name}: unknown file extension {ext!r}; use .csv (optionally .gz), .parquet or .pq "
        "(export spreadsheets as CSV)"
    )


_SNIFF_BYTES = 1 << 16


def _check_text(path: Path, name: str) -> None:
    """A plain .csv must be text: a NUL byte or invalid UTF-8 at the start means a binary file
    (an executable, a spreadsheet, a Parquet file renamed), reported without echoing it."""
    if path.name.lower().endswith((".gz", ".bz2", ".zst")):
        return  # compressed: pyarrow decompresses, the column checks below catch bytes
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith(b"PAR1"):
        raise DataError(f"{name}: this is a Parquet file with a .csv name; rename it to .parquet")
    bad = head.find(b"\x00")
    if bad < 0:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            # a multi-byte character cut at the end of the sniffed block is not an error
            if e.start < len(head) - 4:
                bad = e.start
    if bad >= 0:
        raise DataError(f"{name}: not a text CSV file (binary byte 0x{head[bad]:02x} at offset "
                        f"{bad}); give a UTF-8 CSV or a .parquet file")


def _not_utf8(v: object) -> bool:
    if not isinstance(v, (bytes, bytearray)):
        return False
    try:
        bytes(v).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _no_bytes(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """pyarrow reads a column holding invalid UTF-8 as binary: name its first bad row."""
    for col in frame.columns:
        s = frame[col]
        if s.dtype == object:
            bad = s.map(_not_utf8).to_numpy(dtype=bool)
            if bad.any():
                r = int(np.argmax(bad))
                raise DataError(f"{name}: row {r + 1}, column {printable(col)!r}: "
                                f"not valid UTF-8 text; save the file as UTF-8 CSV")
    return frame


def _read_csv(path: Path, name: str) -> pd.DataFrame:
    table = _csv_table(path, name)
    return _csv_frame(table, path, name)


def _csv_table(path: Path, name: str) -> pa.Table | None:
    """The CSV as pyarrow reads it, or None when a bad value deep in a numeric column (after
    pyarrow inferred the type from the first block) needs the all-text read of
    :func:`_csv_frame` so the row-level checks can name it."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    _check_text(path, name)
    try:
        opts = pcsv.ConvertOptions(strings_can_be_null=True)  # an empty cell is missing
        return pcsv.read_csv(path, convert_options=opts)
    except pa.ArrowInvalid as exc:
        msg = printable(str(exc), limit=200)
        if "Empty CSV file" in msg:
            raise DataError(
                f"{name}: the file is empty; expected a header row (e.g. date,close) and data rows"
            ) from None
        if "conversion error" not in msg:
            raise DataError(f"{name}: cannot parse the CSV ({msg}); check quoting and column counts") from None
    return None


def _csv_frame(table: pa.Table | None, path: Path, name: str) -> pd.DataFrame:
    """:func:`_csv_table`'s table as a DataFrame (None: the file read again as text)."""
    import pandas as pd

    if table is not None:
        return _no_bytes(table.to_pandas(), name)
    try:
        return pd.read_csv(path, dtype=str)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{name}: cannot parse the CSV ({printable(exc, limit=200)}); check "
                        "quoting and column counts") from None


def _read_parquet(path: Path, name: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        if path.stat().st_size == 0:
            raise DataError(f"{name}: the file is empty; expected a Parquet file with data rows") from None
        raise DataError(f"{name}: cannot read it as Parquet ({exc}); is it really a Parquet file?") from None


# ---------------------------------------------------------------------------------------------
# columns and timestamps


def _index_to_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Make a meaningful index (Parquet written from pandas) into ordinary columns."""
    import pandas as pd

    idx = frame.index
    if isinstance(idx, pd.RangeIndex) and idx.name is None:
        return frame
    if not isinstance(idx, pd.MultiIndex) and idx.name is None:
        if not isinstance(idx, pd.DatetimeIndex):
            return frame.reset_index(drop=True)
        frame = frame.rename_axis("timestamp")
    return frame.reset_index()


def _columns(frame: pd.DataFrame | pa.Table, source: str) -> dict[str, str]:
    """Matching key -> column name; two columns with the same meaning are an error."""
    cols: dict[str, str] = {}
    for c in (frame.column_names if hasattr(frame, "column_names") else frame.columns):
        if not isinstance(c, str):
            raise DataError(
                f"{source}: column names must be text, got {c!r}; give the file a header row"
            )
        if _ignored(c):
            continue
        k = _key(c)
        if k in cols:
            raise DataError(
                f"{source}: columns {cols[k]!r} and {c!r} are the same column once case and "
                "spaces are ignored; keep one"
            )
        cols[k] = c
    return cols


def _find_timestamp(cols: dict[str, str], frame: pd.DataFrame, source: str,
                    found: list[str]) -> str | tuple[str, str]:
    import pandas as pd

    if "timestamp" in cols:
        return cols["timestamp"]
    if "datetime" in cols:
        return cols["datetime"]
    if "date" in cols and "time" in cols:
        date = frame[cols["date"]]
        if not pd.api.types.is_datetime64_any_dtype(date) or (date.dt.normalize() == date).all():
            return cols["date"], cols["time"]  # separate date and time-of-day columns
        return cols["date"]
    for k in ("date", "time"):
        if k in cols:
            return cols[k]
    raise DataError(
        f"{source}: no timestamp column; found columns {found}; name one column timestamp, "
        "date, datetime or time (any case), or store the timestamps as the Parquet index"
    )


def _timestamps(frame: pd.DataFrame, col: str | tuple[str, str], source: str) -> np.ndarray:
    """datetime64[ns] per row, tz-aware values converted to UTC and made naive."""
    import pandas as pd

    if isinstance(col, tuple):
        d, t = frame[col[0]], frame[col[1]]
        if pd.api.types.is_datetime64_any_dtype(d):
            d = d.dt.strftime("%Y-%m-%d")
        s = d.astype("str").str.cat(t.astype("str"), sep=" ")
        s[d.isna() | t.isna()] = None
        label = f"{col[0]}/{col[1]}"
    else:
        s, label = frame[col], col

    if pd.api.types.is_datetime64_any_dtype(s):
        dt = s
    elif pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.to_numpy(dtype=np.int64)
        top = int(np.abs(v).max()) if v.size else 0
        unit = "s" if top < 10**11 else "ms" if top < 10**14 else "us" if top < 10**17 else "ns"
        dt = pd.Series(pd.to_datetime(v, unit=unit))
    else:
        if pd.api.types.is_float_dtype(s) and s.notna().any():
            r = int(np.argmax(s.notna().to_numpy()))
            raise DataError(
                f"{source}: row {r + 1}, column {label!r}: timestamp {s.iloc[r]!r} is a "
                f"fractional number; {_TS_HINT}, or integer epoch seconds/milliseconds"
            )
        dt = _parse_text_times(s)
        bad = (dt.isna() & s.notna()).to_numpy()
        if bad.any():
            r = int(np.argmax(bad))
            raise DataError(
                f"{source}: row {r + 1}, column {label!r}: cannot parse timestamp "
                f"'{printable(s.iloc[r])}'; {_TS_HINT}"
            )
    missing = dt.isna().to_numpy()
    if missing.any():
        r = int(np.argmax(missing))
        raise DataError(
            f"{source}: row {r + 1}, column {label!r}: missing timestamp; every row needs one "
            "(fill it or drop the row)"
        )
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        return dt.to_numpy().astype("datetime64[ns]")
    except (OverflowError, ValueError):
        raise DataError(
            f"{source}: column {label!r}: timestamps outside 1678..2262 cannot be represented"
        ) from None


def _parse_text_times(s: pd.Series) -> pd.Series:
    """Inferred format first (fast); ISO 8601 of any precision when that leaves gaps."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dt = pd.to_datetime(s, utc=True, errors="coerce")
        except (ValueError, TypeError, OverflowError):
            dt = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
        if (dt.isna() & s.notna()).any():
            try:
                iso = pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601")
            except (ValueError, TypeError, OverflowError):
                return dt
            if iso.isna().sum() < dt.isna().sum():
                return iso
    return dt


def _numeric(s: pd.Series, label: str, source: str, kind: str = "price") -> np.ndarray | None:
    """float64 values of a column; a value that is not a number is an error naming its row.

    ``kind`` is "price" (an OHLCV column), "asset" (a wide table's column) or "extra"; an extra
    column of text with no numbers at all (exchange, name, ...) is not market data: None.
    """
    import pandas as pd

    if pd.api.types.is_bool_dtype(s):
        return None
    if pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return v if v.flags.writeable else v.copy()  # zero-copy Arrow views are read-only
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(v) & s.notna().to_numpy()
    if bad.any():
        text = s.astype("str").str.strip().str.lower()
        bad &= ~text.isin(["", "nan", "na", "n/a", "null", "none", "-nan"]).to_numpy()
    if not bad.any():
        return v
    n_ok = int((~np.isnan(v)).sum())
    i = int(np.argmax(bad))
    row, value = i + 1, printable(s.iloc[i])
    if n_ok == 0 and kind == "extra":
        return None
    if n_ok == 0 and kind == "asset":
        raise DataError(
            f"{source}: column {label!r} is not numeric (row {row}: '{value}'); a wide table "
            "has a timestamp column and one numeric price column per asset (drop the column, "
            "or add an asset/symbol column for a long table)"
        )
    if n_ok == 0:
        raise DataError(
            f"{source}: column {label!r} is not numeric (row {row}: '{value}'); "
            "prices and volume must be numbers"
        )
    raise DataError(
        f"{source}: row {row}, column {label!r}: '{value}' is not a number; "
        "clean the value (or leave it empty for a missing one)"
    )


# ---------------------------------------------------------------------------------------------
# the pandas-free reading of a plain CSV


_US_DATE = "[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}"  # 1/4/1999: pandas infers %m/%d/%Y for it
_US_DATES = re.compile(f"(?:{_US_DATE}\n)*{_US_DATE}")
_NS_PER = {"D": 86_400 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _us_days(values: list[str]) -> np.ndarray | None:
    """Days since 1970 of text dates written month first (1/4/1999), or None if one is not
    such a date (a 13th month, February 30th, another format)."""
    text = "\n".join(values)
    if not _US_DATES.fullmatch(text):
        return None
    mdy = np.array([p.split("/") for p in values], dtype=np.int64).reshape(-1, 3)
    m, d, y = mdy[:, 0], mdy[:, 1], mdy[:, 2]
    month = ((y - 1970) * 12 + (m - 1)).astype("datetime64[M]")
    days = month.astype("datetime64[D]") + (d - 1)
    if not ((m >= 1) & (m <= 12) & (d >= 1) & (days.astype("datetime64[M]") == month)).all():
        return None
    return days.view(np.int64)


def _arrow_times(col: Any) -> np.ndarray | None:
    """datetime64[ns] of an Arrow timestamp/date column, or of text dates written 1/4/1999
    (month first, as pandas reads them), without missing values; None for any other column
    (:func:`_timestamps` then reads it and names what is wrong). No ``pyarrow.compute``."""
    import pyarrow as pa

    t = col.type
    if col.null_count or len(col) == 0:
        return None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        unit, v = "D", _us_days(col.to_pylist())
        if v is None:
            return None
    elif pa.types.is_timestamp(t):
        unit = t.unit  # a zone's values are UTC already: the naive UTC times pandas gives
        v = to_numpy(col)[0].astype(np.int64)
    elif pa.types.is_date32(t):
        unit = "D"
        v = to_numpy(col)[0].astype(np.int64)
    else:
        return None
    k = _NS_PER[unit]
    lim = np.iinfo(np.int64).max // k
    if int(v.max()) >= lim or int(v.min()) <= -lim:
        return None  # outside 1678..2262: from_frame's message
    return (v * k).view("datetime64[ns]")


def _arrow_numbers(col: Any) -> np.ndarray | bool | None:
    """float64 of an Arrow integer/float column (missing -> NaN, a new array); False for
    a boolean column without nulls (not market data, as :func:`_numeric` says; with nulls
    pandas sees objects, and numbers in them); None for any other column."""
    import pyarrow as pa

    t = col.type
    if pa.types.is_boolean(t):
        return False if col.null_count == 0 else None
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return None
    v, valid = to_numpy(col)
    v = v.astype(np.float64)  # a new array; an integer converts as Arrow's cast does
    if valid is not None:
        v[~valid] = np.nan
    return v


def _from_arrow(table: pa.Table, source: str, asset: str | None) -> MarketData | None:
    """:func:`from_frame` of a CSV's Arrow table without pandas, for the plain cases: one
    timestamp column (:func:`_arrow_times`), one asset's OHLCV or a wide table of closes, all
    numeric. Returns None for anything else (a long table, text in a number column, a date and
    a time column, missing timestamps, ...): the caller then goes through pandas, whose checks
    name the problem. The same MarketData as ``from_frame(table.to_pandas(), ...)``."""
    names = table.column_names
    if table.num_rows == 0 or len(set(names)) != len(names):
        return None
    cols = _columns(table, source)
    if "date" in cols and "time" in cols and not ("timestamp" in cols or "datetime" in cols):
        return None
    ts_col = next((cols[k] for k in TIMESTAMP_NAMES if k in cols), None)
    if ts_col is None or any(k in cols for k in ASSET_NAMES):
        return None
    ts = _arrow_times(table.column(ts_col))
    if ts is None:
        return None
    close_col = next((cols[k] for k in CLOSE_NAMES if k in cols), None)
    fields = {k: cols[k] for k in FIELD_NAMES if k in cols}
    if close_col is None and fields:
        return None
    if close_col is None:  # wide: one close column per asset
        wide = [c for c in names if c != ts_col and not _ignored(c)]
        if not wide:
            return None
        close = np.empty((len(wide), len(ts)))
        for i, c in enumerate(wide):
            v = _arrow_numbers(table.column(c))
            if v is None or v is False:
                return None
            close[i] = v
        _check_order(ts, ts_col, source)
        market = MarketData(timestamps=ts, assets=tuple(str(c).strip() for c in wide),
                            close=close, source=source)
        return validate_market(market, Where(wide=True, in_file=True))
    fields["close"] = close_col
    skip = {ts_col} | set(fields.values()) | {c for k, c in cols.items() if k in CLOSE_NAMES}
    arrays: dict[str, np.ndarray] = {}
    for f, c in fields.items():
        v = _arrow_numbers(table.column(c))
        if v is None or v is False:
            return None
        arrays[f] = v[None, :]
    extra: dict[str, np.ndarray] = {}
    for c in names:
        if c in skip or _ignored(c):
            continue
        v = _arrow_numbers(table.column(c))
        if v is None:
            return None
        if v is not False:
            extra[_extra_name(c)] = v[None, :]
    _check_order(ts, ts_col, source)
    name = asset if asset is not None else _stem(source)
    market = MarketData(timestamps=ts, assets=(name,), extra=extra, source=source, **arrays)
    return validate_market(market, Where(columns=fields, in_file=True))


# ---------------------------------------------------------------------------------------------
# shapes


def _check_order(ts: np.ndarray, label: str, source: str, rows: np.ndarray | None = None,
                 asset: str | None = None) -> None:
    """Timestamps in file order must strictly increase (per asset for long tables)."""
    d = np.diff(ts.view(np.int64))
    bad = d <= 0
    if not bad.any():
        return
    i = int(np.argmax(bad)) + 1
    r0, r1 = (i, i + 1) if rows is None else (int(rows[i - 1]), int(rows[i]))
    who = "" if asset is None else f" for asset {asset!r}"
    t0, t1 = str(ts[i - 1])[:19].replace("T", " "), str(ts[i])[:19].replace("T", " ")
    if d[i - 1] == 0:
        raise DataError(
            f"{source}: rows {r0} and {r1} have the same timestamp {t1}{who} (column {label!r}); "
            "drop the duplicate row"
        )
    raise DataError(
        f"{source}: row {r1}, column {label!r}: timestamp {t1}{who} is earlier than row {r0}'s "
        f"{t0}; sort the file by timestamp (oldest first)"
    )


def _extras(frame: pd.DataFrame, skip: set[str], source: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for c in frame.columns:
        if c in skip or _ignored(c):
            continue
        v = _numeric(frame[c], c, source, "extra")
        if v is not None:
            out[_extra_name(c)] = v
    return out


def _single(frame: pd.DataFrame, ts: np.ndarray, label: str, asset: str, fields: dict[str, str],
            skip: set[str], source: str, file_rows: bool) -> MarketData:
    _check_order(ts, label, source)
    arrays = {f: _numeric(frame[c], c, source)[None, :] for f, c in fields.items()}
    extra = {k: v[None, :] for k, v in _extras(frame, skip, source).items()}
    market = MarketData(timestamps=ts, assets=(asset,), extra=extra, source=source, **arrays)
    return validate_market(market, Where(columns=fields, in_file=file_rows))


def _wide(frame: pd.DataFrame, ts: np.ndarray, label: str, used: set[str], source: str,
          file_rows: bool) -> MarketData:
    names = [c for c in frame.columns if c not in used and not _ignored(c)]
    if not names:
        raise DataError(
            f"{source}: no close column; found columns {[str(c) for c in frame.columns]}; "
            f"accepted names (any case): {_ACCEPTED_CLOSE} — or a wide table with one numeric "
            "column per asset"
        )
    _check_order(ts, label, source)
    assets = tuple(str(c).strip() for c in names)
    close = np.empty((len(names), len(ts)))
    for i, c in enumerate(names):
        close[i] = _numeric(frame[c], c, source, "asset")
    market = MarketData(timestamps=ts, assets=assets, close=close, source=source)
    return validate_market(market, Where(wide=True, in_file=file_rows))


def _long(frame: pd.DataFrame, ts: np.ndarray, label: str, asset_col: str,
          fields: dict[str, str], skip: set[str], source: str, file_rows: bool) -> MarketData:
    import pandas as pd

    sym = frame[asset_col]
    missing = (sym.isna() | (sym.astype("str").str.strip() == "")).to_numpy()
    if missing.any():
        r = int(np.argmax(missing)) + 1
        raise DataError(
            f"{source}: row {r}, column {asset_col!r}: missing asset name; fill it or drop the row"
        )
    codes, uniques = pd.factorize(sym.astype("str").str.strip())
    assets = tuple(str(u) for u in uniques)
    n_rows = len(ts)
    file_row = np.arange(1, n_rows + 1, dtype=np.int64)

    # per asset, file order: strictly increasing timestamps
    order = np.argsort(codes, kind="stable")
    ts_by = ts[order]
    same = codes[order][1:] == codes[order][:-1]
    d = np.diff(ts_by.view(np.int64))
    bad = same & (d <= 0)
    if bad.any():
        k = np.flatnonzero(bad)
        j = int(k[np.argmin(order[k + 1])])  # the violation earliest in the file
        pair = order[[j, j + 1]]
        _check_order(ts[pair], label, source, rows=file_row[pair], asset=assets[codes[pair[0]]])

    times = np.unique(ts)
    pos = np.searchsorted(times, ts)
    n_a, n_t = len(assets), len(times)
    rows = np.zeros((n_a, n_t), dtype=np.int64)
    rows[codes, pos] = file_row
    present = rows > 0
    started = np.cumsum(present, axis=1) > 0
    gap = started & ~present
    if gap.any():
        a = int(np.argmax(gap.any(axis=1) * 1))
        gaps = np.flatnonzero(gap[a])
        b = int(gaps[0])
        name, t = assets[a], str(times[b])[:19].replace("T", " ")
        if present[a, b:].any():
            raise DataError(
                f"{source}: asset {name!r} has no row at {t} (column {label!r}) although other "
                f"assets do and {name} has rows before and after (interior gap); add the missing "
                "bar, e.g. repeat the previous close with volume 0, or drop that timestamp "
                "from every asset"
            )
        last = int(rows[a, b - 1])
        end = str(times[-1])[:19].replace("T", " ")
        raise DataError(
            f"{source}: asset {name!r} has no rows after row {last} ({t} is missing) but the "
            f"data runs to {end}; every asset must trade to the end of the file (trim the "
            f"other assets or load {name} separately)"
        )

    def pivot(v: np.ndarray) -> np.ndarray:
        out = np.full((n_a, n_t), np.nan)
        out[codes, pos] = v
        return out

    arrays = {f: pivot(_numeric(frame[c], c, source)) for f, c in fields.items()}
    extra = {k: pivot(v) for k, v in _extras(frame, skip, source).items()}
    market = MarketData(timestamps=times, assets=assets, extra=extra, source=source, **arrays)
    return validate_market(market, Where(columns=fields, rows=rows, long=True, in_file=file_rows))

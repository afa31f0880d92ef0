"""numpy <-> Arrow without pandas.

pyarrow's own conversions (``Array.to_numpy``, ``pa.array`` of a numpy array or of Python
values, ``pa.scalar``) import pandas the first time they run, when it is installed: its C++
layer initialises pandas' static data. A short command (``quantfleet backtest``) that only
moves numbers between Arrow and numpy pays for that import; these helpers move them through
the arrays' buffers instead and never touch pandas. Values are the same as pyarrow's
conversions give (a float NaN stays a value, not a null).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["from_numpy", "repeat_string", "strings", "table_from_rows", "to_numpy"]


def _numpy_dtype(t: Any) -> np.dtype:
    import pyarrow as pa

    if pa.types.is_floating(t):
        return np.dtype(f"f{t.bit_width // 8}")
    if pa.types.is_signed_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date(t):
        return np.dtype(f"i{t.bit_width // 8}")
    if pa.types.is_unsigned_integer(t):
        return np.dtype(f"u{t.bit_width // 8}")
    raise TypeError(f"to_numpy: no fixed-width numpy type for Arrow type {t}")


def _bits(buf: Any, offset: int, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(buf, np.uint8), bitorder="little")[offset:offset + n] \
        .astype(bool)


def to_numpy(col: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A fixed-width Arrow column (integer, float, boolean, timestamp, date; an Array or a
    ChunkedArray) as a new writable numpy array of its values, and its validity (True where a
    value is present) or None when it has no nulls. A timestamp's values are its int64 counts
    of its unit (UTC for a zoned one), a date32's its int32 days; a null's slot holds whatever
    the buffer has."""
    import pyarrow as pa

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    n, off = len(col), col.offset
    bufs = col.buffers()
    if pa.types.is_boolean(col.type):
        values = _bits(bufs[1], off, n) if n else np.zeros(0, dtype=bool)
    else:
        dt = _numpy_dtype(col.type)
        values = (np.frombuffer(bufs[1], dtype=dt, count=n, offset=off * dt.itemsize).copy()
                  if n else np.zeros(0, dtype=dt))
    valid = _bits(bufs[0], off, n) if col.null_count else None
    return values, valid


def from_numpy(x: np.ndarray) -> Any:
    """A 1-d numpy array (integer, float, bool, datetime64) as an Arrow array without nulls, as
    ``pa.array(x)`` gives it; a contiguous numeric array is shared, not copied."""
    import pyarrow as pa

    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"from_numpy: expected a 1-d array, got shape {x.shape}")
    if x.dtype.kind == "b":
        data = np.packbits(x, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(x), [None, pa.py_buffer(data)])
    if x.dtype.kind == "M":
        unit = np.datetime_data(x.dtype)[0]
        t = pa.timestamp(unit)
        x = x.view(np.int64)
    elif x.dtype.kind in "iuf":
        t = pa.from_numpy_dtype(x.dtype)
    else:
        raise TypeError(f"from_numpy: dtype {x.dtype} is not integer, float, bool or datetime64")
    x = np.ascontiguousarray(x)
    return pa.Array.from_buffers(t, len(x), [None, pa.py_buffer(x)])


def strings(values: Sequence[str], *, large: bool = False) -> Any:
    """Python strings as an Arrow ``string`` (``large_string`` if ``large``) array, no nulls."""
    import pyarrow as pa

    enc = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(enc) + 1, dtype=np.int64 if large else np.int32)
    np.cumsum([len(b) for b in enc], out=offsets[1:])
    return pa.Array.from_buffers(pa.large_string() if large else pa.string(), len(enc),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(enc))])


def repeat_string(value: str, n: int) -> Any:
    """``n`` copies of ``value`` as an Arrow ``string`` array (``pa.repeat(pa.scalar(value), n)``)."""
    import pyarrow as pa

    b = value.encode("utf-8")
    offsets = np.arange(n + 1, dtype=np.int32) * len(b)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(b * n)])


def _column(values: list[Any]) -> Any:
    """One column of :func:`table_from_rows`, or None when its values are of no type here."""
    import pyarrow as pa

    if all(isinstance(v, str) for v in values):
        return strings(values, large=True)
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return from_numpy(np.array(values, dtype=bool))
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
           for v in values):
        return from_numpy(np.array(values, dtype=np.int64))
    if all(v is None or (isinstance(v, (int, float, np.integer, np.floating))
                         and not isinstance(v, (bool, np.bool_))) for v in values):
        x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        missing = np.isnan(x)
        if not missing.any():
            return from_numpy(x)
        valid = np.packbits(~missing, bitorder="little")
        return pa.Array.from_buffers(pa.float64(), len(x), [pa.py_buffer(valid),
                                                            pa.py_buffer(x)])
    return None


def table_from_rows(rows: list[dict[str, Any]]) -> Any:
    """Rows of plain values (the same keys in each) as the Arrow table
    ``pa.Table.from_pandas(pd.DataFrame(rows))`` gives, less its pandas metadata: text as
    ``large_string``, bools, int64, and float64 with NaN/None as null (int and float mixed:
    float64). None when a column holds anything else (the caller uses pandas then)."""
    import pyarrow as pa

    if not rows:
        return None
    names = list(rows[0])
    if any(list(r) != names for r in rows):
        return None
    cols = []
    for name in names:
        col = _column([r[name] for r in rows])
        if col is None:
            return None
        cols.append(col)
    return pa.Table.from_arrays(cols, names)

"""data.arrow (numpy <-> Arrow through buffers) against pyarrow's and pandas' own conversions,
and the pandas-free CSV reading (loaders._from_arrow) against the pandas path (from_frame)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from quantfleet.data import loaders
from quantfleet.data.arrow import from_numpy, repeat_string, strings, table_from_rows, to_numpy
from quantfleet.errors import DataError

# -- data.arrow ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arr", [
    pa.array([1.5, None, -2.0, float("nan")]),
    pa.array([1, 2, None, 4], type=pa.int64()),
    pa.array([7, 8, 9], type=pa.int32()),
    pa.array([3, 4], type=pa.uint16()),
    pa.array([True, None, False, True]),
    pa.chunked_array([pa.array([1.0, 2.0]), pa.array([None, 4.0])]),
    pa.array([1.0, 2.0, 3.0, 4.0, 5.0]).slice(2, 3),
    pa.array([True, False, True, True, False, False, True, True, False, True]).slice(3, 6),
    pa.array([0, 1], type=pa.timestamp("s", tz="America/New_York")),
    pa.array([0, 1], type=pa.date32()),
    pa.array([], type=pa.float64()),
])
def test_to_numpy_gives_the_values_and_validity_arrow_holds(arr):
    values, valid = to_numpy(arr)
    items = arr.to_pylist()
    want_valid = [x is not None for x in items]
    assert (valid is None) == all(want_valid)
    if valid is not None:
        assert valid.tolist() == want_valid
    assert values.flags.writeable and len(values) == len(items)
    t = arr.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        want = arr.cast(pa.int64() if pa.types.is_timestamp(t) else pa.int32()).to_pylist()
    else:
        want = items
    for got, w in zip(values.tolist(), want, strict=True):
        if w is not None:
            assert got == w or (math.isnan(got) and math.isnan(w))


def test_to_numpy_rejects_a_type_without_a_fixed_width():
    with pytest.raises(TypeError, match="fixed-width"):
        to_numpy(pa.array(["a"]))


@pytest.mark.parametrize("x", [
    np.array([1.0, np.nan, 3.0]), np.arange(5, dtype=np.int64), np.arange(4, dtype=np.uint8),
    np.array([True, False, True, True, False, True, False, False, True]),
    np.array(["2020-01-01", "2021-06-30T12:00"], dtype="datetime64[ns]"),
    np.array(["2020-01-01"], dtype="datetime64[s]"), np.arange(10.0)[::2], np.zeros(0),
])
def test_from_numpy_is_pa_array(x):
    got = from_numpy(x)
    want = pa.array(x)
    assert got.type == want.type and got.null_count == 0
    assert str(got.to_pylist()) == str(want.to_pylist())  # str: NaN == NaN


def test_from_numpy_shares_a_contiguous_array_and_checks_its_input():
    x = np.arange(3.0)
    assert from_numpy(x).buffers()[1].address == x.ctypes.data
    with pytest.raises(ValueError, match="1-d"):
        from_numpy(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="dtype"):
        from_numpy(np.array(["a"]))


def test_strings_and_repeat_string_are_pyarrows_arrays():
    words = ["a", "", "ünïcode", "x" * 100]
    assert strings(words).equals(pa.array(words, type=pa.string()))
    assert strings(words, large=True).equals(pa.array(words, type=pa.large_string()))
    assert strings([]).equals(pa.array([], type=pa.string()))
    assert repeat_string("SPX", 4).equals(pa.repeat(pa.scalar("SPX"), 4))
    assert repeat_string("é", 0).equals(pa.array([], type=pa.string()))


def test_table_from_rows_is_the_dataframes_table():
    rows = [{"asset": "A", "bars": 10, "fee": 0, "long": False, "sharpe": 0.5, "calmar": None,
             "ppy": 252.0, "params": json.dumps({"fast": 5})},
            {"asset": "B", "bars": 12, "fee": 0, "long": True, "sharpe": float("nan"),
             "calmar": 1.25, "ppy": 252, "params": json.dumps({"fast": 6})}]
    got = table_from_rows(rows)
    want = pa.Table.from_pandas(pd.DataFrame(rows))
    want = want.replace_schema_metadata(None)
    assert got.schema == want.schema
    assert got.equals(want)  # NaN and None are both null in a DataFrame's table


def test_table_from_rows_declines_what_it_does_not_type():
    assert table_from_rows([]) is None
    assert table_from_rows([{"a": 1}, {"b": 2}]) is None
    assert table_from_rows([{"a": [1]}]) is None
    assert table_from_rows([{"a": "x"}, {"a": 1}]) is None


# -- loaders: a plain CSV without pandas -----------------------------------------------------------


def _same_market(a, b):
    assert a.assets == b.assets and a.source == b.source
    assert a.timestamps.dtype == b.timestamps.dtype and np.array_equal(a.timestamps, b.timestamps)
    assert a.columns() == b.columns()
    for f in a.columns():
        x, y = a.field(f), b.field(f)
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), f
    assert a.periods_per_year == b.periods_per_year


def _both(tmp_path, text: str, name: str = "ACME.csv", asset: str | None = None):
    """(the Arrow reading or None, the pandas reading) of the same CSV text."""
    p = tmp_path / name
    p.write_text(text)
    table = pcsv.read_csv(p, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    fast = loaders._from_arrow(table, name, asset)
    slow = loaders.from_frame(loaders.read_table(p), source=name, asset=asset)
    return fast, slow


def _ohlcv(dates: list[str], extra: str = "") -> str:
    head = "Date,Open,High,Low,Close,Volume" + ("," + extra if extra else "")
    lines = [head]
    for i, d in enumerate(dates):
        c = 100 + i + 0.25
        lines.append(f"{d},{c},{c + 1},{c - 1},{c},{1000 + i}" + (f",{i * 0.5}" if extra else ""))
    return "\n".join(lines) + "\n"


DAYS = [f"2021-03-{d:02d}" for d in range(1, 29)]


@pytest.mark.parametrize("text", [
    _ohlcv(DAYS),
    _ohlcv(DAYS, extra="Funding Rate"),
    _ohlcv([f"{int(d[5:7])}/{int(d[8:])}/{d[:4]}" for d in DAYS]),  # 3/1/2021, as pandas reads it
    _ohlcv([f"{d}T09:30:00Z" for d in DAYS]),
    _ohlcv([f"{d} 09:30:00+02:00" for d in DAYS]),
    _ohlcv([f"{d} 09:30:00" for d in DAYS]),
    "timestamp,close,adj close\n" + "".join(f"{d},{i + 1}.5,{i}\n" for i, d in enumerate(DAYS)),
    "date,price,flag\n" + "".join(f"{d},{i + 3},{'true' if i % 2 else 'false'}\n"
                                 for i, d in enumerate(DAYS)),
    "Date,AAA,BBB, CCC \n" + "".join(f"{d},{'' if i < 3 else i + 1},{i + 2},{i + 3}.0\n"
                                     for i, d in enumerate(DAYS)),
])
def test_a_plain_csv_read_through_arrow_is_the_pandas_reading(tmp_path, text):
    fast, slow = _both(tmp_path, text)
    assert fast is not None
    _same_market(fast, slow)


@pytest.mark.parametrize("text", [
    "date,asset,close\n" + "".join(f"{d},{a},{i + 1}\n" for i, d in enumerate(DAYS[:5])
                                   for a in "XY"),  # long table
    "date,time,close\n" + "".join(f"{d},09:30,{i + 1}\n" for i, d in enumerate(DAYS)),
    "date,close,flag\n" + "".join(f"{d},{i + 1},{'' if i == 2 else 'true'}\n"
                                  for i, d in enumerate(DAYS)),  # a bool with a gap
    "date,close,exchange\n" + "".join(f"{d},{i + 1},NYSE\n" for i, d in enumerate(DAYS)),
    "date,close\n" + "".join(f"{'' if i == 3 else d},{i + 1}\n" for i, d in enumerate(DAYS)),
    "date,close\n" + "".join(f"13/{i + 1}/2021,{i + 1}\n" for i in range(12)),  # day first
    "date,close\n2/27/2021,1\n2/28/2021,2\n2/30/2021,3\n",  # no such day
    "date,close\n 2/27/2021,1\n2/28/2021,2\n",
    "date,close\n" + "".join(f"{1609459200 + 86400 * i},{i + 1}\n" for i in range(9)),  # epoch
    "date,close\n" + "".join(f"{d},{'abc' if i == 2 else i + 1}\n" for i, d in enumerate(DAYS)),
])
def test_other_csvs_go_through_pandas(tmp_path, text):
    p = tmp_path / "ACME.csv"
    p.write_text(text)
    table = pcsv.read_csv(p, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    assert loaders._from_arrow(table, str(p), None) is None
    # load() then gives from_frame's reading: its market, or its error
    try:
        slow = loaders.from_frame(loaders.read_table(p), source=str(p))
    except DataError as e:
        with pytest.raises(DataError) as got:
            loaders.load(p)
        assert str(got.value) == str(e)
    else:
        _same_market(loaders.load(p), slow)


def test_errors_are_the_pandas_paths(tmp_path):
    swapped = _ohlcv([DAYS[1], DAYS[0], *DAYS[2:]])
    p = tmp_path / "ACME.csv"
    p.write_text(swapped)
    with pytest.raises(DataError) as fast:
        loaders.load(p)
    with pytest.raises(DataError) as slow:
        loaders.from_frame(loaders.read_table(p), source=str(p))
    assert str(fast.value) == str(slow.value) and "sort the file" in str(fast.value)


def test_bundled_datasets_read_through_arrow_are_the_pandas_reading():
    from quantfleet.data.datasets import DATASETS, locate

    n = 0
    for name in DATASETS:
        try:
            ds, path = locate(name)
        except DataError:
            continue  # its package is not installed
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
        fast = loaders._from_arrow(table, name, ds.asset)
        assert fast is not None, name
        _same_market(fast, loaders.from_frame(loaders.read_table(path), source=name,
                                              asset=ds.asset))
        _same_market(loaders.load(name), fast)
        n += 1
    if n == 0:
        pytest.skip("no bundled dataset installed (quantfleet[data])")

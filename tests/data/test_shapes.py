"""The three table shapes from CSV and Parquet, column-name matching, time zones, extras."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantfleet.data import MarketData, from_frame, load
from quantfleet.data.loaders import read_table


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def csv_to_parquet(csv_path, index: str | None = None):
    frame = pd.read_csv(csv_path)
    if index is not None:
        frame = frame.set_index(index)
    out = csv_path.with_suffix(".parquet")
    frame.to_parquet(out)
    return out


OHLCV = """Date,Open,High,Low,Close,Volume
2024-01-02,10,11,9.5,10.5,100
2024-01-03,10.5,12,10,11.5,200
2024-01-04,11.5,11.8,10.9,11,150
"""

LONG = """timestamp,symbol,close,volume,funding_rate,exchange
2024-01-01T00:00:00Z,BTC,100,5,0.0001,binance
2024-01-01T00:00:00Z,ETH,10,50,0.0002,binance
2024-01-01T01:00:00Z,BTC,101,6,0.0001,binance
2024-01-01T01:00:00Z,ETH,11,40,,binance
2024-01-01T02:00:00Z,BTC,102,7,-0.0001,binance
2024-01-01T02:00:00Z,ETH,12,30,0.0003,binance
"""

WIDE = """date,AAPL,MSFT
2024-01-02,185.6,370.9
2024-01-03,184.2,370.6
2024-01-04,181.9,367.9
"""


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_single_asset_ohlcv(tmp_path, fmt):
    path = write(tmp_path, "AAPL.csv", OHLCV)
    if fmt == "parquet":
        path = csv_to_parquet(path)
    m = load(path)
    assert isinstance(m, MarketData)
    assert m.assets == ("AAPL",)
    assert m.source == str(path)
    assert m.columns() == ["open", "high", "low", "close", "volume"]
    assert m.close.dtype == np.float64 and m.close.shape == (1, 3)
    np.testing.assert_array_equal(m.close[0], [10.5, 11.5, 11])
    np.testing.assert_array_equal(m.volume[0], [100, 200, 150])
    assert m.timestamps.dtype == np.dtype("datetime64[ns]")
    assert str(m.timestamps[0]).startswith("2024-01-02")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_long_format(tmp_path, fmt):
    path = write(tmp_path, "perps.csv", LONG)
    if fmt == "parquet":
        path = csv_to_parquet(path)
    m = load(str(path))
    assert m.assets == ("BTC", "ETH")
    assert m.n_bars == 3
    np.testing.assert_array_equal(m.close, [[100, 101, 102], [10, 11, 12]])
    assert m.columns() == ["close", "volume", "funding_rate"]  # text column 'exchange' ignored
    fr = m.extra["funding_rate"]
    assert fr.shape == (2, 3) and np.isnan(fr[1, 1]) and fr[0, 2] == -0.0001
    assert str(m.timestamps[1]) == "2024-01-01T01:00:00.000000000"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_wide_format(tmp_path, fmt):
    path = write(tmp_path, "stocks.csv", WIDE)
    if fmt == "parquet":
        path = csv_to_parquet(path)
    m = load(path)
    assert m.assets == ("AAPL", "MSFT")
    assert m.columns() == ["close"]
    np.testing.assert_array_equal(m.close[:, 0], [185.6, 370.9])


def test_long_format_aligns_on_union_with_leading_nan(tmp_path):
    path = write(tmp_path, "late.csv", """date,asset,close
2024-01-01,A,1
2024-01-02,A,2
2024-01-02,B,20
2024-01-03,A,3
2024-01-03,B,30
""")
    m = load(path)
    assert m.n_bars == 3
    assert np.isnan(m.close[1, 0])
    np.testing.assert_array_equal(m.close[1, 1:], [20, 30])
    np.testing.assert_array_equal(m.first_valid(), [0, 1])


def test_long_format_grouped_by_asset(tmp_path):
    path = write(tmp_path, "grouped.csv", """Symbol,Date,Close
B,2024-01-01,5
B,2024-01-02,6
A,2024-01-01,1
A,2024-01-02,2
""")
    m = load(path)
    assert m.assets == ("B", "A")  # order of first appearance
    np.testing.assert_array_equal(m.close, [[5, 6], [1, 2]])


def test_wide_format_leading_nan_allowed(tmp_path):
    path = write(tmp_path, "ipo.csv", "date,OLD,NEW\n2024-01-01,1,\n2024-01-02,2,10\n2024-01-03,3,11\n")
    m = load(path)
    np.testing.assert_array_equal(m.first_valid(), [0, 1])


@pytest.mark.parametrize("header", [
    "DATE,OPEN,HIGH,LOW,CLOSE,VOLUME",
    "date,open,high,low,close,volume",
    "Timestamp,Open,High,Low,Close,Volume",
    " Datetime , open , HIGH , Low , cLoSe , Volume ",
])
def test_column_names_case_insensitive(tmp_path, header):
    body = OHLCV.split("\n", 1)[1]
    m = load(write(tmp_path, "x.csv", header + "\n" + body))
    assert m.columns() == ["open", "high", "low", "close", "volume"]
    assert m.close[0, -1] == 11


def test_adj_close_ignored_when_close_present(tmp_path):
    m = load(write(tmp_path, "x.csv", "Date,Close,Adj Close\n2024-01-02,10,5\n2024-01-03,11,5.5\n"))
    np.testing.assert_array_equal(m.close[0], [10, 11])
    assert m.columns() == ["close"]


def test_adj_close_used_when_close_missing(tmp_path):
    m = load(write(tmp_path, "x.csv", "Date,Adj_Close,Volume\n2024-01-02,5,1\n2024-01-03,5.5,1\n"))
    np.testing.assert_array_equal(m.close[0], [5, 5.5])


def test_tz_aware_converted_to_utc_naive(tmp_path):
    m = load(write(tmp_path, "tz.csv", """time,close
2024-03-08T09:30:00-05:00,1
2024-03-11T09:30:00-04:00,2
2024-03-11T16:00:00Z,3
"""))
    assert m.timestamps.dtype == np.dtype("datetime64[ns]")
    assert [str(t)[:19] for t in m.timestamps] == [
        "2024-03-08T14:30:00", "2024-03-11T13:30:00", "2024-03-11T16:00:00"
    ]


def test_offsets_that_collide_in_utc_are_duplicates(tmp_path):
    from quantfleet.errors import DataError

    path = write(tmp_path, "dst.csv", "time,close\n2024-03-10T09:30:00-05:00,1\n2024-03-10T10:30:00-04:00,2\n")
    with pytest.raises(DataError, match=r"dst\.csv: rows 1 and 2 have the same timestamp 2024-03-10 14:30:00"):
        load(path)


def test_tz_aware_parquet_index(tmp_path):
    idx = pd.date_range("2024-01-01", periods=3, freq="h", tz="Europe/Berlin")
    frame = pd.DataFrame({"Close": [1.0, 2.0, 3.0]}, index=idx)
    path = tmp_path / "berlin.parquet"
    frame.to_parquet(path)
    m = load(path)
    assert m.assets == ("berlin",)
    assert str(m.timestamps[0])[:19] == "2023-12-31T23:00:00"


def test_parquet_named_index_and_multiindex(tmp_path):
    path = csv_to_parquet(write(tmp_path, "w.csv", WIDE), index="date")
    assert load(path).assets == ("AAPL", "MSFT")
    frame = pd.read_csv(write(tmp_path, "l.csv", LONG)).set_index(["timestamp", "symbol"])
    frame.to_parquet(tmp_path / "multi.parquet")
    m = load(tmp_path / "multi.parquet")
    assert m.assets == ("BTC", "ETH") and m.n_bars == 3


def test_epoch_milliseconds(tmp_path):
    m = load(write(tmp_path, "ms.csv", "open_time,time,close\n1,1704067200000,1\n2,1704070800000,2\n"))
    assert str(m.timestamps[0])[:19] == "2024-01-01T00:00:00"
    assert str(m.timestamps[1])[:19] == "2024-01-01T01:00:00"
    assert m.extra["open_time"].tolist() == [[1.0, 2.0]]


def test_separate_date_and_time_columns(tmp_path):
    m = load(write(tmp_path, "mt.csv", "Date,Time,Close\n2024-01-02,09:30:00,1\n2024-01-02,09:31:00,2\n"))
    assert str(m.timestamps[1])[:19] == "2024-01-02T09:31:00"


def test_us_dates_and_compressed_csv(tmp_path):
    import gzip

    path = tmp_path / "spx.csv.gz"
    path.write_bytes(gzip.compress(b"Date,Close\n1/4/1999,1\n1/5/1999,2\n12/31/1999,3\n"))
    m = load(path)
    assert m.assets == ("spx",)
    assert str(m.timestamps[2])[:10] == "1999-12-31"


def test_pandas_index_column_is_ignored(tmp_path):
    frame = pd.DataFrame({"date": ["2024-01-01", "2024-01-02"], "close": [1.0, 2.0]})
    frame.to_csv(tmp_path / "saved.csv")  # writes an unnamed index column first
    m = load(tmp_path / "saved.csv")
    assert m.columns() == ["close"] and m.assets == ("saved",)


def test_extra_column_names_normalized(tmp_path):
    m = load(write(tmp_path, "x.csv", "date,close,Funding Rate\n2024-01-01,1,0.1\n2024-01-02,2,0.2\n"))
    assert list(m.extra) == ["funding_rate"]


def test_from_frame_and_read_table(tmp_path):
    path = write(tmp_path, "w.csv", WIDE)
    m = from_frame(read_table(path), source="w.csv")
    assert m.assets == ("AAPL", "MSFT")
    frame = pd.DataFrame({"close": [1.0, 2.0]}, index=pd.date_range("2024-01-01", periods=2))
    assert from_frame(frame, asset="X").assets == ("X",)


def test_large_file_with_bad_value_late(tmp_path):
    # pyarrow infers column types from the first block; a bad value far down must still be named
    n = 100_000
    dates = pd.date_range("2000-01-01", periods=n, freq="min").strftime("%Y-%m-%d %H:%M")
    close = np.linspace(1, 2, n).round(6).astype(str)
    close[n - 5] = "oops"
    pd.DataFrame({"date": dates, "close": close}).to_csv(tmp_path / "big.csv", index=False)
    from quantfleet.errors import DataError

    with pytest.raises(DataError, match=rf"big\.csv: row {n - 4}, column 'close': 'oops' is not a number"):
        load(tmp_path / "big.csv")


@pytest.mark.parametrize("source", ["sp500_ohlcv", "synthetic:gbm?bars=10"])
def test_arrays_are_owned_float64(source):
    m = load(source)
    for name in m.columns():
        arr = m.field(name)
        assert arr.dtype == np.float64 and arr.flags.c_contiguous and arr.flags.writeable


def test_info_with_late_asset(tmp_path):
    from quantfleet.data import info

    d = info(load(write(tmp_path, "ipo.csv", "date,OLD,NEW\n2024-01-01,1,\n2024-01-02,2,10\n")))
    new = d["per_asset"][1]
    assert new == {"asset": "NEW", "first_bar": 1, "last_bar": 1, "first": "2024-01-02T00:00:00",
                   "last": "2024-01-02T00:00:00", "bars": 1, "min_close": 10.0, "max_close": 10.0}

"""Every validation case raises DataError naming the file, the row or timestamp, the column and the fix."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from quantfleet.data import MarketData, load, require_bars, validate_market
from quantfleet.errors import DataError


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def fails(tmp_path, name: str, text: str, pattern: str):
    with pytest.raises(DataError, match=pattern) as info:
        load(write(tmp_path, name, text))
    return str(info.value)


def test_file_not_found(tmp_path):
    path = tmp_path / "missing.csv"
    with pytest.raises(DataError, match=r"missing\.csv: file not found .*; check the path"):
        load(path)


def test_unknown_name_suggests_dataset():
    with pytest.raises(DataError, match=r"'sp50' is neither a file nor a bundled dataset \(did you mean 'sp500'"):
        load("sp50")


def test_unknown_extension(tmp_path):
    with pytest.raises(DataError, match=r"prices\.xlsx: unknown file extension '\.xlsx'; use \.csv"):
        load(write(tmp_path, "prices.xlsx", "x"))


def test_directory(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataError, match=r"d\.csv: is a directory"):
        load(tmp_path / "d.csv")


def test_wrong_type():
    with pytest.raises(TypeError, match="load\\(\\) takes a path"):
        load(42)  # type: ignore[arg-type]


def test_empty_file(tmp_path):
    fails(tmp_path, "empty.csv", "", r"empty\.csv: the file is empty; expected a header row")


def test_header_only(tmp_path):
    fails(tmp_path, "hdr.csv", "date,close\n",
          r"hdr\.csv: no data rows \(columns found: date, close\)")


def test_empty_parquet(tmp_path):
    path = tmp_path / "e.parquet"
    pd.DataFrame({"date": pd.to_datetime([]), "close": []}).to_parquet(path)
    with pytest.raises(DataError, match=r"e\.parquet: no data rows"):
        load(path)


def test_not_really_parquet(tmp_path):
    with pytest.raises(DataError, match=r"fake\.parquet: cannot read it as Parquet"):
        load(write(tmp_path, "fake.parquet", "date,close\n"))


def test_missing_close_lists_columns_and_accepted_names(tmp_path):
    msg = fails(tmp_path, "ohl.csv", "date,open,high,low\n2024-01-01,1,2,0.5\n",
                r"ohl\.csv: no close column; found columns \['date', 'open', 'high', 'low'\]; "
                r"accepted names \(any case\): close, adj close")
    assert "wide table" in msg


def test_missing_close_long_format(tmp_path):
    fails(tmp_path, "long.csv", "date,symbol,last\n2024-01-01,A,1\n",
          r"long\.csv: no close column; found columns \['date', 'symbol', 'last'\]")


def test_no_timestamp_column(tmp_path):
    fails(tmp_path, "nots.csv", "day,close\n1,10\n",
          r"nots\.csv: no timestamp column; found columns \['day', 'close'\]; name one column "
          r"timestamp, date, datetime or time \(any case\), or store the timestamps as the Parquet index")


def test_unparsable_timestamp_shows_value(tmp_path):
    fails(tmp_path, "bad.csv", "date,close\n2024-01-01,1\n2024-01-02,2\n2024-13-45,3\n",
          r"bad\.csv: row 3, column 'date': cannot parse timestamp '2024-13-45'; use ISO 8601")


def test_missing_timestamp(tmp_path):
    fails(tmp_path, "gap.csv", "date,close\n2024-01-01,1\n,2\n",
          r"gap\.csv: row 2, column 'date': missing timestamp; every row needs one")


def test_unsorted_timestamps(tmp_path):
    fails(tmp_path, "unsorted.csv", "date,close\n2024-01-01,1\n2024-01-03,2\n2024-01-02,3\n",
          r"unsorted\.csv: row 3, column 'date': timestamp 2024-01-02 00:00:00 is earlier than "
          r"row 2's 2024-01-03 00:00:00; sort the file by timestamp \(oldest first\)")


def test_duplicate_timestamps(tmp_path):
    fails(tmp_path, "dup.csv", "date,close\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n",
          r"dup\.csv: rows 2 and 3 have the same timestamp 2024-01-02 00:00:00 \(column 'date'\); "
          r"drop the duplicate row")


def test_duplicate_timestamps_per_asset_in_long_format(tmp_path):
    fails(tmp_path, "dup.csv",
          "date,symbol,close\n2024-01-01,A,1\n2024-01-01,B,1\n2024-01-02,A,2\n2024-01-02,B,2\n"
          "2024-01-02,B,3\n",
          r"dup\.csv: rows 4 and 5 have the same timestamp 2024-01-02 00:00:00 for asset 'B'")


def test_unsorted_per_asset_in_long_format(tmp_path):
    fails(tmp_path, "uns.csv",
          "date,symbol,close\n2024-01-02,A,1\n2024-01-01,B,1\n2024-01-01,A,2\n2024-01-02,B,2\n",
          r"uns\.csv: row 3, column 'date': timestamp 2024-01-01 00:00:00 for asset 'A' is earlier "
          r"than row 1's 2024-01-02 00:00:00; sort the file")


def test_interior_gap_in_long_format(tmp_path):
    fails(tmp_path, "holes.csv",
          "date,symbol,close\n2024-01-01,A,1\n2024-01-01,B,1\n2024-01-02,A,2\n"
          "2024-01-03,A,3\n2024-01-03,B,3\n",
          r"holes\.csv: asset 'B' has no row at 2024-01-02 00:00:00 \(column 'date'\) although "
          r"other assets do and B has rows before and after \(interior gap\); add the missing bar")


def test_trailing_gap_in_long_format(tmp_path):
    fails(tmp_path, "delisted.csv",
          "date,symbol,close\n2024-01-01,A,1\n2024-01-01,B,1\n2024-01-02,A,2\n2024-01-03,A,3\n",
          r"delisted\.csv: asset 'B' has no rows after row 2 \(2024-01-02 00:00:00 is missing\) "
          r"but the data runs to 2024-01-03 00:00:00; every asset must trade to the end")


def test_missing_asset_name(tmp_path):
    fails(tmp_path, "noname.csv", "date,asset,close\n2024-01-01,A,1\n2024-01-01,,2\n",
          r"noname\.csv: row 2, column 'asset': missing asset name")


def test_non_positive_price(tmp_path):
    rows = "".join(f"2024-01-{d:02d},{d}\n" for d in range(1, 17)) + "2024-01-17,-3.2\n"
    fails(tmp_path, "prices.csv", "date,close\n" + rows,
          re.escape("prices.csv: row 17, column 'close': non-positive price -3.2; "
                    "prices must be > 0 (clean the row or drop it)"))


def test_zero_open(tmp_path):
    fails(tmp_path, "o.csv", "date,Open,Close\n2024-01-01,1,1\n2024-01-02,0,1\n",
          r"o\.csv: row 2, column 'Open': non-positive price 0\.0")


def test_interior_nan_price(tmp_path):
    fails(tmp_path, "nan.csv", "date,close\n2024-01-01,1\n2024-01-02,\n2024-01-03,3\n",
          r"nan\.csv: row 2, column 'close': missing price \(NaN\) after the asset's first price; "
          r"gaps are not filled")


def test_trailing_nan_price_in_wide_table(tmp_path):
    fails(tmp_path, "w.csv", "date,A,B\n2024-01-01,1,1\n2024-01-02,2,\n",
          r"w\.csv: row 2, column 'B': missing price \(NaN\)")


def test_inf_price(tmp_path):
    fails(tmp_path, "inf.csv", "date,close\n2024-01-01,1\n2024-01-02,inf\n",
          r"inf\.csv: row 2, column 'close': infinite price inf; prices must be finite")


def test_nan_in_long_format_names_asset(tmp_path):
    fails(tmp_path, "l.csv",
          "date,symbol,close\n2024-01-01,A,1\n2024-01-01,B,1\n2024-01-02,A,2\n2024-01-02,B,\n",
          r"l\.csv: row 4 \(asset 'B'\), column 'close': missing price \(NaN\)")


def test_asset_without_prices(tmp_path):
    fails(tmp_path, "w.csv", "date,A,B\n2024-01-01,1,\n2024-01-02,2,\n",
          r"w\.csv: asset 'B' has no prices \(column 'B' is empty or NaN\); drop the asset")


def test_high_below_low(tmp_path):
    fails(tmp_path, "hl.csv",
          "date,open,high,low,close\n2024-01-01,10,11,9,10\n2024-01-02,10,9,11,10\n",
          r"hl\.csv: row 2, column 'high': high 9\.0 is below low 11\.0; high must be >= low")


def test_high_below_close(tmp_path):
    fails(tmp_path, "hc.csv",
          "date,open,high,low,close\n2024-01-01,10,11,9,10\n2024-01-02,10,10.5,9,10.8\n",
          r"hc\.csv: row 2, column 'high': high 10\.5 is below close 10\.8; high must be >= open and close")


def test_low_above_open(tmp_path):
    fails(tmp_path, "lo.csv",
          "date,open,high,low,close\n2024-01-01,10,11,9,10\n2024-01-02,9.5,11,9.8,10\n",
          r"lo\.csv: row 2, column 'low': low 9\.8 is above open 9\.5; low must be <= open and close")


def test_negative_volume(tmp_path):
    fails(tmp_path, "v.csv", "date,close,volume\n2024-01-01,1,5\n2024-01-02,1,-5\n",
          r"v\.csv: row 2, column 'volume': negative volume -5\.0; volume must be >= 0")


def test_text_in_price_column(tmp_path):
    fails(tmp_path, "t.csv", "date,close\n2024-01-01,1\n2024-01-02,1.0x\n",
          r"t\.csv: row 2, column 'close': '1\.0x' is not a number")


def test_wide_non_numeric_column(tmp_path):
    fails(tmp_path, "w.csv", "date,AAPL,sector\n2024-01-01,1,tech\n2024-01-02,2,tech\n",
          r"w\.csv: column 'sector' is not numeric \(row 1: 'tech'\); a wide table has a "
          r"timestamp column and one numeric price column per asset")


def test_duplicate_column_meaning(tmp_path):
    fails(tmp_path, "d.csv", "date,close,Close\n2024-01-01,1,1\n",
          r"d\.csv: columns 'close' and 'Close' are the same column")


def test_extra_with_inf(tmp_path):
    fails(tmp_path, "x.csv", "date,close,funding_rate\n2024-01-01,1,0.1\n2024-01-02,1,-inf\n",
          r"x\.csv: row 2, column 'funding_rate': infinite value -inf")


def test_validate_market_in_memory_names_bar_and_timestamp():
    ts = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]")
    m = MarketData(timestamps=ts, assets=("X",), close=np.array([[1.0, -1.0]]))
    with pytest.raises(DataError, match=r"<memory>: asset 'X', bar 1 \(2024-01-02T00:00:00\), "
                                        r"field 'close': non-positive price -1\.0"):
        validate_market(m)


def test_validate_market_unsorted_in_memory():
    ts = np.array(["2024-01-02", "2024-01-01"], dtype="datetime64[ns]")
    m = MarketData(timestamps=ts, assets=("X",), close=np.ones((1, 2)))
    with pytest.raises(DataError, match=r"bar 1 timestamp 2024-01-01T00:00:00 is earlier than bar 0"):
        validate_market(m)


def test_require_bars():
    ts = np.arange(40).astype("datetime64[D]").astype("datetime64[ns]")
    m = MarketData(timestamps=ts, assets=("X",), close=np.ones((1, 40)), source="x.csv")
    assert require_bars(m, 0, 40, "sma_cross") == 40
    with pytest.raises(DataError, match=re.escape(
            "x.csv: asset 'X' has 40 bars but strategy sma_cross with slow=50 needs 51; "
            "use shorter windows or more data")):
        require_bars(m, "X", 51, "sma_cross", {"slow": 50})


def test_require_bars_counts_from_first_price():
    ts = np.arange(10).astype("datetime64[D]").astype("datetime64[ns]")
    close = np.ones((1, 10))
    close[0, :4] = np.nan
    m = MarketData(timestamps=ts, assets=("X",), close=close)
    with pytest.raises(DataError, match="has 6 bars"):
        require_bars(m, 0, 7, "rsi")


# -- binary and non-text input: one line, no raw bytes echoed --------------------------------

def _one_clean_line(msg: str) -> None:
    assert "\n" not in msg and "\r" not in msg
    assert all(c.isprintable() for c in msg), repr(msg)


def test_binary_file_named_csv_is_refused_without_echoing_it(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"prices\.csv: not a text CSV file \(binary byte 0x00 "
                                        r"at offset 7\); give a UTF-8 CSV or a \.parquet file"
                       ) as info:
        load(path)
    _one_clean_line(str(info.value))


def test_parquet_named_csv(tmp_path):
    path = tmp_path / "p.csv"
    pd.DataFrame({"date": pd.to_datetime(["2024-01-01"]), "close": [1.0]}).to_parquet(path)
    with pytest.raises(DataError, match=r"p\.csv: this is a Parquet file with a \.csv name"):
        load(path)


def test_invalid_utf8_deep_in_the_file_names_its_row(tmp_path):
    rows = [f"{d.date()},{i + 1}" for i, d in enumerate(pd.date_range("2000-01-01", periods=5000))]
    body = ("date,close\n" + "\n".join(rows) + "\n").encode() + b"2011-01-01,\xff\xfe1\n"
    assert len(body) > 65536  # past the sniffed head: found by the column check
    path = tmp_path / "late.csv"
    path.write_bytes(body)
    with pytest.raises(DataError, match=r"late\.csv: row 5001, column 'close': not valid UTF-8 "
                                        r"text; save the file as UTF-8 CSV") as info:
        load(path)
    _one_clean_line(str(info.value))


def test_control_characters_in_a_value_are_escaped(tmp_path):
    msg = fails(tmp_path, "esc.csv", "date,close\n2024-01-01,1\n2024-01-02,\x1b[31mred\n",
                r"esc\.csv: row 2, column 'close': '\\x1b\[31mred' is not a number")
    _one_clean_line(msg)

"""Bundled datasets load from the packages' files without importing those packages."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

import quantfleet.data
from quantfleet.data import dataset_names, info, load
from quantfleet.errors import DataError


def test_exports_sorted():
    assert quantfleet.data.__all__ == sorted(quantfleet.data.__all__)
    assert {"MarketData", "dataset_names", "info", "load"} <= set(quantfleet.data.__all__)


def test_dataset_names():
    assert dataset_names() == ["nasdaq_ohlcv", "sp500", "sp500_index", "sp500_ohlcv"]


def test_sp500_shape():
    m = load("sp500")
    assert m.n_assets == 20 and m.n_bars == 8313
    assert m.assets[:3] == ("AAPL", "AMD", "BAC") and m.assets[-1] == "XOM"
    assert str(m.timestamps[0])[:10] == "1990-01-02"
    assert str(m.timestamps[-1])[:10] == "2022-12-28"
    assert m.columns() == ["close"]
    assert np.isfinite(m.close).all() and m.close[0, 0] == 0.264
    assert m.periods_per_year == 252.0


@pytest.mark.parametrize(("name", "asset", "first_close"), [
    ("sp500_ohlcv", "SPX", 1228.099976),
    ("nasdaq_ohlcv", "IXIC", 2208.050049),
])
def test_arch_ohlcv(name, asset, first_close):
    m = load(name)
    assert m.assets == (asset,)
    assert m.n_bars == 5031
    assert m.columns() == ["open", "high", "low", "close", "volume"]  # Adj Close == Close: ignored
    assert str(m.timestamps[0])[:10] == "1999-01-04"
    assert str(m.timestamps[-1])[:10] == "2018-12-31"
    assert m.close[0, 0] == first_close
    assert (m.high >= m.low).all()


def test_sp500_index():
    m = load("sp500_index")
    assert m.assets == ("SP500",) and m.n_bars == 8313


def test_info_is_json_serializable():
    d = info(load("sp500"))
    assert json.loads(json.dumps(d)) == d
    assert d["source"] == "sp500" and d["bars"] == 8313 and d["n_assets"] == 20
    assert d["start"] == "1990-01-02T00:00:00" and d["end"] == "2022-12-28T00:00:00"
    assert d["columns"] == ["close"] and d["periods_per_year"] == 252.0
    aapl = d["per_asset"][0]
    assert aapl["asset"] == "AAPL" and aapl["first_bar"] == 0 and aapl["last_bar"] == 8312
    assert aapl["min_close"] <= 0.264 <= aapl["max_close"]


def test_missing_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "arch" else real(name, *a))
    with pytest.raises(DataError, match=r"dataset 'sp500_ohlcv' comes from the arch package, "
                                        r"which is not installed; pip install 'quantfleet\[data\]'"):
        load("sp500_ohlcv")


def test_loading_datasets_imports_no_heavy_packages():
    code = (
        "import sys, quantfleet.data as d\n"
        "d.load('sp500'); d.load('sp500_ohlcv'); d.load('nasdaq_ohlcv')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'skfolio', 'sklearn', 'arch', "
        "'scipy', 'statsmodels', 'ray', 'prefect'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""synthetic: URLs give deterministic, consistent GBM OHLCV."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.data import load
from quantfleet.data.synthetic import gbm
from quantfleet.errors import DataError

URL = "synthetic:gbm?bars=5000&assets=3&seed=42"


def arrays(m):
    return [m.timestamps, m.close, m.open, m.high, m.low, m.volume, *m.extra.values()]


def test_same_seed_same_bytes():
    a, b = load(URL + "&funding=1"), load(URL + "&funding=1")
    for x, y in zip(arrays(a), arrays(b), strict=True):
        assert x.tobytes() == y.tobytes()


def test_different_seed_differs():
    assert load(URL).close.tobytes() != load(URL.replace("seed=42", "seed=43")).close.tobytes()


def test_adding_assets_keeps_existing_paths():
    one = load("synthetic:gbm?bars=500&assets=1&seed=7")
    three = load("synthetic:gbm?bars=500&assets=3&seed=7")
    np.testing.assert_array_equal(one.close[0], three.close[0])


def test_shape_names_and_ohlc_consistency():
    m = load(URL)
    assert m.source == URL
    assert m.assets == ("SYN0", "SYN1", "SYN2")
    assert m.close.shape == (3, 5000) and m.close.dtype == np.float64
    assert m.columns() == ["open", "high", "low", "close", "volume"]
    assert (m.high >= np.maximum(m.open, m.close)).all()
    assert (m.low <= np.minimum(m.open, m.close)).all()
    assert (m.low > 0).all() and (m.volume > 0).all()
    assert (np.diff(m.timestamps.astype(np.int64)) == 3600 * 10**9).all()  # default freq 1h


def test_parameters():
    m = load("synthetic:gbm?bars=20&assets=12&start=2021-06-01&freq=1D&funding=1&vol=0.5&drift=0")
    assert m.assets[0] == "SYN00" and m.assets[-1] == "SYN11"
    assert str(m.timestamps[0])[:10] == "2021-06-01" and str(m.timestamps[1])[:10] == "2021-06-02"
    assert m.extra["funding_rate"].shape == (12, 20)
    assert m.periods_per_year == 365.0


def test_zero_vol_is_flat_and_valid():
    m = gbm(bars=10, vol=0.0, drift=0.0, price=50)
    assert np.allclose(m.close, m.close[0, 0]) and (m.high == m.low).all()


def test_large_is_fine():
    m = load("synthetic:gbm?bars=100000&assets=5&seed=42")
    assert m.close.shape == (5, 100000)


@pytest.mark.parametrize(("url", "pattern"), [
    ("synthetic:gbm?bar=10", r"unknown parameter 'bar' \(did you mean 'bars'.*accepted: bars, assets"),
    ("synthetic:gbm?seeds=1", r"unknown parameter 'seeds' \(did you mean 'seed'"),
    ("synthetic:gmb?bars=10", r"unknown synthetic kind 'gmb' \(did you mean 'gbm'\?\)"),
    ("synthetic:gbm?bars=ten", r"bars must be an integer \(got 'ten'\)"),
    ("synthetic:gbm?bars=0", r"bars must be >= 1 \(got 0\)"),
    ("synthetic:gbm?vol=-1", r"vol must be >= 0 \(got -1\.0\)"),
    ("synthetic:gbm?freq=1B", r"freq '1B' is not a fixed duration; use e\.g\. 1D, 4h"),
    ("synthetic:gbm?start=someday", r"start 'someday' is not a date"),
    ("synthetic:gbm?bars=1&bars=2", r"parameter 'bars' given twice"),
    ("synthetic:gbm?bars=", r"parameter 'bars' has no value"),
    ("synthetic:gbm?bars=100000&freq=1D", r"run past year 2262; use fewer bars"),
])
def test_bad_urls(url, pattern):
    with pytest.raises(DataError, match=pattern):
        load(url)
